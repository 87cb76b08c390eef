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
has not committed yet are in it (they exist here).
"""

from __future__ import annotations

from titans3.fuse import meta as M
from titans3.fuse.fsapi import FsServices, Snapshot
from titans3.fuse.listing import items_of

RELIST_MAX = 256  # names a stale snapshot may have had for a lookup to list its directory again


async def relist(fs: FsServices, dir_path: str, dir_prefix: str) -> Snapshot | None:
    """A fresh snapshot of the directory, or None (too large to list in one page)."""
    page = await fs._call(f"LIST {dir_prefix}", fs.backend.list, dir_prefix, delimiter="/",
                          limit=RELIST_MAX * 4)
    if page.truncated:
        return None
    names: dict[str, str] = {}
    for item in items_of(dir_prefix, page.entries, page.prefixes, ""):
        if item.is_dir:
            names.setdefault(item.name, M.DIR)  # a file of the same name wins
        else:
            names[item.name] = M.FILE
    for of in fs.files.values():
        k = of.key_of()
        if k is not None and k.startswith(dir_prefix) and "/" not in k[len(dir_prefix):]:
            names[k[len(dir_prefix):]] = M.FILE
    return Snapshot(names, fs._now() + fs.opts.entry_timeout)
