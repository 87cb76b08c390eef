"""A bound on open connections per listener, shedding idle ones first.

Theory of operation
-------------------
hypercorn accepts every connection and keeps each until its idle timeout: a
client (or a botnet) that opens thousands of sockets and sends nothing holds
thousands of tasks and descriptors, and the descriptors are the ones the
drives need for fragment files.  :func:`install` replaces the ``TCPServer``
name that ``hypercorn.trio.run`` instantiates per accepted connection with
:class:`GatedTCPServer`; a listener whose hypercorn config carries a
:class:`ConnectionGate` (``config.titans3_gate``) is bounded by it, others
run unchanged.

When a connection arrives at a full gate, the connection that has been
*idle* the longest is closed to make room -- nginx's policy for reusable
connections.  Idle means no request in progress: a keep-alive connection
between requests, or one still sending its request head (a slowloris
client); both are hypercorn's "idle" state, timed by ``keep_alive_timeout``.
A connection busy with a request is never shed.  Only when every connection
is busy is the new one refused: plain HTTP gets ``503 SlowDown`` with the S3
XML body and ``Connection: close``; a TLS connection is closed (answering
would need a handshake the gate exists to avoid).

Everything runs on the event loop; the gate is plain counters.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import trio
from hypercorn.trio import run as hypercorn_run
from hypercorn.trio.tcp_server import TCPServer

from titans3.core import recvgate
from titans3.core.idletimer import IdleTimer

log = logging.getLogger(__name__)

REFUSAL = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"Content-Type: application/xml\r\n"
    b"Connection: close\r\n"
    b"Retry-After: 1\r\n"
    b"Content-Length: %d\r\n\r\n"
)
REFUSAL_BODY = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b"<Error><Code>SlowDown</Code><Message>Too many open connections; "
    b"please reduce your request rate.</Message></Error>"
)
DRAIN_SECONDS = 1.0  # after a refusal, read what the client sent so close() is not a reset


@dataclass(frozen=True, slots=True)
class GateStatistics:
    limit: int
    open: int
    peak: int
    accepted: int
    shed_idle: int  # idle connections closed to make room
    refused: int  # connections answered 503 (all busy)


class ConnectionGate:
    """Open-connection bookkeeping for one listener."""

    def __init__(self, limit: int, name: str = "") -> None:
        if limit < 1:
            raise ValueError("connection limit must be >= 1")
        self.limit = limit
        self.name = name
        self._open: dict[GatedTCPServer, None] = {}  # insertion-ordered set
        self.peak = self.accepted = self.shed = self.refused = 0

    @property
    def open(self) -> int:
        return len(self._open)

    def admit(self, conn: GatedTCPServer) -> tuple[bool, GatedTCPServer | None]:
        """(admitted, idle connection to close first)."""
        victim = None
        if len(self._open) >= self.limit:
            victim = self._longest_idle()
            if victim is None:
                self.refused += 1
                return False, None
            self._open.pop(victim, None)
            self.shed += 1
        self._open[conn] = None
        self.accepted += 1
        self.peak = max(self.peak, len(self._open))
        return True, victim

    def leave(self, conn: GatedTCPServer) -> None:
        self._open.pop(conn, None)

    def _longest_idle(self) -> GatedTCPServer | None:
        best: GatedTCPServer | None = None
        for c in self._open:
            if c.idle and (best is None or c.idle_since < best.idle_since):
                best = c
        return best

    def statistics(self) -> GateStatistics:
        return GateStatistics(self.limit, len(self._open), self.peak, self.accepted,
                              self.shed, self.refused)


class GatedTCPServer(TCPServer):
    """hypercorn's per-connection server, counted by the listener's gate."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._shed = False
        self.idle_task: IdleTimer = IdleTimer(self)  # type: ignore[assignment]  # no task per request

    @property
    def idle(self) -> bool:
        # hypercorn's idle timer runs exactly while no request is in progress.
        return self.idle_task.idle and not self._shed

    @property
    def idle_since(self) -> float:
        return self.idle_task.since or 0.0  # meaningful while idle

    async def run(self) -> None:
        gate: ConnectionGate | None = getattr(self.config, "titans3_gate", None)
        if gate is None:
            await super().run()
            return
        admitted, victim = gate.admit(self)
        if victim is not None:
            await victim.shed()
        if not admitted:
            await self._refuse()
            return
        try:
            await super().run()
        finally:
            gate.leave(self)

    async def _read_data(self) -> None:
        # the read size follows the request's admission (core/recvgate.py)
        try:
            await recvgate.read_data(self)
        finally:
            self.idle_task.close()

    async def shed(self) -> None:
        """Close this idle connection (from another connection's task)."""
        self._shed = True
        with trio.CancelScope(shield=True), contextlib.suppress(Exception):
            await self.stream.aclose()  # its read loop ends; its own task cleans up

    async def _refuse(self) -> None:
        with trio.CancelScope(shield=True):
            try:
                if isinstance(self.stream, trio.SocketStream):
                    with trio.move_on_after(DRAIN_SECONDS):
                        await self.stream.send_all(REFUSAL % len(REFUSAL_BODY) + REFUSAL_BODY)
                        await self.stream.send_eof()
                        while await self.stream.receive_some(65536):
                            pass
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                pass
            finally:
                with contextlib.suppress(Exception):
                    await self.stream.aclose()


_installed: Callable[..., Any] | None = None


def install() -> None:
    """Make hypercorn's trio worker create :class:`GatedTCPServer` connections.

    Raises RuntimeError when the seam (``hypercorn.trio.run.TCPServer``) moved,
    so an upgrade cannot silently drop the limit.
    """
    global _installed
    if getattr(hypercorn_run, "TCPServer", None) not in (TCPServer, GatedTCPServer) or not hasattr(
            TCPServer, "_read_data"):
        raise RuntimeError("hypercorn.trio.run.TCPServer is not hypercorn's TCPServer; "
                           "the connection limit needs updating for this hypercorn version")
    hypercorn_run.TCPServer = GatedTCPServer  # type: ignore[misc]
    _installed = GatedTCPServer
