"""Write-behind: a sequential writer's parts are uploaded while it writes.

Theory of operation
-------------------
A file written from its first byte (a new file, or a rewrite after
``O_TRUNC``: its first part is all dirty, nothing of the base version in it)
becomes a multipart upload as soon as it holds one full part, and every
further part the writer has finished is uploaded in the background at once,
``MountOptions.part_concurrency`` at a time.  When all slots are busy the
next part waits for a later write, a finished part or the commit -- the
writer itself never waits for an upload.  The commit (``close``/``fsync``,
a write-back under pressure) uploads what is left, completes the upload and
returns when the version is durable at the write quorum, as without
write-behind: only the last parts stay in ``close``'s path instead of the
whole file.

What keeps it honest:

* the bytes of a part are never changed once its upload started: a write or
  truncate reaching into the started range, a failed part, a rename before
  the commit (the key changed) or an unlink *abandons* the upload (aborted in
  the background) and the commit falls back to the plain plan (plan.py) --
  write-behind only ever saves time, it never decides what is stored;
* the upload is created with the metadata of that moment, and the mtime
  moves with every write: the Complete carries the file's final metadata in
  the daemon (the object layer's ``complete_multipart(meta=)``); over S3,
  whose Complete takes none, a self-CopyObject with the final metadata
  follows before the commit returns (TitanS3 does it without moving data; a
  server that copies the bytes pays for it) -- what is durable when
  ``close`` returns is the file as closed;
* S3 clients see nothing before the upload completes; a crash of the mount
  leaves an incomplete multipart upload (listed by ListMultipartUploads) and
  no new version.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

import trio

from titans3.fuse import plan
from titans3.fuse.backend import Backend, Body, Entry
from titans3.fuse.extents import DIRTY, Layout

log = logging.getLogger(__name__)

ABORT_WAIT = 30.0  # s an abandoned upload's abort may take (parts in flight end first)


class WriteBehind:
    """The background multipart upload of one file's new version."""

    def __init__(self, backend: Backend, nursery: trio.Nursery, key: str,
                 meta: Mapping[str, str], part_size: int, concurrency: int,
                 body: Callable[[int, int], Body]) -> None:
        self.backend = backend
        self.nursery = nursery
        self.key = key
        self.meta = dict(meta)
        self.part_size = part_size
        self.concurrency = max(1, concurrency)
        self.body = body  # (start, end) -> the staged bytes of that range
        self.upload_id: str | None = None
        self.started_end = 0  # bytes covered by parts whose upload started
        self.etags: dict[int, str] = {}
        self.in_flight = 0
        self.abandoned = False
        self.failed: BaseException | None = None
        self._creating = False
        self._settled = trio.Event()  # set whenever nothing is in flight
        self._scopes: set[trio.CancelScope] = set()  # of the tasks in flight
        self._finishing = False  # the commit uploads the rest: start nothing more
        self.parts_behind = 0  # parts uploaded before the commit (statistics, tests)

    # ------------------------------------------------------------ eligibility
    @staticmethod
    def ready(layout: Layout, start: int, part_size: int) -> bool:
        """Whether ``[start, start + part_size)`` is written and all dirty."""
        end = start + part_size
        return layout.size >= end and all(src == DIRTY for _, _, src in
                                          layout.pieces(start, end))

    # ------------------------------------------------------------ while writing
    def touched(self, offset: int) -> None:
        """A write or truncate at ``offset`` is about to change the file."""
        if offset < self.started_end:
            self.abandon("rewritten below the uploaded range")

    def written(self, layout: Layout) -> None:
        """Start the upload, or the next finished parts (no waiting)."""
        if self.abandoned or self.failed is not None or self._finishing:
            return
        if self.upload_id is None:
            if not self._creating:
                self._creating = True
                self._begin()
                self.nursery.start_soon(self._create, layout)
            return
        while (self.in_flight < self.concurrency
               and self.ready(layout, self.started_end, self.part_size)):
            start = self.started_end
            self.started_end += self.part_size
            self._begin()
            self.nursery.start_soon(self._part, start // self.part_size + 1, start,
                                    self.started_end, layout)

    def _begin(self) -> None:
        if self.in_flight == 0:
            self._settled = trio.Event()
        self.in_flight += 1

    def _end(self) -> None:
        self.in_flight -= 1
        if self.in_flight == 0:
            self._settled.set()

    async def _create(self, layout: Layout) -> None:
        scope = trio.CancelScope()
        self._scopes.add(scope)
        try:
            with scope:
                self.upload_id = await self.backend.upload_start(self.key, self.meta)
        except Exception as e:  # noqa: BLE001 -- the commit falls back and reports its own
            self.failed = e
        finally:
            self._scopes.discard(scope)
            self._end()
        if self.abandoned:
            self._abort_soon()
        elif self.upload_id is not None:
            self.written(layout)

    async def _part(self, number: int, start: int, end: int, layout: Layout) -> None:
        assert self.upload_id is not None
        scope = trio.CancelScope()
        self._scopes.add(scope)
        try:
            with scope:
                self.etags[number] = await self.backend.upload_part(
                    self.key, self.upload_id, number, self.body(start, end), end - start)
                self.parts_behind += 1
        except Exception as e:  # noqa: BLE001 -- the commit falls back and reports its own
            log.info("%s: part %d uploaded behind the writer failed (%s); the commit "
                     "uploads the file whole", self.key, number, getattr(e, "reason", e))
            self.failed = e
        finally:
            self._scopes.discard(scope)
            if number not in self.etags and self.failed is None:  # cancelled (unmount)
                self.failed = RuntimeError(f"part {number} was cancelled")
            self._end()
        self.written(layout)

    # ------------------------------------------------------------ the end
    def abandon(self, why: str) -> None:
        """Give the upload up (aborted in the background); the commit falls back."""
        if self.abandoned:
            return
        self.abandoned = True
        log.debug("%s: write-behind abandoned: %s", self.key, why)
        for scope in self._scopes:
            scope.cancel()
        if self.upload_id is not None:
            self._abort_soon()

    def _abort_soon(self) -> None:
        upload_id, self.upload_id = self.upload_id, None
        if upload_id is None:
            return

        async def abort() -> None:
            with trio.move_on_after(ABORT_WAIT) as scope:
                scope.shield = True
                while self.in_flight:
                    await self._settled.wait()
                await self.backend.upload_abort(self.key, upload_id)

        try:
            self.nursery.start_soon(abort)
        except RuntimeError:  # the mount's nursery is gone (unmount): the upload stays
            log.info("%s: incomplete upload %s left (unmounting)", self.key, upload_id)

    async def finish(self, key: str, meta: Mapping[str, str], layout: Layout) -> Entry | None:
        """Upload the rest, complete and return the durable version; None: not
        usable (abandoned, failed, renamed) -- the caller commits the plain way."""
        size = layout.size
        if key != self.key:
            self.abandon("renamed before the commit")
        if self.abandoned:
            return None
        self._finishing = True
        try:
            while self.in_flight:
                await self._settled.wait()
            if self.failed is not None or self.upload_id is None:
                self.abandon("an upload behind the writer failed")
                return None
            starts = list(range(self.started_end, size, self.part_size))
            if self.started_end // self.part_size + len(starts) > plan.MAX_PARTS:
                self.abandon("too many parts")
                return None
            upload_id = self.upload_id
            limiter = trio.CapacityLimiter(self.concurrency)

            async def one(start: int) -> None:
                end = min(size, start + self.part_size)
                async with limiter:
                    self.etags[start // self.part_size + 1] = await self.backend.upload_part(
                        key, upload_id, start // self.part_size + 1, self.body(start, end),
                        end - start)

            try:
                async with trio.open_nursery() as nursery:
                    for start in starts:
                        nursery.start_soon(one, start)
            except BaseExceptionGroup as eg:
                raise _first(eg) from None
            # The mtime moved with every write (and a chmod while open changes
            # more): the final metadata with the Complete, or by a copy after it.
            final = dict(meta)
            carry = final != self.meta and self.backend.complete_sets_meta
            entry = await self.backend.upload_complete(
                key, upload_id, [(n, self.etags[n]) for n in sorted(self.etags)],
                final if carry else None)
            self.upload_id = None  # completed: nothing to abort
            if final != self.meta and not carry:
                entry = await self.backend.copy(key, key, final)
            return entry
        except BaseException:
            self.abandon("the commit failed")
            raise


def _first(eg: BaseExceptionGroup) -> BaseException:
    e: BaseException = eg
    while isinstance(e, BaseExceptionGroup):
        e = e.exceptions[0]
    return e
