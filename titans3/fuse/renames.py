"""rename(2) for the filesystem core.

Theory of operation
-------------------
A file is renamed by the backend (copy then delete, or one atomic step where
the backend has it); a file with changes not committed yet is committed
straight under the new name instead, and metadata batched after its last
commit rides on the copy.  A directory is renamed key by key
(:func:`titans3.fuse.tree.rename_tree`) after committing what is dirty below
it.  POSIX answers: ``EISDIR`` (file onto a directory), ``ENOTDIR``
(directory onto a file), ``ENOTEMPTY`` (onto a non-empty directory),
``EINVAL`` (a directory into itself, ``RENAME_EXCHANGE``), ``EEXIST``
(``RENAME_NOREPLACE``).  The inode table moves the node and its descendants
after the backend succeeded, so open handles follow the file.
"""

from __future__ import annotations

import errno

from titans3.fuse import meta as M
from titans3.fuse.errors import FsError
from titans3.fuse.fsapi import FsServices
from titans3.fuse.inodes import Node
from titans3.fuse.paths import check_name, join
from titans3.fuse.tree import rename_tree

RENAME_NOREPLACE, RENAME_EXCHANGE = 1, 2


class Renamer:
    def __init__(self, fs: FsServices) -> None:
        self.fs = fs

    async def rename(self, old_parent: int, old_raw: bytes, new_parent: int, new_raw: bytes,
                     flags: int) -> None:
        if flags & RENAME_EXCHANGE:
            raise FsError(errno.EINVAL, "RENAME_EXCHANGE cannot be done on objects")
        src = join(self.fs._dir(old_parent).path or "", check_name(old_raw))
        dst = join(self.fs._dir(new_parent).path or "", check_name(new_raw))
        if src == dst:
            return
        snode = await self.fs._existing(src)
        if snode is None:
            raise FsError(errno.ENOENT)
        dnode = await self.fs._existing(dst)
        if dnode is not None and flags & RENAME_NOREPLACE:
            raise FsError(errno.EEXIST)
        if snode.kind == M.DIR:
            await self._rename_dir(src, dst, dnode)
        else:
            await self._rename_file(snode, src, dst, dnode)
        self.fs._snap_remove(src)
        self.fs.inodes.move(src, dst)
        self.fs._snap_add(dst, snode.kind)

    def _rename_timeout(self, size: int) -> float:
        # An atomic backend rename moves no bytes: a metadata call's deadline.
        return self.fs.opts.transfer_timeout(0 if self.fs.backend.atomic_rename else size)

    async def _rename_file(self, snode: Node, src: str, dst: str, dnode: Node | None) -> None:
        if dnode is not None and dnode.kind == M.DIR:
            raise FsError(errno.EISDIR)
        skey, dkey = self.fs.ns.key(src), self.fs.ns.key(dst)
        of = self.fs.files.get(snode.ino)
        size = self.fs.attrs(snode).size
        if of is not None:
            async with of.lock:
                if of.base_etag is None or of.changed:
                    # Dirty: commit straight under the new name, then drop the old key.
                    old_base = of.base_key
                    snode.path = dst  # key_of() follows the node; the table moves after
                    try:
                        await of._commit_locked()
                    finally:
                        snode.path = src
                    if old_base is not None:
                        await self.fs._call(f"DELETE {skey}", self.fs.backend.delete, skey)
                else:
                    e = await self.fs._call(f"RENAME {skey}", self.fs.backend.rename, skey, dkey,
                                         timeout=self._rename_timeout(size))
                    of.base_key, of.base_etag = dkey, e.etag
        elif self.fs._meta_due.pop(snode.ino, None) is not None and snode.attrs is not None:
            # Batched metadata rides on the copy (rsync: times and modes, then rename).
            await self.fs._call(f"COPY {skey}", self.fs.backend.copy, skey, dkey,
                             M.merge(snode.meta, snode.attrs),
                             timeout=self.fs.opts.transfer_timeout(size))
            await self.fs._call(f"DELETE {skey}", self.fs.backend.delete, skey)
        else:
            await self.fs._call(f"RENAME {skey}", self.fs.backend.rename, skey, dkey,
                             timeout=self._rename_timeout(size))
        if dnode is not None and (dof := self.fs.files.get(dnode.ino)) is not None:
            dof.unlinked = True  # still open under the old name: its data is gone

    async def _rename_dir(self, src: str, dst: str, dnode: Node | None) -> None:
        if dst.startswith(src + "/"):
            raise FsError(errno.EINVAL, "cannot move a directory into itself")
        if dnode is not None:
            if dnode.kind != M.DIR:
                raise FsError(errno.ENOTDIR)
            dprefix = self.fs.ns.dir_prefix(dst)
            page = await self.fs._call(f"LIST {dprefix}", self.fs.backend.list, dprefix, delimiter="",
                                    limit=2)
            if any(e.key != dprefix for e in page.entries) or self.fs._local_below(dst):
                raise FsError(errno.ENOTEMPTY)
        for ino in list(self.fs._meta_due):
            await self.fs.flush_meta(ino)
        for of in list(self.fs.files.values()):  # dirty files below: commit before they move
            k = of.key_of()
            if k is not None and k.startswith(self.fs.ns.dir_prefix(src)) and of.changed:
                await of.commit()
        await rename_tree(self.fs.backend, self.fs.ns.dir_prefix(src), self.fs.ns.dir_prefix(dst),
                          call=self.fs._call, timeout=self.fs.opts.transfer_timeout)

