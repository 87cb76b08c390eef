"""chmod, chown, utimens, truncate and ``user.*`` xattrs for the filesystem core.

Theory of operation
-------------------
An object's attributes live in its user metadata (:mod:`titans3.fuse.meta`),
so changing them without data is a metadata copy of the object onto itself
(a ``dir/`` marker is simply rewritten).  :class:`AttrWriter` does that for
the core that holds it (typed as :class:`~titans3.fuse.fsapi.FsServices`):

* a file with open state takes the change in memory; its next commit carries
  it (no extra request);
* a file committed by this mount less than ``META_RECENT`` ago -- ``tar`` and
  ``rsync`` set times and modes on the path right after ``close`` -- is
  *batched*: the change is remembered in ``due`` and written ``META_DELAY``
  later by one background task, so chmod + chown + utime cost one copy.  The
  node counts as fresh while it is due (lookups and getattr answer from
  memory), ``open``/``rename``/unmount write it first;
* anything else is written at once.

A failed batched write is logged (and counted on the status page) by the
core's ``_call``; the metadata stays in memory only, like any change whose
write failed.  ``truncate`` of a file without open state opens, cuts and
commits it in one go: the call returns when the new version is durable.
"""

from __future__ import annotations

import contextlib
import errno
import time
from dataclasses import replace

import trio

from titans3.fuse import meta as M
from titans3.fuse.backend import body_of
from titans3.fuse.errors import FsError
from titans3.fuse.fsapi import FsServices
from titans3.fuse.inodes import Node

# Metadata changes right after this mount committed a file are written
# together, this much later.
META_DELAY = 0.05
META_RECENT = 1.0


class AttrWriter:
    def __init__(self, fs: FsServices) -> None:
        self.fs = fs
        self.due: dict[int, float] = {}  # ino -> when its batched metadata is written
        self._busy: dict[int, trio.Event] = {}  # ino -> set when its write in flight ends
        self._wake = trio.Event()
        self._task = False

    # ------------------------------------------------------------ setattr
    async def setattr(self, ino: int, *, size: int | None, mode: int | None, uid: int | None,
                      gid: int | None, mtime_ns: int | None) -> M.Attrs:
        fs = self.fs
        node = fs.inodes.get(ino)
        cur = await fs.getattr(ino)
        new = replace(cur,
                      mode=(cur.mode & ~0o7777) | (mode & 0o7777) if mode is not None else cur.mode,
                      uid=cur.uid if uid is None else uid, gid=cur.gid if gid is None else gid,
                      mtime_ns=cur.mtime_ns if mtime_ns is None else mtime_ns)
        if size is not None and node.kind != M.FILE:
            raise FsError(errno.EISDIR if node.kind == M.DIR else errno.EINVAL)
        of = fs.files.get(ino)
        if size is not None and of is None:
            of = await fs._open_file(node)
            try:
                async with of.lock:
                    of.truncate_locked(size)
                    if mtime_ns is None:
                        new = replace(new, mtime_ns=time.time_ns())
                    of.set_attrs(new)
                    await of._commit_locked()
            finally:
                fs._drop_file(node, of)
            return fs._committed(node, of)
        if of is not None:
            async with of.lock:
                if size is not None:
                    of.truncate_locked(size)
                    if mtime_ns is None:
                        new = replace(new, mtime_ns=of.attrs.mtime_ns)
                of.set_attrs(replace(new, size=of.size))
            return of.current_attrs()
        if new == cur:
            return cur
        await self.update(node, new)
        return fs.attrs(node)

    async def update(self, node: Node, new: M.Attrs) -> None:
        """Store ``new`` as the attributes of ``node`` (no open state): now or batched."""
        now = self.fs._now()
        nursery = self.fs.nursery
        if node.kind == M.FILE and now - node.committed_at < META_RECENT and nursery:
            node.attrs = new
            self.due.setdefault(node.ino, now + META_DELAY)
            if not self._task:
                self._task = True
                nursery.start_soon(self._flusher)
            self._wake.set()
            return
        await self.store(node, new)

    async def _flusher(self) -> None:
        while True:
            if not self.due:
                self._wake = trio.Event()
                await self._wake.wait()
                continue
            await trio.sleep_until(min(self.due.values()))
            now = self.fs._now()
            for ino in [i for i, t in self.due.items() if t <= now]:
                with contextlib.suppress(FsError):
                    await self.flush(ino)

    async def flush(self, ino: int) -> None:
        """Write the batched metadata of ``ino`` now (if any); returns when it
        is written.  The inode stays *due* until then, so lookups, getattr and
        ``open`` never take the object's older metadata (a HEAD racing the
        write) for the truth; a second flush waits for the first."""
        while (busy := self._busy.get(ino)) is not None:
            await busy.wait()
        if ino not in self.due:
            return
        node = self.fs.inodes.get(ino)
        attrs = node.attrs
        if node.path is None or attrs is None:
            self.due.pop(ino, None)
            return
        done = self._busy[ino] = trio.Event()
        try:
            await self.store(node, attrs, keep_newer=True)
        except FsError:
            self.due.pop(ino, None)  # kept in memory only, like any failed change
            raise
        else:
            if node.attrs is not None and replace(node.attrs, etag=attrs.etag) == attrs:
                self.due.pop(ino, None)  # else changed meanwhile: still due
        finally:
            del self._busy[ino]
            done.set()

    async def store(self, node: Node, new: M.Attrs, *, keep_newer: bool = False) -> None:
        """Write metadata of a file, symlink or directory that has no open state
        (``keep_newer``: a batched write, which a later change may overtake)."""
        fs = self.fs
        assert node.path is not None
        if node.kind == M.DIR:
            if node.path == "":
                raise FsError(errno.EPERM, "the mount's root has no object to hold attributes")
            key = fs.ns.dir_prefix(node.path)
            e = await fs._call(f"PUT {key}", fs.backend.put, key, body_of(b""), 0,
                               M.merge(node.meta, new))
        else:
            key = fs.ns.key(node.path)
            e = await fs._call(f"COPY {key}", fs.backend.copy, key, key,
                               M.merge(node.meta, new),
                               timeout=fs.opts.transfer_timeout(new.size))
        if keep_newer and node.attrs is not None and node.attrs is not new:
            # A batched change arrived while this one was written: it stays (and due).
            node.attrs = replace(node.attrs, etag=e.etag)
        else:
            node.attrs = replace(new, etag=e.etag)
        node.fresh_until = fs._now() + fs.opts.attr_timeout

    # ------------------------------------------------------------ xattrs
    async def getxattr(self, ino: int, name: bytes) -> bytes:
        if not name.startswith(b"user."):
            raise FsError(errno.ENODATA)
        value = (await self.fs.getattr(ino)).xattrs.get(name)
        if value is None:
            raise FsError(errno.ENODATA)
        return value

    async def listxattr(self, ino: int) -> list[bytes]:
        return sorted((await self.fs.getattr(ino)).xattrs)

    async def setxattr(self, ino: int, name: bytes, value: bytes | None) -> None:
        """Set (``value``) or remove (None) one ``user.*`` attribute."""
        if not name.startswith(b"user."):
            raise FsError(errno.ENOTSUP, "only user.* extended attributes are stored")
        cur = await self.fs.getattr(ino)
        xattrs = dict(cur.xattrs)
        if value is None:
            if name not in xattrs:
                raise FsError(errno.ENODATA)
            del xattrs[name]
        else:
            xattrs[name] = value
        if len(M.encode_xattrs(xattrs)) > M.MAX_XATTR_BYTES:
            raise FsError(errno.ENOSPC, "extended attributes exceed the object metadata limit")
        new = replace(cur, xattrs=xattrs)
        of = self.fs.files.get(ino)
        if of is not None:
            async with of.lock:
                of.set_attrs(new)
            return
        await self.update(self.fs.inodes.get(ino), new)
