"""Garbage collection: what crashes and absent drives leave behind.

Theory of operation
-------------------
A GC pass runs every ``interval`` seconds (or on :meth:`GarbageCollector.start_pass`)
and removes, oldest-safe first:

1. **staging leftovers** -- fragment files of PUTs that never committed,
   older than the commit window (``sweep_staging`` on each local drive);
1b. **upload remnants** -- upload records below write quorum while every
   placement drive answers (a drive missed the Abort or Complete), older than
   the commit window: their part rows go, so step 2 can take the data;
1c. **part remnants** -- part rows older than the commit window of uploads
   no drive holds any more (a drive that was away at Create, back for a
   part, away again when the upload ended), while every drive answers;
2. **orphan chunk files** -- committed files no record on their drive names
   (a crash between promote and the freeing of replaced data, a repair whose
   commit failed), older than the commit window.  The file list is taken
   *before* the references, and a file newer than the window is never a
   candidate, so data of a write in flight is never touched;
3. **garbage in version lists** -- remnants of failed writes and missed
   deletes, and null versions shadowed by a newer one that reached quorum
   (the purge that should have followed did not run).  Keys are walked across
   drives; the pure rule in :mod:`titans3.objects.collect` decides, and only
   when every placement drive answered;
4. **abandoned multipart uploads** older than ``mpu_max_age`` (0 = keep them,
   as S3 does without a lifecycle rule).

Tombstones themselves are not stored in this design (a delete is an
operation on each drive's list, see ``titans3.drive.records``), so there are
none to expire.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from titans3.core.errors import DriveError

if TYPE_CHECKING:
    from titans3.workers.services import Services

log = logging.getLogger(__name__)

FIRST_DELAY = 300.0  # seconds after start-up before the first pass


@dataclass(frozen=True, slots=True)
class GCStatistics:
    state: str  # idle | collecting
    passes_completed: int
    staging_removed: int
    orphan_chunks_removed: int
    orphan_bytes_removed: int
    versions_removed: int  # tombstones committed (remnants, shadowed nulls)
    uploads_aborted: int
    upload_remnants_removed: int  # upload records below quorum (a drive missed Abort/Complete)
    part_remnants_removed: int  # part records of uploads no drive holds
    objects_checked: int  # keys walked in the last pass
    errors: int
    last_pass_started: float | None
    last_pass_finished: float | None
    next_pass_due: float | None
    commit_window_s: float
    queue_depth: int  # always 0: GC works from a walk, not a queue


def old_chunk_files(chunks: Path, cutoff: float) -> dict[str, int]:
    """Data id -> size of committed files under ``chunks`` last written before ``cutoff``."""
    out: dict[str, int] = {}
    if not chunks.is_dir():
        return out
    for top in os.scandir(chunks):
        if not top.is_dir():
            continue
        for mid in os.scandir(top.path):
            if not mid.is_dir():
                continue
            for f in os.scandir(mid.path):
                try:
                    st = f.stat()
                except FileNotFoundError:
                    continue
                if f.is_file() and st.st_mtime < cutoff:
                    out[f.name] = st.st_size
    return out


class GarbageCollector:
    def __init__(
        self, services: Services, *, positions: list[int], interval: float, window: float,
        mpu_max_age: float = 0.0, first_delay: float = FIRST_DELAY,
    ) -> None:
        self.svc = services
        self.positions = list(positions)
        self.interval = interval
        self.window = window
        self.mpu_max_age = mpu_max_age
        self.first_delay = first_delay
        self.passes = self.staging = self.orphans = self.orphan_bytes = 0
        self.versions = self.uploads = self.keys = self.errors = 0
        self.upload_remnants = self.part_remnants = 0
        self.started: float | None = None
        self.finished: float | None = None
        self._next: float | None = None
        self._running = False
        self._kick = trio.Event()

    def start_pass(self) -> bool:
        if self._running:
            return False
        self._next = time.time()
        self._kick.set()
        return True

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        self._next = time.time() + min(self.first_delay, self.interval)
        task_status.started()
        while True:
            wait = self._next - time.time()
            if wait > 0:
                self._kick = trio.Event()
                with trio.move_on_after(wait):
                    await self._kick.wait()
                continue
            await self.collect()
            self._next = time.time() + self.interval

    async def collect(self) -> None:
        """One full pass (see module doc)."""
        self._running = True
        self.started = time.time()
        try:
            for p in self.positions:
                await self._sweep(p)
            await self._upload_remnants()  # before the orphan scan: it frees their data
            for p in self.positions:
                await self._orphans(p)
            await self._versions()
            if self.mpu_max_age > 0:
                try:
                    self.uploads += await self.svc.abort_stale_uploads(self.mpu_max_age)
                except Exception as e:  # noqa: BLE001
                    self.errors += 1
                    log.warning("gc: aborting stale uploads failed: %s", e)
        finally:
            self._running = False
            self.finished = time.time()
            self.passes += 1
        log.info("gc pass: %d staging files, %d orphan chunks (%d bytes), %d versions, %d uploads",
                 self.staging, self.orphans, self.orphan_bytes, self.versions, self.uploads)

    async def _sweep(self, p: int) -> None:
        d = self.svc.drives[p]
        sweep = getattr(d, "sweep_staging", None)
        if sweep is None or d.state != "online":
            return
        try:
            self.staging += await sweep(self.window)
        except DriveError as e:
            self.errors += 1
            log.warning("gc: sweeping staging on %s failed: %s", d.drive_id, e)

    async def _upload_remnants(self) -> None:
        try:
            self.upload_remnants += await self.svc.collect_upload_remnants(self.window)
        except Exception as e:  # noqa: BLE001 -- no bucket quorum now: next pass
            self.errors += 1
            log.warning("gc: collecting upload remnants failed: %s", e)
        try:  # after the upload remnants: their rows on drives without the upload record
            self.part_remnants += await self.svc.collect_part_remnants(self.window, self.positions)
        except DriveError as e:
            self.errors += 1
            log.warning("gc: collecting part remnants failed: %s", e)

    async def _orphans(self, p: int) -> None:
        d = self.svc.drives[p]
        root = getattr(d, "root", None)
        if root is None or d.state != "online" or p in self.svc.healing:
            return
        try:
            cutoff = time.time() - self.window
            candidates = await trio.to_thread.run_sync(old_chunk_files, Path(root) / "chunks", cutoff)
            if not candidates:
                return
            refs = await self.svc.referenced_data(p)
            if refs is None:
                return
            orphans = sorted(set(candidates) - refs)
            if orphans:
                await d.delete_data(orphans)
                self.orphans += len(orphans)
                self.orphan_bytes += sum(candidates[i] for i in orphans)
                log.info("gc: removed %d orphan fragment files from %s", len(orphans), d.drive_id)
        except (DriveError, OSError) as e:
            self.errors += 1
            log.warning("gc: orphan scan of %s failed: %s", d.drive_id, e)

    async def _versions(self) -> None:
        now = time.time_ns()
        self.keys = 0
        try:
            buckets = await self.svc.bucket_ids()
        except Exception as e:  # noqa: BLE001 -- no bucket quorum now: next pass
            self.errors += 1
            log.warning("gc: cannot list buckets: %s", e)
            return
        for bid in buckets:
            k, w = await self.svc.quorum_for(bid)
            async for kr in self.svc.walk_keys(bid, skip=self.svc.healing):
                self.keys += 1
                if not self.svc.needs_collect(kr, bid, k=k, w=w, window=self.window, now_ns=now):
                    continue
                try:
                    self.versions += await self.svc.collect_key(bid, kr.key, window=self.window,
                                                                now_ns=now)
                except Exception as e:  # noqa: BLE001 -- one key must not stop the pass
                    self.errors += 1
                    log.warning("gc: %s/%r: %s", bid.hex(), kr.key, e)

    def statistics(self) -> GCStatistics:
        return GCStatistics(
            state="collecting" if self._running else "idle",
            passes_completed=self.passes, staging_removed=self.staging,
            orphan_chunks_removed=self.orphans, orphan_bytes_removed=self.orphan_bytes,
            versions_removed=self.versions, uploads_aborted=self.uploads,
            upload_remnants_removed=self.upload_remnants, part_remnants_removed=self.part_remnants,
            objects_checked=self.keys, errors=self.errors,
            last_pass_started=self.started, last_pass_finished=self.finished,
            next_pass_due=None if self._running else self._next,
            commit_window_s=self.window, queue_depth=0,
        )
