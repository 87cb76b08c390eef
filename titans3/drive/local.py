"""LocalDrive: the Drive protocol on one local disk (DESIGN §5).

Theory of operation
-------------------
Layout under the drive root::

    titans3-drive.json        identity (health.py)
    index.lmdb/               LMDB: versions, inline, drive, quarantine, meta:<table>
    chunks/xx/yy/<data id>    committed fragment files (chunks.py)
    staging/<data id>         fragments being written or awaiting commit
    quarantine/<id>.<ns>      fragments that failed verification

Invariants:

* **Nothing staged is visible.**  Reads look only at ``chunks/`` and the
  ``inline`` table.  A commit *promotes* staged data -- a rename into
  ``chunks/``, or for a small fragment (kept in memory by ``put_inline``) a put
  into ``inline`` -- fsyncs the touched directories, and only then commits the
  LMDB record, all in one grouped transaction (index.py).  A crash in between
  leaves an unreferenced chunk for GC, never a record without its data.
  Data the merge frees (an overwritten null version, a replaced record) is
  deleted *after* the commit: inline blobs inside the same transaction, files
  right after it.
* **Every read verifies itself.**  Only the covering blocks are read, each
  checked against its xxh3-128; a corrupt file is moved to ``quarantine/`` and
  ``FragmentCorrupt`` raised.  Inline blobs carry the same digest and move to
  the ``quarantine`` table.
* **Health is checked on every operation** (health.py: a ~2 us probe before
  each blocking call).  An I/O failure marks the drive OFFLINE; every call
  then raises ``DriveOffline`` without touching the disk until :meth:`check`
  succeeds, which also reopens LMDB.  A full disk raises a plain
  ``DriveError``: it can still serve reads.
* **Blocking work runs in worker threads** through one CapacityLimiter per
  drive, LMDB reads included.  A point read costs ~1 us inline against
  ~70-140 us with the thread hop (measured), but a disk that hangs in a page
  fault must hang one worker thread, not the event loop serving every other
  drive on the host.
* ``bytes_stored`` (chunk files + inline blobs) is kept in memory and written
  into the ``drive`` table by whichever commit comes next; a crash may lose
  the last few adjustments (it is a statistic, not an invariant).
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import lmdb
import trio
import xxhash

from titans3.core.errors import (
    DriveError,
    DriveOffline,
    FragmentCorrupt,
    FragmentMissing,
)
from titans3.drive import direct, health, keys
from titans3.drive import fragment as fmt
from titans3.drive import lock as drive_lock
from titans3.drive.chunks import ChunkStore
from titans3.drive.faults import FaultInjector
from titans3.drive.guard import _FAULTS, FAST_BUDGET, PROBE_TTL, DriveGuard  # noqa: F401 -- re-exported
from titans3.drive.index import DEFAULT_MAP_SIZE, INLINE, VERSIONS, Index, WriteContext
from titans3.drive.inline import QUARANTINE_TABLE, InlineBlobs
from titans3.drive.protocol import INLINE_MAX, DriveStat, DriveState, ListEntry  # noqa: F401 -- re-exported
from titans3.drive.records import (
    VersionRecord,
    has_older_null,
    merge_commit,
    pack_versions,
    unpack_versions,
)
from titans3.drive.stats import DriveStatistics, statvfs_bytes
from titans3.drive.tables import MetaTables
from titans3.drive.versionlists import VersionLists
from titans3.drive.writer import LocalFragmentWriter

log = logging.getLogger(__name__)

T = TypeVar("T")
CLOSE_WAIT = 30.0  # s close() waits for abandoned read threads

DRIVE_TABLE = "drive"  # drive-private counters
_BYTES_STORED = b"bytes_stored"
_DATA_ID = re.compile(r"[0-9a-f]{4,64}")


class LocalDrive:
    """One disk (or a directory standing in for one).

    Parts it holds: the fragment files (``ChunkStore``), the LMDB index
    (``Index``), the inline blobs (``InlineBlobs``) and the small tables
    (``MetaTables``), and the guard (``DriveGuard``) that health-checks and
    runs all their blocking work."""

    def __init__(
        self,
        root: Path | str,
        *,
        drive_id: str | None = None,
        create: bool = True,
        cluster_id: str = "",
        threads: int = 4,
        map_size: int = DEFAULT_MAP_SIZE,
        header_cache: int = 65536,
        fault_injection: bool = False,
    ) -> None:
        self.root = Path(root)
        self.drive_id = drive_id or ""
        self.cluster_id = cluster_id
        self._want_id = drive_id
        self._create = create
        self._limiter = trio.CapacityLimiter(threads)
        self._opened = self._closed = False
        self._files = ChunkStore(self.root, threads=threads, header_cache=header_cache)
        self._files.on_quarantine = lambda size: self._add_stored(-size)
        self._index = Index(
            self.root / "index.lmdb",
            limiter=self._limiter,
            map_size=map_size,
            before_batch=lambda: self._guard.probe(),
            batch_hooks=[self._persist_counters],
            tables=(VERSIONS, INLINE, DRIVE_TABLE, QUARANTINE_TABLE),
        )
        # Tests only (faults.py): delays and EIO from <root>/titans3-faults.json.
        faults = FaultInjector(self.root) if fault_injection else None
        self._guard = DriveGuard(self.root, index=self._index, limiter=self._limiter,
                                 drive_id=lambda: self.drive_id, faults=faults)
        self._inline = InlineBlobs(self._index, drive_id=lambda: self.drive_id,
                                   on_quarantine=self._inline_quarantined)
        self._tables = MetaTables(self._index, self._guard, self._inline, self._promote,
                                  self._check_id)
        self._lists = VersionLists(self._index, self._guard)
        self._writers: set[LocalFragmentWriter] = set()
        self._lock = threading.Lock()  # bytes_stored is adjusted from worker threads
        self._bytes_stored = self._bytes_persisted = 0
        self._reads = self._writes = self._bytes_read = self._bytes_written = 0
        self._drive_lock: drive_lock.DriveLock | None = None  # held from open to close

    # ================================================================ lifecycle
    @property
    def state(self) -> DriveState:
        return self._state

    async def open(self) -> None:
        """Format ``root`` (if ``create`` and it is blank) or adopt the drive there."""
        try:
            await trio.to_thread.run_sync(self._open_sync, limiter=self._limiter)
        except drive_lock.DriveInUse:
            raise  # another daemon's drive: refuse to start (never "offline")
        except BaseException as e:
            self._release_lock()
            if isinstance(e, (OSError, lmdb.Error, health.IdentityError)):
                raise DriveOffline(self._want_id or str(self.root), f"cannot open: {e}") from e
            raise
        self._opened = True
        self._state = DriveState.ONLINE

    async def __aenter__(self) -> LocalDrive:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _open_sync(self) -> None:
        self._lock_root()
        ident = health.DriveIdentity.load(self.root)
        if ident is not None:
            if self._want_id and ident.drive_id != self._want_id:
                raise DriveError(self._want_id, f"{self.root} holds drive {ident.drive_id}")
        elif not self._create:
            raise DriveError(self._want_id or "?", f"{self.root} is not a TitanS3 drive")
        elif (self.root / "index.lmdb").exists():
            # An index without an identity is a damaged drive, not a blank one.
            raise DriveError(self._want_id or "?", f"{self.root} has an index but no identity")
        else:
            ident = health.DriveIdentity.create(
                self.root, self._want_id or uuid.uuid4().hex, self.cluster_id
            )
        self.drive_id, self.cluster_id = ident.drive_id, ident.cluster_id
        self._files.make_dirs()
        self._index.open_sync()
        self._bytes_stored = self._bytes_persisted = self._index.read_sync(self._load_counter)
        self._guard.identity_key = health.identity_key(self.root)

    def _lock_root(self) -> None:
        """Hold the drive's exclusive lock (lock.py) before touching anything in it."""
        if self._create:
            self.root.mkdir(parents=True, exist_ok=True)
        if self.root.is_dir() and not drive_lock.still_held(self._drive_lock, self.root):
            self._release_lock()
            self._drive_lock = drive_lock.acquire(self.root)

    def _release_lock(self) -> None:
        if self._drive_lock is not None:
            self._drive_lock.release()
            self._drive_lock = None

    def _load_counter(self, txn: lmdb.Transaction) -> int:
        raw = txn.get(_BYTES_STORED, db=self._index.db(DRIVE_TABLE))
        return int(raw) if raw else 0

    async def close(self) -> None:
        if self._closed:
            return
        if self._state is DriveState.ONLINE and self._bytes_stored != self._bytes_persisted:
            with contextlib.suppress(DriveError):
                await self._guard.write(lambda ctx: None)  # lets the counter hook run
        self._closed = True
        self._state = DriveState.OFFLINE
        with trio.move_on_after(CLOSE_WAIT):  # an abandoned read may still use the files
            while self._guard.abandoned:
                await trio.sleep(0.05)
        await trio.to_thread.run_sync(self._index.close_sync)
        self._files.close()
        self._release_lock()

    def mark_failed(self) -> None:
        """The disk manager's verdict: FAILED is final (check() keeps it)."""
        self._state = DriveState.FAILED

    async def check(self) -> DriveState:
        """Re-probe the drive.  An OFFLINE drive whose identity is intact comes
        back ONLINE, with its LMDB environment reopened."""
        if self._state is DriveState.FAILED or self._closed or not self._opened:
            return self._state
        try:
            await trio.to_thread.run_sync(
                health.probe_full, self.root, self.drive_id, limiter=self._limiter
            )
        except (OSError, health.IdentityError) as e:
            if self._state is DriveState.ONLINE:
                log.warning("drive %s: health check failed: %s", self.drive_id, e)
            self._state = DriveState.OFFLINE
            return self._state
        if self._state is DriveState.OFFLINE and self._guard.inflight == 0 and self._guard.abandoned == 0:
            try:
                await trio.to_thread.run_sync(self._reopen_sync, limiter=self._limiter)
            except (OSError, lmdb.Error) as e:
                log.warning("drive %s: reopen failed: %s", self.drive_id, e)
                return self._state
            log.info("drive %s is back online", self.drive_id)
            self._state = DriveState.ONLINE
        return self._state

    def _reopen_sync(self) -> None:
        self._lock_root()  # a replaced directory needs the lock taken again
        self._index.close_sync()
        self._files.reset()
        self._files.make_dirs()
        self._index.open_sync()
        self._guard.identity_key = health.identity_key(self.root)

    # ================================================================ guard
    # The guard (guard.py) holds the state and the slow-read demotion; these
    # keep them reachable where they always were.
    @property
    def _state(self) -> DriveState:
        return self._guard.state

    @_state.setter
    def _state(self, value: DriveState) -> None:
        self._guard.state = value

    @property
    def _slow_until(self) -> float:
        return self._guard.slow_until

    @_slow_until.setter
    def _slow_until(self, value: float) -> None:
        self._guard.slow_until = value

    async def _fast(self, fn: Callable[..., T], *args: Any) -> T:
        return await self._guard.fast(fn, *args)

    # Optional fast paths of the Drive protocol (objects/lookup.py, objects/reads.py
    # use them when a drive has them): the answer right now on the loop, or
    # None when the caller must await the ordinary call (demoted drive, data in
    # a file).  A small GET asks ten drives; ten tasks spawned to await ten
    # lookups that never wait were ~15 % of its object-layer CPU.
    def read_versions_nowait(self, bucket_id: bytes, key: bytes) -> list[VersionRecord] | None:
        if self._guard.slow_until > time.monotonic():
            return None
        return self._lists.read_versions_sync(bucket_id, key, self._guard.fast_sync)

    def read_inline_nowait(self, data_id: str, offset: int, length: int) -> bytes | None:
        if self._guard.slow_until > time.monotonic() or offset < 0 or length < 0 or \
                not _DATA_ID.fullmatch(data_id):
            return None
        blob = self._guard.fast_sync(self._inline.get, data_id)
        if blob is None:
            return None
        data = blob[offset : offset + length]
        self._reads += 1
        self._bytes_read += len(data)
        return data

    # ================================================================ state
    async def stat(self) -> DriveStat:
        """Capacity from statvfs; an offline drive reports zeros, not an error."""
        capacity = free = 0
        if self._state is DriveState.ONLINE:
            with contextlib.suppress(DriveError):
                capacity, free = await self._guard.run(statvfs_bytes, self.root)
        return DriveStat(
            drive_id=self.drive_id,
            path=str(self.root),
            state=self._state,
            capacity=capacity,
            used=capacity - free,
            free=free,
            errors=self._guard.errors,
            fragments_quarantined=self._quarantined_total,
            full=self._guard.is_full(free),
        )

    def statistics(self) -> DriveStatistics:
        ist = self._index.statistics()
        return DriveStatistics(
            state=self._state,
            reads=self._reads,
            writes=self._writes,
            bytes_read=self._bytes_read,
            bytes_written=self._bytes_written,
            errors=self._guard.errors,
            full_errors=self._guard.full_errors,
            medium_errors=self._guard.medium_errors,
            quarantined=self._quarantined_total,
            commits=ist.commits,
            commit_batches=ist.batches,
            avg_commit_batch=ist.avg_batch,
            bytes_stored=self._bytes_stored,
            staged_inline=len(self._inline),
            open_writers=len(self._writers),
        )

    @property
    def _quarantined_total(self) -> int:
        return self._files.quarantined + self._inline.quarantined

    def _add_stored(self, delta: int) -> None:
        with self._lock:
            self._bytes_stored += delta

    def _inline_quarantined(self, size: int) -> None:
        self._add_stored(-size)
        self._guard.count_error()

    # ================================================================ inline blobs, tables
    async def put_inline(self, data_id: str, data: bytes) -> None:
        self._check_id(data_id)
        if len(data) > INLINE_MAX:
            raise ValueError(f"inline fragment of {len(data)} bytes exceeds {INLINE_MAX}")
        self._guard.require_online()
        self._inline.stage(data_id, data)
        await trio.lowlevel.checkpoint()

    def _take_inline(self, ids: Sequence[str]) -> dict[str, bytes]:
        for data_id in ids:
            self._check_id(data_id)
        return self._inline.take(ids)

    async def put_meta(
        self, table: str, key: bytes, value: bytes | None, *, promote: Sequence[str] = ()
    ) -> None:
        await self._tables.put_meta(table, key, value, promote=promote)

    async def swap_meta(
        self, table: str, key: bytes, value: bytes | None, expect: bytes | None
    ) -> bool:
        return await self._tables.swap_meta(table, key, value, expect)

    async def get_meta(self, table: str, key: bytes) -> bytes | None:
        return await self._tables.get_meta(table, key)

    async def list_meta(
        self, table: str, *, prefix: bytes = b"", start_after: bytes | None = None, limit: int = 1000
    ) -> list[tuple[bytes, bytes]]:
        return await self._tables.list_meta(table, prefix=prefix, start_after=start_after,
                                            limit=limit)

    def _persist_counters(self, ctx: WriteContext) -> None:
        """Batch hook: piggyback the bytes-stored count on every commit."""
        value = self._bytes_stored
        if value != self._bytes_persisted:
            ctx.txn.put(_BYTES_STORED, str(value).encode(), db=ctx.db(DRIVE_TABLE))
            ctx.on_commit(lambda: setattr(self, "_bytes_persisted", value))

    # ================================================================ data
    def chunk_path(self, data_id: str) -> Path:
        return self._files.path(data_id)

    @staticmethod
    def _check_id(data_id: str) -> None:
        if not _DATA_ID.fullmatch(data_id):
            raise ValueError(f"bad data id {data_id!r} (want 4-64 lowercase hex chars)")

    async def create_fragment(self, data_id: str, frag_index: int) -> LocalFragmentWriter:
        self._check_id(data_id)
        dw = await self._guard.run(
            direct.DirectWriter, self._files.staging_path(data_id), data_id, frag_index,
            self._files.write_pool, kind="write",
        )
        # No identity probe per append (~7 % of a PUT's server samples): a dead
        # disk fails the pwrite/fdatasync itself, and the promoting commit probes.
        w = LocalFragmentWriter(dw, run=partial(self._guard.run, probe=False, kind="write"),
                               on_close=self._writer_closed)
        self._writers.add(w)
        return w

    async def write_fragment(self, data_id: str, frag_index: int,
                             parts: Sequence[bytes | memoryview]) -> int:
        """Stage a fragment held whole in memory in ONE worker-thread call (the
        streaming writer costs a thread hop per write and one each to open and
        finish: ~6 per fragment of a 4 MiB extent).  Same file, same durability
        as ``create_fragment`` + ``write``... + ``finish``; on error nothing stays
        staged.  Returns the logical length."""
        self._check_id(data_id)
        length = await self._guard.run(
            direct.write_whole, self._files.staging_path(data_id), data_id, frag_index,
            list(parts), self._files.write_pool, kind="write",
        )
        self._writes += 1
        self._bytes_written += length
        return length

    def _writer_closed(self, w: LocalFragmentWriter, length: int | None) -> None:
        if w in self._writers:
            self._writers.discard(w)
            if length is not None:
                self._writes += 1
                self._bytes_written += length

    def _check_read_id(self, data_id: str) -> None:
        # A record naming a malformed id cannot name data on this drive; the
        # object layer handles that like any missing fragment.
        if not _DATA_ID.fullmatch(data_id):
            raise FragmentMissing(self.drive_id, f"no fragment {data_id!r} (malformed id)")

    async def read_fragment(self, data_id: str, offset: int, length: int) -> bytes:
        self._check_read_id(data_id)
        if offset < 0 or length < 0:
            raise ValueError("negative offset or length")
        blob = await self._guard.fast(self._inline.get, data_id)
        if blob is not None:
            data = blob[offset : offset + length]
        else:
            data = await self._guard.run(self._file_op, data_id, self._files.read, data_id, offset, length,
                                   kind="read", abandon=True)
        self._reads += 1
        self._bytes_read += len(data)
        return data

    async def fragment_size(self, data_id: str) -> int:
        self._check_read_id(data_id)
        return await self._guard.run(self._size_sync, data_id)

    def _size_sync(self, data_id: str) -> int:
        blob = self._inline.get(data_id)
        if blob is not None:
            return len(blob)
        return self._file_op(data_id, self._files.size, data_id)

    def _file_op(self, data_id: str, fn: Callable[..., T], *args: Any) -> T:
        """Run a chunk read, turning its failures into typed drive errors."""
        try:
            return fn(*args)
        except FileNotFoundError:
            self._guard.probe()  # a vanished root is OFFLINE, not a missing fragment
            raise FragmentMissing(self.drive_id, f"no fragment {data_id}") from None
        except fmt.FragmentFormatError as e:  # the file is in quarantine/ now
            self._guard.count_error()
            raise FragmentCorrupt(self.drive_id, f"fragment {data_id}: {e}") from e

    # ================================================================ commits
    def _promote(self, ctx: WriteContext, ids: Sequence[str], inline: dict[str, bytes]) -> None:
        """Inside a write txn: make staged data committed (see module doc)."""
        for data_id in ids:
            blob = inline.get(data_id)
            if blob is not None:
                value = xxhash.xxh3_128_digest(blob) + blob
                old = ctx.txn.replace(data_id.encode(), value, db=ctx.db(INLINE))
                self._add_stored(len(value) - (len(old) if old is not None else fmt.DIGEST_SIZE))
                continue
            try:
                size = self._files.promote(data_id, ctx.sync_dir)
            except FileNotFoundError:
                if ctx.txn.get(data_id.encode(), db=ctx.db(INLINE)) is not None:
                    continue  # an inline blob committed before: idempotent re-commit
                raise FragmentMissing(self.drive_id, f"{data_id} is not staged") from None
            if size is not None:
                self._add_stored(size)

    def _free_in_txn(self, ctx: WriteContext, freed: Sequence[str]) -> list[str]:
        """Delete freed inline blobs in the txn; return the ids that are files."""
        files = []
        db = ctx.db(INLINE)
        for data_id in freed:
            raw = ctx.txn.pop(data_id.encode(), db=db)
            if raw is not None:
                self._add_stored(-(len(raw) - fmt.DIGEST_SIZE))
            else:
                files.append(data_id)
        return files

    async def commit_version(
        self, bucket_id: bytes, key: bytes, record: VersionRecord, *, promote: Sequence[str] = ()
    ) -> bool:
        keys.encode_key(bucket_id, key)  # validate before queueing
        ids = list(promote)
        inline = self._take_inline(ids)

        older_null = False

        def apply(ctx: WriteContext) -> list[str]:
            nonlocal older_null
            self._promote(ctx, ids, inline)
            freed: list[str] = []

            def merge(current: bytes | None) -> bytes | None:
                nonlocal older_null
                merged, dropped = merge_commit(unpack_versions(current) if current else [], record)
                freed.extend(dropped)
                older_null = record.null and not record.tomb and has_older_null(merged, record.vid)
                return pack_versions(merged) if merged else None  # last version removed

            keys.update_record(ctx.txn, ctx.db(VERSIONS), bucket_id, key, merge)
            return self._free_in_txn(ctx, freed)

        freed_files = await self._guard.write(apply)
        for data_id in inline:
            self._inline.drop(data_id)
        if freed_files:
            await self._guard.run(self._unlink_files, freed_files)
        return older_null

    async def read_versions(self, bucket_id: bytes, key: bytes) -> list[VersionRecord]:
        return await self._lists.read_versions(bucket_id, key)

    async def list_versions(
        self, bucket_id: bytes, *, prefix: bytes = b"", start_after: bytes | None = None,
        delimiter: bytes | None = None, limit: int = 1000, live: bool = False,
    ) -> list[ListEntry]:
        return await self._lists.list_versions(bucket_id, prefix=prefix, start_after=start_after,
                                               delimiter=delimiter, limit=limit, live=live)

    async def bucket_ids(self) -> list[bytes]:
        """Every bucket id with version records on this drive (GC asks the drive)."""
        return await self._lists.bucket_ids()

    async def delete_data(self, data_ids: Sequence[str]) -> None:
        ids = [i for i in data_ids if _DATA_ID.fullmatch(i)]  # others name nothing here
        for data_id in ids:
            self._inline.drop(data_id)
        if not ids:
            await trio.lowlevel.checkpoint()
            return
        not_files = await self._guard.run(self._unlink_files, ids)
        if not not_files:
            return
        db = self._index.db(INLINE)
        inline = await self._guard.read(
            lambda txn: [i for i in not_files if txn.get(i.encode(), db=db) is not None]
        )
        if inline:
            await self._guard.write(lambda ctx: self._free_in_txn(ctx, inline))

    def _unlink_files(self, ids: Sequence[str]) -> list[str]:
        """Remove fragment files (committed or staged); return ids with no file."""
        missing, freed = self._files.unlink(ids)
        self._add_stored(-freed)
        return missing

    async def sweep_staging(self, max_age: float) -> int:
        """Remove staging files older than ``max_age`` seconds that no open
        writer owns (uncommitted leftovers); returns how many were removed."""
        busy = {w.data_id for w in self._writers}
        return await self._guard.run(self._files.sweep_staging, max_age, busy)
