"""The payload of an upload: decoded, counted, hashed, verified -- streamed.

Theory of operation
-------------------
A :class:`RequestBody` wraps the raw request body (an async iterable of the
byte blocks the server received) and is itself the async iterator of payload
bytes that ``ObjectStore.put_object`` / ``upload_part`` consume.  On the way it

* undoes ``aws-chunked`` framing when ``x-amz-content-sha256`` announced a
  streaming mode (``titans3.s3.chunked.ChunkedDecoder`` checks the chunk
  signature chain and collects the trailers);
* feeds every payload byte once to the requested ``x-amz-checksum-*``
  algorithms (``titans3.s3.checksums.ChecksumSet``) and, for a signed payload
  (``x-amz-content-sha256: <hex>``), to SHA-256;
* counts bytes against the announced size (``Content-Length`` or
  ``x-amz-decoded-content-length``) and the operation's maximum.  A body sent
  with ``Transfer-Encoding: chunked`` (``curl -T -``, streaming clients) has
  no announced size; the HTTP layer removes that framing, and the size is
  what arrived.  Neither a length nor chunked framing is ``411
  MissingContentLength``.

Invariant: **nothing is verified until the end, and the end is reached before
the store sees the last byte.**  As soon as the announced size has been
decoded, the iterator drains what is left of the wire body (trailers), checks
length, SHA-256 and checksums, and only then hands out the final piece; a
failure raises from ``__anext__`` instead, so a store that stops reading after
``size`` bytes still cannot commit an unverified object.  :meth:`verify` (the
``checksums=`` hook of the ObjectStore contract) returns the computed
``{algo: base64}`` after that, or raises the verification error again.

Memory: one received block at a time (the ASGI adapter bounds how far the
network runs ahead, see ``titans3.s3.asgi``).  Hashing a large block runs in a
worker thread (hashlib and the CRCs release the GIL); small blocks are hashed
inline because a thread hop costs more than the hash.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterable, AsyncIterator, Mapping

import trio

from titans3.core.errors import (
    EntityTooLarge,
    IncompleteBody,
    InvalidArgument,
    MissingContentLength,
    S3Error,
    XAmzContentSHA256Mismatch,
)
from titans3.s3 import checksums
from titans3.s3.chunked import ChunkedDecoder, declared_trailers, decoded_content_length
from titans3.s3.numbers import decimal
from titans3.s3.sigv4 import AuthResult, PayloadMode

MAX_PUT_SIZE = 5 * 1024**3  # AWS: 5 GiB for PutObject and for one part
MAX_XML_BODY = 8 * 1024**2  # 10,000 parts with checksums fit comfortably
THREAD_THRESHOLD = 512 * 1024


class MaxMessageLengthExceeded(S3Error):
    code = "MaxMessageLengthExceeded"
    status = 400
    default_message = "Your request was too big."


def _check_digits(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        return None
    value = value.strip()
    if not value.isdigit() or not value.isascii():
        raise InvalidArgument(f"Invalid {name}", ArgumentName=name, ArgumentValue=value)
    return value


def parse_content_length(headers: Mapping[str, str]) -> int | None:
    """``Content-Length`` as an int; None when absent; InvalidArgument (400) when malformed."""
    value = _check_digits(headers, "content-length")
    return None if value is None else decimal(value)


def is_chunked(headers: Mapping[str, str]) -> bool:
    """``Transfer-Encoding: chunked``: the HTTP layer de-chunks, the length is learnt at the end."""
    codings = headers.get("transfer-encoding", "")
    return codings.rsplit(",", 1)[-1].strip().lower() == "chunked"


class RequestBody:
    """Async iterator over the verified payload of one request (see module doc)."""

    def __init__(
        self,
        source: AsyncIterable[bytes],
        *,
        auth: AuthResult,
        headers: Mapping[str, str],
        max_size: int = MAX_PUT_SIZE,
        require_length: bool = True,
    ) -> None:
        self._source: AsyncIterator[bytes] = source.__aiter__()
        self._auth = auth
        self._max_size = max_size
        self._requested = checksums.requested_checksums(headers)
        self._checksum_set = checksums.ChecksumSet(self._requested) if self._requested else None
        self._sha256 = hashlib.sha256() if auth.payload_mode is PayloadMode.SHA256 else None
        wire_length = parse_content_length(headers)
        self._decoder: ChunkedDecoder | None = None
        if auth.payload_mode.streaming:
            _check_digits(headers, "x-amz-decoded-content-length")
            size: int | None = decoded_content_length(headers)
            self._decoder = ChunkedDecoder(
                auth, trailer_names=declared_trailers(headers), decoded_length=size
            )
        else:
            size = wire_length
            if size is None and require_length and not is_chunked(headers):
                raise MissingContentLength()
        self._too_large = EntityTooLarge if require_length else MaxMessageLengthExceeded
        if size is not None and size > max_size:
            raise self._too_large(ProposedSize=str(size), MaxSizeAllowed=str(max_size))
        self.size = size
        self._decoded = 0
        self._done = False
        self._error: S3Error | None = None
        self._result: dict[str, str] | None = None

    # ---------------------------------------------------------------- public
    def __aiter__(self) -> RequestBody:
        return self

    async def __anext__(self) -> bytes:
        if self._error is not None:
            raise self._error
        if self._done:
            raise StopAsyncIteration
        try:
            piece = b""
            at_eof = False
            while not piece and not self._all_seen():
                data = await self._read()
                if data is None:
                    at_eof = True
                    break
                piece = await self._process(data)
            if at_eof or self._all_seen():
                await self._finish()
        except S3Error as err:
            self._error = err
            raise
        if not piece:
            raise StopAsyncIteration
        return piece

    def verify(self) -> dict[str, str]:
        """``{algo: base64}`` of the verified payload (the store's ``checksums`` hook)."""
        if self._error is not None:
            raise self._error
        if self._result is None:
            raise IncompleteBody("The request body was not read to its end.")
        return dict(self._result)

    async def read_all(self) -> bytes:
        """The whole (small) payload, verified; bounded by ``max_size``."""
        return b"".join([piece async for piece in self])

    @property
    def bytes_received(self) -> int:
        return self._decoded

    # -------------------------------------------------------------- internal
    def _all_seen(self) -> bool:
        return self.size is not None and self._decoded >= self.size

    async def _read(self) -> bytes | None:
        while True:
            try:
                data = await self._source.__anext__()
            except StopAsyncIteration:
                return None
            if data:
                return data

    async def _process(self, data: bytes) -> bytes:
        if len(data) >= THREAD_THRESHOLD:
            payload = await trio.to_thread.run_sync(self._process_sync, data)
        else:
            payload = self._process_sync(data)
        self._decoded += len(payload)
        if self._decoded > self._max_size:
            raise self._too_large(MaxSizeAllowed=str(self._max_size))
        return payload

    def _process_sync(self, data: bytes) -> bytes:
        if self._decoder is not None:
            pieces = self._decoder.feed(data)
            if len(pieces) == 1 and isinstance(pieces[0], bytes):
                payload = pieces[0]
            else:
                payload = b"".join(pieces)
        else:
            payload = data
        if self._sha256 is not None:
            self._sha256.update(payload)
        if self._checksum_set is not None:
            self._checksum_set.update(payload)
        return payload

    async def _finish(self) -> None:
        # Whatever follows the payload (final chunk, trailers) is small.
        while (data := await self._read()) is not None:
            extra = await self._process(data)
            if extra and self._decoder is None:
                raise IncompleteBody(NumberBytesExpected=str(self.size),
                                     NumberBytesProvided=str(self._decoded))  # fmt: skip
        trailers = self._decoder.finish() if self._decoder is not None else {}
        if self.size is not None and self._decoded != self.size:
            raise IncompleteBody(NumberBytesExpected=str(self.size),
                                 NumberBytesProvided=str(self._decoded))  # fmt: skip
        if self._sha256 is not None:
            computed = self._sha256.hexdigest()
            if computed != self._auth.payload_sha256:
                raise XAmzContentSHA256Mismatch(
                    ClientComputedContentSHA256=self._auth.payload_sha256 or "",
                    S3ComputedContentSHA256=computed,
                )
        result: dict[str, str] = {}
        if self._checksum_set is not None:
            expected: dict[str, str | None] = dict(self._requested)
            for name, value in trailers.items():
                algo = checksums.algo_for_header(name)
                if algo is not None:
                    expected[algo] = value
            result = self._checksum_set.verify(expected)
        self._result = result
        self._done = True
