"""hypercorn's HTTP/1.1 protocol with the three answers S3 clients depend on.

Theory of operation
-------------------
hypercorn (0.18) drives h11 in ``hypercorn.protocol.h11.H11Protocol``.  Three
of its choices break S3 clients, and :func:`install` swaps in
:class:`S3H11Protocol`, a subclass that changes exactly those:

1. **``Expect: 100-continue`` is answered when the body is wanted.**
   hypercorn sends ``100 Continue`` from its read loop as soon as the request
   head is parsed -- before the application has even started, so a request
   that fails authentication or validation got ``100`` and then its final
   error, and the client had already sent its body (RFC 9110 15.2.1 lets the
   server answer with the final status *instead*, which is what AWS does).
   Here the ``100`` is sent when the application first calls ``receive()``
   -- the ASGI signal that it wants the body -- and never if the final
   response comes first.  The read loop is kept from sending its own by an
   ``h11.Connection`` whose public ``they_are_waiting_for_100_continue``
   (the only thing the loop consults) is always false; h11's own state
   (``client_is_waiting_for_100_continue``) is untouched and is what we read.
   Only the application's task ever sends the ``100``, and it sends it before
   its own response, so the two cannot be reordered on the socket.

2. **A final response sent while the request body is unread says
   ``Connection: close``.**  h11 cannot start the next request on a
   connection whose request body was not consumed, so hypercorn closes it
   after such a response; the header tells the client so.  botocore, which
   waited for the ``100`` and got an error instead, then knows it must not
   send the body and must not reuse the socket: its next request opens a new
   connection, and nothing desynchronises.

3. **A send that meets the socket being closed is a closed connection.**
   hypercorn's read side shuts the socket down (``send_eof``) without its
   send lock when the client hangs up -- which botocore does the moment it
   has read a ``Connection: close`` answer, before hypercorn's last (empty)
   write.  trio then raises ``BusyResourceError`` into the application's
   send, an unhandled traceback.  The protocol treats it exactly like the
   ``BrokenResourceError`` hypercorn already expects, and skips empty writes
   (``EndOfMessage`` of a Content-Length body is ``b""``) altogether.

4. **Status lines carry the standard reason phrase** (``HTTP/1.1 403
   Forbidden``, not ``HTTP/1.1 403 ``).  botocore's ``Expect`` handling
   splits the status line into three parts and treats anything else as "no
   response yet"; an empty phrase made it read the next header as a status
   line (``BadStatusLine``).

5. **A small response goes out in one write.**  hypercorn writes the head
   when the application sends ``http.response.start`` and the body with the
   next message: two locked, shielded ``send_all`` calls, two TCP segments
   and two wake-ups of the client per small GET.  A final response whose
   ``Content-Length`` is at most :data:`COALESCE_MAX` has its head held and
   written together with whatever the next event of the stream produces --
   its body (when that is small too), or ``EndOfMessage`` (an empty body, a
   HEAD answer), or anything else (then the head goes first, alone).  The
   next event follows the start message at once in every application here
   (``titans3.s3.asgi`` reads a stream's first chunk *before* the status
   line), so nothing is delayed; a held head of a connection that closes
   is dropped with the connection.

6. **Response headers are checked once, in one pass.**  h11 runs two regexes
   per header of every response (name, value) in Python-level calls; hypercorn
   has already stripped the values.  :func:`_prechecked` accepts a header list
   only when h11 certainly would -- names already seen to be tokens, and no
   byte h11 refuses in a value (NUL, CR, LF, VT, FF; no space or tab at either
   end), checked by one regex over all values joined -- and then builds h11's
   event without re-validating.  Anything else takes h11's own checks, which
   raise exactly as before.

7. **A request's message queue is an ``AppQueue``** (``titans3.core.appqueue``),
   not a trio memory channel pair, which cost more to create than a small
   request's whole queue traffic.

The application still decides everything else.  Lean ASGI apps that call
``receive()`` only when they stream the body (``titans3.s3.asgi``) get
AWS's behaviour; Quart apps read the body eagerly and so still get an early
``100``, which is harmless for the bounded bodies they take.

:func:`install` replaces the ``H11Protocol`` name that
``hypercorn.protocol.ProtocolWrapper`` instantiates; it raises if that seam
moved, and ``tests/core/test_http11.py`` pins the behaviour over real
sockets, so a hypercorn upgrade that changes it fails loudly.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from itertools import chain
from typing import Any

import h11
import hypercorn.protocol as hyper_protocol
import trio
from hypercorn.events import Closed, RawData
from hypercorn.protocol import h11 as hyper_h11
from hypercorn.protocol.events import Body, Response
from hypercorn.trio.task_group import TaskGroup as TrioTaskGroup
from hypercorn.trio.task_group import _handle as trio_handle

from titans3.core import appqueue

COALESCE_MAX = 64 * 1024  # a response with at most this many body bytes: head + body in one write

_TOKEN = re.compile(rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]+")  # h11's field-name
# What h11's field-value refuses, in values joined with \x01 (which it allows):
# NUL and whitespace other than space/tab anywhere, space/tab at a value's ends.
_REFUSED = re.compile(rb"[\x00\n\r\x0b\x0c]|[ \t]\x01|\x01[ \t]|^[ \t]|[ \t]\Z")
_NAMES: set[bytes] = set()  # header names seen to be tokens
_NAMES_MAX = 4096


def _prechecked(headers: list[tuple[bytes, bytes]]) -> bool:
    """h11 would accept these response headers (module doc, 6.; False: let h11 decide)."""
    names = _NAMES
    for name, _ in headers:
        if name not in names:
            if type(name) is not bytes or not _TOKEN.fullmatch(name):
                return False
            if len(names) < _NAMES_MAX:
                names.add(name)
    try:
        return _REFUSED.search(b"\x01".join([value for _, value in headers])) is None
    except TypeError:  # a value that is not bytes
        return False


_REASONS: dict[int, bytes] = {s.value: s.phrase.encode("ascii") for s in HTTPStatus}


def reason(status: int) -> bytes:
    """The standard reason phrase for ``status`` (``b""`` for an unknown code)."""
    return _REASONS.get(status, b"")


class _DeferredContinueConnection(h11.Connection):
    """h11's connection, but hypercorn's read loop never sees a pending 100."""

    @property
    def they_are_waiting_for_100_continue(self) -> bool:  # what hypercorn's loop reads
        return False

    @property
    def continue_pending(self) -> bool:
        """The client sent ``Expect: 100-continue`` and got neither 100 nor a final answer."""
        return self.their_role is h11.CLIENT and self.client_is_waiting_for_100_continue


class _ContinueOnReceive:
    """The protocol's task group, spawning apps whose first ``receive()`` sends the 100."""

    def __init__(self, protocol: S3H11Protocol, task_group: Any) -> None:
        self._protocol = protocol
        self._task_group = task_group

    async def spawn_app(
        self, app: Any, config: Any, scope: Any, send: Callable[[Any], Awaitable[None]]
    ) -> Callable[[Any], Awaitable[None]]:
        protocol = self._protocol

        async def app_wanting_body(scope: Any, receive: Any, send: Any, *args: Any) -> None:
            async def receive_body() -> Any:
                await protocol.send_continue()
                return await receive()

            await app(scope, receive_body, send, *args)

        group = self._task_group
        if isinstance(group, TrioTaskGroup) and group._nursery is not None:  # no channel pair (core/appqueue.py)
            return appqueue.spawn_app(group._nursery, trio_handle, app_wanting_body, config, scope, send)
        return await group.spawn_app(app_wanting_body, config, scope, send)

    def spawn(self, func: Callable[..., Any], *args: Any) -> None:
        self._task_group.spawn(func, *args)


class S3H11Protocol(hyper_h11.H11Protocol):
    """hypercorn's HTTP/1.1 protocol with the changes of the module doc."""

    def __init__(
        self, app: Any, config: Any, context: Any, task_group: Any, connection_state: Any,
        ssl: bool, client: Any, server: Any, send: Callable[[Any], Awaitable[None]],
    ) -> None:
        async def send_or_close(event: Any) -> None:
            try:
                await send(event)
            except trio.BusyResourceError:  # the read side is closing the socket (module doc)
                await self.handle(Closed())

        super().__init__(
            app, config, context, _ContinueOnReceive(self, task_group), connection_state,
            ssl, client, server, send_or_close,
        )  # fmt: skip
        self.connection = _DeferredContinueConnection(
            h11.SERVER, max_incomplete_event_size=config.h11_max_incomplete_size
        )
        self._request_has_body = False
        self._held: bytes | None = None  # a small response's head, written with the next event (5.)
        self._headers_second = -1
        self._headers: list[tuple[bytes, bytes]] = []

    async def send_continue(self) -> None:
        """Send ``100 Continue`` if the client is still waiting for it (else nothing)."""
        conn = self.connection
        if isinstance(conn, _DeferredContinueConnection) and conn.continue_pending:
            await self._send_h11_event(
                h11.InformationalResponse(
                    status_code=100, reason=b"Continue",
                    headers=self.config.response_headers("h11"),
                )  # fmt: skip
            )

    async def _check_protocol(self, event: h11.Request) -> None:
        # Called with every request head, before its stream exists.
        self._request_has_body = any(
            name in (b"content-length", b"transfer-encoding") and value not in (b"0", b"")
            for name, value in event.headers
        )
        await super()._check_protocol(event)

    async def _send_h11_event(self, event: Any) -> None:
        data = self._h11_bytes(event)
        if data:
            await self.send(RawData(data=data))

    def _h11_bytes(self, event: Any) -> bytes | None:
        try:
            return self.connection.send(event)
        except h11.LocalProtocolError:
            if self.connection.their_state != h11.ERROR:
                raise
            return None

    def _server_headers(self) -> list[tuple[bytes, bytes]]:
        """hypercorn's Date (and alt-svc) headers, formatted once a second per connection."""
        second = int(time.time())
        if second != self._headers_second:
            self._headers_second = second
            self._headers = self.config.response_headers("h11")
        return self._headers

    def _body_unread(self) -> bool:
        return self._request_has_body and self.connection.their_state is h11.SEND_BODY

    async def stream_send(self, event: Any) -> None:
        held = self._held
        if held is not None:  # a small response's head (module doc, 5.)
            self._held = None
            if isinstance(event, Body) and len(event.data) <= COALESCE_MAX:
                await self.send(RawData(data=held + (self._h11_bytes(h11.Data(data=event.data)) or b"")))
                return
            await self.send(RawData(data=held))
        if not (isinstance(event, Response) and event.status_code >= 200):
            await super().stream_send(event)
            return
        headers = list(chain(event.headers, self._server_headers()))
        close = (self.keep_alive_requests >= self.config.keep_alive_max_requests
                 or self._body_unread())  # fmt: skip
        small = False
        for name, value in headers:
            if name == b"connection":
                close = False  # the application said it already
            elif name == b"content-length":
                small = value.isdigit() and int(value) <= COALESCE_MAX
        if close:
            headers.append((b"connection", b"close"))
        status = event.status_code
        response = h11.Response(headers=headers, status_code=status, reason=reason(status),
                                _parsed=_prechecked(headers) and type(status) is int)  # fmt: skip
        if small:
            self._held = self._h11_bytes(response)
        else:
            await self._send_h11_event(response)


def install() -> None:
    """Make every hypercorn HTTP/1.1 connection of this process use :class:`S3H11Protocol`."""
    current = getattr(hyper_protocol, "H11Protocol", None)
    if current is S3H11Protocol:
        return
    if current is not hyper_h11.H11Protocol:
        raise RuntimeError(
            "hypercorn.protocol.H11Protocol is not hypercorn's own class; "
            "titans3.core.http11 needs updating for this hypercorn version"
        )
    hyper_protocol.H11Protocol = S3H11Protocol  # type: ignore[misc]
