"""A volume's extents as objects: where each extent's content comes from, and writing it.

Theory of operation
-------------------
Extent ``i`` of volume ``id`` is the object ``v/<id>/e/<i:012x>`` in the
volume bucket (versioned).  An extent is *absent* (no object, or a delete
marker), a *data* object (up to ``extent_size`` bytes; anything past its end
reads as zeroes), or a *hole* object (empty, ``nbd-kind: hole``: zeroes).
Absent means zeroes -- except in a clone, where it means "as the parent was
at the clone's snapshot", so a clone zeroes an extent its parent has with a
hole object.  Nothing is copied when a clone or a snapshot is made.

*Sources.*  :class:`ExtentView` maps each extent to a :class:`Source` (an
object key and version) or to zeroes: a writable volume from its keys'
current versions (listed once at attach, then kept up to date by its own
writes: it is the only writer), a snapshot from the newest version at or
below its cut, a clone's absent extent from its parent's view at the clone's
cut -- recursively, so a clone of a clone works.

*Versions.*  The bucket keeps every version until the volume prunes it:
after writing extent ``i``, the version it replaced is deleted unless a
snapshot still needs it (a version ``v`` followed by ``n`` is needed by every
snapshot cut ``T`` with ``v <= T < n``).  Deleting a snapshot prunes what it
alone held (:func:`prune_versions`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from titans3.nbd.backend import ObjectBackend, Version
from titans3.nbd.cache import ExtentCache

log = logging.getLogger(__name__)

KIND = "nbd-kind"
HOLE = "hole"


@dataclass(frozen=True, slots=True)
class Source:
    """One version of an extent object: ``data``, a ``hole`` or a delete ``marker``."""

    key: str
    vid: str
    size: int
    kind: str = "data"


def extent_key(prefix: str, index: int) -> str:
    return f"{prefix}e/{index:012x}"


def extent_index(key: str) -> int:
    return int(key.rsplit("/", 1)[1], 16)


def _source(v: Version) -> Source:
    if v.marker:
        return Source(v.key, v.version_id, 0, "marker")
    if v.meta.get(KIND) == HOLE:
        return Source(v.key, v.version_id, 0, HOLE)
    return Source(v.key, v.version_id, v.size)


def needed(vid: str, successor: str | None, cuts: Sequence[str]) -> bool:
    """Whether a snapshot cut sees version ``vid`` (replaced by ``successor``)."""
    return any(vid <= t and (successor is None or t < successor) for t in cuts)


async def sources_at(backend: ObjectBackend, prefix: str, cut: str | None) -> dict[int, Source]:
    """Extent -> its newest version (``cut`` None) or its newest version at
    or below ``cut``, for every extent that has one."""
    out: dict[int, Source] = {}
    for v in await backend.versions(prefix + "e/"):  # each key's versions newest first
        i = extent_index(v.key)
        if i not in out and (cut is None or v.version_id <= cut):
            out[i] = _source(v)
    return out


class ExtentView:
    """Where each extent of one volume (at one cut) reads from."""

    def __init__(self, backend: ObjectBackend, cache: ExtentCache, prefix: str, extent_size: int,
                 own: dict[int, Source], parent: ExtentView | None = None) -> None:
        self.backend = backend
        self.cache = cache
        self.prefix = prefix
        self.extent_size = extent_size
        self.own = own
        self.parent = parent

    def source(self, extent: int) -> Source | None:
        """The data object extent ``extent`` reads from, or None for zeroes."""
        s = self.own.get(extent)
        if s is None or s.kind == "marker":
            return self.parent.source(extent) if self.parent is not None else None
        return None if s.kind == HOLE else s

    def allocated(self, extent: int) -> bool:
        return self.source(extent) is not None

    def own_allocated(self) -> int:
        """Bytes of data objects this volume itself holds."""
        return sum(s.size for s in self.own.values() if s.kind == "data")

    async def read(self, extent: int) -> bytes | None:
        """The extent's bytes (possibly shorter than an extent: zeroes follow), or None for zeroes."""
        src = self.source(extent)
        if src is None or src.size == 0:
            return None

        async def fetch() -> bytes:
            data = await self.backend.get(src.key, version=src.vid)
            if data is None:  # pruned under us would be a bug; zeroes would be silent corruption
                raise LookupError(f"extent object {src.key} version {src.vid} is gone")
            return data

        return await self.cache.load((src.key, src.vid), fetch)

    def cached_bytes(self, extent: int) -> bytes | None:
        """The cached content of an allocated extent, or None (not cached)."""
        src = self.source(extent)
        if src is None or src.size == 0:
            return b""
        data = self.cache.get((src.key, src.vid))
        if data is not None:
            self.cache.hits += 1
        return data

    def cached(self, extent: int) -> bool:
        src = self.source(extent)
        return src is None or src.size == 0 or self.cache.get((src.key, src.vid)) is not None


class ExtentWriter:
    """Writes one writable volume's extents, keeping its view and pruning versions."""

    def __init__(self, view: ExtentView, cuts: Callable[[], Sequence[str]]) -> None:
        self.view = view
        self.backend = view.backend
        self.cuts = cuts
        self.puts = 0
        self.deletes = 0
        self.pruned = 0

    async def _prune(self, old: Source | None, new_vid: str) -> None:
        """Delete the version ``new_vid`` replaced unless a snapshot sees it."""
        if old is not None and not needed(old.vid, new_vid, self.cuts()):
            await self.backend.delete(old.key, version=old.vid)
            self.pruned += 1

    async def write(self, extent: int, data: bytes) -> None:
        key = extent_key(self.view.prefix, extent)
        old = self.view.own.get(extent)
        vid = await self.backend.put(key, data)
        self.puts += 1
        self.view.own[extent] = Source(key, vid, len(data))
        self.view.cache.put((key, vid), data)
        await self._prune(old, vid)

    async def zero(self, extent: int) -> None:
        """Extent ``extent`` reads as zeroes from now on: a hole object where a
        parent would otherwise show through, else a delete marker (never a
        versioned delete of the newest: an older version kept for a snapshot
        would come back)."""
        key = extent_key(self.view.prefix, extent)
        old = self.view.own.get(extent)
        if self.view.parent is not None and self.view.parent.allocated(extent):
            if old is not None and old.kind == HOLE:
                return
            vid = await self.backend.put(key, b"", meta={KIND: HOLE})
            self.puts += 1
            self.view.own[extent] = Source(key, vid, 0, HOLE)
        else:
            if old is None or old.kind != "data":
                return  # reads as zeroes already
            vid = await self.backend.delete(key) or ""
            self.deletes += 1
            self.view.own[extent] = Source(key, vid, 0, "marker")
        await self._prune(old, vid)


async def prune_versions(backend: ObjectBackend, prefix: str, cuts: Sequence[str]) -> int:
    """Delete every non-current extent version no snapshot cut sees; how many."""
    pruned = 0
    versions = await backend.versions(prefix + "e/")
    for i, v in enumerate(versions):
        if v.latest:
            continue
        newer = versions[i - 1] if i and versions[i - 1].key == v.key else None
        if newer is not None and not needed(v.version_id, newer.version_id, cuts):
            await backend.delete(v.key, version=v.version_id)
            pruned += 1
    return pruned
