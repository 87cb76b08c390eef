"""Open files: staged writes, ranged reads with read-ahead, commits.

Theory of operation
-------------------
All handles of one inode share one :class:`OpenFile`, so two descriptors of
the same file see each other's writes (POSIX) and one commit covers both.
An OpenFile is the base version (key + ETag, or none for a new file) plus a
:class:`~titans3.fuse.extents.Layout` of what changed, with the changed bytes
in a private, already-unlinked staging file in the write-back area (a crash
leaves nothing behind to clean up; an unacknowledged write was never
promised).

**Commit** (``flush``/``fsync``/``release``, a write-back under pressure, a
rename of a dirty file) writes the whole new version with the plan of
:mod:`titans3.fuse.plan` -- a streamed PUT, or multipart with server-side
copies of unchanged parts -- and returns only when the backend acknowledged
it, i.e. when it is durable at the write quorum.  Then the new version is the
base, the staging file is emptied and its bytes leave the area's account.  A
failed commit leaves everything dirty; the next flush tries again.

**Reads** serve dirty bytes from staging, zeros from holes, and base bytes
from a small window cache filled by ranged GETs of the base *version*
(``If-Match`` its ETag: if another writer replaced the object, the read fails
with EIO instead of mixing two versions).  :class:`~titans3.fuse.readahead.ReadAhead`
sizes the GETs and starts background prefetches for sequential readers.

**The write-back area** (:class:`WriteBackArea`) bounds the dirty bytes of
all open files together.  A write that would pass the bound first commits
its own file (a mid-write commit: readers through S3 then see a prefix of
the new contents), then any other dirty file that is not busy.

Every mutation and commit of one file holds its ``lock``; reads take it too,
so a read never sees a half-applied commit.
"""

from __future__ import annotations

import errno
import logging
import os
import tempfile
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import replace

import trio

from titans3.fuse import plan
from titans3.fuse.backend import Backend, Body, Entry
from titans3.fuse.cleancache import CleanCopies
from titans3.fuse.errors import Changed, FsError
from titans3.fuse.extents import BASE, DIRTY, Layout
from titans3.fuse.meta import Attrs, merge
from titans3.fuse.options import MountOptions
from titans3.fuse.readahead import ReadAhead
from titans3.fuse.writebehind import WriteBehind

log = logging.getLogger(__name__)

CHUNK = 1 << 20
_ZEROS = bytes(CHUNK)
MAX_BLOCKS = 16  # per open file: 32 MiB with 2 MiB blocks
_O_TMPFILE = getattr(os, "O_TMPFILE", 0)


class WriteBackArea:
    """Where dirty data is staged, and how much of it there may be; the room
    dirty data leaves free holds clean copies of committed versions."""

    def __init__(self, directory: str, limit: int) -> None:
        self.directory = directory
        self.limit = limit
        self.used = 0
        self.files: set[OpenFile] = set()
        self.clean = CleanCopies()
        os.makedirs(directory, exist_ok=True)

    def new_file(self) -> int:
        # One syscall and never a name (tar x opens one per file); mkstemp +
        # unlink where the filesystem has no O_TMPFILE.
        if _O_TMPFILE:
            try:
                return os.open(self.directory, _O_TMPFILE | os.O_RDWR, 0o600)
            except OSError as e:
                if e.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
                    raise
        fd, path = tempfile.mkstemp(prefix=".titans3-stage-", dir=self.directory)
        os.unlink(path)
        return fd

    def charge(self, delta: int) -> None:
        self.used = max(0, self.used + delta)
        if delta > 0:
            self.clean.shrink(self.limit - self.used)

    def keep_clean(self, etag: str, size: int, fd: int) -> bool:
        """Keep staging file ``fd`` as the clean copy of a committed version."""
        return self.clean.add(etag, size, fd, self.limit - self.used)

    def over(self, extra: int = 0) -> bool:
        return self.used + extra > self.limit


class OpenFile:
    def __init__(self, backend: Backend, area: WriteBackArea, opts: MountOptions,
                 key_of: Callable[[], str | None], attrs: Attrs, meta: dict[str, str],
                 base: Entry | None, *, on_error: Callable[[Exception], None]) -> None:
        self.backend = backend
        self.area = area
        self.opts = opts
        self.key_of = key_of  # the file's current key (None once unlinked)
        self._attrs = attrs  # size and etag fields are kept by layout / base
        self._written_ns: int | None = None  # mtime of the last write, not in _attrs yet
        self.meta = meta  # the object's metadata that is not ours (content-type, ...)
        self.base_key = base.key if base is not None else None
        self.base_etag = base.etag if base is not None else None
        self.layout = Layout(base.size if base is not None else 0)
        self.changed = base is None  # a new file must be committed even if empty
        self.unlinked = False
        self.handles = 0
        self.lock = trio.Lock()
        self._fd: int | None = None
        self._charged = 0
        self.block_size = opts.read_block
        self._blocks: OrderedDict[int, bytes] = OrderedDict()  # block -> base version bytes
        self._loading: dict[int, trio.Event] = {}
        self._on_error = on_error
        self.commits = 0
        self.nursery: trio.Nursery | None = None  # for write-behind (None: commit uploads all)
        self.behind: WriteBehind | None = None

    # ----------------------------------------------------------- state
    @property
    def attrs(self) -> Attrs:
        if self._written_ns is not None:  # folded in when asked, not on every write
            self._attrs = replace(self._attrs, mtime_ns=self._written_ns)
            self._written_ns = None
        return self._attrs

    @attrs.setter
    def attrs(self, attrs: Attrs) -> None:
        self._attrs = attrs
        self._written_ns = None

    @property
    def size(self) -> int:
        return self.layout.size

    @property
    def dirty_bytes(self) -> int:
        return self._charged

    def current_attrs(self) -> Attrs:
        return replace(self.attrs, size=self.layout.size, etag=self.base_etag or "")

    def _recharge(self) -> None:
        now = self.layout.dirty_bytes()
        self.area.charge(now - self._charged)
        self._charged = now
        if now:
            self.area.files.add(self)
        else:
            self.area.files.discard(self)

    def close(self) -> None:
        if self.behind is not None:
            self.behind.abandon("closed without a commit")
            self.behind = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self.area.charge(-self._charged)
        self._charged = 0
        self.area.files.discard(self)
        self._blocks.clear()

    # ----------------------------------------------------------- reads
    async def read(self, offset: int, size: int, ra: ReadAhead, nursery: trio.Nursery) -> bytes:
        for attempt in (1, 2):
            async with self.lock:
                end = min(offset + size, self.layout.size)
                if offset >= end:
                    return b""
                parts: list[bytes | tuple[int, int]] = []
                for a, b, src in self.layout.pieces(offset, end):
                    if src == DIRTY:
                        assert self._fd is not None
                        parts.append(await _pread(self._fd, b - a, a))
                    elif src == BASE:
                        parts.append((a, b))
                    else:
                        parts.append(bytes(b - a))
                etag = self.base_etag
            # Base bytes are fetched without the lock, so reads of one file run
            # in parallel; a commit meanwhile replaces the base: read again.
            try:
                out = bytearray()
                for p in parts:
                    out += p if isinstance(p, bytes) else await self._read_base(*p, ra, nursery)
                return bytes(out)
            except Changed:
                if attempt == 2 or etag == self.base_etag:
                    raise
        raise AssertionError("unreachable")

    async def _read_base(self, a: int, b: int, ra: ReadAhead, nursery: trio.Nursery) -> bytes:
        copy = self.area.clean.acquire(self.base_etag, self.layout.base_size)
        if copy is not None:
            try:
                return await _pread(copy.fd, b - a, a)
            finally:
                self.area.clean.release(copy)
        p = ra.plan(a, b - a, self.layout.base_size)
        if p.direct is not None:
            return await self._fetch(a, b)
        for blk in p.prefetch:
            if blk not in self._blocks and blk not in self._loading:
                nursery.start_soon(self._load, blk, True)
        parts = [await self._block(blk) for blk in p.blocks]
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        base = p.blocks.start * ra.block
        return data[a - base:b - base]

    async def _block(self, blk: int) -> bytes:
        data = self._blocks.get(blk)
        if data is None and blk in self._loading:
            await self._loading[blk].wait()
            data = self._blocks.get(blk)
        if data is None:
            data = await self._load(blk, False)
        else:
            self._blocks.move_to_end(blk)
        return data

    async def _load(self, blk: int, background: bool) -> bytes:
        event = self._loading.setdefault(blk, trio.Event())
        etag = self.base_etag
        try:
            start = blk * self.block_size
            data = await self._fetch(start, min(start + self.block_size, self.layout.base_size))
            if etag == self.base_etag:  # else committed meanwhile: do not cache stale bytes
                self._blocks[blk] = data
                while len(self._blocks) > MAX_BLOCKS:
                    self._blocks.popitem(last=False)
            return data
        except Exception as e:
            if not background:
                raise
            log.debug("prefetch of block %d of %s failed: %s", blk, self.base_key, e)
            return b""
        finally:
            if self._loading.get(blk) is event:
                del self._loading[blk]
            event.set()

    async def _fetch(self, start: int, end: int) -> bytes:
        key, etag = self.base_key, self.base_etag
        if key is None:
            raise FsError(errno.EIO, "no base version to read")
        with trio.move_on_after(self.opts.transfer_timeout(end - start)) as scope:
            data = b"".join([c async for c in self.backend.read(key, start, end - 1, etag=etag)])
        if scope.cancelled_caught:
            raise FsError(errno.EIO, f"GET {key} bytes {start}-{end - 1}: no answer in time")
        if len(data) != end - start:
            raise FsError(errno.EIO, f"GET {key}: {len(data)} bytes for a {end - start}-byte range")
        return data

    # ----------------------------------------------------------- writes
    def _staging(self) -> int:
        if self._fd is None:
            self._fd = self.area.new_file()
        return self._fd

    async def write(self, offset: int, data: bytes) -> int:
        async with self.lock:
            if self.behind is not None:
                self.behind.touched(offset)
            if self.area.over(len(data)):
                await self._relieve(len(data))
            try:
                await self._stage(offset, data)
            except OSError as e:
                if e.errno not in (errno.ENOSPC, errno.EDQUOT):
                    raise self._staging_failed(e) from None
                await self._stage_on_full_disk(offset, data)
            self.layout.write(offset, len(data))
            self.changed = True
            self._written_ns = time.time_ns()
            self._recharge()
            self._write_behind()
            return len(data)

    def _write_behind(self) -> None:
        """Upload finished parts of a file written from its start (writebehind.py)."""
        if self.behind is None:
            part = plan.part_size_for(0, self.opts.part_size)
            key = self.key_of()
            if (not self.opts.write_behind or self.nursery is None
                    or self.opts.part_concurrency <= 0 or key is None
                    or self.unlinked or not WriteBehind.ready(self.layout, 0, part)):
                return
            self.behind = WriteBehind(self.backend, self.nursery, key,
                                      merge(self.meta, self.attrs), part,
                                      self.opts.part_concurrency, self._body)
        self.behind.written(self.layout)

    async def _stage_on_full_disk(self, offset: int, data: bytes) -> None:
        """The staging disk filled before the area's bound: give up the clean
        copies, then write this file back (its staged bytes are freed), and try
        again after each step."""
        log.info("staging disk %s full: dropping clean copies%s", self.area.directory,
                 f", committing {self.key_of()} early" if self.layout.dirty_bytes() else "")
        self.area.clean.shrink(0)
        try:
            await self._stage(offset, data)
            return
        except OSError as e:
            if e.errno not in (errno.ENOSPC, errno.EDQUOT) or not self.layout.dirty_bytes():
                raise self._staging_failed(e) from None
        await self._commit_locked()
        self.area.clean.shrink(0)  # not even this file's own copy: the disk is full
        try:
            await self._stage(offset, data)
        except OSError as e:
            raise self._staging_failed(e) from None

    def _staging_failed(self, e: OSError) -> FsError:
        full = e.errno in (errno.ENOSPC, errno.EDQUOT)
        err = FsError(errno.ENOSPC if full else errno.EIO,
                      f"write-back staging in {self.area.directory}: "
                      f"{os.strerror(e.errno or errno.EIO)}")
        self._on_error(err)
        return err

    async def _stage(self, offset: int, data: bytes) -> None:
        """Put ``data`` in the staging file; all of it or OSError (a short
        write means the disk is full: the next pwrite says so)."""
        fd = self._staging()
        done = 0
        while done < len(data):
            chunk = data[done:] if done else data
            if len(chunk) > 256 << 10:
                n = await trio.to_thread.run_sync(os.pwrite, fd, chunk, offset + done)
            else:
                n = os.pwrite(fd, chunk, offset + done)
            if n == 0:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            done += n

    async def _relieve(self, need: int) -> None:
        """The area is full: commit this file, then others that are not busy."""
        if self.layout.dirty_bytes():
            log.info("write-back area full (%d of %d bytes): committing %s early",
                     self.area.used, self.area.limit, self.key_of())
            await self._commit_locked()
        for other in sorted(self.area.files, key=lambda f: -f.dirty_bytes):
            if not self.area.over(need):
                break
            if other is self:
                continue
            try:
                other.lock.acquire_nowait()
            except trio.WouldBlock:
                continue
            try:
                await other._commit_locked()
            finally:
                other.lock.release()

    async def truncate(self, size: int) -> None:
        async with self.lock:
            self.truncate_locked(size)

    def truncate_locked(self, size: int) -> None:
        if size == self.layout.size:
            return
        if self.behind is not None:
            self.behind.touched(size)
        self.layout.truncate(size)
        if self._fd is not None:
            os.ftruncate(self._fd, min(os.fstat(self._fd).st_size, size))
        self.changed = True
        self.attrs = replace(self.attrs, mtime_ns=time.time_ns())
        self._recharge()

    def set_attrs(self, attrs: Attrs) -> None:
        self.attrs = attrs
        self.changed = True

    # ----------------------------------------------------------- commit
    async def commit(self) -> Entry | None:
        async with self.lock:
            return await self._commit_locked()

    async def _commit_locked(self) -> Entry | None:
        if not self.changed or self.unlinked:
            return None
        key = self.key_of()
        if key is None:
            return None
        size = self.layout.size
        meta = merge(self.meta, self.attrs)
        can_copy = (self.base_etag is not None and self.base_key == key
                    and self.layout.base_size > 0)
        part = plan.part_size_for(size, self.opts.part_size)
        try:
            with trio.move_on_after(self.opts.transfer_timeout(size)) as scope:
                behind, self.behind = self.behind, None
                # Parts uploaded while the file was written: only the rest now.
                entry = await behind.finish(key, meta, self.layout) if behind else None
                if entry is None and plan.use_multipart(self.layout, part, can_copy=can_copy):
                    entry = await self._multipart(key, meta, part, can_copy)
                elif entry is None:
                    entry = await self.backend.put(key, self._body(0, size), size, meta)
            if scope.cancelled_caught:
                raise FsError(errno.EIO, f"commit of {key} ({size} bytes): no acknowledgement in time")
        except FsError as e:
            self._on_error(e)
            raise
        whole = self._fd is not None and all(src != BASE for _, _, src in
                                              self.layout.pieces(0, size))
        self.layout.committed()
        self._recharge()
        if whole and self._fd is not None and self.area.keep_clean(entry.etag, size, self._fd):
            self._fd = None  # now the version's clean copy; the next write stages anew
        elif self._fd is not None:
            os.ftruncate(self._fd, 0)
        self._blocks.clear()
        self.base_key, self.base_etag = key, entry.etag
        self.changed = False
        self.commits += 1
        return entry

    def _body(self, start: int, end: int) -> Body:
        pieces = list(self.layout.pieces(start, end))
        fd, key, etag, base_size = self._fd, self.base_key, self.base_etag, self.layout.base_size

        async def gen() -> AsyncIterator[bytes]:
            for a, b, src in pieces:
                if src == DIRTY:
                    assert fd is not None
                    for pos in range(a, b, CHUNK):
                        yield await _pread(fd, min(CHUNK, b - pos), pos)
                elif src == BASE:
                    assert key is not None
                    copy = self.area.clean.acquire(etag, base_size)
                    if copy is None:
                        async for chunk in self.backend.read(key, a, b - 1, etag=etag):
                            yield chunk
                        continue
                    try:  # the old version's bytes are here: no GET
                        for pos in range(a, b, CHUNK):
                            yield await _pread(copy.fd, min(CHUNK, b - pos), pos)
                    finally:
                        self.area.clean.release(copy)
                else:
                    for pos in range(a, b, CHUNK):
                        yield _ZEROS[:min(CHUNK, b - pos)]

        return gen

    async def _multipart(self, key: str, meta: dict[str, str], part_size: int,
                         can_copy: bool) -> Entry:
        parts = plan.parts(self.layout, part_size, can_copy=can_copy)
        upload_id = await self.backend.upload_start(key, meta)
        etags: dict[int, str] = {}
        limiter = trio.CapacityLimiter(self.opts.part_concurrency)

        async def one(p: plan.Part) -> None:
            async with limiter:
                if p.copy:
                    assert self.base_key is not None and self.base_etag is not None
                    etags[p.number] = await self.backend.copy_part(
                        key, upload_id, p.number, self.base_key, p.start, p.end - 1,
                        self.base_etag)
                else:
                    etags[p.number] = await self.backend.upload_part(
                        key, upload_id, p.number, self._body(p.start, p.end), p.end - p.start)

        try:
            async with trio.open_nursery() as nursery:
                for p in parts:
                    nursery.start_soon(one, p)
            copied = sum(p.end - p.start for p in parts if p.copy)
            log.debug("commit %s: %d parts, %d bytes reused server-side", key, len(parts), copied)
            return await self.backend.upload_complete(key, upload_id,
                                                      [(n, etags[n]) for n in sorted(etags)])
        except BaseException as e:
            with trio.CancelScope(shield=True):
                await self.backend.upload_abort(key, upload_id)
            raise _single(e) from None


def _single(e: BaseException) -> BaseException:
    while isinstance(e, BaseExceptionGroup) and len(e.exceptions) == 1:
        e = e.exceptions[0]
    if isinstance(e, BaseExceptionGroup):
        for sub in e.exceptions:
            if isinstance(sub, FsError):
                return sub
    return e


async def _pread(fd: int, n: int, offset: int) -> bytes:
    if n > 256 << 10:
        data = await trio.to_thread.run_sync(os.pread, fd, n, offset)
    else:
        data = os.pread(fd, n, offset)
    if len(data) < n:  # a sparse tail never written: zeros
        data += bytes(n - len(data))
    return data
