"""What an S3 operation handler receives and returns.

Theory of operation
-------------------
Handlers are ``async def handler(ctx: S3Context) -> Reply``, registered by AWS
operation name (``titans3.s3.handlers_*.HANDLERS``).  They know nothing about
Quart or ASGI: the request arrives as plain values (lower-case headers, decoded
query, the classified :class:`~titans3.s3.routing.Route`, the verified
:class:`~titans3.s3.sigv4.AuthResult`) plus two ways to read the body, and they
answer with a :class:`Reply`.  The app turns a Reply into the HTTP response in
exactly one place, which is where the invariants live: request-id headers on
every response, no body on HEAD, an explicit Content-Length for streams.

Handlers raise ``titans3.core.errors.S3Error`` subclasses for every failure;
they never build error responses themselves.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from titans3.s3.body import MAX_XML_BODY, RequestBody
from titans3.s3.routing import Route
from titans3.s3.sigv4 import AuthResult
from titans3.s3.xml import Owner

XML_CONTENT_TYPE = "application/xml"


@dataclass(slots=True)
class Reply:
    """An HTTP answer, framework-free.

    ``body`` is bytes, or an async iterator streamed as-is; a stream needs
    ``length`` (the exact number of bytes it yields) so Content-Length is
    explicit -- S3 clients rely on it.  For HEAD the app drops the body but
    keeps the length.
    """

    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes | AsyncIterator[bytes] = b""
    length: int | None = None

    def header(self, name: str, value: str | None) -> Reply:
        if value is not None:
            self.headers.append((name, value))
        return self


def xml_reply(body: bytes, status: int = 200) -> Reply:
    return Reply(status, [("Content-Type", XML_CONTENT_TYPE)], body)


@dataclass(frozen=True, slots=True)
class S3Settings:
    """Per-app constants every handler may need."""

    region: str
    owner: Owner
    domain: str | None = None
    lifecycle_day: float = 86400.0  # seconds in a lifecycle "day" (x-amz-expiration, core/lifecycle.py)


@dataclass(slots=True)
class S3Context:
    method: str
    route: Route
    headers: Mapping[str, str]  # lower-case names; repeated headers joined with ","
    auth: AuthResult
    store: Any  # the object layer (contract: titans3.objects.api.ObjectAPI)
    settings: S3Settings
    request_id: str
    scheme: str
    raw_body: AsyncIterable[bytes]
    admin: Any = None
    _body_opened: bool = False

    @property
    def query(self) -> Mapping[str, str]:
        return self.route.query

    @property
    def bucket(self) -> str:
        assert self.route.bucket is not None
        return self.route.bucket

    @property
    def key(self) -> str:
        assert self.route.key is not None
        return self.route.key

    def open_body(self, *, max_size: int) -> RequestBody:
        """The decoded, verified payload stream (once per request)."""
        if self._body_opened:
            raise RuntimeError("the request body can be opened once")
        self._body_opened = True
        return RequestBody(self.raw_body, auth=self.auth, headers=self.headers, max_size=max_size)

    async def read_xml_body(self, limit: int = MAX_XML_BODY, *, body_checksums: bool = True) -> bytes:
        """A small (XML) request body, fully read and verified, at most ``limit`` bytes.

        ``body_checksums=False`` for operations whose ``x-amz-checksum-*``
        headers describe something else (CompleteMultipartUpload: the object).
        """
        if self._body_opened:
            raise RuntimeError("the request body can be opened once")
        self._body_opened = True
        headers = self.headers
        if not body_checksums:
            headers = {k: v for k, v in headers.items() if not k.startswith("x-amz-checksum-")}
        body = RequestBody(
            self.raw_body, auth=self.auth, headers=headers, max_size=limit, require_length=False,
        )  # fmt: skip
        return await body.read_all()

    def base_url(self) -> str:
        return f"{self.scheme}://{self.headers.get('host', 'localhost')}"


Handler = Callable[[S3Context], Any]  # async (ctx) -> Reply
