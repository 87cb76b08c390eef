"""Wiring the durability workers into the daemon's nursery.

Theory of operation
-------------------
:func:`run_workers` is the one place that builds the workers for a host: it
makes the object layer's :class:`~titans3.objects.maintenance.Maintenance`
(imported here, at run time, because this module is daemon wiring -- the
workers themselves never import the object layer), opens the persisted heal
queue, points ``ObjectStore.on_degraded`` at it, starts every worker and
registers them in ``host.workers`` under the names the status page, the
admin API and ``titanctl repair status`` use (``WORKER_NAMES``).  It must
start after the final ``host.store`` exists (in a cluster the store is
replaced while the cluster forms).

Only this host's drives are scrubbed and garbage-collected (positions of
``host.drives`` in ``store.drives``); repair and refill write wherever the
placement says, through the Drive protocol.  When a refill completes, the
slot's healing flag is cleared in the roster too, so it stays cleared across
restarts.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import trio

from titans3.workers.gc import GarbageCollector
from titans3.workers.handoff import HandoffReplayer
from titans3.workers.healqueue import HealQueue
from titans3.workers.lifecycle import LifecycleWorker, rendezvous_owner
from titans3.workers.rebalance import Rebalancer
from titans3.workers.refill import RefillManager
from titans3.workers.repairer import RepairWorker
from titans3.workers.scrubber import Scrubber
from titans3.workers.spares import SpareRebuilder
from titans3.workers.supervise import supervise

if TYPE_CHECKING:
    from titans3.cluster.host import HostServices as Host

log = logging.getLogger(__name__)

HEAL_QUEUE_FILE = "heal-queue.msgpack"
WORKER_NAMES = ("scrubber", "heal-queue", "repair", "refill", "spares", "gc", "handoff",
                "rebalance", "lifecycle")
LIFECYCLE_FILE = "lifecycle.json"


def local_positions(host: Host) -> list[int]:
    """Positions in ``host.store.drives`` of the drives this host owns."""
    mine = {id(d) for d in host.drives}
    return [i for i, d in enumerate(host.store.drives) if id(d) in mine]


async def run_workers(host: Host, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    from titans3.objects import handoff
    from titans3.objects.maintenance import Maintenance

    cfg = host.config
    store = host.store
    svc = Maintenance(store, grace=cfg.repair_grace)
    queue = HealQueue(cfg.state_path / HEAL_QUEUE_FILE, cfg.heal_queue_max)
    if queue.loaded:
        log.info("heal queue: %d keys carried over from the last run", queue.loaded)

    def degraded(bucket_id: bytes, key: bytes, vid: str, bad: set[str]) -> None:
        if bucket_id:
            queue.push_nowait(bucket_id, key, "read")

    store.on_degraded = degraded

    def partial(bucket_id: bytes, key: bytes) -> None:
        # Not before the repair grace: the version is the PUT's until then.
        queue.push_nowait(bucket_id, key, "write", delay=cfg.repair_grace)

    store.on_partial_write = partial
    cluster = host.workers.get("cluster")
    if cluster is not None:  # a host that comes back gets what it missed at once
        cluster.on_peer_up.append(queue.wake_deferred)  # type: ignore[attr-defined]
    local = local_positions(host)

    def refilled(pos: int) -> None:
        if host.roster is not None and store.slots[pos] in host.roster.slots:
            host.roster.set_healing(store.slots[pos], False)
        log.info("drive %s (%s) is refilled: reads count it again",
                 store.drives[pos].drive_id, store.slots[pos])

    scrubber = Scrubber(svc, queue, positions=local, rate=cfg.scrub_rate,
                        interval=cfg.scrub_interval)
    repair = RepairWorker(svc, queue, concurrency=cfg.repair_concurrency)
    refill = RefillManager(svc, concurrency=cfg.repair_concurrency, on_done=refilled)
    gc = GarbageCollector(svc, positions=local, interval=cfg.gc_interval,
                          window=cfg.commit_window, mpu_max_age=cfg.mpu_max_age)
    # Hints held by this host's drives go back to their primaries (objects/handoff.py).
    replayer = HandoffReplayer(lambda pos: handoff.replay_drive(store.context, pos), local)
    # A failed drive's fragments go to spare drives meanwhile (workers/spares.py).
    spare = SpareRebuilder(svc, local, concurrency=cfg.repair_concurrency)
    host.workers.update({"scrubber": scrubber, "heal-queue": queue, "repair": repair,
                         "refill": refill, "spares": spare, "gc": gc, "handoff": replayer})
    rebalance = _rebalancer(host)  # ring changes (workers/rebalance.py)
    host.workers["rebalance"] = rebalance
    lifecycle = LifecycleWorker(lambda: host.store, state=cfg.state_path / LIFECYCLE_FILE,
                                day_seconds=cfg.lifecycle_day, interval=cfg.lifecycle_interval,
                                rate=cfg.lifecycle_rate, owns=lambda bucket: owns_bucket(host, bucket))
    host.workers["lifecycle"] = lifecycle
    async with trio.open_nursery() as nursery:
        # Each under supervise(): a worker's failure is logged and it restarts;
        # it never cancels the S3 endpoint (workers/supervise.py).
        await nursery.start(supervise, "heal-queue", _started(queue.run_persister))
        for name, worker in (("repair", repair), ("refill", refill), ("spares", spare),
                             ("scrubber", scrubber), ("gc", gc), ("handoff", replayer),
                             ("rebalance", rebalance), ("lifecycle", lifecycle)):
            await nursery.start(supervise, name, worker.run)
        task_status.started()


def _started(fn: Any) -> Any:
    """``fn()`` as a worker that reports started at once (for start_soon-style tasks)."""

    async def run(*, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        await fn()

    return run


def owns_bucket(host: Host, bucket: str) -> bool:
    """Whether this host applies ``bucket``'s lifecycle rules now: the live host
    with the highest rendezvous hash owns it (workers/lifecycle.py)."""
    cluster = host.workers.get("cluster")
    me = getattr(cluster, "self_address", None)
    if cluster is None or me is None:
        return True
    live = [me] + [p.address for p in cluster.others if p.online]
    return rendezvous_owner(bucket, live) == me


def _rebalancer(host: Host) -> Rebalancer:
    """The ring-change mover; idle unless this host coordinates a ring change."""
    from titans3.cluster.membership import membership_of
    from titans3.objects import keywalk, move

    return Rebalancer(host.config.state_path, lambda: membership_of(host), lambda: host.store.context,
                      move.move_key, keywalk.walk_keys, move.copy_buckets,
                      rate=host.config.rebalance_rate)
