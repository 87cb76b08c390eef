"""The NBD gateway as the daemon runs it: the volume service and its listeners.

:func:`run_gateway` is the one call the daemon makes.  It builds the
:class:`~titans3.nbd.service.VolumeService` over the host's (current) object
store, puts it on ``host.nbd`` for the status page (and its operations on
``host.volumes`` for the admin API), and
serves the configured listeners until cancelled; cancellation detaches every
volume cleanly (flushed and folded) before it returns.

The default TCP address (``127.0.0.1:10809``) may be taken by another
daemon on the same machine (development, tests): then NBD runs on the unix
socket alone and the log says so.  An address configured on purpose that
cannot be bound stops the daemon, like any other listener.
"""

from __future__ import annotations

import errno
import logging
import socket
from typing import TYPE_CHECKING, Any

import trio

from titans3.core import tls as core_tls
from titans3.core.config import Config, parse_hostport
from titans3.nbd.operations import VolumeOperations
from titans3.nbd.server import NbdServer, tls_context
from titans3.nbd.service import Settings, VolumeService

if TYPE_CHECKING:
    from titans3.cluster.host import HostServices

log = logging.getLogger(__name__)


def settings_of(cfg: Config) -> Settings:
    return Settings(memory=cfg.nbd_memory_mb << 20, cache=cfg.nbd_cache_mb << 20, lease=cfg.nbd_lease)


async def run_gateway(host: HostServices, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    cfg = host.config
    # What "attached on ..." says: the host, and the addresses it answers on.
    label = f"{socket.gethostname()} {host.host_id} (peer {cfg.peer_listen}, nbd {cfg.nbd_listen or 'socket'})"
    service = VolumeService(lambda: host.store, drives_of=lambda: host.store.drives,
                            clock_of=lambda: host.store.clock, host_id=host.host_id, label=label,
                            settings=settings_of(cfg))
    host.nbd = service
    host.volumes = VolumeOperations(service)
    context = tls_context(cfg.tls_cert, cfg.tls_key, cfg.tls_ca) if core_tls.enabled(cfg) else None
    server = NbdServer(service, tls=context)
    async with trio.open_nursery() as nursery:
        await nursery.start(service.run)
        path = cfg.nbd_socket_path
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                await nursery.start(server.serve_unix, path)
            except OSError as e:  # the default path may be longer than a socket name can be
                if cfg.nbd_socket != "auto":
                    raise
                log.error("NBD: no unix socket at %s (%s); set nbd_socket to a shorter path", path, e)
                path = None
        if cfg.nbd_listen:
            addr, port = parse_hostport(cfg.nbd_listen, "nbd_listen")
            try:
                await nursery.start(server.serve_tcp, addr, port)
            except OSError as e:
                if e.errno != errno.EADDRINUSE or cfg.nbd_listen != Config.nbd_listen:
                    raise
                log.error("NBD: %s is in use (another daemon?); serving NBD on %s only",
                          cfg.nbd_listen, path)
        task_status.started()
