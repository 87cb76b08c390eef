"""The pyfuse3 adapter: ``pyfuse3.Operations`` over the filesystem core.

Theory of operation
-------------------
Each method converts arguments, calls :class:`~titans3.fuse.fs.FileSystem`
and converts the answer (``Attrs`` -> ``EntryAttributes``, ``FsError`` ->
``FUSEError``); it counts the operation for the mount's statistics.  An
unexpected exception becomes EIO with a logged traceback -- never a dead
mount.  A lookup of a name that does not exist answers a *negative entry*
(inode 0) that the kernel caches for ``entry_timeout``.
"""

from __future__ import annotations

import errno
import logging
import stat
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import pyfuse3

from titans3.fuse.errors import FsError
from titans3.fuse.fs import FileSystem
from titans3.fuse.inodes import Node
from titans3.fuse.meta import Attrs
from titans3.fuse.stats import Counters

log = logging.getLogger(__name__)
T = TypeVar("T")
BLOCK = 4096


class Operations(pyfuse3.Operations):
    def __init__(self, fs: FileSystem, counters: Counters) -> None:
        super().__init__()
        self.fs = fs
        self.counters = counters
        self.enable_writeback_cache = fs.opts.writeback_cache

    # ------------------------------------------------------------ helpers
    def entry(self, node: Node, attrs: Attrs) -> pyfuse3.EntryAttributes:
        e = pyfuse3.EntryAttributes()
        e.st_ino = node.ino
        e.generation = 0
        e.entry_timeout = self.fs.opts.entry_timeout
        e.attr_timeout = self.fs.opts.attr_timeout
        e.st_mode = attrs.mode
        e.st_nlink = 2 if stat.S_ISDIR(attrs.mode) else 1
        e.st_uid = attrs.uid
        e.st_gid = attrs.gid
        e.st_rdev = 0
        e.st_size = attrs.size
        e.st_blksize = 1 << 20
        e.st_blocks = (attrs.size + 511) // 512
        e.st_atime_ns = e.st_mtime_ns = e.st_ctime_ns = attrs.mtime_ns
        return e

    async def _run(self, op: str, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        self.counters.op(op)
        try:
            return await fn(*args)
        except FsError as e:
            raise pyfuse3.FUSEError(e.errno) from None
        except pyfuse3.FUSEError:
            raise
        except Exception:
            log.exception("%s failed unexpectedly", op)
            self.counters.error()
            raise pyfuse3.FUSEError(errno.EIO) from None

    def _sync(self, op: str, fn: Callable[..., T], *args: Any) -> T:
        self.counters.op(op)
        try:
            return fn(*args)
        except FsError as e:
            raise pyfuse3.FUSEError(e.errno) from None

    # ------------------------------------------------------------ names
    async def lookup(self, parent_inode: int, name: bytes, ctx: Any) -> pyfuse3.EntryAttributes:
        try:
            node, attrs = await self._run("lookup", self.fs.lookup, parent_inode, name)
        except pyfuse3.FUSEError as e:
            if e.errno != errno.ENOENT:
                raise
            neg = pyfuse3.EntryAttributes()
            neg.st_ino = 0
            neg.entry_timeout = self.fs.opts.entry_timeout
            return neg
        return self.entry(node, attrs)

    def forget(self, inode_list: Sequence[tuple[int, int]]) -> None:
        for ino, n in inode_list:
            self.fs.forget(ino, n)

    async def getattr(self, inode: int, ctx: Any) -> pyfuse3.EntryAttributes:
        attrs = await self._run("getattr", self.fs.getattr, inode)
        return self.entry(self.fs.node(inode), attrs)

    async def setattr(self, inode: int, attr: Any, fields: Any, fh: int | None,
                      ctx: Any) -> pyfuse3.EntryAttributes:
        async def go() -> Attrs:
            return await self.fs.setattr(
                inode,
                size=attr.st_size if fields.update_size else None,
                mode=attr.st_mode if fields.update_mode else None,
                uid=attr.st_uid if fields.update_uid else None,
                gid=attr.st_gid if fields.update_gid else None,
                mtime_ns=attr.st_mtime_ns if fields.update_mtime else None,
            )

        attrs = await self._run("setattr", go)
        return self.entry(self.fs.node(inode), attrs)

    async def readlink(self, inode: int, ctx: Any) -> bytes:
        return await self._run("readlink", self.fs.readlink, inode)

    async def symlink(self, parent_inode: int, name: bytes, target: bytes,
                      ctx: Any) -> pyfuse3.EntryAttributes:
        node, attrs = await self._run("symlink", self.fs.symlink, parent_inode, name, target,
                                      ctx.uid, ctx.gid)
        return self.entry(node, attrs)

    async def link(self, inode: int, new_parent_inode: int, new_name: bytes,
                   ctx: Any) -> pyfuse3.EntryAttributes:
        self._sync("link", self.fs.link)
        raise AssertionError("unreachable")

    async def mknod(self, parent_inode: int, name: bytes, mode: int, rdev: int,
                    ctx: Any) -> pyfuse3.EntryAttributes:
        if not stat.S_ISREG(mode):
            raise pyfuse3.FUSEError(errno.EPERM)
        fh, node, attrs = await self._run("mknod", self.fs.create, parent_inode, name, mode,
                                          0, ctx.uid, ctx.gid)
        await self._run("release", self.fs.release, fh)
        return self.entry(node, attrs)

    async def unlink(self, parent_inode: int, name: bytes, ctx: Any) -> None:
        await self._run("unlink", self.fs.unlink, parent_inode, name)

    async def rmdir(self, parent_inode: int, name: bytes, ctx: Any) -> None:
        await self._run("rmdir", self.fs.rmdir, parent_inode, name)

    async def mkdir(self, parent_inode: int, name: bytes, mode: int,
                    ctx: Any) -> pyfuse3.EntryAttributes:
        node, attrs = await self._run("mkdir", self.fs.mkdir, parent_inode, name, mode,
                                      ctx.uid, ctx.gid)
        return self.entry(node, attrs)

    async def rename(self, parent_inode_old: int, name_old: bytes, parent_inode_new: int,
                     name_new: bytes, flags: int, ctx: Any) -> None:
        await self._run("rename", self.fs.rename, parent_inode_old, name_old, parent_inode_new,
                        name_new, flags)

    # ------------------------------------------------------------ directories
    async def opendir(self, inode: int, ctx: Any) -> int:
        return self._sync("opendir", self.fs.opendir, inode)

    async def readdir(self, fh: int, start_id: int, token: Any) -> None:
        def emit(name: str, node: Node, attrs: Attrs, cookie: int) -> bool:
            return pyfuse3.readdir_reply(token, name.encode("utf-8"), self.entry(node, attrs),
                                         cookie)

        await self._run("readdir", self.fs.readdir, fh, start_id, emit)

    async def releasedir(self, fh: int) -> None:
        self.fs.releasedir(fh)

    async def fsyncdir(self, fh: int, datasync: bool) -> None:
        return None  # every directory change is durable when its call returns

    # ------------------------------------------------------------ files
    async def open(self, inode: int, flags: int, ctx: Any) -> pyfuse3.FileInfo:
        fh, keep = await self._run("open", self.fs.open, inode, flags)
        return pyfuse3.FileInfo(fh=fh, keep_cache=keep)

    async def create(self, parent_inode: int, name: bytes, mode: int, flags: int,
                     ctx: Any) -> tuple[pyfuse3.FileInfo, pyfuse3.EntryAttributes]:
        fh, node, attrs = await self._run("create", self.fs.create, parent_inode, name, mode,
                                          flags, ctx.uid, ctx.gid)
        return pyfuse3.FileInfo(fh=fh), self.entry(node, attrs)

    async def read(self, fh: int, off: int, size: int) -> bytes:
        data = await self._run("read", self.fs.read, fh, off, size)
        self.counters.bytes_read += len(data)
        return data

    async def write(self, fh: int, off: int, buf: bytes) -> int:
        n = await self._run("write", self.fs.write, fh, off, buf)
        self.counters.bytes_written += n
        return n

    async def flush(self, fh: int) -> None:
        await self._run("flush", self.fs.flush, fh)

    async def fsync(self, fh: int, datasync: bool) -> None:
        await self._run("fsync", self.fs.fsync, fh)

    async def release(self, fh: int) -> None:
        await self._run("release", self.fs.release, fh)

    # ------------------------------------------------------------ xattrs, statfs
    async def getxattr(self, inode: int, name: bytes, ctx: Any) -> bytes:
        try:
            return await self._run("getxattr", self.fs.getxattr, inode, name)
        except pyfuse3.FUSEError as e:
            if e.errno == errno.ENODATA:
                raise pyfuse3.FUSEError(pyfuse3.ENOATTR) from None
            raise

    async def setxattr(self, inode: int, name: bytes, value: bytes, ctx: Any) -> None:
        await self._run("setxattr", self.fs.setxattr, inode, name, value)

    async def listxattr(self, inode: int, ctx: Any) -> Sequence[bytes]:
        return await self._run("listxattr", self.fs.listxattr, inode)

    async def removexattr(self, inode: int, name: bytes, ctx: Any) -> None:
        await self._run("removexattr", self.fs.setxattr, inode, name, None)

    async def statfs(self, ctx: Any) -> pyfuse3.StatvfsData:
        total, free = await self._run("statfs", self.fs.statfs)
        s = pyfuse3.StatvfsData()
        s.f_bsize = s.f_frsize = BLOCK
        s.f_blocks = total // BLOCK
        s.f_bfree = s.f_bavail = free // BLOCK
        s.f_files = s.f_ffree = s.f_favail = 1 << 32
        s.f_namemax = 255
        return s
