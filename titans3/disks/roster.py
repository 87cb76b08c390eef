"""The host's drive roster: ring slot -> physical drive, and which need refilling.

Theory of operation
-------------------
The ring places fragments on *slots* (``<host>/drive-<i>``), not on physical
disks: when a disk is replaced, the new one takes the old one's slot, so
placement does not move (Swift's device ids work the same way).  Each physical
drive has its own identity (``titans3-drive.json``); the roster in
``<state>/drives.json`` remembers which identity filled each slot last time.

A slot whose drive identity changed -- the directory was removed or the disk
swapped while the daemon was down -- holds a *blank* drive.  Blank is not the
same as "the writes never reached it": the quorum rule counts a drive that
answers "no record" as evidence that a write failed, so a blank drive would
make acknowledged objects look like failed writes.  Such a drive is therefore
marked ``healing``: it takes new writes, but its answers do not count in
reads until repair has refilled it (the repair worker clears the flag).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

from titans3.core.crypto import write_atomic

log = logging.getLogger(__name__)

ROSTER_FILE = "drives.json"


@dataclass(slots=True)
class Slot:
    slot: str
    path: str
    drive_id: str
    healing: bool = False


class Roster:
    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / ROSTER_FILE
        self.slots: dict[str, Slot] = {}
        self.known = False  # a roster existed before this start
        if self.path.exists():
            doc = json.loads(self.path.read_text())
            self.slots = {s["slot"]: Slot(**s) for s in doc.get("slots", [])}
            self.known = True

    def observe(self, slot: str, path: str, drive_id: str) -> Slot:
        """Record the drive found in ``slot``; marks it healing if it replaced another."""
        cur = self.slots.get(slot)
        if cur is None:
            # A slot never seen before is new capacity, not a replacement --
            # except on a host that already holds data, where it is blank.
            new = Slot(slot, path, drive_id, healing=self.known)
        elif cur.drive_id != drive_id:
            log.warning(
                "%s: drive %s replaced %s (blank); it takes new writes and is ignored by reads "
                "until repair refills it", slot, drive_id, cur.drive_id,
            )
            new = Slot(slot, path, drive_id, healing=True)
        else:
            new = Slot(slot, path, drive_id, healing=cur.healing)
        self.slots[slot] = new
        return new

    def set_healing(self, slot: str, healing: bool) -> None:
        self.slots[slot].healing = healing
        self.save()

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        doc = {"format": 1, "slots": [asdict(s) for s in self.slots.values()]}
        write_atomic(self.path, json.dumps(doc, indent=1).encode(), mode=0o644)
