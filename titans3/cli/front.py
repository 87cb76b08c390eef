"""``python -m titans3.cli.front``: a front process, started only by the owner.

The glue between the front (``titans3/front/process.py``) and the daemon's
listener wiring (hypercorn config, stall guard, in-flight drain), which
lives above the front package; see ``titans3/front/supervisor.py``.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import trio


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="titans3-front", description="S3 front process (started by titans3 serve)")
    p.add_argument("--fd", type=int, required=True)
    p.add_argument("--owner-pid", type=int, required=True)
    p.add_argument("--index", type=int, required=True)
    args = p.parse_args(argv)
    from titans3.front.process import die_with_owner, run_front

    die_with_owner(args.owner_pid)
    os.umask(0o077)
    try:
        return trio.run(run_front, args.fd, args.index, _configure, _serve)
    finally:
        from titans3.core import tracing

        tracing.shutdown()


def _configure(cfg: Any) -> None:
    from titans3.core import connlimit, http11, journal, listeners
    from titans3.core.alloc import patch_hypercorn_recv, tune_malloc
    from titans3.s3 import wire_errors

    if cfg.malloc_tuning:
        tune_malloc()
    patch_hypercorn_recv(cfg.http_recv_bytes)
    connlimit.install()
    listeners.raise_fd_limit()
    http11.install()
    wire_errors.install()
    fmt = "%(asctime)s %(levelname)s %(name)s[front]: %(message)s"
    logging.basicConfig(
        level=getattr(logging, cfg.log_level.upper()), format=fmt,
        **({"handlers": [journal.JournalHandler()]} if journal.wanted() else {"stream": sys.stderr}),
    )
    from titans3.core import tracing

    tracing.setup(cfg.trace_exporter, endpoint=cfg.trace_endpoint,
                  attributes={"host.name": socket.gethostname()})  # spans of the requests served here


async def _serve(app: Any, cfg: Any, sock: socket.socket, shutdown: trio.Event,
                 serving: Callable[[], Awaitable[None]]) -> None:
    from titans3.core import tls
    from titans3.daemon import Inflight, _serve, guarded, hyper_config

    inflight = Inflight()
    hc = hyper_config(cfg.listen, grace=cfg.shutdown_grace, name="s3",
                      tls_settings=tls.server_settings(cfg, peer=False), sock=sock, cfg=cfg)
    async with trio.open_nursery() as servers:
        servers.start_soon(inflight.drain, shutdown, servers.cancel_scope, cfg.shutdown_grace)
        await servers.start(_serve, guarded(inflight.wrap(app), cfg), hc, shutdown.wait)
        await serving()  # listening: the owner may say it is ready


if __name__ == "__main__":
    sys.exit(main())
