"""The host's volume service: attachments, leases, and the volume operations.

Theory of operation
-------------------
One :class:`VolumeService` per daemon owns everything volume-shaped on this
host: the catalogue and lease registers, the shared extent cache, and the
volumes attached here.  The NBD server asks it for exports
(:meth:`open_export`), the admin API for operations (create, resize,
snapshots, clones, rollback, delete; :mod:`titans3.nbd.operations`).

*Attachments.*  The first connection to a volume takes its lease and
attaches it (replaying the log); later connections on this host share that
:class:`~titans3.nbd.volume.Volume` -- one map, one log, so a FLUSH on any
connection covers writes made on all of them (the export may advertise
CAN_MULTI_CONN).  When the last connection goes, the volume lingers a
moment, then detaches cleanly (everything folded into extents, log emptied,
lease released).  While attached, a task renews the lease every quarter of
its term; a volume whose lease is about to run out stops writing, and one
whose lease went to another host is fenced for good.

*Statistics.*  :meth:`statistics` lists every volume of the cluster with its
size, allocated bytes, where it is attached and (here) its ops/s -- the rows
of the status page.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import trio

from titans3.nbd import lease as leasing
from titans3.nbd.attach import attach, open_view
from titans3.nbd.backend import BackendError, StoreBackend
from titans3.nbd.cache import ExtentCache
from titans3.nbd.catalog import (
    TABLE,
    Catalog,
    NoSuchVolume,
    VolumeInUse,
    VolumeRecord,
    split_export,
)
from titans3.nbd.readonly import SnapshotExport
from titans3.nbd.register import Clock, QuorumRegister
from titans3.nbd.volume import Volume

if TYPE_CHECKING:
    from titans3.drive.protocol import Drive
    from titans3.objects import ObjectAPI

log = logging.getLogger(__name__)

FENCE_MARGIN = 2.0  # seconds of lease left below which a volume stops writing
WATCHED_FOR = 60.0  # seconds the volume rows keep refreshing after statistics() was asked for
ROWS_EVERY = 4.0  # seconds between refreshes of the cluster-wide volume rows


@dataclass(frozen=True)
class Settings:
    memory: int = 256 << 20  # per attached volume: data held before it is folded into extents
    cache: int = 512 << 20  # extent cache, shared by every volume of the host
    lease: float = 15.0  # seconds a writer lease lasts without renewal
    linger: float = 2.0  # seconds an unused volume stays attached


class _Clock:
    """The host's version clock, looked up at call time (the store may be replaced)."""

    def __init__(self, clock_of: Callable[[], Clock]) -> None:
        self._clock_of = clock_of

    def new_id(self) -> str:
        return self._clock_of().new_id()

    def observe(self, version_id: str) -> None:
        self._clock_of().observe(version_id)


@dataclass
class Attached:
    volume: Volume
    lease: leasing.Lease
    users: int = 0
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    idle_since: float = 0.0
    rates: dict[str, float] = field(default_factory=dict)
    last: tuple[float, int, int, int] = (0.0, 0, 0, 0)  # time, reads, writes, bytes


@dataclass(frozen=True, slots=True)
class VolumeRow:
    name: str
    size: int
    allocated: int
    attached: str  # the host holding its writer lease ("" = detached)
    here: bool
    snapshots: int
    parent: str
    ops_per_s: float = 0.0
    bytes_per_s: float = 0.0
    buffered: int = 0


@dataclass(frozen=True, slots=True)
class ServiceStatistics:
    volumes: tuple[VolumeRow, ...]
    attached_here: int
    cache_used: int
    cache_capacity: int
    cache_hits: int
    cache_misses: int


class VolumeService:
    def __init__(self, store_of: Callable[[], ObjectAPI], *, drives_of: Callable[[], Sequence[Drive]],
                 clock_of: Callable[[], Clock], host_id: str, label: str,
                 settings: Settings | None = None) -> None:
        """``store_of``, ``drives_of``, ``clock_of``: the host's object store, its
        drives and its version clock, at call time (a cluster join replaces them)."""
        self.settings = settings or Settings()
        self.backend = StoreBackend(store_of, drives_of)
        clock = _Clock(clock_of)
        self.catalog = Catalog(QuorumRegister(self.backend.drives, TABLE, clock))
        self.leases = leasing.Leases(QuorumRegister(self.backend.drives, leasing.TABLE, clock),
                                     leasing.Holder(host_id, label), self.settings.lease)
        self.cache = ExtentCache(self.settings.cache)
        self.attached: dict[str, Attached] = {}
        self._attaching: dict[str, trio.Lock] = {}
        self._snapshots: dict[tuple[str, str], tuple[SnapshotExport, int]] = {}
        self._nursery: trio.Nursery | None = None
        self._rows: tuple[VolumeRow, ...] = ()
        self._watched = -WATCHED_FOR  # when statistics() was last asked for

    # ------------------------------------------------------------ lifecycle
    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._sampler)
                task_status.started()
                await trio.sleep_forever()
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(30):
                for name in list(self.attached):
                    await self._detach(name)

    async def ready(self) -> None:
        await self.backend.ensure_bucket()

    # ------------------------------------------------------------ exports
    async def export_names(self) -> list[tuple[str, str]]:
        """Every export (volumes, then their snapshots) with a one-line description."""
        out = []
        for rec in await self.catalog.list():
            out.append((rec.name, f"volume, {rec.size} bytes"))
            out += [(f"{rec.name}@{s.name}", f"snapshot of {rec.name}, read-only") for s in rec.snapshots]
        return out

    async def describe(self, export: str) -> tuple[VolumeRecord, bool]:
        """The record behind an export and whether it is read-only (no attach)."""
        name, snap = split_export(export)
        rec = await self.catalog.get(name)
        if snap is not None:
            rec.snapshot(snap)
        return rec, snap is not None

    @contextlib.asynccontextmanager
    async def open_export(self, export: str) -> AsyncIterator[Volume | SnapshotExport]:
        """Attach ``export`` for the life of one connection."""
        name, snap = split_export(export)
        if snap is not None:
            exp = await self._open_snapshot(name, snap)
            try:
                yield exp
            finally:
                self._release_snapshot(name, snap)
            return
        att = await self._attach(name)
        att.users += 1
        try:
            yield att.volume
        finally:
            att.users -= 1
            att.idle_since = time.monotonic()

    async def _open_snapshot(self, name: str, snap: str) -> SnapshotExport:
        key = (name, snap)
        if key in self._snapshots:
            exp, n = self._snapshots[key]
            self._snapshots[key] = (exp, n + 1)
            return exp
        rec = await self.catalog.get(name)
        s = rec.snapshot(snap)
        view = await open_view(self.backend, self.cache, self.catalog, rec, s.vid)
        exp = SnapshotExport(rec, s, view)
        if key in self._snapshots:  # raced: keep the first
            exp, n = self._snapshots[key]
            self._snapshots[key] = (exp, n + 1)
            return exp
        self._snapshots[key] = (exp, 1)
        return exp

    def _release_snapshot(self, name: str, snap: str) -> None:
        exp, n = self._snapshots[(name, snap)]
        if n <= 1:
            del self._snapshots[(name, snap)]
        else:
            self._snapshots[(name, snap)] = (exp, n - 1)

    async def _attach(self, name: str) -> Attached:
        await self.ready()
        lock = self._attaching.setdefault(name, trio.Lock())
        async with lock:
            att = self.attached.get(name)
            if att is not None:
                return att
            lease = await self.leases.acquire(name)
            try:
                volume = await attach(self.backend, self.cache, self.catalog, name, memory=self.settings.memory)
            except BaseException:
                with trio.CancelScope(shield=True), contextlib.suppress(BackendError):
                    await self.leases.release(lease)
                raise
            volume.fence_check = lambda: self._fence(lease)
            att = Attached(volume, lease, idle_since=time.monotonic())
            assert self._nursery is not None, "VolumeService.run() is not running"
            await self._nursery.start(self._keep, name, att)
            self.attached[name] = att
            log.info("volume %s attached (epoch %d)", name, volume.record.epoch)
            return att

    def _fence(self, lease: leasing.Lease) -> str | None:
        left = lease.remaining()
        if left < FENCE_MARGIN:
            return f"the writer lease could not be renewed ({left:.1f}s left): writes stop before it expires"
        return None

    async def _keep(self, name: str, att: Attached, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Run the volume's cleaner and renew its lease; detach when it lingered unused."""
        with att.scope:
            async with trio.open_nursery() as nursery:
                await nursery.start(att.volume.run)
                task_status.started()
                detaching = False

                async def detach() -> None:
                    nonlocal detaching
                    if not await self._detach(name):
                        detaching = False  # it could not fold now: try again after the next linger
                        att.idle_since = time.monotonic()

                period = min(self.settings.lease / 4, max(0.2, self.settings.linger / 2))
                last = trio.current_time()
                while True:
                    # Every period from the last renewal's start, not its end: a slow
                    # renewal must not push the next one back by its own duration.
                    await trio.sleep_until(last + period)
                    last = trio.current_time()
                    # Renewals go on while a detach folds the volume: folding a large
                    # map can take longer than a lease term.
                    try:
                        if not await self.leases.renew(att.lease):
                            att.volume.fenced = "the writer lease was taken over by another host"
                            log.error("volume %s: lease lost; writes are refused", name)
                        period = min(self.settings.lease / 4, max(0.2, self.settings.linger / 2))
                    except BackendError as e:
                        log.warning("volume %s: lease renewal failed (retrying): %s", name, e)
                        period = min(period, 0.5)
                    if (not detaching and att.users == 0
                            and time.monotonic() - att.idle_since >= self.settings.linger):
                        detaching = True
                        nursery.start_soon(detach)

    async def _detach(self, name: str) -> bool:
        """Detach ``name`` if it is unused: folded, log emptied, lease released.

        False when it stays attached: a client came back, or the cluster could
        not take the fold now (written data stays in memory and in the log,
        and the lease is kept, until a later try succeeds).  A volume fenced
        for good (its lease went to another host) is dropped: it may not
        write, and the other host replays the log."""
        att = self.attached.get(name)
        if att is None:
            return True
        lock = self._attaching.setdefault(name, trio.Lock())
        async with lock:
            if self.attached.get(name) is not att or att.users:
                return False
            try:
                await att.volume.close()
                if att.volume.fenced is None:
                    await self.leases.release(att.lease)
            except BackendError as e:
                if att.volume.fenced is None:
                    log.warning("volume %s: detach postponed, the cluster cannot take the fold now: %s", name, e)
                    return False
                log.warning("volume %s: dropped without a clean detach (the log keeps every flushed write): %s",
                            name, e)
            except Exception:  # a bug must not take the gateway (and the daemon) down
                log.exception("volume %s: detach failed; dropped (the log keeps every flushed write)", name)
            del self.attached[name]
            att.scope.cancel()
            log.info("volume %s detached", name)
            return True

    @contextlib.asynccontextmanager
    async def writable(self, name: str, *, exclusive: bool = False) -> AsyncIterator[Volume]:
        """The volume attached for an operation: the one attached here, or a
        temporary attachment.  ``exclusive``: no client may be using it."""
        att = self.attached.get(name)
        if att is None:
            holder = await self.leases.holder(name)
            if holder is not None and holder != self.leases.me.label:
                raise VolumeInUse(f"volume {name} is attached on {holder}: run this there, "
                                  "or detach its clients first")
            att = await self._attach(name)
        if exclusive and att.users:
            raise VolumeInUse(f"volume {name} has {att.users} NBD client(s) attached: disconnect them first")
        att.users += 1
        try:
            yield att.volume
        finally:
            att.users -= 1
            att.idle_since = time.monotonic() - (self.settings.linger if not att.users else 0)

    # ------------------------------------------------------------ statistics
    async def _sampler(self) -> None:
        """Rates of the volumes attached here every two seconds (local, cheap);
        the cluster-wide rows only while someone looks at them (the status
        page), at most every ``ROWS_EVERY`` seconds: they read every drive."""
        last_rows = 0.0
        while True:
            await trio.sleep(2.0)
            now = time.monotonic()
            for att in self.attached.values():
                s = att.volume.stats
                t, r, w, b = att.last
                if t:
                    dt = now - t
                    att.rates = {"ops": (s["reads"] + s["writes"] - r - w) / dt,
                                 "bytes": (s["read_bytes"] + s["written_bytes"] - b) / dt}
                att.last = (now, s["reads"], s["writes"], s["read_bytes"] + s["written_bytes"])
            if now - self._watched < WATCHED_FOR and now - last_rows >= ROWS_EVERY:
                last_rows = now
                with contextlib.suppress(BackendError, NoSuchVolume):
                    self._rows = await self.rows()
            else:
                self._rows = tuple(self._fresh(r) for r in self._rows)

    def _fresh(self, row: VolumeRow) -> VolumeRow:
        """A row with this host's latest rates and buffer, between full refreshes."""
        att = self.attached.get(row.name)
        if att is None:
            return row if not row.here else replace(row, here=False, ops_per_s=0.0, bytes_per_s=0.0, buffered=0)
        return replace(row, here=True, ops_per_s=round(att.rates.get("ops", 0.0), 1),
                       bytes_per_s=round(att.rates.get("bytes", 0.0)), buffered=att.volume.map.data_bytes,
                       allocated=att.volume.view.own_allocated())

    async def _refresh_rows(self) -> None:
        with contextlib.suppress(BackendError, NoSuchVolume):
            self._rows = await self.rows()

    async def rows(self) -> tuple[VolumeRow, ...]:
        holders = await self.leases.all()
        out = []
        for rec in await self.catalog.list():
            att = self.attached.get(rec.name)
            if att is not None:
                allocated = att.volume.view.own_allocated()
            else:
                allocated = sum(v.size for v in await self.backend.keys(rec.prefix + "e/"))
            out.append(VolumeRow(
                rec.name, rec.size, allocated, holders.get(rec.name, ""), att is not None, len(rec.snapshots),
                f"{rec.parent_name}@{rec.parent_snapshot}" if rec.parent_id else "",
                round(att.rates.get("ops", 0.0), 1) if att else 0.0,
                round(att.rates.get("bytes", 0.0)) if att else 0.0,
                att.volume.map.data_bytes if att else 0))
        return tuple(out)

    def statistics(self) -> ServiceStatistics:
        """The last sample of every volume: what the status page shows.  Asking
        keeps the cluster-wide rows refreshing for a while."""
        if time.monotonic() - self._watched >= WATCHED_FOR:
            self._watched = time.monotonic()
            if self._nursery is not None:
                self._nursery.start_soon(self._refresh_rows)
        self._watched = time.monotonic()
        c = self.cache.statistics()
        return ServiceStatistics(self._rows, len(self.attached), c.used, c.capacity, c.hits, c.misses)
