"""``400 RequestTimeout`` for a request body that stops arriving.

Theory of operation
-------------------
hypercorn's ``read_timeout`` cannot bound a slow upload: it times every
socket read, including the reads a long GET waits on while it streams, so a
value short enough to stop a slowloris body would cut large downloads.  The
request *head* is bounded by hypercorn's idle timer (``keep_alive_timeout``
runs until the head is parsed); the body is bounded here, in the ASGI chain.

:class:`StallGuard` wraps ``receive``: while the request body is not
complete, time spent *waiting in* ``receive()`` is the client's, and two
rules bound it (Apache's ``mod_reqtimeout`` ``body=T,MinRate=R``):

* no single wait for the next body message may exceed ``timeout``;
* the total wait may not exceed ``timeout + received / min_rate`` -- so a
  client trickling a byte every few seconds (each wait under ``timeout``) is
  cut once it falls below ``min_rate`` on average, while a real upload earns
  allowance far faster than it spends it.

Time the application spends *not* receiving (drives applying backpressure)
is not counted: hypercorn queues what arrives meanwhile, and the next
``receive()`` returns at once.  A breach cancels the application and answers
what AWS answers, ``400 RequestTimeout`` ("Your socket connection to the
server was not read from or written to within the timeout period"), with
``Connection: close`` -- or, if the application had already started its
response, lets hypercorn close the connection.  Cancellation is the ordinary
trio kind: an upload in progress unwinds through its own cleanup (staged
fragments aborted), exactly as when the client disconnects.

A request without a body (no ``Content-Length``, or 0, and no
``Transfer-Encoding``) cannot stall: hypercorn has its one empty message
already, so such requests (most GETs) pass through unwrapped.

Once the final body message arrived, ``receive()`` is left alone: an
application that then waits for ``http.disconnect`` (a GET watching for the
client to leave) may legitimately wait for as long as its response takes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import trio

Scope = dict[str, Any]
Message = dict[str, Any]

BODY = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b"<Error><Code>RequestTimeout</Code><Message>Your socket connection to the server was "
    b"not read from or written to within the timeout period. Idle connections will be "
    b"closed.</Message></Error>"
)


def _has_body(scope: Scope) -> bool:
    """The request declares a body (RFC 9112 6.3: Content-Length or Transfer-Encoding)."""
    for name, value in scope["headers"]:
        if (name == b"content-length" and value not in (b"0", b"")) or name == b"transfer-encoding":
            return True
    return False


class StallGuard:
    def __init__(self, app: Callable[..., Awaitable[None]], timeout: float,
                 min_rate: float = 1024.0) -> None:
        self.app = app
        self.timeout = timeout
        self.min_rate = min_rate
        self.timed_out = 0  # requests answered RequestTimeout (or cut) so far

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Message]],
                       send: Callable[[Message], Awaitable[None]]) -> None:
        if scope["type"] != "http" or self.timeout <= 0 or not _has_body(scope):
            # No body, nothing to stall on (its one empty message is already queued):
            # no cancel scope and no wrapped receive/send for most small requests.
            await self.app(scope, receive, send)
            return
        body_done = False
        stalled = False
        started = False
        waited = 0.0
        received = 0

        with trio.CancelScope() as app_scope:

            async def guarded_receive() -> Message:
                nonlocal body_done, stalled, waited, received
                if body_done:
                    return await receive()
                budget = self.timeout
                if self.min_rate > 0:
                    budget = min(budget, self.timeout + received / self.min_rate - waited)
                t0 = trio.current_time()
                with trio.move_on_after(max(budget, 0.0)):
                    msg = await receive()
                    waited += trio.current_time() - t0
                    received += len(msg.get("body", b""))
                    if msg.get("type") != "http.request" or not msg.get("more_body", False):
                        body_done = True
                    return msg
                stalled = True
                app_scope.cancel()
                await trio.lowlevel.checkpoint()  # delivers the cancellation
                raise AssertionError("unreachable: the application's scope is cancelled")

            async def tracked_send(msg: Message) -> None:
                nonlocal started
                if msg.get("type") == "http.response.start":
                    started = True
                await send(msg)

            await self.app(scope, guarded_receive, tracked_send)

        if not stalled:
            return
        self.timed_out += 1
        if started:
            return  # the response is cut short; hypercorn closes the connection
        await send({"type": "http.response.start", "status": 400, "headers": [
            (b"content-type", b"application/xml"),
            (b"content-length", str(len(BODY)).encode()),
            (b"connection", b"close"),
        ]})
        await send({"type": "http.response.body", "body": BODY, "more_body": False})
