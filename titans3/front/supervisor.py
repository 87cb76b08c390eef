"""The owner's front processes: spawn, serve, restart, stop (``s3_processes``).

Theory of operation
-------------------
With ``s3_processes = N`` the owner (``titans3 serve``) runs N-1 front
processes beside its own S3 listener; every one binds the S3 address with
``SO_REUSEPORT`` and the kernel spreads new connections over them.

* Spawned with ``exec`` of a fresh interpreter (``subprocess`` from the trio
  thread: fork-then-exec, no Python runs in between, so no LMDB environment
  crosses a fork), each with one end of a new socketpair (``pass_fds``) --
  the connection ``service.OwnerService`` serves.  Spawned from the main
  thread on purpose: ``PR_SET_PDEATHSIG`` fires when the *thread* that
  forked exits, and trio's worker threads come and go.
* A front that dies is restarted after a back-off (0.5 s doubling to 30 s,
  reset once one ran 30 s); the others keep serving meanwhile.
* On shutdown each front gets SIGTERM and drains like the owner; the owner
  keeps serving their object calls until they are gone (``alive``), then
  SIGKILLs any left after the grace.  A SIGKILLed owner takes its fronts
  with it (PDEATHSIG).  Cleanup is by pid, never by name.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

import trio

from titans3.front.limits import process_count, shared_limits
from titans3.front.rpc import Peer, PeerGone
from titans3.front.service import OwnerService

log = logging.getLogger(__name__)

__all__ = ["Fronts", "owner_service", "process_count", "shared_limits"]

BACKOFF_FIRST = 0.5
BACKOFF_MAX = 30.0
STABLE_AFTER = 30.0


@dataclass
class Slot:
    index: int
    state: str = "starting"
    proc: subprocess.Popen[bytes] | None = None
    peer: Peer | None = None
    restarts: int = 0
    started: float = 0.0
    rate: float = 0.0
    _last: tuple[float, int] = (0.0, 0)


class Fronts:
    """Front processes 1..count-1 of this owner (process 0 is the owner itself)."""

    def __init__(self, count: int, service: OwnerService, *, grace: float) -> None:
        self.service = service
        self.grace = grace
        self.slots = [Slot(i) for i in range(1, count)]
        self._stopping = False

    def alive(self) -> int:
        return sum(1 for s in self.slots if s.proc is not None)

    async def run(self, shutdown: trio.Event, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            for slot in self.slots:
                nursery.start_soon(self._keep, slot, shutdown)
            task_status.started()
            await shutdown.wait()
            self._stopping = True
            for slot in self.slots:
                if slot.proc is not None and slot.proc.poll() is None:
                    slot.proc.send_signal(signal.SIGTERM)
            with trio.move_on_after(self.grace + 5.0):
                while self.alive():
                    await trio.sleep(0.05)
            nursery.cancel_scope.cancel()  # what is left is killed by _run_one's cleanup

    async def _keep(self, slot: Slot, shutdown: trio.Event) -> None:
        backoff = BACKOFF_FIRST
        while not shutdown.is_set():
            t0 = time.monotonic()
            try:
                code = await self._run_one(slot)
            except OSError as e:
                log.error("cannot start S3 front %d: %s", slot.index, e)
                code = None
            if shutdown.is_set():
                break
            if time.monotonic() - t0 > STABLE_AFTER:
                backoff = BACKOFF_FIRST
            slot.state = "restarting"
            slot.restarts += 1
            log.warning("S3 front %d exited (%s); restarting in %.1fs", slot.index, code, backoff)
            with trio.move_on_after(backoff):
                await shutdown.wait()
            backoff = min(backoff * 2, BACKOFF_MAX)
        slot.state = "stopped"

    async def _run_one(self, slot: Slot) -> int | None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "titans3.cli.front", "--fd", str(theirs.fileno()),
                 "--owner-pid", str(os.getpid()), "--index", str(slot.index)],
                pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL)  # fmt: skip
        except OSError:
            ours.close()
            raise
        finally:
            theirs.close()
        slot.proc, slot.state, slot.started = proc, "running", time.monotonic()
        stream = trio.SocketStream(trio.socket.from_stdlib_socket(ours))
        peer = Peer(stream, None, odd=False, notes=self.service.notes(slot.index))
        try:
            async with trio.open_nursery() as nursery:
                peer.handler = self.service.handler(slot.index, nursery)
                nursery.start_soon(peer.run)
                slot.peer = peer
                await _exited(proc)
                nursery.cancel_scope.cancel()
        finally:
            slot.peer = None
            self.service.known.pop(slot.index, None)
            self.service.serving.discard(slot.index)
            if proc.poll() is None:  # cancelled (owner stopping or failing): never leave it behind
                proc.kill()
            with trio.CancelScope(shield=True):
                await _exited(proc)
            slot.proc = None
            slot.state = "exited"
        return proc.returncode

    async def open(self, s3_app: Any, *, timeout: float = 30.0) -> None:
        """The owner is ready: let the fronts serve, and wait (at most ``timeout``)
        until every one listens -- spawned early, they started while the owner did.
        A front that already died is not waited for (it is restarting)."""
        self.service.open(s3_app)
        with trio.move_on_after(timeout):
            while any(s.index not in self.service.serving and s.restarts == 0 for s in self.slots):
                await trio.sleep(0.02)
        late = [s.index for s in self.slots if s.index not in self.service.serving]
        if late:
            log.warning("S3 fronts %s are not serving yet; going on without them", late)

    async def sync(self) -> None:
        """Every request a front finished so far is counted here (before a scrape)."""
        async with trio.open_nursery() as nursery:
            for slot in self.slots:
                if slot.peer is not None:
                    nursery.start_soon(_flush, slot.peer)

    def rows(self) -> list[dict[str, Any]]:
        """The front processes for the status page."""
        now = time.monotonic()
        out = []
        for s in self.slots:
            count = self.service.requests.get(s.index, 0)
            t, c = s._last
            if now - t >= 1.0:
                if t:
                    s.rate = (count - c) / (now - t)
                s._last = (now, count)
            out.append({"index": s.index, "pid": s.proc.pid if s.proc else None, "state": s.state,
                        "requests": count, "requests_per_s": round(s.rate, 1), "restarts": s.restarts})
        return out


async def _flush(peer: Peer) -> None:
    with trio.move_on_after(2.0):
        with contextlib.suppress(PeerGone, Exception):
            await peer.call("flush", None)


async def _exited(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    fd = os.pidfd_open(proc.pid)
    try:
        await trio.lowlevel.wait_readable(fd)
    finally:
        os.close(fd)
    proc.wait()


def owner_service(host: Any, access: Any) -> OwnerService:
    """The owner service of ``host``; its fronts' requests are counted (and
    logged to ``access``) here."""
    from titans3.core.metrics import RequestObserver

    return OwnerService(host, RequestObserver(None, "s3", on_done=access))  # type: ignore[arg-type]
