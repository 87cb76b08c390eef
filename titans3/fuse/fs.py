"""The filesystem core: POSIX operations over a :class:`~titans3.fuse.backend.Backend`.

Theory of operation
-------------------
Operations take inode numbers and ``str`` names and return ``(inode,
Attrs)`` pairs or raise :class:`~titans3.fuse.errors.FsError`; the pyfuse3
adapter (:mod:`titans3.fuse.ops`) only converts.  Nothing here imports
pyfuse3, so the whole core runs in unit tests over an in-memory backend.

**Consistency.**  Close-to-open: ``open`` always asks the backend for the
current version (HEAD), and the kernel keeps its page cache across opens
only while that ETag is the one whose pages it holds (``keep_cache``).
Attributes and names are trusted for ``attr_timeout`` / ``entry_timeout``
(default 1 s), so a change made through S3 shows within that time.  A
complete listing of a directory is remembered for ``entry_timeout`` as a
*snapshot*, so looking up a name that is not there (every ``create``, most
of ``tar x`` and ``git``) costs no request; this mount's own changes update
the snapshot as they happen.

**Names that are not in the backend yet.**  A created file becomes an object
at its first commit (flush/fsync/release).  Until then lookups find it in the
inode table, and readdir merges it into the backend listing in key order, so
the file is visible locally at once and through S3 after close.

**Directories.**  ``mkdir`` writes the ``dir/`` marker; ``rmdir`` refuses
(ENOTEMPTY) while any key is below the prefix -- hidden ones included, since
deleting the marker would not remove them -- and deletes the marker.  Renaming
a directory renames every key below it, markers last (docs/fuse.md: what a
crash in the middle leaves).

**The parts it holds.**  readdir (:mod:`~titans3.fuse.dirlist`), rename
(:mod:`~titans3.fuse.renames`) and attribute changes -- chmod, chown, utimens,
truncate, xattrs and their batching (:mod:`~titans3.fuse.attrwriter`) -- each
live in their own module, typed against :class:`~titans3.fuse.fsapi.FsServices`.

**Failure.**  Every backend call runs under a deadline (``op_timeout``, or a
transfer deadline scaled by size); a call that fails or does not answer
raises EIO (the reason is logged once per failure and kept for the status
page), never blocks forever.  The next call tries the backend again.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import stat
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import trio

from titans3.fuse import meta as M
from titans3.fuse.attrwriter import AttrWriter
from titans3.fuse.backend import Backend, Entry, body_of, read_all
from titans3.fuse.closecommit import BackgroundCommits
from titans3.fuse.dirlist import DirLister
from titans3.fuse.errors import FsError, NotFound, Unavailable
from titans3.fuse.files import OpenFile, WriteBackArea
from titans3.fuse.fsapi import Snapshot
from titans3.fuse.inodes import InodeTable, Node
from titans3.fuse.options import MountOptions
from titans3.fuse.paths import Namespace, check_name, join, split
from titans3.fuse.readahead import ReadAhead
from titans3.fuse.relist import RELIST_MAX, UNKNOWN, lookup_by_listing
from titans3.fuse.renames import Renamer

log = logging.getLogger(__name__)
T = TypeVar("T")

@dataclass(slots=True)
class Handle:
    file: OpenFile
    node: Node
    ra: ReadAhead
    writable: bool


class FileSystem:
    def __init__(self, backend: Backend, ns: Namespace, opts: MountOptions | None = None) -> None:
        self.backend = backend
        self.ns = ns
        self.opts = opts or MountOptions()
        d = self.opts.defaults
        self.started_ns = time.time_ns()
        self.inodes = InodeTable(M.implicit_dir(d, self.started_ns))
        self.area = WriteBackArea(self.opts.staging_dir, self.opts.write_back_max)
        self.files: dict[int, OpenFile] = {}
        self.handles: dict[int, Handle] = {}
        self.lister = DirLister(self)
        self.renamer = Renamer(self)
        self.meta = AttrWriter(self)
        self.background = BackgroundCommits(self, max_bytes=self.opts.close_async_max,
                                            max_files=self.opts.close_async_files)
        self._next_fh = 1
        self._snapshots: dict[str, Snapshot] = {}
        self._absent: dict[str, float] = {}  # path -> until: recent negative lookups
        self._expired: set[str] = set()  # directories whose small snapshot expired
        self._meta_due = self.meta.due  # ino -> when its batched metadata is written
        self.nursery: trio.Nursery | None = None  # background prefetches
        self.last_error = ""
        self.last_error_ns = 0
        self.errors = 0
        self.healthy = True

    # ------------------------------------------------------------ plumbing
    def _now(self) -> float:
        return time.monotonic()

    def _failed(self, e: Exception) -> None:
        reason = getattr(e, "reason", str(e))
        self.errors += 1
        self.last_error, self.last_error_ns = reason, time.time_ns()
        if isinstance(e, Unavailable) or getattr(e, "errno", 0) == errno.EIO:
            self.healthy = False
        log.warning("%s:%s: %s", self.ns.bucket, self.ns.prefix, reason)

    async def _call(self, what: str, fn: Callable[..., Awaitable[T]], *args: Any,
                    timeout: float | None = None, **kwargs: Any) -> T:
        limit = self.opts.op_timeout if timeout is None else timeout
        with trio.move_on_after(limit) as scope:
            try:
                result = await fn(*args, **kwargs)
            except NotFound:
                self.healthy = True
                raise
            except FsError as e:
                self._failed(e)
                raise
            self.healthy = True
            return result
        assert scope.cancelled_caught
        err = Unavailable(f"{what}: no answer from {self.backend.name} in {limit:.0f}s")
        self._failed(err)
        raise err

    def node(self, ino: int) -> Node:
        return self.inodes.get(ino)

    def _dir(self, ino: int) -> Node:
        node = self.inodes.get(ino)
        if node.kind != M.DIR:
            raise FsError(errno.ENOTDIR)
        if node.path is None:
            raise FsError(errno.ENOENT, "directory was removed")
        return node

    def _attrs_of(self, key: str, e: Entry) -> M.Attrs:
        return M.decode(key, e.meta, size=e.size, mtime_ns=e.mtime_ns or self.started_ns,
                        etag=e.etag, defaults=self.opts.defaults)

    def _learn(self, path: str, attrs: M.Attrs, meta: dict[str, str] | None = None) -> Node:
        node = self.inodes.bind(path, attrs.kind)
        if node.ino not in self.files:
            node.attrs = attrs
            node.fresh_until = self._now() + self.opts.attr_timeout
            if meta is not None:
                node.meta = {k: v for k, v in meta.items() if k not in M.OURS}
        return node

    def attrs(self, node: Node) -> M.Attrs:
        of = self.files.get(node.ino)
        if of is not None:
            return of.current_attrs()
        assert node.attrs is not None
        return node.attrs

    # ------------------------------------------------------------ snapshots
    def _snapshot(self, path: str) -> Snapshot | None:
        snap = self._snapshots.get(path)
        if snap is not None and snap.until < self._now():
            del self._snapshots[path]
            if len(snap.names) <= RELIST_MAX:
                if len(self._expired) > 10_000:
                    self._expired.clear()
                self._expired.add(path)  # worth listing again on the next miss (relist.py)
            return None
        return snap

    def _snap_add(self, path: str, kind: str) -> None:
        parent, name = split(path)
        snap = self._snapshot(parent)
        if snap is not None:
            snap.names[name] = kind
        self._absent.pop(path, None)

    def _snap_remove(self, path: str) -> None:
        parent, name = split(path)
        snap = self._snapshot(parent)
        if snap is not None:
            snap.names.pop(name, None)
        self._snapshots.pop(path, None)

    def _known_absent(self, path: str) -> bool:
        until = self._absent.get(path)
        if until is not None and until >= self._now():
            return True
        parent, name = split(path)
        snap = self._snapshot(parent)
        return snap is not None and name not in snap.names

    # ------------------------------------------------------------ resolving
    async def _resolve(self, path: str) -> tuple[M.Attrs, dict[str, str] | None] | None:
        """What ``path`` is in the backend now (None: nothing)."""
        key = self.ns.key(path)
        prefix = self.ns.dir_prefix(path)
        found: dict[str, Any] = {}
        # HEAD first, the directory probe only if there is no such object: one
        # request for the common case (files), on a machine where requests cost CPU.
        with contextlib.suppress(NotFound):
            found["file"] = await self._call(f"HEAD {key}", self.backend.head, key)
        if "file" not in found:
            found["dir"] = await self._call(f"LIST {prefix}", self._list_one, prefix)
        if "file" in found:
            e = found["file"]
            return self._attrs_of(key, e), e.meta
        first = found.get("dir")
        if first is None:
            return None
        if first.key == prefix:  # the marker: its metadata is the directory's
            marker = first if first.meta is not None else await self._head_or_none(prefix)
            if marker is not None:
                return self._attrs_of(prefix, marker), marker.meta
        return M.implicit_dir(self.opts.defaults, self.started_ns), None

    async def _list_one(self, prefix: str) -> Entry | None:
        page = await self.backend.list(prefix, delimiter="", limit=1)
        if page.entries:
            return page.entries[0]
        return None

    async def _head_or_none(self, key: str) -> Entry | None:
        try:
            return await self._call(f"HEAD {key}", self.backend.head, key)
        except NotFound:
            return None

    async def _existing(self, path: str) -> Node | None:
        """The node at ``path`` if it exists (fresh cache, local state or backend)."""
        node = self.inodes.at(path)
        if node is not None and (node.ino in self.files or node.ino in self._meta_due
                                 or node.fresh_until > self._now()):
            return node
        if self._known_absent(path):
            return None
        parent = split(path)[0]
        if parent in self._expired and self._snapshot(parent) is None:
            self._expired.discard(parent)
            answer = await lookup_by_listing(self, path)
            if answer is not UNKNOWN:
                if answer is None:
                    self._absent[path] = self._now() + self.opts.entry_timeout
                return answer  # type: ignore[return-value]
        got = await self._resolve(path)
        if got is None:
            self._absent[path] = self._now() + self.opts.entry_timeout
            if node is not None:
                self.inodes.detach(path)
            return None
        return self._learn(path, *got)

    # ------------------------------------------------------------ lookup/getattr
    async def lookup(self, parent_ino: int, raw: bytes) -> tuple[Node, M.Attrs]:
        parent = self._dir(parent_ino)
        path = join(parent.path or "", check_name(raw))
        node = await self._existing(path)
        if node is None:
            raise FsError(errno.ENOENT)
        self.inodes.ref(node)
        return node, self.attrs(node)

    def forget(self, ino: int, n: int) -> None:
        self.inodes.forget(ino, n)

    async def getattr(self, ino: int) -> M.Attrs:
        node = self.inodes.get(ino)
        if (node.ino in self.files or node.ino in self._meta_due or node.path is None
                or node.fresh_until > self._now()):
            return self.attrs(node)
        got = await self._resolve(node.path)
        if got is None or got[0].kind != node.kind:
            self.inodes.detach(node.path)
            raise FsError(errno.ENOENT, "removed through another client")
        self._learn(node.path, *got)
        return self.attrs(node)

    # ------------------------------------------------------------ metadata (attrwriter.py)
    async def setattr(self, ino: int, *, size: int | None = None, mode: int | None = None,
                      uid: int | None = None, gid: int | None = None,
                      mtime_ns: int | None = None) -> M.Attrs:
        return await self.meta.setattr(ino, size=size, mode=mode, uid=uid, gid=gid,
                                       mtime_ns=mtime_ns)

    async def flush_meta(self, ino: int) -> None:
        """Write the batched metadata of ``ino`` now (if any)."""
        await self.meta.flush(ino)

    async def getxattr(self, ino: int, name: bytes) -> bytes:
        return await self.meta.getxattr(ino, name)

    async def listxattr(self, ino: int) -> list[bytes]:
        return await self.meta.listxattr(ino)

    async def setxattr(self, ino: int, name: bytes, value: bytes | None) -> None:
        await self.meta.setxattr(ino, name, value)

    # ------------------------------------------------------------ directories
    def opendir(self, ino: int) -> int:
        return self.lister.opendir(ino)

    def releasedir(self, fh: int) -> None:
        self.lister.releasedir(fh)

    async def readdir(self, fh: int, start: int,
                      emit: Callable[[str, Node, M.Attrs, int], bool]) -> None:
        """Report entries after cookie ``start`` through ``emit(name, node,
        attrs, cookie)`` until it returns False (:mod:`titans3.fuse.dirlist`)."""
        await self.lister.readdir(fh, start, emit)

    async def mkdir(self, parent_ino: int, raw: bytes, mode: int, uid: int, gid: int
                    ) -> tuple[Node, M.Attrs]:
        parent = self._dir(parent_ino)
        path = join(parent.path or "", check_name(raw))
        if await self._existing(path) is not None:
            raise FsError(errno.EEXIST)
        attrs = M.Attrs(M.DIR, stat.S_IFDIR | (mode & 0o7777), uid, gid, time.time_ns())
        key = self.ns.dir_prefix(path)
        await self._call(f"PUT {key}", self.backend.put, key, body_of(b""), 0, M.encode(attrs))
        node = self._learn(path, attrs)
        self.inodes.ref(node)
        self._snap_add(path, M.DIR)
        self._snapshots[path] = Snapshot({}, self._now() + self.opts.entry_timeout)
        return node, attrs

    async def rmdir(self, parent_ino: int, raw: bytes) -> None:
        parent = self._dir(parent_ino)
        path = join(parent.path or "", check_name(raw))
        node = await self._existing(path)
        if node is None:
            raise FsError(errno.ENOENT)
        if node.kind != M.DIR:
            raise FsError(errno.ENOTDIR)
        prefix = self.ns.dir_prefix(path)
        page = await self._call(f"LIST {prefix}", self.backend.list, prefix, delimiter="",
                                limit=2)
        if any(e.key != prefix for e in page.entries) or self._local_below(path):
            raise FsError(errno.ENOTEMPTY)
        await self._call(f"DELETE {prefix}", self.backend.delete, prefix)
        self.inodes.detach(path)
        self._snap_remove(path)

    def _local_below(self, path: str) -> bool:
        head = self.ns.dir_prefix(path)
        return any((k := f.key_of()) is not None and k.startswith(head) and f.base_etag is None
                   for f in self.files.values())

    # ------------------------------------------------------------ files
    async def _open_file(self, node: Node) -> OpenFile:
        """The shared open state of a file (close-to-open: HEAD when first opened)."""
        of = self.files.get(node.ino)
        if of is not None:
            return of
        if node.path is None:
            raise FsError(errno.ENOENT, "file was removed")
        await self.flush_meta(node.ino)  # batched chmod/chown/utime first: the HEAD must see it
        key = self.ns.key(node.path)
        try:
            e = await self._call(f"HEAD {key}", self.backend.head, key)
        except NotFound:
            self.inodes.detach(node.path)
            raise FsError(errno.ENOENT, "removed through another client") from None
        attrs = self._attrs_of(key, e)
        if attrs.kind != node.kind:
            raise FsError(errno.ESTALE, "replaced by another kind of object")
        self._learn(node.path, attrs, e.meta)
        of = self._new_open_file(node, attrs, e.meta or {}, e)
        return of

    def _new_open_file(self, node: Node, attrs: M.Attrs, meta: dict[str, str],
                       base: Entry | None) -> OpenFile:
        def key_of() -> str | None:
            return self.ns.key(node.path) if node.path is not None else None

        extra = {k: v for k, v in meta.items() if k not in M.OURS}
        of = OpenFile(self.backend, self.area, self.opts, key_of, attrs, extra, base,
                      on_error=self._failed)
        of.nursery = self.nursery  # write-behind of sequential writers (writebehind.py)
        self.files[node.ino] = of
        self.inodes.opened(node)
        return of

    def _drop_file(self, node: Node, of: OpenFile) -> None:
        if of.handles == 0 and self.files.get(node.ino) is of:
            del self.files[node.ino]
            of.close()
            self.inodes.closed(node)

    def _committed(self, node: Node, of: OpenFile) -> M.Attrs:
        attrs = of.current_attrs()
        node.attrs = attrs
        node.committed_at = node.fresh_until = self._now()
        node.fresh_until += self.opts.attr_timeout
        if of.base_etag:
            node.page_etag = of.base_etag
        return attrs

    def _new_fh(self) -> int:
        fh = self._next_fh
        self._next_fh += 1
        return fh

    async def open(self, ino: int, flags: int) -> tuple[int, bool]:
        """A file handle and whether the kernel may keep its cached pages."""
        node = self.inodes.get(ino)
        if node.kind == M.DIR:
            raise FsError(errno.EISDIR)
        if node.kind != M.FILE:
            raise FsError(errno.ELOOP)
        existing = node.ino in self.files
        if not existing:
            await self.flush_meta(node.ino)
        of = await self._open_file(node)
        keep = existing or (bool(node.page_etag) and node.page_etag == of.base_etag)
        if not existing and of.base_etag:
            node.page_etag = of.base_etag
        writable = flags & os.O_ACCMODE != os.O_RDONLY
        if flags & os.O_TRUNC and writable:
            await of.truncate(0)
        return self._handle(node, of, writable), keep

    def _handle(self, node: Node, of: OpenFile, writable: bool) -> int:
        fh = self._new_fh()
        of.handles += 1
        self.handles[fh] = Handle(of, node, ReadAhead(block=self.opts.read_block,
                                                      max_blocks=self.opts.read_ahead_blocks), writable)
        return fh

    async def create(self, parent_ino: int, raw: bytes, mode: int, flags: int, uid: int,
                     gid: int) -> tuple[int, Node, M.Attrs]:
        parent = self._dir(parent_ino)
        path = join(parent.path or "", check_name(raw))
        self.ns.key(path)  # ENAMETOOLONG before anything is created
        existing = await self._existing(path)
        if existing is not None:
            if flags & os.O_EXCL:
                raise FsError(errno.EEXIST)
            self.inodes.ref(existing)
            fh, _ = await self.open(existing.ino, flags)
            return fh, existing, self.attrs(existing)
        attrs = M.Attrs(M.FILE, stat.S_IFREG | (mode & 0o7777), uid, gid, time.time_ns())
        node = self.inodes.bind(path, M.FILE)
        node.attrs = attrs
        of = self._new_open_file(node, attrs, {}, None)
        self.inodes.ref(node)
        self._snap_add(path, M.FILE)
        return self._handle(node, of, True), node, of.current_attrs()

    async def read(self, fh: int, offset: int, size: int) -> bytes:
        h = self.handles[fh]
        assert self.nursery is not None
        try:
            return await h.file.read(offset, size, h.ra, self.nursery)
        except FsError as e:
            if e.errno != errno.ENOENT:
                self._failed(e)
            raise FsError(errno.EIO, e.reason) from None

    async def write(self, fh: int, offset: int, data: bytes) -> int:
        h = self.handles[fh]
        return await h.file.write(offset, data)

    async def flush(self, fh: int) -> None:
        h = self.handles.get(fh)
        if h is None:
            return
        self.background.take_error(h.file)
        if h.file.changed:
            if self.background.eligible(h.file):
                await self.background.start(h.node, h.file)  # close returns before durable
                return
            await h.file.commit()
            self._committed(h.node, h.file)

    async def fsync(self, fh: int) -> None:
        """Durable when it returns, whatever ``close`` does (closecommit.py)."""
        h = self.handles.get(fh)
        if h is None:
            return
        # The file's lock orders this commit after one in flight; a background
        # failure is retried here, and raised if it fails again.
        self.background.errors.pop(id(h.file), None)
        if h.file.changed:
            await h.file.commit()
            self._committed(h.node, h.file)

    async def release(self, fh: int) -> None:
        h = self.handles.pop(fh, None)
        if h is None:
            return
        of = h.file
        try:
            if of.changed and of.handles == 1 and not self.background.running(of):
                if self.background.eligible(of):
                    await self.background.start(h.node, of)
                else:
                    await of.commit()
                    self._committed(h.node, of)
        finally:
            of.handles -= 1
            if of.handles == 0 and not self.background.running(of):
                if of.changed and not of.unlinked:
                    log.error("%s: closed with uncommitted changes (the last commit failed)",
                              of.key_of())
                self._drop_file(h.node, of)

    # ------------------------------------------------------------ links
    async def symlink(self, parent_ino: int, raw: bytes, target: bytes, uid: int, gid: int
                      ) -> tuple[Node, M.Attrs]:
        parent = self._dir(parent_ino)
        path = join(parent.path or "", check_name(raw))
        if await self._existing(path) is not None:
            raise FsError(errno.EEXIST)
        attrs = M.Attrs(M.LINK, stat.S_IFLNK | 0o777, uid, gid, time.time_ns(), len(target))
        key = self.ns.key(path)
        e = await self._call(f"PUT {key}", self.backend.put, key, body_of(target), len(target),
                             M.encode(attrs))
        node = self._learn(path, replace(attrs, etag=e.etag))
        node.target = target
        self.inodes.ref(node)
        self._snap_add(path, M.LINK)
        return node, self.attrs(node)

    async def readlink(self, ino: int) -> bytes:
        node = self.inodes.get(ino)
        if node.kind != M.LINK:
            raise FsError(errno.EINVAL)
        if node.target is None:
            assert node.path is not None
            key = self.ns.key(node.path)
            size = self.attrs(node).size
            body = self.backend.read(key, 0, max(0, size - 1)) if size else None
            node.target = await self._call(f"GET {key}", read_all, body) if body else b""
        return node.target

    async def unlink(self, parent_ino: int, raw: bytes) -> None:
        parent = self._dir(parent_ino)
        path = join(parent.path or "", check_name(raw))
        node = await self._existing(path)
        if node is None:
            raise FsError(errno.ENOENT)
        if node.kind == M.DIR:
            raise FsError(errno.EISDIR)
        self._meta_due.pop(node.ino, None)
        of = self.files.get(node.ino)
        if of is not None:
            await self.background.wait(of)  # a commit in flight would bring it back
        if of is None or of.base_etag is not None:
            key = self.ns.key(path)
            await self._call(f"DELETE {key}", self.backend.delete, key)
        if of is not None:
            of.unlinked = True
        self.inodes.detach(path)
        self._snap_remove(path)

    async def rename(self, old_parent: int, old_raw: bytes, new_parent: int, new_raw: bytes,
                     flags: int) -> None:
        await self.renamer.rename(old_parent, old_raw, new_parent, new_raw, flags)

    def link(self) -> None:
        raise FsError(errno.EPERM, "hard links cannot be kept in an object store")

    # ------------------------------------------------------------ filesystem
    async def statfs(self) -> tuple[int, int]:
        cap = await self._call("statfs", self.backend.statfs)
        return cap.total, cap.free

    def dirty_bytes(self) -> int:
        return self.area.used

    async def commit_all(self) -> None:
        """Commit every dirty file and batched metadata (unmount, shutdown)."""
        await self.background.drain()
        for ino in list(self._meta_due):
            try:
                await self.flush_meta(ino)
            except FsError as e:
                log.error("metadata of inode %d could not be written at unmount: %s", ino,
                          e.reason)
        for ino, of in list(self.files.items()):
            if of.changed and not of.unlinked:
                try:
                    await of.commit()
                    node = self.inodes.get(ino)
                    self._committed(node, of)
                except FsError as e:
                    log.error("%s: could not be committed at unmount: %s", of.key_of(), e.reason)
        self.area.clean.close()
