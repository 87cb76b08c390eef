"""One drive's LMDB environment: named tables and grouped durable commits.

Theory of operation
-------------------
Each drive has one LMDB environment at ``<root>/index.lmdb`` opened with
``sync`` and ``metasync`` on: when a commit returns, it survives power loss.
A durable commit costs about one disk flush (0.3-0.8 ms here), so commits
from concurrent callers are **grouped**:

* :meth:`Index.write` appends a request (a function to run inside the write
  transaction) to the drive's queue and waits on a trio event.  One
  **committer thread** per drive (started on the first write, stopped by
  :meth:`Index.close_sync`) takes *every* queued request, applies them in ONE
  write transaction and one durable commit, and wakes their callers with one
  ``run_sync_soon`` per batch.  Requests that arrive while a batch is being
  committed form the next batch, so the batch size adapts to load: one
  committer pays one flush per commit; 64 concurrent committers share a few.
  A long-lived thread instead of ``trio.to_thread`` per batch: the per-batch
  thread hop (limiter, thread naming, outcome plumbing, a trio lock) was ~30 %
  of a small PUT's object-layer CPU.  LMDB allows one write transaction at a
  time anyway, so one thread per drive loses no parallelism.
* A caller is acknowledged only after the transaction holding its request
  committed (``sync`` + ``metasync``).  A caller cancelled before the thread
  took its request is removed from the queue (never committed); one cancelled
  later may still have been committed, as with any interrupted write.
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
(:meth:`Index.ensure_table`: run by the committer thread between batches,
since LMDB cannot open a database while a nested transaction is open).
Read transactions are cheap (~1 us); callers run them in a worker thread with
:meth:`Index.read` so a stalled disk never freezes the event loop.
"""

from __future__ import annotations

import contextlib
import logging
import threading
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
    __slots__ = ("fn", "done", "result", "error", "event", "token", "raw")

    def __init__(self, fn: Callable[..., T], raw: bool = False) -> None:
        self.fn = fn
        self.raw = raw  # run outside any transaction (table creation)
        self.done = False
        self.result: T | None = None
        self.error: BaseException | None = None
        self.event = trio.Event()
        self.token = trio.lowlevel.current_trio_token()


def _wake(batch: list[_Request[Any]]) -> None:
    for req in batch:
        req.event.set()


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
        self._cv = threading.Condition(threading.Lock())
        self._thread: threading.Thread | None = None
        self._idle = False  # the committer thread waits for work (needs a notify)
        self._stopping = False
        self._kick_scheduled = False
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
        self._stop_committer()
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
        await self._submit(_Request(lambda: self._create_table(name), raw=True))

    def _create_table(self, name: str) -> None:
        if self.env is None:
            raise lmdb.Error("index closed")
        if name not in self._dbs:
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
        its result once the transaction is on disk.  ``fn`` runs in the
        drive's committer thread, together with other requests' functions."""
        return await self._submit(_Request(fn))

    async def _submit(self, req: _Request[T]) -> T:
        with self._cv:
            if self._thread is None:
                self._start_committer()
            self._pending.append(req)
            kick = self._idle and not self._kick_scheduled
            if kick:
                self._kick_scheduled = True
        if kick:
            # Wake the thread once the tasks runnable now have run: requests
            # submitted in the same scheduler round join one batch (the six
            # drive commits of concurrent PUTs arrive together).
            req.token.run_sync_soon(self._kick)
        try:
            await req.event.wait()
        except BaseException:
            with self._cv:
                if req in self._pending:  # not taken yet: it is never committed
                    self._pending.remove(req)
            raise
        if req.error is not None:
            raise req.error
        return req.result  # type: ignore[return-value]

    # ------------------------------------------------------ committer thread
    def _kick(self) -> None:
        with self._cv:
            self._kick_scheduled = False
            if self._idle and self._pending:
                self._idle = False
                self._cv.notify()

    def _start_committer(self) -> None:
        """Under ``_cv``."""
        self._stopping = False
        self._idle = True  # the first request kicks it, like every later idle start
        self._thread = threading.Thread(
            target=self._committer, name=f"commit {self.path.parent.name}", daemon=True
        )
        self._thread.start()

    def _stop_committer(self) -> None:
        with self._cv:
            thread = self._thread
            if thread is None:
                return
            self._stopping = True
            self._cv.notify()
        thread.join()

    def _committer(self) -> None:
        while True:
            with self._cv:
                # Idle: wait for the kick (requests of one scheduler round
                # together).  Busy: take whatever queued during the last commit.
                while not self._stopping and (self._idle or not self._pending):
                    if not self._pending:
                        self._idle = True
                    self._cv.wait()
                if not self._pending:  # stopping, and drained
                    self._thread = None
                    return
                self._idle = False
                batch, self._pending = self._pending, []
            raw = [r for r in batch if r.raw]
            for req in raw:
                try:
                    req.result = req.fn()
                except BaseException as e:  # noqa: BLE001 - delivered to its caller
                    req.error = e
                req.done = True
            txn_batch = [r for r in batch if not r.raw]
            if txn_batch:
                self._run_batch(txn_batch)
            by_token: dict[Any, list[_Request[Any]]] = {}
            for req in batch:
                by_token.setdefault(req.token, []).append(req)
            for token, reqs in by_token.items():
                # a caller's trio run that is gone has nobody waiting
                with contextlib.suppress(trio.RunFinishedError):
                    token.run_sync_soon(_wake, reqs)

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
