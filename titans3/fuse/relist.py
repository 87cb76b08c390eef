"""Renewing an expired directory snapshot with one listing (negative lookups).

Theory of operation
-------------------
A complete listing of a directory (readdir, or ``mkdir`` of an empty one) is
its *snapshot*: for ``entry_timeout`` a name not in it does not exist, so
creating files there costs no lookup request.  ``tar x`` and ``cp -r`` fill
a new directory for longer than that, and each further create would cost a
HEAD and a directory probe (two object-layer calls) to learn the name is
free.  Instead, when a lookup misses in a directory whose snapshot expired
and that snapshot was small (``RELIST_MAX`` names), the directory is listed
again -- one call -- and the new snapshot answers this lookup and the next
ones for another ``entry_timeout``.  A change made through S3 is still seen
within ``entry_timeout``: the snapshot is a listing made after it.

Only a listing that fits in one page becomes a snapshot; files this mount
has not committed yet are in it (they exist here).  Where the listing carries
metadata (the daemon's backend), its files' attributes are fresh too: the
lookup that listed, and the lookups of the siblings this mount already knows
(``stat`` of every file after the attribute timeout), need no HEAD.
"""

from __future__ import annotations

from typing import Any

from titans3.fuse import meta as M
from titans3.fuse.backend import Entry
from titans3.fuse.fsapi import FsServices, Snapshot
from titans3.fuse.inodes import Node
from titans3.fuse.listing import items_of
from titans3.fuse.paths import join, split

RELIST_MAX = 256  # names a stale snapshot may have had for a lookup to list its directory again
UNKNOWN: Any = object()  # the listing did not answer (too large, or no metadata for the name)


async def lookup_by_listing(fs: FsServices, path: str) -> Node | None:
    """``path`` found by listing its directory again: its node (fresh), None
    (it does not exist), or ``UNKNOWN`` (ask the backend for it)."""
    parent, name = split(path)
    got = await relist(fs, parent, fs.ns.dir_prefix(parent))
    if got is None:
        return UNKNOWN  # type: ignore[no-any-return]
    snap, listed = got
    fs._snapshots[parent] = snap
    if name not in snap.names:
        if fs.inodes.at(path) is not None:
            fs.inodes.detach(path)
        return None
    for n, e in listed.items():  # this name, and the siblings this mount knows
        if n == name or fs.inodes.at(join(parent, n)) is not None:
            fs._learn(join(parent, n), fs._attrs_of(e.key, e), e.meta)
    return fs.inodes.at(path) if name in listed else UNKNOWN  # type: ignore[no-any-return]


async def relist(fs: FsServices, dir_path: str, dir_prefix: str
                 ) -> tuple[Snapshot, dict[str, Entry]] | None:
    """A fresh snapshot of the directory and its files that came with metadata
    (name -> entry), or None (too large to list in one page)."""
    page = await fs._call(f"LIST {dir_prefix}", fs.backend.list, dir_prefix, delimiter="/",
                          limit=RELIST_MAX * 4)
    if page.truncated:
        return None
    names: dict[str, str] = {}
    listed: dict[str, Entry] = {}
    for item in items_of(dir_prefix, page.entries, page.prefixes, ""):
        if item.is_dir:
            names.setdefault(item.name, M.DIR)  # a file of the same name wins
        else:
            names[item.name] = M.FILE
            if item.entry is not None and item.entry.meta is not None:
                listed[item.name] = item.entry
    for of in fs.files.values():
        k = of.key_of()
        if k is not None and k.startswith(dir_prefix) and "/" not in k[len(dir_prefix):]:
            names[k[len(dir_prefix):]] = M.FILE
            listed.pop(k[len(dir_prefix):], None)  # its open state speaks for it
    return Snapshot(names, fs._now() + fs.opts.entry_timeout), listed
