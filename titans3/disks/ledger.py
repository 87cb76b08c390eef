"""The disk ledger: every physical drive this host has claimed, and its fate.

Theory of operation
-------------------
``<state>/disks.json`` complements the roster (roster.py: ring slot -> drive
id).  The ledger is keyed by drive id and says what the host knows about the
disk carrying it: the filesystem, where it was last seen (device path, loop
backing file, serial -- hints for the operator; the disk itself is found by its
filesystem UUID), and its state:

``active``   serves a ring slot.
``spare``    formatted, labelled, waiting; the first choice for a failed slot.
``failed``   the disk manager gave up on it (removed, I/O errors, offline).
``drained``  the operator took it out of service (``titanctl disk drain``).

``failed`` and ``drained`` are final for the disk manager: a disk that comes
back after failing is not trusted automatically (it flapped once); the
operator decides with ``titanctl disk claim --force`` (wipe and reuse) or
``titanctl disk forget``.  Written atomically on every change.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path

from titans3.core.crypto import write_atomic

LEDGER_FILE = "disks.json"


class DiskState(StrEnum):
    ACTIVE = "active"
    SPARE = "spare"
    FAILED = "failed"
    DRAINED = "drained"


@dataclass(slots=True)
class DiskRecord:
    drive_id: str
    state: DiskState
    fs: str
    slot: str = ""  # ring slot while active ("" for spares)
    device: str = ""  # last device path seen
    backing_file: str = ""
    serial: str = ""
    size: int = 0
    claimed: str = ""
    changed: str = ""
    reason: str = ""  # why it failed / was drained

    @classmethod
    def from_json(cls, d: dict[str, object]) -> DiskRecord:
        known = {f for f in cls.__slots__}  # type: ignore[attr-defined]
        rec = cls(**{k: v for k, v in d.items() if k in known})  # type: ignore[arg-type]
        rec.state = DiskState(rec.state)
        return rec


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass
class Ledger:
    path: Path
    records: dict[str, DiskRecord] = field(default_factory=dict)

    @classmethod
    def load(cls, state_dir: Path) -> Ledger:
        path = state_dir / LEDGER_FILE
        led = cls(path)
        if path.exists():
            doc = json.loads(path.read_text())
            for d in doc.get("disks", []):
                rec = DiskRecord.from_json(d)
                led.records[rec.drive_id] = rec
        return led

    def get(self, drive_id: str) -> DiskRecord | None:
        return self.records.get(drive_id)

    def add(self, rec: DiskRecord) -> DiskRecord:
        rec.claimed = rec.claimed or _now()
        rec.changed = _now()
        self.records[rec.drive_id] = rec
        self.save()
        return rec

    def set_state(self, drive_id: str, state: DiskState, *, reason: str = "", slot: str | None = None) -> None:
        rec = self.records[drive_id]
        rec.state = state
        rec.reason = reason
        if slot is not None:
            rec.slot = slot
        rec.changed = _now()
        self.save()

    def forget(self, drive_id: str) -> None:
        self.records.pop(drive_id, None)
        self.save()

    def in_state(self, state: DiskState) -> list[DiskRecord]:
        return [r for r in self.records.values() if r.state is state]

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        doc = {"format": 1, "disks": [asdict(r) for r in self.records.values()]}
        write_atomic(self.path, json.dumps(doc, indent=1).encode(), mode=0o644)
