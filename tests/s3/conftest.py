"""Shared fixtures for the S3 front tests: AWS's example credentials and a way to
see exactly what botocore would put on the wire, without a network."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import botocore.session
import pytest
from botocore.awsrequest import AWSResponse
from botocore.config import Config

# The credentials every AWS SigV4 documentation example uses.
EXAMPLE_ACCESS_KEY = "AKIAIOSFODNN7EXAMPLE"
EXAMPLE_SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


@dataclass(frozen=True)
class Wire:
    """A request as the S3 app would receive it."""

    method: str
    path: str  # percent-encoded, as sent
    query: str  # raw, without '?'
    headers: dict[str, str]  # lower-case names, repeated values joined with ','
    body: bytes


class _EmptyRaw:
    def stream(self, *args: Any, **kwargs: Any) -> Any:
        yield b""

    def read(self, *args: Any, **kwargs: Any) -> bytes:
        return b""


def wire_of(request: Any) -> Wire:
    headers: dict[str, str] = {}
    for name, value in request.headers.items():
        if isinstance(value, bytes):
            value = value.decode("latin-1")
        name = name.lower()
        headers[name] = f"{headers[name]},{value}" if name in headers else value
    body = request.body
    if hasattr(body, "read"):
        body = body.read()
    parts = urlsplit(request.url)
    return Wire(request.method, parts.path, parts.query, headers, body or b"")


@pytest.fixture
def secrets() -> Callable[[str], str | None]:
    return {EXAMPLE_ACCESS_KEY: EXAMPLE_SECRET_KEY}.get


@pytest.fixture
def botocore_client() -> Callable[..., tuple[Any, list[Wire]]]:
    """``make(endpoint)`` -> (botocore S3 client, list that collects sent requests).

    Every request is captured at ``before-send`` and answered with an empty 200,
    so what we verify is byte for byte what botocore would have sent.
    """

    def make(endpoint: str = "http://127.0.0.1:9000") -> tuple[Any, list[Wire]]:
        sent: list[Wire] = []

        def answer(request: Any, **_: Any) -> AWSResponse:
            sent.append(wire_of(request))
            return AWSResponse(request.url, 200, {}, _EmptyRaw())

        session = botocore.session.Session()
        client = session.create_client(
            "s3",
            region_name="us-east-1",
            endpoint_url=endpoint,
            aws_access_key_id=EXAMPLE_ACCESS_KEY,
            aws_secret_access_key=EXAMPLE_SECRET_KEY,
            config=Config(
                signature_version="s3v4",
                s3={"addressing_style": "path"},
                retries={"max_attempts": 1},
            ),
        )
        client.meta.events.register("before-send.s3", answer)
        return client, sent

    return make


@pytest.fixture
def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
