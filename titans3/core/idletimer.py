"""A connection's keep-alive timer without a task per request.

Theory of operation
-------------------
hypercorn (0.18) times an idle connection -- between requests, or while a
request head trickles in -- with a ``SingleTask``: every request *stops* the
timer task (cancel it) and every finished response *restarts* it (a trio
lock, ``nursery.start`` of a new task, two cancel scopes and a deadline
registration).  A profile of a 4 KiB GET put ~8 % of the loop's samples
there, paid on every request of every keep-alive connection.

:class:`IdleTimer` has the same two methods, but ``restart``/``stop`` only
write the time the connection went idle (or None while a request is in
progress).  One watcher task per connection, started with the first
``restart``, sleeps until that time plus ``keep_alive_timeout`` and then
looks again: still idle since then -> the connection is closed exactly as
hypercorn's own timer closes it (``_initiate_server_close``, shielded);
busy, or idle since later -> it sleeps until the new deadline (a busy
connection is looked at once per timeout).  So a connection is closed
after ``keep_alive_timeout`` of idleness, as before, and a request costs
two attribute writes instead of a task.

Shutdown: hypercorn sets ``context.terminated`` to close idle connections at
once; the watcher waits on it, so an idle connection closes immediately and
a busy one when its response is done (``restart`` wakes a watcher that is
waiting for that).  The read loop's end (``close``) stops the watcher: the
connection is being torn down anyway, and a lingering watcher would keep the
connection counted by its gate (``core/connlimit.py``).
"""

from __future__ import annotations

from typing import Any

import trio

__all__ = ["IdleTimer"]


class IdleTimer:
    """hypercorn's ``SingleTask`` for ``TCPServer.idle_task`` (see module doc)."""

    __slots__ = ("_server", "_scope", "_wakeup", "since")

    def __init__(self, server: Any) -> None:
        self._server = server  # a hypercorn TCPServer: .config, .context, ._initiate_server_close()
        self._scope: trio.CancelScope | None = None
        self._wakeup: trio.Event | None = None
        self.since: float | None = None  # trio time the connection went idle; None: busy

    @property
    def idle(self) -> bool:
        return self.since is not None

    async def restart(self, task_group: Any, action: Any) -> None:
        """The connection is idle from now (``action``, hypercorn's timer body, is not used)."""
        self.since = trio.current_time()
        if self._scope is None:
            self._scope = trio.CancelScope()
            task_group._nursery.start_soon(self._watch)
        elif self._wakeup is not None:
            self._wakeup.set()

    async def stop(self) -> None:
        """A request is in progress: not idle."""
        self.since = None

    def close(self) -> None:
        """The connection's read loop ended: stop watching."""
        if self._scope is None:
            self._scope = trio.CancelScope()
        self._scope.cancel()

    async def _watch(self) -> None:
        assert self._scope is not None
        timeout = self._server.config.keep_alive_timeout
        terminated = self._server.context.terminated
        with self._scope:
            while True:
                since = self.since
                if since is None:  # busy
                    if terminated.is_set():  # shutting down: close once this response is done
                        self._wakeup = trio.Event()
                        await self._wakeup.wait()
                        self._wakeup = None
                        continue
                    wait = timeout
                else:
                    wait = since + timeout - trio.current_time()
                    if wait <= 0 or terminated.is_set():
                        break
                with trio.move_on_after(wait):
                    await terminated.wait()
        if self._scope.cancel_called:
            return
        with trio.CancelScope(shield=True):
            await self._server._initiate_server_close()
