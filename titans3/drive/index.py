"""One drive's LMDB environment: named tables and grouped durable commits.

Theory of operation
-------------------
Each drive has one LMDB environment at ``<root>/index.lmdb`` opened with
``sync`` and ``metasync`` on: when a commit returns, it survives power loss.
A durable commit costs about one disk flush (0.3-0.8 ms here), so commits
from concurrent callers are **grouped**:

* :meth:`Index.write` queues a request (a function to run inside the write
  transaction) and takes the commit lock.  The task that gets the lock while
  its own request is still queued becomes the *leader*: it takes every queued
  request and applies them in ONE write transaction in a worker thread, then
  releases the lock.  Everyone whose request was in that batch finds it done
  and returns.  Requests that arrive while a batch is in flight form the next
  batch.  No background task is needed, and the batch size adapts to load:
  one committer pays one flush per commit; 64 concurrent committers share a
  few.
* Each request runs in a **nested** transaction: if its function raises, only
  its own writes are rolled back and only its caller sees the error; the rest
  of the batch still commits (a nested txn costs ~2.6 us here).
* Filesystem effects that must be durable *before* the records that refer to
  them (promoting staged fragment files) register directories with
  :meth:`WriteContext.sync_dir`; each is fsynced once per batch, right before
  the LMDB commit.  A crash in between leaves an unreferenced file for GC --
  never a record that points at missing data.

Tables are LMDB named databases: ``versions`` and ``inline`` (used by the
drive), and ``meta:<name>`` for small generic tables, created on first write
(:meth:`Index.ensure_table`, outside any batch).
Read transactions are cheap (~1 us); callers run them in a worker thread with
:meth:`Index.read` so a stalled disk never freezes the event loop.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import lmdb
import trio

from titans3.drive.direct import fsync_dir

log = logging.getLogger(__name__)

T = TypeVar("T")

VERSIONS = "versions"
INLINE = "inline"
META_PREFIX = "meta:"
DEFAULT_MAP_SIZE = 1 << 40  # sparse: address space, not disk
DEFAULT_MAX_DBS = 32


@dataclass(frozen=True, slots=True)
class IndexStatistics:
    commits: int  # requests applied successfully
    failed: int  # requests whose function or batch raised
    batches: int  # durable LMDB commits
    max_batch: int
    avg_batch: float
    commit_seconds: float  # total time inside batch transactions


class _Request(Generic[T]):
    __slots__ = ("fn", "done", "result", "error")

    def __init__(self, fn: Callable[[WriteContext], T]) -> None:
        self.fn = fn
        self.done = False
        self.result: T | None = None
        self.error: BaseException | None = None


class WriteContext:
    """What a write request sees: its transaction and the batch's hooks."""

    def __init__(self, index: Index, parent: lmdb.Transaction) -> None:
        self._index = index
        self._parent = parent
        self.txn: lmdb.Transaction = parent
        self.dirs_to_sync: set[str] = set()
        self.after_commit: list[Callable[[], None]] = []

    def db(self, name: str) -> Any:
        """Handle of table ``name`` (see :meth:`Index.ensure_table`)."""
        handle = self._index.db(name)
        if handle is None:
            raise KeyError(f"table {name!r} not created; call Index.ensure_table first")
        return handle

    def sync_dir(self, path: Path | str) -> None:
        """fsync ``path`` once per batch, before the LMDB commit."""
        self.dirs_to_sync.add(str(path))

    def on_commit(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` (in the commit thread) after the batch is durable."""
        self.after_commit.append(fn)


class Index:
    def __init__(
        self,
        path: Path,
        *,
        limiter: trio.CapacityLimiter,
        map_size: int = DEFAULT_MAP_SIZE,
        max_dbs: int = DEFAULT_MAX_DBS,
        before_batch: Callable[[], None] | None = None,
        batch_hooks: list[Callable[[WriteContext], None]] | None = None,
        tables: Sequence[str] = (VERSIONS, INLINE),
    ) -> None:
        self.path = path
        self._limiter = limiter
        self._map_size = map_size
        self._max_dbs = max_dbs
        self._before_batch = before_batch
        self._batch_hooks = list(batch_hooks or [])
        self._tables = tuple(tables)
        self.env: lmdb.Environment | None = None
        self._dbs: dict[str, Any] = {}
        self._pending: list[_Request[Any]] = []
        self._lock = trio.Lock()
        self._commits = 0
        self._failed = 0
        self._batches = 0
        self._max_batch = 0
        self._commit_seconds = 0.0

    # ------------------------------------------------------------ lifecycle
    def open_sync(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        env = lmdb.open(
            str(self.path),
            map_size=self._map_size,
            max_dbs=self._max_dbs,
            sync=True,
            metasync=True,
            writemap=False,
            readahead=False,  # random access to a DB that may outgrow RAM
            max_readers=512,
            subdir=True,
            lock=True,
        )
        self.env = env
        self._dbs = {}
        for name in self._tables:
            self._dbs[name] = env.open_db(name.encode())
        with env.begin() as txn:
            names = [bytes(k).decode() for k, _ in txn.cursor()]
        for name in names:
            if name not in self._dbs:
                self._dbs[name] = env.open_db(name.encode())

    def close_sync(self) -> None:
        if self.env is not None:
            self.env.close()
            self.env = None
            self._dbs = {}

    # --------------------------------------------------------------- tables
    def db(self, name: str) -> Any | None:
        """Handle of an existing table, or None."""
        return self._dbs.get(name)

    async def ensure_table(self, name: str) -> None:
        """Create table ``name`` if missing (one durable commit, once).

        Done outside the batches because LMDB cannot open a database on a
        transaction that has a nested child open."""
        if name in self._dbs:
            return
        async with self._lock:
            if name not in self._dbs:
                await trio.to_thread.run_sync(self._create_table, name, limiter=self._limiter)

    def _create_table(self, name: str) -> None:
        if self.env is None:
            raise lmdb.Error("index closed")
        self._dbs[name] = self.env.open_db(name.encode())

    # ---------------------------------------------------------------- reads
    def read_sync(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(txn, *args)`` in a read transaction (blocking)."""
        env = self.env
        if env is None:
            raise lmdb.Error("index closed")
        with env.begin(buffers=False) as txn:
            return fn(txn, *args)

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        return await trio.to_thread.run_sync(self.read_sync, fn, *args, limiter=self._limiter)

    # --------------------------------------------------------------- writes
    async def write(self, fn: Callable[[WriteContext], T]) -> T:
        """Apply ``fn`` inside a (grouped) durable write transaction and return
        its result once the transaction is on disk.  ``fn`` runs in a worker
        thread and may be called together with other requests' functions."""
        req: _Request[T] = _Request(fn)
        self._pending.append(req)
        try:
            async with self._lock:
                if not req.done:
                    batch, self._pending = self._pending, []
                    # Shielded: the leader carries everyone's requests, so its
                    # own cancellation must not drop the batch (a batch takes
                    # milliseconds; the cancel is delivered right after).
                    with trio.CancelScope(shield=True):
                        try:
                            await trio.to_thread.run_sync(
                                self._run_batch, batch, limiter=self._limiter
                            )
                        except BaseException as e:
                            for r in batch:
                                if not r.done:
                                    r.error, r.done = e, True
                            raise
        except BaseException:
            if not req.done and req in self._pending:
                self._pending.remove(req)
            raise
        if req.error is not None:
            raise req.error
        return req.result  # type: ignore[return-value]

    def _run_batch(self, batch: list[_Request[Any]]) -> None:
        t0 = time.perf_counter()
        env = self.env
        try:
            if env is None:
                raise lmdb.Error("index closed")
            if self._before_batch is not None:
                self._before_batch()
            parent = env.begin(write=True)
            ctx = WriteContext(self, parent)
            try:
                for req in batch:
                    child = env.begin(write=True, parent=parent)
                    ctx.txn = child
                    try:
                        req.result = req.fn(ctx)
                    except BaseException as e:  # noqa: BLE001 - delivered to its caller
                        child.abort()
                        req.error = e
                    else:
                        child.commit()
                ctx.txn = parent
                for hook in self._batch_hooks:
                    hook(ctx)
                for d in sorted(ctx.dirs_to_sync):
                    fsync_dir(d)
                parent.commit()
            except BaseException:
                parent.abort()
                raise
        except BaseException as e:  # noqa: BLE001 - the whole batch failed
            for req in batch:
                if req.error is None:
                    req.error = e
        else:
            for fn in ctx.after_commit:
                try:
                    fn()
                except Exception:
                    log.exception("after-commit action failed")
        finally:
            n_ok = sum(1 for r in batch if r.error is None)
            self._commits += n_ok
            self._failed += len(batch) - n_ok
            self._batches += 1
            self._max_batch = max(self._max_batch, len(batch))
            self._commit_seconds += time.perf_counter() - t0
            for req in batch:
                req.done = True

    def statistics(self) -> IndexStatistics:
        return IndexStatistics(
            commits=self._commits,
            failed=self._failed,
            batches=self._batches,
            max_batch=self._max_batch,
            avg_batch=(self._commits + self._failed) / self._batches if self._batches else 0.0,
            commit_seconds=self._commit_seconds,
        )
