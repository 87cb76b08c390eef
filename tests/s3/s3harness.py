"""Harness for the S3 app tests: an in-process ASGI client that behaves like hypercorn.

Requests are signed by botocore's own S3SigV4Auth (an implementation we did not
write), or captured byte for byte from a real botocore client (conftest's
``botocore_client``) and replayed, so what is tested is what boto3 and the AWS
CLI send.  Responses are read at the ASGI level (status, raw headers, body).

:class:`AsgiExchange` drives the app the way hypercorn does: the request body
goes through a queue of ``QUEUE_MESSAGES`` messages (hypercorn's
``max_app_queue_size``), so a sender blocks when the app does not read, and
``http.disconnect`` is delivered from inside the app's final ``send``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any

import trio
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from titans3.s3.app import create_s3_app

from .memstore import MemAdmin, MemStore

ROOT, ROOT_SECRET = "AKIAROOTROOTROOT0001", "root/secret/key/for/tests/0000000000000"
USER, USER_SECRET = "AKIAUSERUSERUSER0002", "user/secret/key/for/tests/0000000000000"
HOST = "127.0.0.1:9000"
NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


# What conftest's botocore_client signs with (the AWS documentation example key).
EXAMPLE, EXAMPLE_SECRET = "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


class Creds:
    root_access_key = ROOT

    def get_secret(self, access_key: str) -> str | None:
        return {ROOT: ROOT_SECRET, USER: USER_SECRET, EXAMPLE: EXAMPLE_SECRET}.get(access_key)


@dataclass
class Resp:
    status: int
    headers: dict[str, str]  # lower-case names
    raw_headers: list[tuple[str, str]]
    body: bytes

    def xml(self) -> ET.Element:
        root = ET.fromstring(self.body)
        for el in root.iter():
            el.tag = el.tag.replace(NS, "")
        return root

    @property
    def code(self) -> str | None:
        return self.xml().findtext("Code") if self.body else None


def run(fn):
    """Run an async test body under trio (no pytest plugin needed)."""
    return trio.run(fn)


class Signer(S3SigV4Auth):
    """botocore's S3 signer with a chosen x-amz-content-sha256 (streaming modes)."""

    def __init__(self, creds: Credentials, payload: str | None, region: str = "us-east-1") -> None:
        super().__init__(creds, "s3", region)
        self._payload = payload

    def payload(self, request):  # noqa: ANN001 -- botocore's signature
        return self._payload if self._payload is not None else super().payload(request)


def make_app(store: MemStore | None = None, **kw):
    store = store if store is not None else MemStore(min_part_size=5)
    kw.setdefault("admin", MemAdmin())
    return create_s3_app(store=store, credentials=Creds(), **kw), store


QUEUE_MESSAGES = 2  # the daemon's max_app_queue_size (config http_body_queue; hypercorn's default is 10)


@dataclass
class AsgiExchange:
    """One request to an ASGI app, fed and read like hypercorn would."""

    app: Any
    scope: dict[str, Any]
    status: int | None = None
    raw_headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytearray = field(default_factory=bytearray)
    finished: trio.Event = field(default_factory=trio.Event)
    received_messages: int = 0  # how many messages the app has taken from the queue

    def __post_init__(self) -> None:
        self._to_app, self._queue = trio.open_memory_channel[dict](QUEUE_MESSAGES)

    async def receive(self) -> dict:
        message = await self._queue.receive()
        self.received_messages += 1
        return message

    async def send(self, message: dict) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.raw_headers = [(k.decode("latin-1"), v.decode("latin-1"))
                                for k, v in message["headers"]]  # fmt: skip
        elif message["type"] == "http.response.body":
            self.body += message.get("body", b"")
            if not message.get("more_body", False):
                self.finished.set()
                await self._to_app.send({"type": "http.disconnect"})  # as hypercorn does

    async def send_body(self, chunks: list[bytes]) -> None:
        for chunk in chunks:
            if self.finished.is_set():
                return  # answered early: a real client would stop sending too
            await self._to_app.send({"type": "http.request", "body": chunk, "more_body": True})
        if not self.finished.is_set():
            await self._to_app.send({"type": "http.request", "body": b"", "more_body": False})

    async def run(self, chunks: list[bytes]) -> Resp:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self.app, self.scope, self.receive, self.send)

            async def feed() -> None:
                with trio.CancelScope() as scope:
                    self._feeding = scope
                    await self.send_body(chunks)

            nursery.start_soon(feed)
            await self.finished.wait()
            self._feeding.cancel()  # an app that answered without reading everything
        return Resp(self.status or 0, {k.lower(): v for k, v in self.raw_headers},
                    self.raw_headers, bytes(self.body))  # fmt: skip


def asgi_scope(method: str, path: str, query: str, headers: dict[str, str]) -> dict[str, Any]:
    from urllib.parse import unquote

    return {
        "type": "http", "http_version": "1.1", "method": method, "scheme": "http",
        "path": unquote(path), "raw_path": path.encode("ascii"),
        "query_string": query.encode("ascii"), "root_path": "",
        "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()],
        "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 9000), "extensions": {},
    }  # fmt: skip


async def send_raw(app, method: str, path: str, query: str, headers: dict[str, str], chunks) -> Resp:
    return await AsgiExchange(app, asgi_scope(method, path, query, headers)).run(list(chunks))


async def call(
    app,
    method: str,
    path: str,
    query: str = "",
    *,
    headers: dict[str, str] | None = None,
    body: bytes | list[bytes] = b"",
    key: str = ROOT,
    secret: str = ROOT_SECRET,
    payload: str | None = None,
    sign: bool = True,
    host: str = HOST,
    region: str = "us-east-1",
) -> Resp:
    """``path`` is percent-encoded exactly as sent and signed."""
    chunks = body if isinstance(body, list) else [body]
    data = b"".join(chunks)
    hdrs = {"Host": host, **(headers or {})}
    if data and "Content-Length" not in hdrs:
        hdrs["Content-Length"] = str(len(data))
    if sign:
        url = f"http://{host}{path}" + (f"?{query}" if query else "")
        request = AWSRequest(method=method, url=url, headers=hdrs, data=data)
        Signer(Credentials(key, secret), payload, region).add_auth(request)
        hdrs = dict(request.headers.items())
    return await send_raw(app, method, path, query, hdrs, chunks)


async def replay(app, wire) -> Resp:
    """Send a request captured from botocore (conftest's ``Wire``) to the app."""
    return await send_raw(app, wire.method, wire.path, wire.query, wire.headers, [wire.body])


def put_bucket(app, name="bkt"):
    return call(app, "PUT", f"/{name}")


