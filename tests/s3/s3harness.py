"""Harness for the S3 app tests: an in-process client over Quart's test client.

Requests are signed by botocore's own S3SigV4Auth (an implementation we did not
write), or captured byte for byte from a real botocore client (conftest's
``botocore_client``) and replayed, so what is tested is what boto3 and the AWS
CLI send.  Responses are read at the ASGI level (status, raw headers, body) --
not through Quart's Response wrapper, which recomputes Content-Length.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

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


async def send_raw(app, method: str, path: str, query: str, headers: dict[str, str], chunks) -> Resp:
    client = app.test_client()
    conn = client.request(
        path,
        method=method,
        headers=headers,
        scope_base={"raw_path": path.encode("ascii"), "query_string": query.encode("ascii")},
    )
    body = bytearray()
    async with conn:
        for chunk in chunks:
            await conn.send(chunk)
        await conn.send_complete()
        # Read the response while the app runs: the test connection's queue holds
        # only 10 body messages, and a streamed answer has more.
        while True:
            try:
                body += await conn.receive()
            except trio.EndOfChannel:
                break
    raw = [(k, v) for k, v in conn.headers.items()]
    return Resp(conn.status_code, {k.lower(): v for k, v in raw}, raw, bytes(body))


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


