"""Incremental decoder for ``aws-chunked`` request bodies (SigV4 streaming uploads).

Theory of operation
-------------------
A streaming upload announces itself in ``x-amz-content-sha256`` (see
:class:`~titans3.s3.sigv4.PayloadMode`) and frames the payload as::

    <hex-size>[;chunk-signature=<sig>]\\r\\n<data>\\r\\n      (repeated)
    0[;chunk-signature=<sig>]\\r\\n                          (final chunk)
    <name>:<value>\\r\\n ...                                 (trailers, if any)
    [x-amz-trailer-signature:<sig>\\r\\n]
    \\r\\n

In the signed modes every chunk signature continues a chain that starts at the
seed signature of the ``Authorization`` header::

    sig_n = HMAC(key, "AWS4-HMAC-SHA256-PAYLOAD\\n" amz_date \\n scope \\n sig_{n-1} \\n
                 sha256("") \\n sha256(chunk_n))

and the trailer signature is ``HMAC(key, "AWS4-HMAC-SHA256-TRAILER\\n" amz_date \\n
scope \\n sig_final \\n sha256(canonical trailers))``, the canonical trailers being
``name:value\\n`` per trailer, sorted, names lower-case (``"\\n"`` when empty).

The decoder is a small state machine (chunk header line -> data -> CRLF -> ...
-> trailer lines -> done) fed whatever the socket delivered.  Payload bytes are
never copied: :meth:`ChunkedDecoder.feed` returns slices (``memoryview``) of the
buffer it was given, so a 1 MiB read costs a few slice objects, not a pass over
the bytes; only header and trailer lines (tens of bytes) are buffered, in a
bytearray capped at 4 KiB.  In the signed modes each chunk is hashed as it
passes (sha256, ~1.8 GB/s) and checked when its CRLF arrives, so a tampered
chunk fails at its end -- but bytes of a chunk are handed out *before* its
signature is checked (holding a chunk back would need memory of the client's
choosing).  Nothing is trustworthy until :meth:`finish` returns: the caller
must not commit an object before that.

What real clients send and what we accept (liberal where they differ, strict
where the bytes would mean something else):

* botocore / awscrt unsigned trailers: ``0\\r\\nx-amz-checksum-crc32:...\\r\\n\\r\\n``;
  some clients omit the final ``\\r\\n`` (accepted at end of body), MinIO's tests
  put an extra ``\\r\\n`` between the final chunk and the trailers (accepted once).
* Chunk extensions are ignored in the unsigned mode; chunk sizes are not held to
  AWS's 8 KiB minimum (a smaller chunk costs us one header parse, not more).

Errors (what AWS returns, as observed by versitygw and OpenStack Swift, which
test against it): bad framing or a truncated body -> ``IncompleteBody`` "The
request body terminated unexpectedly"; decoded bytes differing from
``x-amz-decoded-content-length`` -> ``IncompleteBody`` with the byte counts; a bad
chunk or trailer signature -> ``SignatureDoesNotMatch``; a trailer that was not
declared in ``x-amz-trailer``, a declared one missing, or a malformed trailer
line -> ``MalformedTrailerError`` (defined here: core/errors.py has no such code
yet).  After an error the decoder stays failed and re-raises it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence

from titans3.core.errors import (
    IncompleteBody,
    InvalidArgument,
    MissingContentLength,
    S3Error,
    SignatureDoesNotMatch,
)
from titans3.s3.sigv4 import EMPTY_SHA256, AuthResult

MAX_LINE = 4096
_HEX_SIZE = re.compile(rb"[0-9a-fA-F]{1,16}")
_TRAILER_SIGNATURE = "x-amz-trailer-signature"

# States of the decoder.
_HEADER, _DATA, _DATA_CRLF, _TRAILER, _DONE = range(5)


class MalformedTrailerError(S3Error):
    """A trailer that is not well-formed or does not match ``x-amz-trailer``."""

    code = "MalformedTrailerError"
    status = 400
    default_message = (
        "The request contained trailing data that was not well-formed or did not conform "
        "to our published schema."
    )


def _framing(detail: str) -> IncompleteBody:
    # ``detail`` is for logs; AWS tells the client only this.
    err = IncompleteBody("The request body terminated unexpectedly")
    err.detail = detail  # type: ignore[attr-defined]
    return err


def decoded_content_length(headers: Mapping[str, str]) -> int:
    """``x-amz-decoded-content-length`` of a streaming upload (lower-case headers).

    Missing or not a number -> MissingContentLength (as S3); negative -> InvalidArgument.
    """
    value = headers.get("x-amz-decoded-content-length")
    try:
        length = int(value) if value is not None else None
    except ValueError:
        length = None
    if length is None:
        raise MissingContentLength()
    if length < 0:
        raise InvalidArgument(ArgumentName="x-amz-decoded-content-length", ArgumentValue=value or "")
    return length


def declared_trailers(headers: Mapping[str, str]) -> tuple[str, ...]:
    """The trailer names ``x-amz-trailer`` announces, lower-case."""
    value = headers.get("x-amz-trailer", "")
    return tuple(n.strip().lower() for n in value.split(",") if n.strip())


class ChunkedDecoder:
    """Decodes one aws-chunked body; see the module docstring for the contract."""

    def __init__(
        self,
        auth: AuthResult,
        *,
        trailer_names: Sequence[str] = (),
        decoded_length: int | None = None,
    ) -> None:
        mode = auth.payload_mode
        if not mode.streaming:
            raise ValueError(f"{mode.value} is not an aws-chunked payload mode")
        self._signed = mode.signed_chunks
        self._signed_trailer = self._signed and mode.has_trailer
        self._key = auth.signing_key
        self._previous = auth.seed_signature.encode("ascii", "replace")
        self._amz_date = auth.amz_date
        self._scope = auth.scope
        self._chunk_prefix = f"AWS4-HMAC-SHA256-PAYLOAD\n{auth.amz_date}\n{auth.scope}\n".encode()
        self._declared = frozenset(n.strip().lower() for n in trailer_names if n.strip())
        self._decoded_length = decoded_length

        self._state = _HEADER
        self._line = bytearray()
        self._chunk_left = 0
        self._chunk_signature = b""
        self._hasher: hashlib._Hash | None = None
        self._crlf_seen = 0
        self._announced = 0  # sum of chunk sizes seen in headers
        self._decoded = 0
        self._trailers: dict[str, str] = {}
        self._trailer_signature: str | None = None
        self._skipped_blank = False
        self._error: S3Error | None = None

    @property
    def bytes_decoded(self) -> int:
        """Payload bytes handed out so far."""
        return self._decoded

    @property
    def done(self) -> bool:
        """The terminating empty line has been seen (``finish`` may still fail)."""
        return self._state == _DONE

    # ------------------------------------------------------------------ feed
    def feed(self, data: bytes | bytearray | memoryview) -> list[memoryview | bytes]:
        """Decode the next piece of the body; returns the payload pieces it held.

        The pieces are slices of ``data`` (or ``data`` itself): do not mutate a
        bytearray you passed in while you still use them.
        """
        if self._error is not None:
            raise self._error
        if isinstance(data, memoryview):
            data = data.tobytes()  # needs .find(); servers hand us bytes anyway
        try:
            return self._feed(data)
        except S3Error as err:
            self._error = err
            raise

    def _feed(self, data: bytes | bytearray) -> list[memoryview | bytes]:
        out: list[memoryview | bytes] = []
        n = len(data)
        pos = 0
        view: memoryview | None = None
        while pos < n:
            state = self._state
            if state == _DATA:
                take = min(self._chunk_left, n - pos)
                if take == n:
                    piece: memoryview | bytes = data if isinstance(data, bytes) else memoryview(data)
                else:
                    if view is None:
                        view = memoryview(data)
                    piece = view[pos : pos + take]
                if self._hasher is not None:
                    self._hasher.update(piece)
                out.append(piece)
                pos += take
                self._decoded += take
                self._chunk_left -= take
                if self._chunk_left == 0:
                    self._state = _DATA_CRLF
                    self._crlf_seen = 0
            elif state == _DATA_CRLF:
                while self._crlf_seen < 2 and pos < n:
                    if data[pos] != b"\r\n"[self._crlf_seen]:
                        raise _framing("chunk data not followed by CRLF")
                    self._crlf_seen += 1
                    pos += 1
                if self._crlf_seen == 2:
                    if self._signed:
                        assert self._hasher is not None
                        self._check_chunk(self._chunk_signature, self._hasher.hexdigest())
                    self._hasher = None
                    self._state = _HEADER
            elif state == _DONE:
                raise _framing("data after the end of the aws-chunked body")
            else:
                line, pos = self._take_line(data, pos)
                if line is None:
                    break
                if state == _HEADER:
                    self._on_chunk_header(line)
                else:
                    self._on_trailer_line(line)
        return out

    def _take_line(self, data: bytes | bytearray, pos: int) -> tuple[bytes | None, int]:
        """The next CRLF-terminated line (without CRLF), buffering a partial one."""
        buf = self._line
        if buf and buf[-1] == 0x0D and data[pos] == 0x0A:
            line = bytes(buf[:-1])
            buf.clear()
            return line, pos + 1
        end = data.find(b"\r\n", pos)
        if end < 0:
            if len(buf) + len(data) - pos > MAX_LINE:
                raise _framing("chunk header or trailer line too long")
            buf += data[pos:]
            return None, len(data)
        if len(buf) + end - pos > MAX_LINE:
            raise _framing("chunk header or trailer line too long")
        if buf:
            buf += data[pos:end]
            line = bytes(buf)
            buf.clear()
        else:
            line = bytes(data[pos:end])
        return line, end + 2

    def _on_chunk_header(self, line: bytes) -> None:
        size_text, _, extensions = line.partition(b";")
        size_text = size_text.strip()
        if not _HEX_SIZE.fullmatch(size_text):
            raise _framing(f"bad chunk size {size_text[:20]!r}")
        size = int(size_text, 16)
        signature = b""
        if self._signed:
            for ext in extensions.split(b";"):
                name, _, value = ext.partition(b"=")
                if name.strip() == b"chunk-signature":
                    signature = value.strip()
            if not signature:
                raise _framing("signed chunk without chunk-signature")
        self._announced += size
        if self._decoded_length is not None and self._announced > self._decoded_length:
            raise self._length_error(self._announced)
        if size == 0:
            if self._signed:
                self._check_chunk(signature, EMPTY_SHA256)
            self._state = _TRAILER
            return
        self._chunk_left = size
        self._chunk_signature = signature
        self._hasher = hashlib.sha256() if self._signed else None
        self._state = _DATA

    def _check_chunk(self, provided: bytes, digest_hex: str) -> None:
        to_sign = b"%s%s\n%s\n%s" % (
            self._chunk_prefix,
            self._previous,
            EMPTY_SHA256.encode(),
            digest_hex.encode(),
        )
        expected = hmac.new(self._key, to_sign, hashlib.sha256).hexdigest().encode()
        if not hmac.compare_digest(expected, provided):
            raise SignatureDoesNotMatch(StringToSign=to_sign.decode("ascii", "replace"),
                                        SignatureProvided=provided.decode("ascii", "replace"))  # fmt: skip
        self._previous = expected

    def _on_trailer_line(self, line: bytes) -> None:
        if not line:
            if self._declared and not self._trailers and not self._skipped_blank:
                # An empty line before the declared trailers (seen from MinIO's tests).
                self._skipped_blank = True
                return
            self._complete()
            self._state = _DONE
            return
        name_b, sep, value_b = line.partition(b":")
        name = name_b.strip().decode("latin-1").lower()
        if not sep or not name:
            raise MalformedTrailerError()
        value = value_b.strip().decode("latin-1")
        if name == _TRAILER_SIGNATURE:
            if not self._signed_trailer or self._trailer_signature is not None:
                raise MalformedTrailerError()
            self._trailer_signature = value
        elif name in self._trailers or self._trailer_signature is not None:
            raise MalformedTrailerError()  # repeated, or after the signature
        else:
            self._trailers[name] = value

    def _complete(self) -> None:
        """The trailer section ended: check declarations, trailer signature, length."""
        if set(self._trailers) != self._declared:
            raise MalformedTrailerError()
        if self._signed_trailer and (self._trailers or self._trailer_signature is not None):
            if self._trailer_signature is None:
                raise _framing("signed trailers without x-amz-trailer-signature")
            canonical = "".join(f"{n}:{v}\n" for n, v in sorted(self._trailers.items())) or "\n"
            to_sign = (
                f"AWS4-HMAC-SHA256-TRAILER\n{self._amz_date}\n{self._scope}\n"
                f"{self._previous.decode()}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
            )
            expected = hmac.new(self._key, to_sign.encode(), hashlib.sha256).hexdigest()
            provided = self._trailer_signature.encode("utf-8", "replace")
            if not hmac.compare_digest(expected.encode(), provided):
                raise SignatureDoesNotMatch(StringToSign=to_sign,
                                            SignatureProvided=self._trailer_signature)  # fmt: skip
        if self._decoded_length is not None and self._decoded != self._decoded_length:
            raise self._length_error(self._decoded)

    def _length_error(self, provided: int) -> IncompleteBody:
        return IncompleteBody(NumberBytesExpected=str(self._decoded_length),
                              NumberBytesProvided=str(provided))  # fmt: skip

    # ---------------------------------------------------------------- finish
    def finish(self) -> dict[str, str]:
        """The body ended: check it was complete; returns ``{lower-name: value}`` trailers."""
        if self._error is not None:
            raise self._error
        try:
            if self._state == _TRAILER:
                if self._line:
                    raise _framing("body ends inside a trailer line")
                # The final empty line is optional: some clients never send it.
                self._complete()
                self._state = _DONE
            elif self._state != _DONE:
                raise _framing("body ends before the final 0-size chunk")
        except S3Error as err:
            self._error = err
            raise
        return dict(self._trailers)


__all__ = [
    "MAX_LINE",
    "ChunkedDecoder",
    "MalformedTrailerError",
    "declared_trailers",
    "decoded_content_length",
]
