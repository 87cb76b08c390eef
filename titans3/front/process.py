"""One front process: an S3 listener whose object layer is the owner's.

Theory of operation
-------------------
Started by the owner (``supervisor.py``) as ``python -m titans3.cli.front``
with one end of a socketpair.  It first asks the kernel to SIGKILL it when
the owner dies (``PR_SET_PDEATHSIG``; and exits at once if the owner is
already gone), then says ``hello`` and receives the owner's configuration,
credentials and directory, builds the S3 app over :class:`StoreProxy`, binds
the S3 address with ``SO_REUSEPORT`` (the owner's listener has it too, so the
kernel spreads new connections over every process) and serves.

It never opens a drive: nothing here can break a durability promise, and a
write is acknowledged only from the owner's result.  It stops on SIGTERM
(draining in-flight requests like the owner does) and at once when the owner
connection ends.  Every finished request is reported to the owner (counters,
access log); audit records go to the owner's audit log.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import socket
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from titans3.accounts.directory import Directory
from titans3.core import gctune, listeners, metrics
from titans3.front.forward import FrontApp
from titans3.front.proxy import AuditProxy, DirectoryFollower, Notes, StoreProxy
from titans3.front.rpc import Peer, UpStream
from titans3.front.service import exchange_note
from titans3.s3.app import create_s3_app

log = logging.getLogger("titans3.front")

__all__ = ["die_with_owner", "run_front"]

PR_SET_PDEATHSIG = 1

# serve(app, cfg, sock, shutdown, serving) -> runs hypercorn until shutdown completes (the
# daemon's wiring); awaits serving() once it listens
Serve = Callable[[Any, Any, socket.socket, trio.Event, Callable[[], Awaitable[None]]], Awaitable[None]]


def die_with_owner(owner_pid: int) -> None:
    """SIGKILL this process when the owner dies (a SIGKILLed owner takes its fronts)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        log.warning("PR_SET_PDEATHSIG failed (errno %d)", ctypes.get_errno())
    if os.getppid() != owner_pid:  # the owner died before the line above
        os._exit(1)


async def run_front(fd: int, index: int, configure: Callable[[Any], None], serve: Serve) -> int:
    """Serve S3 for the owner on connection ``fd``; ``configure(cfg)`` sets the
    process up (logging, hypercorn patches) once the configuration arrived."""
    sock = socket.socket(fileno=fd)
    stream = trio.SocketStream(trio.socket.from_stdlib_socket(sock))
    state: dict[str, Any] = {}

    async def handle(method: str, args: Any, up: UpStream | None) -> tuple[Any, Any]:
        if method == "flush":  # the owner is about to read its counters
            await state["notes"].flushed()
            return os.getpid(), None
        raise ValueError(f"unknown owner call {method!r}")

    peer = Peer(stream, handle, odd=True)
    shutdown = trio.Event()
    async with trio.open_nursery() as nursery:
        await nursery.start(peer.run)
        notes = Notes(peer)
        state["notes"] = notes
        nursery.start_soon(notes.run)
        hello, _ = await peer.call("hello", index)
        cfg = hello["config"]
        configure(cfg)
        creds = hello["credentials"]
        directory = None
        if hello["directory"] is not None:
            directory = Directory.mirror(hello["directory"], root_access_key=creds.root_access_key,
                                         root_secret_key=creds.root_secret_key)  # fmt: skip
            nursery.start_soon(DirectoryFollower(peer, directory).run)
        store = StoreProxy(peer, hello["storage_classes"])
        s3 = create_s3_app(store=store, credentials=creds, region=cfg.region, domain=cfg.domain or None,
                           admin=None, directory=directory, audit=AuditProxy(notes) if hello["audit"] else None,
                           sigv2=cfg.sigv2, lifecycle_day=cfg.lifecycle_day)  # fmt: skip
        app = metrics.RequestObserver(FrontApp(s3, peer, cfg.domain or None), "s3",
                                      on_done=lambda ex: notes.put("observe", exchange_note(ex)))
        listen = listeners.bind(cfg.listen, "the S3 API", send_timeout=cfg.send_timeout, reuse_port=True)
        nursery.start_soon(_signals, shutdown)
        nursery.start_soon(_owner_gone, peer, nursery.cancel_scope)
        log.info("S3 front %d (pid %d) serving on %s", index, os.getpid(), cfg.listen)
        async def serving() -> None:
            await peer.call("serving", None)
            gctune.tune_for_serving()  # as the owner does once ready (core/gctune.py)

        await serve(app, cfg, listen, shutdown, serving)
        nursery.cancel_scope.cancel()
    return 0


async def _owner_gone(peer: Peer, scope: trio.CancelScope) -> None:
    await peer.closed.wait()
    log.warning("the owner connection closed: stopping")
    scope.cancel()


async def _signals(shutdown: trio.Event) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for _ in signals:
            if shutdown.is_set():
                sys.exit(1)
            shutdown.set()
