"""Volume operations for the admin API and ``titanctl volume``.

Theory of operation
-------------------
Each operation is a few steps on the catalogue and the volume's objects,
refused up front when it cannot be done safely:

* **create** -- a record; no objects (a new volume is all holes).
* **resize** -- grow only (shrinking would cut off a filesystem's tail);
  done on the host the volume is attached to, if any.
* **snapshot** -- through the writable volume (attached here, or attached
  for the operation): everything acknowledged so far is folded into extents,
  then a version id newer than all of them becomes the snapshot's cut.
  Nothing is copied.
* **clone** -- a new record naming a snapshot as its parent; nothing copied.
* **rollback** -- with no client attached: every extent changed since the
  snapshot gets a new version equal to its state at the cut (copied from the
  old version, or zeroed / made to inherit again).  Snapshots stay.
* **delete** (of a snapshot, a volume) -- refused while a clone depends on
  it; a volume also while it is attached anywhere.  A snapshot's versions
  are pruned, a volume's objects all deleted, then its record.

Long steps log progress every few thousand objects.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, replace
from typing import Any, TypeVar

from titans3.core.errors import ServiceUnavailable
from titans3.nbd.backend import BackendError
from titans3.nbd.catalog import (
    DEFAULT_EXTENT,
    NoSuchSnapshot,
    VolumeError,
    VolumeExists,
    VolumeInUse,
    VolumeRecord,
    check_name,
    check_size,
)
from titans3.nbd.extents import HOLE, KIND, extent_key, prune_versions, sources_at
from titans3.nbd.service import VolumeService

log = logging.getLogger(__name__)
PROGRESS_EVERY = 2000

_Op = TypeVar("_Op", bound=Callable[..., Awaitable[dict[str, Any]]])


def _admin(fn: _Op) -> _Op:
    """An operation the admin API calls: a cluster that cannot serve it now
    (:class:`BackendError`) is ``ServiceUnavailable`` (503), which every front
    renders; the typed volume refusals pass as they are."""

    @functools.wraps(fn)
    async def op(*args: Any, **kwargs: Any) -> dict[str, Any]:
        try:
            return await fn(*args, **kwargs)
        except BackendError as e:
            raise ServiceUnavailable(f"The cluster cannot do this now: {e}") from e

    return op  # type: ignore[return-value]


def record_json(rec: VolumeRecord, *, allocated: int | None = None, attached: str = "") -> dict[str, Any]:
    doc: dict[str, Any] = {
        "name": rec.name, "id": rec.id, "size": rec.size, "extent_size": rec.extent_size,
        "created_ns": rec.created_ns, "attached": attached,
        "snapshots": [{"name": s.name, "created_ns": s.created_ns} for s in rec.snapshots],
        "parent": f"{rec.parent_name}@{rec.parent_snapshot}" if rec.parent_id else "",
        "secret": bool(rec.secret), "epoch": rec.epoch,
    }
    if allocated is not None:
        doc["allocated"] = allocated
    return doc


class VolumeOperations:
    def __init__(self, service: VolumeService) -> None:
        self.service = service
        self.catalog = service.catalog
        self.backend = service.backend

    async def _allocated(self, rec: VolumeRecord) -> int:
        att = self.service.attached.get(rec.name)
        if att is not None:
            return att.volume.view.own_allocated()
        return sum(v.size for v in await self.backend.keys(rec.prefix + "e/"))

    @_admin
    async def create(self, name: str, size: int, *, extent_size: int = DEFAULT_EXTENT,
                     secret: str = "") -> dict[str, Any]:
        await self.service.ready()
        rec = await self.catalog.create(name, size, extent_size=extent_size, secret=secret)
        log.info("volume %s created: %d bytes, %d-byte extents", name, size, extent_size)
        return record_json(rec, allocated=0)

    @_admin
    async def list(self) -> dict[str, Any]:
        rows = await self.service.rows()
        return {"volumes": [asdict(r) for r in rows]}

    @_admin
    async def info(self, name: str) -> dict[str, Any]:
        rec = await self.catalog.get(name)
        holder = await self.service.leases.holder(name) or ""
        doc = record_json(rec, allocated=await self._allocated(rec), attached=holder)
        att = self.service.attached.get(name)
        if att is not None:
            doc["statistics"] = asdict(att.volume.statistics())
        doc["log_segments"] = len(await self.backend.keys(rec.prefix + "log/"))
        doc["clones"] = [r.name for r in await self.catalog.list() if r.parent_id == rec.id]
        return doc

    @_admin
    async def resize(self, name: str, size: int) -> dict[str, Any]:
        rec = await self.catalog.get(name)
        check_size(size, rec.extent_size)
        if size < rec.size:
            raise VolumeError(f"volume {name} is {rec.size} bytes: volumes only grow (shrinking would "
                              "cut off what a filesystem keeps at its end)")
        holder = await self.service.leases.holder(name)
        if holder is not None and name not in self.service.attached:
            raise VolumeInUse(f"volume {name} is attached on {holder}: resize it there")
        rec = await self.catalog.update(name, lambda r: replace(r, size=size) if r.size < size else None)
        att = self.service.attached.get(name)
        if att is not None:
            att.volume.resize(rec)
        log.info("volume %s resized to %d bytes (new connections see the new size)", name, size)
        return record_json(rec)

    @_admin
    async def snapshot(self, name: str, snap: str) -> dict[str, Any]:
        check_name(snap, "snapshot")
        rec = await self.catalog.get(name)
        if any(s.name == snap for s in rec.snapshots):
            raise VolumeExists(f"volume {name} already has a snapshot {snap!r}")
        async with self.service.writable(name) as volume:
            rec = await volume.snapshot(snap)
        log.info("volume %s: snapshot %s taken", name, snap)
        return record_json(rec)

    @_admin
    async def snapshots(self, name: str) -> dict[str, Any]:
        rec = await self.catalog.get(name)
        return {"volume": name, "snapshots": [{"name": s.name, "created_ns": s.created_ns}
                                              for s in rec.snapshots]}

    @_admin
    async def delete_snapshot(self, name: str, snap: str) -> dict[str, Any]:
        rec = await self.catalog.get(name)
        s = rec.snapshot(snap)
        clones = [r.name for r in await self.catalog.list() if r.parent_id == rec.id and r.parent_vid == s.vid]
        if clones:
            raise VolumeInUse(f"snapshot {name}@{snap} is the parent of {', '.join(clones)}: delete them first")
        if (name, snap) in self.service._snapshots:
            raise VolumeInUse(f"snapshot {name}@{snap} is attached by an NBD client here")

        def drop(r: VolumeRecord) -> VolumeRecord:
            r.snapshot(snap)
            return replace(r, snapshots=tuple(x for x in r.snapshots if x.name != snap))

        rec = await self.catalog.update(name, drop)
        att = self.service.attached.get(name)
        if att is not None:
            att.volume.record = replace(att.volume.record, snapshots=rec.snapshots, vid=rec.vid)
        pruned = await prune_versions(self.backend, rec.prefix, [x.vid for x in rec.snapshots])
        log.info("volume %s: snapshot %s deleted, %d extent versions freed", name, snap, pruned)
        return {"volume": name, "deleted": snap, "versions_freed": pruned}

    @_admin
    async def clone(self, source: str, snap: str, new: str) -> dict[str, Any]:
        check_name(new)
        rec = await self.catalog.get(source)
        s = rec.snapshot(snap)
        clone = await self.catalog.create(new, rec.size, extent_size=rec.extent_size, secret=rec.secret,
                                          parent=rec, parent_snapshot=s)
        log.info("volume %s cloned from %s@%s", new, source, snap)
        return record_json(clone, allocated=0)

    @_admin
    async def rollback(self, name: str, snap: str) -> dict[str, Any]:
        rec = await self.catalog.get(name)
        s = rec.snapshot(snap)
        changed = 0
        async with self.service.writable(name, exclusive=True) as volume:
            await volume.close()  # everything in extents first
            then = await sources_at(self.backend, rec.prefix, s.vid)
            now = volume.view.own
            t0 = time.monotonic()
            for i, ext in enumerate(sorted(set(then) | set(now))):
                old, cur = then.get(ext), now.get(ext)
                if cur is not None and old is not None and cur.vid == old.vid:
                    continue
                if cur is None and (old is None or old.kind == "marker"):
                    continue
                key = extent_key(rec.prefix, ext)
                if old is None or old.kind == "marker":
                    if cur is not None and cur.kind != "marker":
                        vid = await self.backend.delete(key) or ""
                        now[ext] = replace(cur, vid=vid, size=0, kind="marker")
                elif old.kind == HOLE:
                    vid = await self.backend.put(key, b"", meta={KIND: HOLE})
                    now[ext] = replace(old, vid=vid)
                else:
                    data = await self.backend.get(old.key, version=old.vid)
                    if data is None:
                        raise NoSuchSnapshot(f"snapshot {name}@{snap}: extent {ext} version is gone")
                    vid = await self.backend.put(key, data)
                    now[ext] = replace(old, vid=vid)
                changed += 1
                if i and i % PROGRESS_EVERY == 0:
                    log.info("rollback of %s to %s: %d extents looked at, %d restored (%.0fs)",
                             name, snap, i, changed, time.monotonic() - t0)
        await prune_versions(self.backend, rec.prefix, [x.vid for x in rec.snapshots])
        log.info("volume %s rolled back to %s: %d extents restored", name, snap, changed)
        return {"volume": name, "snapshot": snap, "extents_restored": changed}

    @_admin
    async def delete(self, name: str) -> dict[str, Any]:
        rec = await self.catalog.get(name)
        # Clones first: a dependency outlives any attachment, so it is the
        # refusal worth naming (detaching would not make the delete possible).
        clones = [r.name for r in await self.catalog.list() if r.parent_id == rec.id]
        if clones:
            raise VolumeInUse(f"volume {name} is the parent of {', '.join(clones)}: delete them first")
        holder = await self.service.leases.holder(name)
        if holder is not None or name in self.service.attached:
            raise VolumeInUse(f"volume {name} is attached on {holder or 'this host'}: detach it first")
        versions = await self.backend.versions(rec.prefix)
        for i, v in enumerate(versions):
            await self.backend.delete(v.key, version=v.version_id)
            if i and i % PROGRESS_EVERY == 0:
                log.info("deleting volume %s: %d of %d objects", name, i, len(versions))
        await self.catalog.remove(name, rec.id)
        log.info("volume %s deleted (%d objects)", name, len(versions))
        return {"deleted": name, "objects": len(versions)}
