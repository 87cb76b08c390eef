"""Operator calls on the disk manager: list, claim, drain, replace, forget.

Theory of operation
-------------------
These are what ``titanctl disk ...`` reaches through the admin API.  Each runs
under the manager's lock (no reconcile pass interleaves), re-probes the
devices it touches, and answers with a small JSON-able dict or a typed error
(disks/errors.py) that says what to do next.  The rules:

* ``claim DEVICE`` formats a blank disk into the first slot without a working
  drive, or as a *spare* (formatted, labelled, unmounted) when every slot is
  served.  A disk with a partition table or filesystem -- or a TitanS3 drive
  this host does not run -- only with ``force``, which wipes it; a mounted or
  held disk never.
* ``drain DRIVE|DEVICE`` takes a serving drive out cleanly: failed on
  purpose (state ``drained``), closed, unmounted -- safe to pull -- and its
  slot is refilled from a spare or blank disk when one is there.  It does not
  copy data first: the slot runs on parity until the refill is done, exactly
  as after a failure (there is one drive per slot; see docs).
* ``replace OLD NEW`` checks NEW first, then drains OLD (if still serving)
  and puts NEW into its slot.
* ``forget DRIVE`` drops a drive that is not serving (failed, drained, spare)
  from the ledger; a disk carrying it is then a foreign TitanS3 disk.

The allow-list limits what ``auto`` takes by itself; an operator naming a
device is explicit consent and is not limited by it.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Protocol

import trio

from titans3.disks import fs, probe
from titans3.disks.errors import DiskRefused, NoSuchDisk
from titans3.disks.ledger import DiskRecord, DiskState
from titans3.disks.policy import DeviceInfo, Verdict, classify

if TYPE_CHECKING:
    from pathlib import Path

    from titans3.disks.ledger import Ledger
    from titans3.disks.roster import Roster
    from titans3.drive.local import LocalDrive


class DiskMechanism(Protocol):
    """What the operator's calls use of the disk manager (``disks/manager.py``):
    its drives and ledger, and the steps its reconcile loop is made of."""

    drives: list[LocalDrive]
    ledger: Ledger
    _lock: trio.Lock

    def slot_name(self, index: int) -> str: ...
    def mountpoint(self, drive_id: str) -> Path: ...
    async def scan(self) -> list[DeviceInfo]: ...
    def _roster(self) -> Roster | None: ...
    def _active(self, index: int) -> bool: ...
    async def _fail(self, index: int, reason: str, state: DiskState = ...) -> None: ...
    async def _fill(self, index: int, devices: list[DeviceInfo] | None) -> Any: ...
    async def _bring_up(self, dev: DeviceInfo, drive_id: str, fstype: str, *,
                        spare: bool = False) -> LocalDrive: ...
    async def _format(self, path: str, *, force: bool) -> tuple[DeviceInfo, str, str]: ...
    def _record(self, dev: DeviceInfo, drive_id: str, fstype: str, state: DiskState,
                slot: str) -> DiskRecord: ...
    async def _format_and_open(self, dev: DeviceInfo, slot: str, *, force: bool) -> LocalDrive: ...
    def _install(self, index: int, drive: LocalDrive) -> Any: ...


class DiskOperator:
    """The operator's calls, over the manager's mechanism (held, not inherited)."""

    def __init__(self, disks: DiskMechanism) -> None:
        self.disks = disks

    # ------------------------------------------------------------ list
    async def list_disks(self) -> list[dict[str, Any]]:
        """One row per slot, spare, retired drive and in-scope device."""
        devices = await self.disks.scan()
        by_id = {d.drive_id: d for d in devices if d.drive_id}
        roster = self.disks._roster()
        rows: list[dict[str, Any]] = []
        shown: set[str] = set()
        for i, drive in enumerate(self.disks.drives):
            rec = self.disks.ledger.get(drive.drive_id)
            dev = by_id.get(drive.drive_id)
            st = await drive.stat()
            state = st.state.value
            slot = self.disks.slot_name(i)
            if rec is not None and rec.state is DiskState.DRAINED:
                state = "drained"
            elif state == "online" and roster is not None and slot in roster.slots and roster.slots[slot].healing:
                state = "healing"
            rows.append(_row(dev, rec, drive.drive_id, slot, state, st.capacity, st.used, st.errors))
            shown.add(drive.drive_id)
        for rec in self.disks.ledger.records.values():
            if rec.drive_id not in shown:
                dev = by_id.get(rec.drive_id)
                rows.append(_row(dev, rec, rec.drive_id, "", rec.state.value, dev.size if dev else None,
                                 None, None))
                shown.add(rec.drive_id)
        for dev in devices:
            if dev.drive_id and dev.drive_id in shown:
                continue
            verdict, reason = classify(dev)
            state = {Verdict.BLANK: "available", Verdict.TITANS3: "foreign"}.get(verdict, "ignored")
            rows.append({"device": dev.path, "drive_id": dev.drive_id or "", "slot": "", "state": state,
                         "capacity": dev.size, "used": None, "errors": None,
                         "fs": dev.filesystem.name if dev.filesystem else "",
                         "backing_file": dev.backing_file, "reason": reason})
        return rows

    # ------------------------------------------------------------ helpers
    async def _probe_one(self, device: str) -> DeviceInfo:
        def run() -> DeviceInfo:
            info, props = probe.device_info(device)
            return probe.probe(info, props)

        try:
            return await trio.to_thread.run_sync(run)
        except probe.ProbeError as e:
            raise NoSuchDisk(str(e)) from None

    def _empty_slot(self) -> int | None:
        return next((i for i in range(len(self.disks.drives)) if not self.disks._active(i)), None)

    async def _drive_id_for(self, target: str) -> str:
        """A drive id from an id, a unique id prefix (>= 4 digits) or a device path."""
        if target.startswith("/"):
            # The disk itself is the truth; the ledger's last-seen path is the
            # fallback for a disk that is gone (its node may even be reused).
            try:
                info: DeviceInfo | None = await self._probe_one(target)
            except NoSuchDisk:
                info = None
            if info is not None and info.drive_id:
                return info.drive_id
            real = os.path.realpath(target)
            for rec in self.disks.ledger.records.values():
                if rec.device in (target, real) and rec.state is DiskState.ACTIVE:
                    return rec.drive_id
            raise NoSuchDisk(f"{target} carries no drive of this host")
        ids = {d.drive_id for d in self.disks.drives} | set(self.disks.ledger.records)
        if target in ids:
            return target
        matches = [i for i in ids if len(target) >= 4 and i.startswith(target)]
        if len(matches) == 1:
            return matches[0]
        raise NoSuchDisk(f"no drive {target!r}" + (" (ambiguous prefix)" if matches else ""))

    def _slot_of(self, drive_id: str) -> int | None:
        return next((i for i, d in enumerate(self.disks.drives) if d.drive_id == drive_id), None)

    def _check_new(self, info: DeviceInfo, *, force: bool) -> DiskRecord | None:
        """Refuse a device that must not be formatted; returns its spare record if it is one."""
        verdict, reason = classify(info)
        if verdict is Verdict.TITANS3:
            assert info.drive_id
            rec = self.disks.ledger.get(info.drive_id)
            if rec is not None and rec.state is DiskState.ACTIVE:
                raise DiskRefused(f"{info.path} already serves slot {rec.slot} as drive {rec.drive_id}")
            if rec is not None and rec.state is DiskState.SPARE:
                return rec
            if not force:
                what = f"{rec.state.value} ({rec.reason})" if rec else "not known to this host"
                raise DiskRefused(
                    f"{info.path} carries TitanS3 drive {info.drive_id}, {what}; "
                    f"`titanctl disk claim --force {info.path}` wipes it and claims it as a new drive"
                )
            return None
        if verdict in (Verdict.IN_USE, Verdict.UNUSABLE):
            raise DiskRefused(f"{info.path}: {reason}")
        if verdict is Verdict.HAS_DATA and not force:
            raise DiskRefused(
                f"{info.path} {reason}; `titanctl disk claim --force {info.path}` erases it"
            )
        return None

    async def _take(self, info: DeviceInfo, index: int | None, *, force: bool) -> dict[str, Any]:
        """Put a checked device into slot ``index`` (or make it a spare if None)."""
        spare = self._check_new(info, force=force)
        if info.drive_id and spare is None and self.disks.ledger.get(info.drive_id) is not None:
            self.disks.ledger.forget(info.drive_id)  # being wiped: its old identity is gone
        if spare is not None:
            if index is None:
                raise DiskRefused(f"{info.path} is already spare drive {spare.drive_id}")
            drive = await self.disks._bring_up(info, spare.drive_id, spare.fs, spare=True)
            self.disks.ledger.set_state(spare.drive_id, DiskState.ACTIVE, slot=self.disks.slot_name(index))
        elif index is None:
            new, drive_id, fstype = await self.disks._format(info.path, force=force)
            self.disks.ledger.add(self.disks._record(new, drive_id, fstype, DiskState.SPARE, ""))
            return {"device": info.path, "drive_id": drive_id, "slot": "", "state": "spare",
                    "message": f"{info.path} is now spare drive {drive_id} (every slot is served)"}
        else:
            drive = await self.disks._format_and_open(info, self.disks.slot_name(index), force=force)
        ev = self.disks._install(index, drive)
        return {"device": info.path, "drive_id": ev.drive_id, "slot": ev.slot,
                "state": "healing" if ev.healing else "online", "replaced": ev.old_drive_id,
                "message": f"{info.path} is drive {ev.drive_id} in slot {ev.slot}"
                + (" (healing: refill pending)" if ev.healing else "")}

    # ------------------------------------------------------------ calls
    async def claim(self, device: str, *, force: bool = False) -> dict[str, Any]:
        async with self.disks._lock:
            info = await self._probe_one(device)
            return await self._take(info, self._empty_slot(), force=force)

    async def drain(self, target: str) -> dict[str, Any]:
        async with self.disks._lock:
            drive_id = await self._drive_id_for(target)
            index = self._slot_of(drive_id)
            if index is None:
                rec = self.disks.ledger.get(drive_id)
                state = rec.state.value if rec else "unknown"
                raise DiskRefused(f"drive {drive_id} serves no slot (it is {state}); "
                                  "`titanctl disk forget` removes it")
            if not self.disks._active(index):
                raise DiskRefused(f"drive {drive_id} in slot {self.disks.slot_name(index)} is not serving")
            await self.disks._fail(index, "drained by the operator", DiskState.DRAINED)
            out: dict[str, Any] = {"drive_id": drive_id, "slot": self.disks.slot_name(index), "state": "drained",
                                   "message": f"drive {drive_id} is out of service and unmounted; "
                                   "its disk can be pulled"}
            ev = await self.disks._fill(index, None)
            if ev is not None:
                out["replacement"] = ev.drive_id
                out["message"] += f"; drive {ev.drive_id} took slot {ev.slot}"
            return out

    async def replace(self, old: str, new: str, *, force: bool = False) -> dict[str, Any]:
        async with self.disks._lock:
            drive_id = await self._drive_id_for(old)
            index = self._slot_of(drive_id)
            if index is None:
                raise DiskRefused(f"drive {drive_id} serves no slot; `titanctl disk claim` {new} instead")
            info = await self._probe_one(new)
            self._check_new(info, force=force)  # before anything changes
            if self.disks._active(index):
                await self.disks._fail(index, f"replaced by {new}", DiskState.DRAINED)
            return await self._take(info, index, force=force)

    async def forget(self, target: str) -> dict[str, Any]:
        async with self.disks._lock:
            drive_id = await self._drive_id_for(target)
            rec = self.disks.ledger.get(drive_id)
            if rec is None:
                raise NoSuchDisk(f"drive {drive_id} is not in this host's ledger")
            index = self._slot_of(drive_id)
            if rec.state is DiskState.ACTIVE and index is not None and self.disks._active(index):
                raise DiskRefused(f"drive {drive_id} serves slot {rec.slot}; `titanctl disk drain` it first")
            self.disks.ledger.forget(drive_id)
            mp = self.disks.mountpoint(drive_id)
            await trio.to_thread.run_sync(fs.unmount, mp)
            await trio.to_thread.run_sync(fs.remove_mountpoint, mp)
            return {"drive_id": drive_id, "state": "forgotten",
                    "message": f"drive {drive_id} is forgotten"
                    + (f" (slot {self.disks.slot_name(index)} waits for a replacement)" if index is not None else "")}


def _row(dev: DeviceInfo | None, rec: DiskRecord | None, drive_id: str, slot: str, state: str,
         capacity: int | None, used: int | None, errors: int | None) -> dict[str, Any]:
    return {
        "device": dev.path if dev else (rec.device if rec else ""),
        "drive_id": drive_id,
        "slot": slot,
        "state": state,
        "capacity": capacity if capacity else (dev.size if dev else None),
        "used": used if capacity else None,
        "errors": errors,
        "fs": rec.fs if rec else "",
        "backing_file": dev.backing_file if dev else (rec.backing_file if rec else ""),
        "reason": rec.reason if rec and state not in ("online", "healing") else "",
    }
