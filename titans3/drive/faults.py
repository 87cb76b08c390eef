"""Injected disk faults for tests: delays and EIO on one drive's data plane.

Theory of operation
-------------------
Loop devices cannot be made slow or failing on a kernel without
device-mapper, so a test drive can carry its own faults: with
``fault_injection = true`` (``TITANS3_FAULT_INJECTION=1``; off by default,
and the daemon logs a warning when it is on), each drive reads
``<root>/titans3-faults.json``::

    {"read_delay": 2.0, "write_delay": 0.5, "read_eio": true, "write_eio": false}

and before every fragment read (``read``) or fragment write / metadata
commit (``write``) it sleeps the delay *in the worker thread* -- where a
slow disk would block -- and then raises ``OSError(EIO)`` if asked, which
the drive handles exactly as an EIO from the kernel.  Nothing else is
faked: the drive, its health handling and everything above it run as in
production.  The file is re-read when its mtime changes (checked at most
every ``RECHECK`` seconds), so a test turns faults on and off while the
daemon runs; removing it clears them.

:class:`FaultPlan` is the pure part (a document in, a decision out);
:class:`FaultInjector` adds the file and the sleeping.
"""

from __future__ import annotations

import errno
import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path

FAULT_FILE = "titans3-faults.json"
RECHECK = 0.2  # s between stats of the fault file
KINDS = ("read", "write")


@dataclass(frozen=True, slots=True)
class FaultPlan:
    read_delay: float = 0.0
    write_delay: float = 0.0
    read_eio: bool = False
    write_eio: bool = False

    @classmethod
    def parse(cls, raw: str) -> FaultPlan:
        """The plan a fault file holds; unknown keys or bad values raise ValueError."""
        doc = json.loads(raw) if raw.strip() else {}
        if not isinstance(doc, dict):
            raise ValueError("a fault file holds one JSON object")
        unknown = set(doc) - {"read_delay", "write_delay", "read_eio", "write_eio"}
        if unknown:
            raise ValueError(f"unknown fault keys {sorted(unknown)}")
        plan = cls(float(doc.get("read_delay", 0)), float(doc.get("write_delay", 0)),
                   bool(doc.get("read_eio", False)), bool(doc.get("write_eio", False)))
        if plan.read_delay < 0 or plan.write_delay < 0:
            raise ValueError("fault delays must be >= 0")
        return plan

    def decide(self, kind: str) -> tuple[float, bool]:
        """(seconds to stall, whether to fail with EIO) for one ``kind`` operation."""
        if kind == "read":
            return self.read_delay, self.read_eio
        if kind == "write":
            return self.write_delay, self.write_eio
        raise ValueError(f"fault kind {kind!r} is not one of {KINDS}")


class FaultInjector:
    """The faults of one drive, from ``<root>/titans3-faults.json``."""

    def __init__(self, root: Path) -> None:
        self.path = Path(root) / FAULT_FILE
        self._plan = FaultPlan()
        self._mtime: float | None = None
        self._checked = 0.0
        self._lock = threading.Lock()
        self.injected = 0  # faults applied (delays and EIOs)

    def plan(self) -> FaultPlan:
        now = time.monotonic()
        with self._lock:
            if now - self._checked < RECHECK:
                return self._plan
            self._checked = now
            try:
                mtime = self.path.stat().st_mtime
            except OSError:
                self._plan, self._mtime = FaultPlan(), None
                return self._plan
            if mtime != self._mtime:
                try:
                    self._plan = FaultPlan.parse(self.path.read_text())
                except (OSError, ValueError):
                    self._plan = FaultPlan()  # half-written or bad: no faults, retry next time
                    return self._plan
                self._mtime = mtime
            return self._plan

    def apply(self, kind: str) -> None:
        """Stall and/or raise EIO for one ``kind`` operation (call from a worker thread)."""
        delay, eio = self.plan().decide(kind)
        if delay > 0:
            self.injected += 1
            time.sleep(delay)
        if eio:
            self.injected += 1
            raise OSError(errno.EIO, f"Input/output error (injected, {self.path.name})")
