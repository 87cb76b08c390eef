"""Directory listings: pages of entries in key order, resumable by cookie.

Theory of operation
-------------------
A directory ``d`` is the key prefix ``d/`` listed with delimiter ``/``:
objects are files (or symlinks), common prefixes are subdirectories.  Items
come in *key* order, which is not name order (``x-1`` sorts before the
directory ``x/``), so a cookie records an item's key suffix (``x`` for a
file, ``x/`` for a directory) and a listing resumes with ``start-after``
that key.  Whatever a server returns at or before the resume point (S3 may
repeat the common prefix it resumed inside) is dropped, so no entry is ever
reported twice.

Hidden here: the directory's own marker, names that cannot be paths
(:mod:`titans3.fuse.paths`), s3fs's legacy ``name_$folder$`` markers, and a
directory ``x/`` when a file ``x`` was already reported (the file wins; a
handle that did not list from the start asks the backend instead).

One open directory (:class:`DirHandle`) keeps only the items of the last
page the kernel has not accepted yet, the names it handed out (in the cookie
log) and -- up to ``remember`` entries -- a name -> kind map that becomes the
directory's *snapshot* for negative lookups once the listing completes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from titans3.fuse.backend import Backend, Entry
from titans3.fuse.cookies import CookieLog
from titans3.fuse.paths import valid_component

LEGACY_DIR_SUFFIX = "_$folder$"


@dataclass(slots=True)
class Item:
    rest: str  # key suffix below the directory: "name" or "name/"
    entry: Entry | None  # the object, for files; None for a common prefix

    @property
    def name(self) -> str:
        return self.rest[:-1] if self.rest.endswith("/") else self.rest

    @property
    def is_dir(self) -> bool:
        return self.rest.endswith("/")


@dataclass
class DirHandle:
    path: str
    prefix: str  # the directory's key prefix
    remember: int = 10_000
    cookies: CookieLog = field(default_factory=CookieLog)
    pending: list[tuple[Item, Any]] = field(default_factory=list)  # (item, its attributes)
    pending_after: str | None = None  # the resume point ``pending`` follows
    more_after: str | None = None  # where the backend listing continues after pending
    exhausted: bool = False
    end_after: str | None = None  # the resume point after the last item, once listed
    seen_files: set[str] = field(default_factory=set)
    from_start: bool = False
    names: dict[str, str] | None = field(default_factory=dict)

    def close(self) -> None:
        self.cookies.close()


def items_of(prefix: str, entries: list[Entry], prefixes: list[str], after: str) -> list[Item]:
    """One page's visible items in key order, strictly after ``after``."""
    out: list[Item] = []
    for e in entries:
        rest = e.key[len(prefix):]
        if not e.key.startswith(prefix) or not rest or rest <= after or "/" in rest:
            continue
        if rest.endswith(LEGACY_DIR_SUFFIX) or not valid_component(rest):
            continue
        out.append(Item(rest, e))
    for p in prefixes:
        rest = p[len(prefix):]
        if not p.startswith(prefix) or rest <= after or not valid_component(rest[:-1]):
            continue
        out.append(Item(rest, None))
    out.sort(key=lambda i: i.rest)
    return out


async def next_items(backend: Backend, dh: DirHandle, after: str, *, limit: int = 1000
                     ) -> tuple[list[Item], bool]:
    """Items after ``after`` (a key suffix, "" for the start): one page's worth,
    and whether the listing has more."""
    cursor = after
    while True:
        page = await backend.list(dh.prefix, delimiter="/",
                                  start_after=dh.prefix + cursor if cursor else "", limit=limit)
        items = items_of(dh.prefix, page.entries, page.prefixes, after)
        if items or not page.truncated or page.next_after is None:
            return items, page.truncated and page.next_after is not None
        cursor = page.next_after[len(dh.prefix):]  # a page of hidden keys: keep going
