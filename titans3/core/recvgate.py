"""Per-connection socket read size: narrow until the request's body is admitted.

Theory of operation
-------------------
hypercorn reads a connection's socket ahead of the application: up to its
app queue (``max_app_queue_size`` messages) plus one message in hand and one
being parsed, each as large as one ``recv`` (1 MiB here, ``core/alloc.py``).
A PUT waiting for the memory budget (``core/membudget.py``) has not asked for
its body, yet that read-ahead is already in memory -- several MiB per
waiting connection, outside any budget, growing with the connection count.

So a listener whose hypercorn config carries ``titans3_recv_narrow`` reads
at most that many bytes per ``recv`` (64 KiB: a request head, a small body)
until the application *widens* the connection's window -- which the write
path does once a stream is admitted (``objects/admission.py``), and undoes
when the stream is staged.  A waiting connection then holds a few narrow
reads; TCP flow control holds the rest of the body on the client, which is
the back-pressure.  Nothing is refused and nothing waits here: the read loop
only chooses how much to ask for.

The window reaches the application through a context variable: the read
loop sets it in its task, and trio copies a task's context into the tasks it
starts, among them the ASGI application's (hypercorn spawns it from the
read loop, or for a pipelined request from the previous request's task,
which inherited it too).

:func:`read_data` is hypercorn 0.18's ``TCPServer._read_data`` with the one
change of the read size; ``GatedTCPServer`` (``core/connlimit.py``) uses it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import trio
from hypercorn.events import Closed, RawData
from hypercorn.trio import tcp_server

NARROW_RECV = 64 * 1024  # hypercorn's own default read size


class RecvWindow:
    """How much one connection's read loop asks for per ``recv``."""

    __slots__ = ("narrow", "_widened")

    def __init__(self, narrow: int | None) -> None:
        self.narrow = narrow  # None: always the full read size
        self._widened = 0

    def size(self) -> int:
        wide = tcp_server.MAX_RECV  # read on every call, like hypercorn (core/alloc.py patches it)
        if self.narrow is None or self._widened:
            return wide
        return min(self.narrow, wide)

    @property
    def wide(self) -> bool:
        return self.narrow is None or self._widened > 0

    @contextmanager
    def widened(self) -> Iterator[None]:
        self._widened += 1
        try:
            yield
        finally:
            self._widened -= 1


_window: ContextVar[RecvWindow | None] = ContextVar("titans3_recv_window", default=None)


def current() -> RecvWindow | None:
    """The window of the connection whose request this task serves (None: no connection)."""
    return _window.get()


@contextmanager
def widened() -> Iterator[None]:
    """Full-size reads for the current connection, if there is one, inside the block."""
    window = _window.get()
    if window is None:
        yield
        return
    with window.widened():
        yield


async def read_data(server: Any) -> None:
    """``TCPServer._read_data`` (hypercorn 0.18), reading ``RecvWindow.size()`` at a time."""
    window = RecvWindow(getattr(server.config, "titans3_recv_narrow", None))
    _window.set(window)
    timeout = server.config.read_timeout
    while True:
        try:
            if timeout:
                with trio.fail_after(timeout):
                    data = await server.stream.receive_some(window.size())
            else:  # no timeout (the daemon's setting): no cancel scope per recv
                data = await server.stream.receive_some(window.size())
        except (trio.ClosedResourceError, trio.BrokenResourceError, trio.TooSlowError):
            break
        else:
            await server.protocol.handle(RawData(bytes(data)))
            if data == b"":
                break
    await server.protocol.handle(Closed())
