"""The volume catalogue: one system record per volume, and the errors of volume operations.

Theory of operation
-------------------
A :class:`VolumeRecord` says everything that is not data: size, extent size,
the snapshots (a name and the version id that cuts them), the parent of a
clone (a volume id and a snapshot's version id), the access secret for TLS
listeners, and the write log's bookkeeping -- the *checkpoint* (every log
record at or below it is folded into extents) and the writer *epoch* (bumped
by every attach, the high bits of every log sequence number).  Records live
in the ``nbd-volumes`` system table (:mod:`titans3.nbd.register`), keyed by
name; every change is a compare-and-set, so two admins (or two hosts) never
fork a volume's record.  Volume data is keyed by the volume's *id*, never its
name: a volume deleted and created again starts empty.

Errors are S3 errors with their own codes so the admin API and ``titanctl``
show them as one line (``NoSuchVolume: ...``); the NBD server maps them to
option errors.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from titans3.core.errors import S3Error
from titans3.nbd.register import QuorumRegister

TABLE = "nbd-volumes"
BLOCK = 4096  # the unit of the write log and the in-memory index
DEFAULT_EXTENT = 4 << 20
MAX_SIZE = 1 << 50  # 1 PiB: the log's offsets and the NBD size field have room to spare

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


class VolumeError(S3Error):
    code = "InvalidVolumeRequest"
    status = 400
    default_message = "The volume request is not valid."


class NoSuchVolume(VolumeError):
    code = "NoSuchVolume"
    status = 404
    default_message = "No volume has that name."


class NoSuchSnapshot(VolumeError):
    code = "NoSuchSnapshot"
    status = 404
    default_message = "The volume has no snapshot of that name."


class VolumeExists(VolumeError):
    code = "VolumeAlreadyExists"
    status = 409
    default_message = "A volume (or snapshot) of that name already exists."


class VolumeInUse(VolumeError):
    code = "VolumeInUse"
    status = 409
    default_message = "The volume is attached for writing elsewhere."


def check_name(name: str, what: str = "volume") -> str:
    if not _NAME.match(name):
        raise VolumeError(f"{what} name {name!r}: use 1-63 letters, digits, '.', '_' or '-', "
                          "starting with a letter or digit")
    return name


def split_export(export: str) -> tuple[str, str | None]:
    """``"vol"`` -> ``("vol", None)``; ``"vol@snap"`` -> ``("vol", "snap")``."""
    name, at, snap = export.partition("@")
    return name, (snap if at else None)


@dataclass(frozen=True, slots=True)
class Snapshot:
    name: str
    vid: str  # the version cut: extent versions at or below it
    created_ns: int


@dataclass(frozen=True, slots=True)
class VolumeRecord:
    name: str
    id: str
    size: int
    extent_size: int = DEFAULT_EXTENT
    created_ns: int = 0
    snapshots: tuple[Snapshot, ...] = ()
    parent_id: str = ""  # a clone's origin: volume id ...
    parent_name: str = ""
    parent_snapshot: str = ""
    parent_vid: str = ""  # ... and the snapshot's cut
    secret: str = ""  # required in the export name on TLS listeners (NAME/SECRET)
    checkpoint: int = 0  # log records at or below this LSN are folded into extents
    epoch: int = 0  # bumped by every attach; LSN = epoch << 40 | counter
    sealed: dict[int, int] = field(default_factory=dict)  # older epoch -> last LSN that counts
    vid: str = ""

    def snapshot(self, name: str) -> Snapshot:
        for s in self.snapshots:
            if s.name == name:
                return s
        raise NoSuchSnapshot(f"volume {self.name} has no snapshot {name!r}")

    @property
    def prefix(self) -> str:
        return f"v/{self.id}/"

    def to_doc(self) -> dict[str, Any]:
        return {
            "name": self.name, "id": self.id, "size": self.size, "extent": self.extent_size,
            "t": self.created_ns, "snaps": [[s.name, s.vid, s.created_ns] for s in self.snapshots],
            "pid": self.parent_id, "pname": self.parent_name, "psnap": self.parent_snapshot,
            "pvid": self.parent_vid, "secret": self.secret, "ckpt": self.checkpoint,
            "epoch": self.epoch, "sealed": {str(k): v for k, v in self.sealed.items()},
        }

    @classmethod
    def from_doc(cls, d: dict[str, Any]) -> VolumeRecord:
        return cls(
            d["name"], d["id"], int(d["size"]), int(d.get("extent", DEFAULT_EXTENT)), int(d.get("t", 0)),
            tuple(Snapshot(str(n), str(v), int(t)) for n, v, t in d.get("snaps", ())),
            d.get("pid", ""), d.get("pname", ""), d.get("psnap", ""), d.get("pvid", ""),
            d.get("secret", ""), int(d.get("ckpt", 0)), int(d.get("epoch", 0)),
            {int(k): int(v) for k, v in (d.get("sealed") or {}).items()}, d.get("vid", ""),
        )


def check_size(size: int, extent_size: int = DEFAULT_EXTENT) -> None:
    if size <= 0 or size % BLOCK:
        raise VolumeError(f"size {size}: must be a positive multiple of {BLOCK} bytes")
    if size > MAX_SIZE:
        raise VolumeError(f"size {size}: at most {MAX_SIZE} bytes")
    if extent_size < 64 << 10 or extent_size > 64 << 20 or extent_size & (extent_size - 1):
        raise VolumeError(f"extent size {extent_size}: a power of two from 64 KiB to 64 MiB")


class Catalog:
    """Volume records in the ``nbd-volumes`` system table."""

    def __init__(self, register: QuorumRegister) -> None:
        self.register = register

    async def get(self, name: str) -> VolumeRecord:
        doc = await self.register.get(name)
        if doc is None:
            raise NoSuchVolume(f"no volume named {name!r}")
        return VolumeRecord.from_doc(doc)

    async def find(self, name: str) -> VolumeRecord | None:
        doc = await self.register.get(name)
        return None if doc is None else VolumeRecord.from_doc(doc)

    async def list(self) -> list[VolumeRecord]:
        return sorted((VolumeRecord.from_doc(d) for d in (await self.register.list()).values()),
                      key=lambda r: r.name)

    async def create(self, name: str, size: int, *, extent_size: int = DEFAULT_EXTENT, secret: str = "",
                     parent: VolumeRecord | None = None, parent_snapshot: Snapshot | None = None) -> VolumeRecord:
        check_name(name)
        check_size(size, extent_size)
        rec = VolumeRecord(name, secrets.token_hex(8), size, extent_size, time.time_ns(), secret=secret)
        if parent is not None and parent_snapshot is not None:
            rec = replace(rec, parent_id=parent.id, parent_name=parent.name,
                          parent_snapshot=parent_snapshot.name, parent_vid=parent_snapshot.vid)

        def change(cur: dict[str, Any] | None) -> dict[str, Any]:
            if cur is not None:
                raise VolumeExists(f"a volume named {name!r} already exists")
            return rec.to_doc()

        return VolumeRecord.from_doc(await self.register.update(name, change))  # type: ignore[arg-type]

    async def update(self, name: str, change: Callable[[VolumeRecord], VolumeRecord | None]) -> VolumeRecord:
        """Apply ``change`` to the current record (compare-and-set, retried);
        ``change`` returns None to leave it, or raises to refuse."""

        def doc_change(cur: dict[str, Any] | None) -> dict[str, Any] | None:
            if cur is None:
                raise NoSuchVolume(f"no volume named {name!r}")
            new = change(VolumeRecord.from_doc(cur))
            return None if new is None else new.to_doc()

        return VolumeRecord.from_doc(await self.register.update(name, doc_change))  # type: ignore[arg-type]

    async def remove(self, name: str, volume_id: str) -> None:
        def change(cur: dict[str, Any] | None) -> dict[str, Any] | None:
            if cur is None or cur.get("id") != volume_id:
                return None
            return {"deleted": True, "name": name}

        await self.register.update(name, change)
