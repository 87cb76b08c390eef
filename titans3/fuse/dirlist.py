"""readdir for the filesystem core: backend pages merged with local creates.

Theory of operation
-------------------
:class:`DirLister` serves ``opendir``/``readdir``/``releasedir`` for the
filesystem core that holds it (typed as :class:`~titans3.fuse.fsapi.FsServices`).  Each open directory is a
:class:`~titans3.fuse.listing.DirHandle`; a readdir call lists one backend page
after the cookie's key (:func:`~titans3.fuse.listing.next_items`), merges files
created here and not yet committed (key order), describes every item (the
listing's metadata, or HEADs in parallel where a backend's listing has none)
and reports items until the kernel's buffer is full.  What the kernel did not
take stays described in the handle for the next call; every accepted entry
counts as a lookup.  A listing that ran from the start to the end leaves a
:class:`Snapshot` of the names for negative lookups.
"""

from __future__ import annotations

from collections.abc import Callable

import trio

from titans3.fuse import meta as M
from titans3.fuse.backend import Entry
from titans3.fuse.fsapi import FsServices, Snapshot
from titans3.fuse.inodes import Node
from titans3.fuse.listing import DirHandle, Item, next_items
from titans3.fuse.paths import join


class DirLister:
    def __init__(self, fs: FsServices) -> None:
        self.fs = fs
        self.dirs: dict[int, DirHandle] = {}

    def opendir(self, ino: int) -> int:
        node = self.fs._dir(ino)
        assert node.path is not None
        fh = self.fs._new_fh()
        self.dirs[fh] = DirHandle(node.path, self.fs.ns.dir_prefix(node.path),
                                  remember=self.fs.opts.listing_remember)
        return fh

    def releasedir(self, fh: int) -> None:
        dh = self.dirs.pop(fh, None)
        if dh is not None:
            dh.close()

    async def readdir(self, fh: int, start: int,
                      emit: Callable[[str, Node, M.Attrs, int], bool]) -> None:
        """Report entries after cookie ``start`` through ``emit(name, node,
        attrs, cookie)`` until it returns False.  Accepted entries count as lookups."""
        dh = self.dirs[fh]
        after = "" if start == 0 else dh.cookies.name(start)
        if start == 0:
            dh.from_start, dh.seen_files, dh.names = True, set(), {}
            dh.pending, dh.pending_after = [], None
        if start != 0 and dh.exhausted and not dh.pending and after == dh.end_after:
            return  # the kernel asking past the end of a listing it has all of
        while True:
            if dh.pending and dh.pending_after == after:
                described, more = dh.pending, not dh.exhausted
            else:
                items, more = await self.fs._call(f"LIST {dh.prefix}", next_items, self.fs.backend,
                                               dh, after)
                items = self._merge_local(dh, items, after, more)
                dh.exhausted = not more
                described = list(zip(items, await self._describe(dh, items), strict=True))
            for i, (item, got) in enumerate(described):
                if got is None:
                    continue
                attrs, entry_meta = got
                path = join(dh.path, item.name)
                node = self.fs._learn(path, attrs, entry_meta)
                cookie = dh.cookies.cookie(item.rest)
                if not emit(item.name, node, self.fs.attrs(node), cookie):
                    dh.pending, dh.pending_after = described[i:], after
                    return
                self.fs.inodes.ref(node)
                after = item.rest
                if attrs.kind != M.DIR:
                    dh.seen_files.add(item.name)
                if dh.names is not None:
                    dh.names[item.name] = attrs.kind
                    if len(dh.names) > dh.remember:
                        dh.names = None
            dh.pending, dh.pending_after = [], None
            if not more:
                dh.end_after = after
                if dh.from_start and dh.names is not None:
                    self.fs._snapshots[dh.path] = Snapshot(dh.names,
                                                        self.fs._now() + self.fs.opts.entry_timeout)
                return

    def _merge_local(self, dh: DirHandle, items: list[Item], after: str, more: bool) -> list[Item]:
        """Files created here and not committed yet, in key order among ``items``."""
        local = [f for f in self.fs.files.values()
                 if f.base_etag is None and not f.unlinked and (k := f.key_of()) is not None
                 and k.startswith(dh.prefix) and "/" not in k[len(dh.prefix):]]
        if not local:
            return items
        upto = items[-1].rest if more and items else None
        have = {i.rest for i in items}
        extra = []
        for f in local:
            rest = (f.key_of() or "")[len(dh.prefix):]
            if rest > after and (upto is None or rest <= upto) and rest not in have:
                extra.append(Item(rest, None))
        return sorted(items + extra, key=lambda i: i.rest) if extra else items

    async def _dir_probe(self, prefix: str) -> tuple[Entry | None, bool]:
        """The marker of directory ``prefix`` (with metadata) if there is one,
        and whether any visible key is below it.  A directory without a marker
        exists only through its keys, and a server may report a common prefix
        whose keys are all gone: TitanS3 keeps a renamed object's source as a
        hidden anchor that its delimiter listing still rolls up.  One listing
        answers both where listings carry metadata (the marker sorts first)."""
        page = await self.fs._call(f"LIST {prefix}", self.fs.backend.list, prefix, delimiter="",
                                   limit=1)
        first = page.entries[0] if page.entries else None
        if first is None or first.key != prefix:
            return None, first is not None
        if first.meta is not None:
            return first, True
        return await self.fs._head_or_none(prefix), True

    async def _describe(self, dh: DirHandle, items: list[Item]
                        ) -> list[tuple[M.Attrs, dict[str, str] | None] | None]:
        """Attributes of each item (None: hidden); HEADs where the listing has no metadata."""
        out: list[tuple[M.Attrs, dict[str, str] | None] | None] = [None] * len(items)
        need: list[int] = []
        now = self.fs._now()
        files = {i.name for i in items if not i.is_dir}
        for i, item in enumerate(items):
            path = join(dh.path, item.name)
            node = self.fs.inodes.at(path)
            if item.is_dir and (item.name in dh.seen_files or item.name in files):
                continue  # a file of the same name is (or was) reported: the file wins
            if node is not None and (node.ino in self.fs.files or node.fresh_until > now) and (
                    (node.kind == M.DIR) == item.is_dir):
                out[i] = (self.fs.attrs(node), None)
            elif item.entry is not None and item.entry.meta is not None:
                out[i] = (self.fs._attrs_of(item.entry.key, item.entry), item.entry.meta)
            else:
                need.append(i)
        if need:
            limiter = trio.CapacityLimiter(self.fs.opts.head_concurrency)

            async def one(i: int) -> None:
                item = items[i]
                async with limiter:
                    if item.is_dir:
                        if not dh.from_start and await self.fs._head_or_none(
                                dh.prefix + item.name) is not None:
                            return  # hidden by a file (this handle did not see it listed)
                        m, below = await self._dir_probe(dh.prefix + item.rest)
                        if m is None and not below:
                            return  # a stale common prefix: nothing is below it
                        out[i] = ((self.fs._attrs_of(m.key, m), m.meta) if m is not None else
                                  (M.implicit_dir(self.fs.opts.defaults, self.fs.started_ns), None))
                    else:
                        e = await self.fs._head_or_none(dh.prefix + item.rest)
                        if e is not None:  # else: deleted since the listing
                            out[i] = (self.fs._attrs_of(e.key, e), e.meta)

            async with trio.open_nursery() as nursery:
                for i in need:
                    nursery.start_soon(one, i)
        return out

