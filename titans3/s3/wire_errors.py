"""S3 error bodies for requests the HTTP layer rejects before the app sees them.

Theory of operation
-------------------
h11 (under hypercorn) refuses malformed HTTP -- a non-numeric or negative
``Content-Length``, conflicting lengths, an oversized header block -- before
any ASGI app runs, and hypercorn answers with an empty 400.  S3 clients expect
an XML error body there too, so :func:`install` replaces hypercorn's error
responder with one that sends ``<Error><Code>BadRequest</Code>...`` (AWS's
code for a request it cannot parse as HTTP) with the usual request-id headers.
It touches hypercorn internals, as ``titans3.core.http11`` and the receive
size do; a test pins the behaviour, so a hypercorn upgrade that moves the hook
fails loudly instead of silently.
"""

from __future__ import annotations

import secrets
from itertools import chain

import h11
from hypercorn.protocol import h11 as hyper_h11

from titans3.core.http11 import reason
from titans3.s3 import xml

_MESSAGES = {
    400: ("BadRequest", "An error occurred when parsing the HTTP request."),
    431: ("RequestHeaderSectionTooLarge", "Your request header section exceeds the maximum allowed size."),
}


def error_response(status_code: int) -> tuple[list[tuple[bytes, bytes]], bytes]:
    code, message = _MESSAGES.get(status_code, ("BadRequest", "Bad Request"))
    request_id = secrets.token_hex(8).upper()
    body = xml.error(code, message, resource=None, request_id=request_id)
    headers = [
        (b"content-type", b"application/xml"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
        (b"x-amz-request-id", request_id.encode()),
        (b"x-amz-id-2", secrets.token_hex(16).encode()),
    ]
    return headers, body


def install() -> None:
    async def _send_error_response(self: hyper_h11.H11Protocol, status_code: int) -> None:
        headers, body = error_response(status_code)
        await self._send_h11_event(
            h11.Response(
                status_code=status_code,
                headers=list(chain(headers, self.config.response_headers("h11"))),
                reason=reason(status_code),
            )
        )
        await self._send_h11_event(h11.Data(data=body))
        await self._send_h11_event(h11.EndOfMessage())

    hyper_h11.H11Protocol._send_error_response = _send_error_response  # type: ignore[method-assign]
