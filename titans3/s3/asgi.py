"""The S3 endpoint's ASGI side: hypercorn's messages in, a finished ``Reply`` out.

Theory of operation
-------------------
The S3 hot path has no web framework in it.  A profile of a 4 KiB GET under
Quart showed most of the loop's time in per-request machinery the S3 app
never used -- a request context, werkzeug header objects, a nursery with two
tasks per request -- because S3 dispatch (``titans3.s3.app``) already works
on the raw ASGI scope and answers with framework-free ``Reply`` objects.
:func:`serve_http` is all that is left between hypercorn and that dispatch:

* **The body is received only when it is read.**  :class:`LazyBody` calls
  ``receive()`` when a handler iterates the payload, one message at a time.
  That is the backpressure (hypercorn's bounded app queue fills, it stops
  reading the socket, TCP pushes back on the client: a multi-GiB upload holds
  a few MiB) and it is what makes ``Expect: 100-continue`` answer like AWS:
  ``titans3.core.http11`` sends the ``100`` on the first ``receive()``, so a
  request refused before its body is read gets the final status instead.
* **A body left unread is drained while the answer goes out.**  hypercorn
  queues at most ``max_app_queue_size`` messages for the app and delivers
  ``http.disconnect`` through the same queue from inside our final ``send``;
  with an unread body filling the queue that would deadlock both tasks.
* **A stream's first chunk is read before the status line.**  A GET whose
  first bytes cannot be produced (fragments already known missing: 503
  ``ServiceUnavailable``, a stream that fails at once) gets its XML error
  instead of a ``200`` that breaks after the headers.  A body that arrives
  whole in that first chunk (every small object) goes out in one message.
* **A client that goes away stops the stream.**  While a longer stream is
  sent, a watcher waits for ``http.disconnect`` and cancels it; the
  disconnect hypercorn delivers *inside* our final ``send`` (when it recycles
  or closes the connection) is ignored, so a finished response is never cut.
* **Wire rules live here**: HEAD answers keep the resource's Content-Length
  and send no body; 204/304 carry no length; every stream has its exact
  length; header values go out as the bytes they came in as (latin-1, so
  stored wire bytes round-trip exactly; text beyond latin-1 as UTF-8).

A failure after the status line can only cut the connection short (the
client sees fewer bytes than Content-Length): it is logged once, with the
request id, and the app returns without the final body message, which makes
hypercorn close the connection.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import trio

from titans3.core.errors import S3Error
from titans3.s3.context import Reply

log = logging.getLogger("titans3.s3")

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Dispatch = Callable[[dict[str, Any], "LazyBody"], Awaitable[tuple[Reply, str]]]
"""``dispatch(scope, body) -> (reply, request_id)``: the S3 app's pipeline."""


class LazyBody:
    """The request body as an async iterator that receives only when iterated.

    Ends at the last ``http.request`` message, or early (``disconnected``) when
    the client goes away: a short body then fails its length check upstream.
    """

    __slots__ = ("_receive", "complete", "disconnected", "declared")

    def __init__(self, receive: Receive, raw_headers: list[tuple[bytes, bytes]]) -> None:
        self._receive = receive
        self.complete = False
        self.disconnected = False
        # A request without Content-Length or Transfer-Encoding has no body: its
        # one empty message cannot fill hypercorn's queue, nothing needs draining.
        self.declared = any(
            name in (b"content-length", b"transfer-encoding") and value not in (b"0", b"")
            for name, value in raw_headers
        )

    def __aiter__(self) -> LazyBody:
        return self

    async def __anext__(self) -> bytes:
        while not (self.complete or self.disconnected):
            message = await self._receive()
            if message["type"] == "http.request":
                if not message.get("more_body", False):
                    self.complete = True
                data = message.get("body", b"")
                if data:
                    return data
            elif message["type"] == "http.disconnect":
                self.disconnected = True
        raise StopAsyncIteration

    async def drain(self) -> None:
        """Receive and drop what is left, until the client or hypercorn ends the request."""
        while not self.disconnected:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                self.disconnected = True


def _encode(value: str) -> bytes:
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8")


_NAMES: dict[str, bytes] = {}  # header name -> its wire form (few: ours, plus x-amz-meta-* names)
_NAMES_MAX = 4096


def wire_headers(reply: Reply, method: str) -> tuple[list[tuple[bytes, bytes]], int | None]:
    """The header list hypercorn sends, and the body length (None: no Content-Length)."""
    length = reply.length
    if isinstance(reply.body, bytes) and length is None and method != "HEAD":
        length = len(reply.body)
    names = _NAMES
    headers = []
    for name, value in reply.headers:
        wire = names.get(name)
        if wire is None:
            wire = name.lower().encode("ascii")
            if len(names) < _NAMES_MAX:
                names[name] = wire
        headers.append((wire, _encode(value)))
    if length is not None and reply.status not in (204, 304):
        headers.append((b"content-length", str(length).encode("ascii")))
    return headers, length


async def _aclose(body: Any) -> None:
    aclose = getattr(body, "aclose", None)
    if aclose is not None:
        with trio.CancelScope(shield=True):
            await aclose()


async def _first_chunk(body: AsyncIterator[bytes]) -> bytes | None:
    try:
        return await body.__anext__()
    except StopAsyncIteration:
        return None


def _start(reply: Reply, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {"type": "http.response.start", "status": reply.status, "headers": headers}


async def send_reply(
    send: Send, body: LazyBody, reply: Reply, method: str, request_id: str,
    error_reply: Callable[[Exception], Reply],
) -> None:
    """Send ``reply`` (see module doc); ``error_reply`` turns a failure of a
    stream's first chunk into the reply to send instead."""
    stream = reply.body
    if isinstance(stream, bytes):
        headers, _ = wire_headers(reply, method)
        await _send_whole(send, body, _start(reply, headers), b"" if method == "HEAD" else stream)
        return
    if method == "HEAD":
        await _aclose(stream)
        raise RuntimeError("a HEAD reply must not carry a stream")
    try:
        first = await _first_chunk(stream)
    except Exception as exc:  # noqa: BLE001 -- nothing is sent yet: it becomes the answer
        await _aclose(stream)
        await send_reply(send, body, error_reply(exc), method, request_id, error_reply)
        return
    headers, length = wire_headers(reply, method)
    if first is None or len(first) >= (length or 0):  # the whole body came at once
        await _aclose(stream)
        await _send_whole(send, body, _start(reply, headers), first or b"")
        return
    await _stream(send, body, _start(reply, headers), first, stream, method, request_id)


async def _send_whole(send: Send, body: LazyBody, start: dict[str, Any], data: bytes) -> None:
    if body.complete or body.disconnected or not body.declared:
        await send(start)
        await send({"type": "http.response.body", "body": data, "more_body": False})
        return
    async with trio.open_nursery() as nursery:  # an unread body: drain it (module doc)
        nursery.start_soon(body.drain)
        await send(start)
        await send({"type": "http.response.body", "body": data, "more_body": False})
        nursery.cancel_scope.cancel()


async def _stream(
    send: Send, body: LazyBody, start: dict[str, Any], first: bytes,
    stream: AsyncIterator[bytes], method: str, request_id: str,
) -> None:
    """Stream after the first chunk.  Returning without the final message
    makes hypercorn close the connection: that is how a broken stream ends."""
    final_sent = False

    async def watch(cancel: trio.CancelScope) -> None:
        await body.drain()
        if not final_sent:  # the client went away mid-stream
            cancel.cancel()

    try:
        async with trio.open_nursery() as nursery:
            await send(start)
            nursery.start_soon(watch, nursery.cancel_scope)
            try:
                await send({"type": "http.response.body", "body": first, "more_body": True})
                async for chunk in stream:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                final_sent = True  # before: hypercorn recycles or closes inside this send
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            except S3Error as err:
                log.error("%s response stream aborted (request %s): %s", method, request_id, err)
            except Exception:
                log.error("%s response stream failed (request %s)", method, request_id,
                          exc_info=True)  # fmt: skip
            finally:
                nursery.cancel_scope.cancel()
    finally:
        await _aclose(stream)


async def lifespan(receive: Receive, send: Send) -> None:
    """Acknowledge hypercorn's lifespan messages (the app has no start-up work)."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
