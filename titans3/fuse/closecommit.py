"""Commits after ``close`` in the background (opt-in: ``close_async_max``).

Theory of operation
-------------------
By default ``close`` (FUSE ``flush``) returns when the file's new version is
durable at the write quorum -- like mountpoint-s3, and the reason ``tar x``
of small files costs one durable commit (a few fsyncs) per file, in series.
With ``MountOptions.close_async_max`` > 0, ``close`` of a file of at most
that many bytes *starts* its commit and returns; the commit runs in the
mount's nursery, and commits of consecutive files overlap (the drives' group
commit then shares one fsync among several).  What stays true:

* ``fsync`` is durable: it commits under the file's lock, so after the
  commit in flight (and again if that one failed, reporting a new failure),
  and a file whose ``fsync`` returned survives a crash;
* the file keeps its open state (``fs.files``) until its commit is done, so
  this mount sees it at once: ``stat``, ``open`` (no HEAD), ``readdir``,
  ``rename`` and ``unlink`` (both take the file's lock, so they wait for the
  commit in flight), ``rmdir`` of its directory (``ENOTEMPTY``);
* at most ``close_async_files`` commits are in flight; a ``close`` past that
  waits for a slot; unmount waits for all of them.

What changes, and docs/fuse.md says so: S3 clients and other mounts see the
file only when its commit lands (normally milliseconds after ``close``);
``close`` cannot report the commit's failure -- a failed background commit
is logged, retried for ``RETRY_FOR`` seconds, and reported by the next
``fsync``/``close`` of the file; a crash of the mount (or daemon) loses what
``close`` acknowledged and no ``fsync`` did, as a local filesystem's page
cache does.  ``sync(1)`` does not reach a FUSE filesystem: use ``fsync``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import trio

from titans3.fuse.errors import FsError

if TYPE_CHECKING:
    from titans3.fuse.files import OpenFile
    from titans3.fuse.fsapi import FsServices
    from titans3.fuse.inodes import Node

log = logging.getLogger(__name__)

RETRY_FOR = 30.0  # s a failed background commit is retried before the data is given up
RETRY_PAUSE = 1.0  # s between retries


class BackgroundCommits:
    def __init__(self, fs: FsServices, *, max_bytes: int, max_files: int) -> None:
        self.fs = fs
        self.max_bytes = max_bytes
        self._slots = trio.Semaphore(max(1, max_files))
        self._running: dict[int, trio.Event] = {}  # id(OpenFile) -> set when its commit ends
        self.errors: dict[int, FsError] = {}  # id(OpenFile) -> failure not reported yet
        self.retry_for = RETRY_FOR
        self.started = 0
        self.lost = 0

    def eligible(self, of: OpenFile) -> bool:
        return (self.max_bytes > 0 and self.fs.nursery is not None and of.changed
                and not of.unlinked and of.size <= self.max_bytes)

    def running(self, of: OpenFile) -> bool:
        return id(of) in self._running

    def take_error(self, of: OpenFile) -> None:
        """Raise (once) the failure of ``of``'s last background commit."""
        err = self.errors.pop(id(of), None)
        if err is not None and of.changed:
            raise err

    async def start(self, node: Node, of: OpenFile) -> None:
        """Commit ``of`` in the background (returns once a slot is free)."""
        if self.running(of):
            return  # the running task commits again what changed meanwhile
        await self._slots.acquire()
        done = self._running[id(of)] = trio.Event()
        self.started += 1
        assert self.fs.nursery is not None
        self.fs.nursery.start_soon(self._run, node, of, done)

    async def wait(self, of: OpenFile) -> None:
        """Until ``of``'s background commit (if any) ended."""
        done = self._running.get(id(of))
        if done is not None:
            await done.wait()

    async def drain(self) -> None:
        """Until no background commit runs (unmount)."""
        while self._running:
            await next(iter(self._running.values())).wait()

    async def _run(self, node: Node, of: OpenFile, done: trio.Event) -> None:
        deadline = trio.current_time() + self.retry_for
        gave_up = False
        try:
            while of.changed and not of.unlinked:
                try:
                    await of.commit()
                except FsError as e:
                    self.errors[id(of)] = e
                    if trio.current_time() + RETRY_PAUSE > deadline:
                        gave_up = True
                        break
                    log.warning("%s: commit after close failed, retrying: %s", of.key_of(),
                                e.reason)
                    await trio.sleep(RETRY_PAUSE)
                    continue
                self.errors.pop(id(of), None)
                self.fs._committed(node, of)
        finally:
            del self._running[id(of)]
            self._slots.release()
            done.set()
            # Cancelled (unmount, shutdown): the open state stays for commit_all.
            if of.handles == 0 and (gave_up or not of.changed or of.unlinked):
                if gave_up:
                    self.lost += 1
                    err = self.errors.get(id(of))
                    log.error("%s: closed, and its commit failed for %.0fs: changes lost (%s)",
                              of.key_of(), self.retry_for, err.reason if err else "?")
                self.errors.pop(id(of), None)
                self.fs._drop_file(node, of)
