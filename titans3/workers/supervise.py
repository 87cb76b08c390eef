"""Background workers never take the daemon down.

A worker (scrubber, repairer, GC, rebalancer, ...) runs in the daemon's
nursery, so an exception escaping it would cancel the S3 endpoint with it: a
rebalancer epoch that met one transient ``QuorumError`` ended a VM's daemon in
the middle of a cluster join.  :func:`supervise` runs a worker's
``run(task_status=...)``:

* an exception *before* the worker reported started propagates -- a worker
  that cannot start is a configuration or start-up fault, and the daemon
  should refuse to start rather than run without it;
* after it started, an exception is logged with its traceback, counted in
  :data:`RESTARTS`, and the worker is started again after a back-off that
  doubles from 1 s to 60 s (reset once a run lasted 5 minutes), so a
  persistent fault costs one log line a minute, not a busy loop;
* cancellation (shutdown) is never caught: ``Cancelled`` is a BaseException.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import trio

log = logging.getLogger("titans3.workers")

FIRST_BACKOFF = 1.0
MAX_BACKOFF = 60.0
HEALTHY_RUN = 300.0  # s a run must last for the back-off to start again from FIRST_BACKOFF

RESTARTS: Counter[str] = Counter()  # worker name -> restarts since the process started

Runner = Callable[..., Awaitable[Any]]


async def supervise(name: str, run: Runner, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    delay = FIRST_BACKOFF
    started = False
    while True:
        began = trio.current_time()
        try:
            if started:
                await run()
            else:
                async with trio.open_nursery() as nursery:
                    await nursery.start(run)
                    started = True
                    task_status.started()
            return  # the worker finished on its own
        except Exception:
            if not started:
                raise
            RESTARTS[name] += 1
            log.exception("worker %s failed (restart %d in %.0f s)", name, RESTARTS[name], delay)
        if trio.current_time() - began >= HEALTHY_RUN:
            delay = FIRST_BACKOFF
        await trio.sleep(delay)
        delay = min(delay * 2, MAX_BACKOFF)
