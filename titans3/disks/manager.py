"""The disk manager: raw disks in, ring slots filled with LocalDrives out (DESIGN §10).

Theory of operation
-------------------
The ring places data on *slots* (roster.py); the manager decides which
physical disk serves each slot, and keeps that true while disks fail and are
replaced.  State lives in two files: the roster (slot -> drive id, healing
flags) and the ledger (drive id -> disk and its fate, ledger.py).  A disk is
found by its filesystem UUID (= drive id), never by its device name, which
changes across reboots.

Start-up (:meth:`DiskManager.start`, before anything serves):

* a host that has run before gets its slots back in roster order: each slot's
  drive is mounted (``<state>/disks/<drive id>``) and opened; a slot whose
  disk is missing, failed or cannot be mounted gets a *stand-in*: a
  LocalDrive never opened and marked FAILED, so the store sees a dead drive
  in the right position and placement does not move;
* a first start takes, in ``--disks`` order or by device name, every
  in-scope disk that is already a TitanS3 drive (an operating system
  reinstall keeps its data) or is blank (formatted now).  No disk: refuse to
  start.

Run time (:meth:`DiskManager.run`): uevents (watch.py) and a timer wake
:meth:`reconcile`, which is *level-triggered* -- it re-reads the truth, so a
missed event only delays it:

1. every active drive is checked: its filesystem must still be mounted at its
   mount point from the same block device, the device must still exist, and
   policy.FailureWatch must not have seen too many I/O errors or too long an
   outage.  Otherwise the drive is *failed*: marked FAILED (the store stops
   using it at once), closed once its in-flight calls finish (which lets the
   kernel let go of a lazily unmounted filesystem), unmounted, recorded in
   the ledger, and ``on_failed`` hooks run (repair);
2. every slot without a working drive is filled: first from a spare, else
   from a blank in-scope disk (``auto`` or a ``--disks`` list), formatted
   now; with every slot served, a blank in-scope disk becomes a spare
   (spares.py).  The new drive takes the slot; the roster marks it *healing* (a blank
   drive's "no record" answers must not count in reads) and ``on_replaced``
   hooks run -- the refill worker fills the drive and clears the flag (it
   also finds healing slots at start-up through the roster / store.healing,
   where no hook runs).

Operator calls (titanctl disk ...) take the same lock as reconcile, so one
thing changes the disks at a time.  Nothing is ever formatted that the
re-probe right before mkfs does not show blank (or, with ``force``, not in
use); see policy.py for the rules.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from titans3.core.errors import ConfigError
from titans3.disks import fs, probe
from titans3.disks.errors import DiskOperationFailed, DiskRefused
from titans3.disks.ledger import DiskRecord, DiskState, Ledger
from titans3.disks.operations import DiskOperator
from titans3.disks.policy import (
    DeviceInfo,
    FailureWatch,
    Verdict,
    classify,
    in_scope,
    may_format,
    parse_globs,
)
from titans3.disks.roster import Roster
from titans3.disks.spares import take_blank_disks_as_spares
from titans3.disks.watch import watch_block_events
from titans3.drive.local import LocalDrive
from titans3.drive.lock import DriveInUse
from titans3.drive.protocol import DriveState

log = logging.getLogger(__name__)

PRESENCE_INTERVAL = 2.0  # s between checks of the active drives
RESCAN_INTERVAL = 30.0  # s between full device scans while a slot waits for a disk
DEBOUNCE = 0.3  # s to let a burst of uevents settle
CLOSE_WAIT = 30.0  # s a failed drive's in-flight calls get before it is closed


@dataclass(frozen=True, slots=True)
class DriveFailed:
    slot: str
    index: int  # position in host.drives / the store's local drives
    drive_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class DriveReplaced:
    slot: str
    index: int
    drive_id: str
    old_drive_id: str
    healing: bool


@dataclass(frozen=True, slots=True)
class DiskManagerStatistics:
    mode: str  # "auto" or "list"
    slots: int
    active: int
    failed: int
    healing: int
    spares: int
    events: int
    scans: int
    failures: int
    replacements: int


def _natural(path: str) -> list[Any]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path)]


class DiskManager:
    def __init__(
        self,
        state_dir: Path,
        host_id: str,
        *,
        auto: bool,
        devices: list[str] | None = None,
        allow: list[str] | None = None,
        threads: int = 4,
        presence_interval: float = PRESENCE_INTERVAL,
        rescan_interval: float = RESCAN_INTERVAL,
        failure_watch: Callable[[], FailureWatch] = FailureWatch,
    ) -> None:
        # Absolute and symlink-free: mount points are compared with the
        # kernel's mount table, which only knows real paths.
        self.state_dir = Path(state_dir).resolve()
        self.host_id = host_id
        self.auto = auto
        explicit = list(devices or [])
        self.explicit = explicit + [os.path.realpath(p) for p in explicit if os.path.realpath(p) not in explicit]
        self._order = [os.path.realpath(p) for p in explicit]
        self.globs = list(allow or [])
        self.threads = threads
        self.presence_interval = presence_interval
        self.rescan_interval = rescan_interval
        self._new_watch = failure_watch
        self.ledger = Ledger(self.state_dir / "disks.json")
        self.drives: list[LocalDrive] = []  # by slot index; the daemon's host.drives
        self.on_failed: list[Callable[[DriveFailed], Any]] = []
        self.on_replaced: list[Callable[[DriveReplaced], Any]] = []
        self._host: Any = None
        self._lock = trio.Lock()
        self._kick = trio.Event()
        self._watches: dict[str, FailureWatch] = {}
        self._devnums: dict[str, tuple[int, int]] = {}  # drive id -> block device it is mounted from
        self._bad: dict[tuple[str, int, int, int, str], str] = {}  # disks that failed to format
        self._events = self._scans = self._failures = self._replacements = 0
        self.operator = DiskOperator(self)  # the operator's calls (disks/operations.py)

    # The operator's calls (``titanctl disk ...`` through the admin API).
    async def list_disks(self) -> list[dict[str, Any]]:
        return await self.operator.list_disks()

    async def claim(self, device: str, *, force: bool = False) -> dict[str, Any]:
        return await self.operator.claim(device, force=force)

    async def drain(self, target: str) -> dict[str, Any]:
        return await self.operator.drain(target)

    async def replace(self, old: str, new: str, *, force: bool = False) -> dict[str, Any]:
        return await self.operator.replace(old, new, force=force)

    async def forget(self, target: str) -> dict[str, Any]:
        return await self.operator.forget(target)

    @classmethod
    def from_config(cls, cfg: Any, host_id: str) -> DiskManager:
        spec = cfg.disks.strip()
        auto = spec == "auto"
        devices = [] if auto else [d.strip() for d in spec.split(",") if d.strip()]
        return cls(cfg.state_path, host_id, auto=auto, devices=devices,
                   allow=parse_globs(cfg.disk_allow), threads=cfg.drive_threads)

    # ------------------------------------------------------------ helpers
    def slot_name(self, index: int) -> str:
        return f"{self.host_id}/drive-{index}"

    def mountpoint(self, drive_id: str) -> Path:
        return self.state_dir / "disks" / drive_id

    def _roster(self) -> Roster | None:
        return getattr(self._host, "roster", None) if self._host is not None else None

    def _active(self, index: int) -> bool:
        d = self.drives[index]
        rec = self.ledger.get(d.drive_id)
        return rec is not None and rec.state is DiskState.ACTIVE and d.state is not DriveState.FAILED

    async def scan(self) -> list[DeviceInfo]:
        """Every in-scope device, probed (out-of-scope ones are never opened)."""
        self._scans += 1
        # A disk the operator claimed by name is ours even outside --disks /
        # --disk-allow; it is found again by the device path it was claimed on.
        claimed = {r.device for r in self.ledger.records.values()}
        return await trio.to_thread.run_sync(self._scan_sync, claimed)

    def _scan_sync(self, claimed: set[str]) -> list[DeviceInfo]:
        out = []
        for info, props in probe.enumerate_devices():
            ok, _ = in_scope(info, auto=self.auto, explicit=self.explicit, globs=self.globs)
            if ok or info.path in claimed:
                out.append(probe.probe(info, props))
        return out

    def _ordered(self, devices: list[DeviceInfo]) -> list[DeviceInfo]:
        if self._order:
            rank = {p: i for i, p in enumerate(self._order)}
            return sorted(devices, key=lambda d: rank.get(d.path, len(rank)))
        return sorted(devices, key=lambda d: _natural(d.path))

    def _stand_in(self, drive_id: str) -> LocalDrive:
        d = LocalDrive(self.mountpoint(drive_id), drive_id=drive_id, create=False, threads=self.threads)
        d.mark_failed()
        return d

    # ------------------------------------------------------------ start-up
    async def start(self) -> list[LocalDrive]:
        """Claim, mount and open this host's disks; returns the drives by slot."""
        self.ledger = await trio.to_thread.run_sync(Ledger.load, self.state_dir)
        roster = Roster(self.state_dir)
        devices = await self.scan()
        by_id = {d.drive_id: d for d in devices if d.drive_id}
        names = sorted(roster.slots, key=lambda s: int(s.rsplit("-", 1)[1])) if roster.known else []
        if names and not self.ledger.records:
            raise ConfigError(
                f"disks: this host's drives are directories ({roster.path} names them); "
                "disk mode cannot take over a host that ran on directories"
            )
        if names:
            for i, slot in enumerate(names):
                want = roster.slots[slot].drive_id
                self.drives.append(await self._start_slot(i, want, by_id.get(want)))
        else:
            await self._first_start(devices)
        return self.drives

    async def _start_slot(self, index: int, drive_id: str, dev: DeviceInfo | None) -> LocalDrive:
        rec = self.ledger.get(drive_id)
        if rec is None or rec.state is not DiskState.ACTIVE:
            log.warning("slot %s: drive %s is %s; waiting for a replacement", self.slot_name(index),
                        drive_id, rec.state.value if rec else "unknown")
            return self._stand_in(drive_id)
        if dev is None:
            self.ledger.set_state(drive_id, DiskState.FAILED, reason="missing at start-up")
            log.error("slot %s: the disk of drive %s is missing; marked failed",
                      self.slot_name(index), drive_id)
            return self._stand_in(drive_id)
        try:
            return await self._bring_up(dev, drive_id, rec.fs)
        except DiskOperationFailed as e:
            self.ledger.set_state(drive_id, DiskState.FAILED, reason=str(e.message))
            log.error("slot %s: %s; marked failed", self.slot_name(index), e.message)
            return self._stand_in(drive_id)

    async def _first_start(self, devices: list[DeviceInfo]) -> None:
        found = {d.path for d in devices}
        for path in self._order:
            if path not in found:
                log.warning("--disks names %s, which is not a block device here", path)
        reasons: list[str] = []
        for dev in self._ordered(devices):
            verdict, reason = classify(dev)
            rec = self.ledger.get(dev.drive_id or "")
            reusable = rec is None or rec.state in (DiskState.ACTIVE, DiskState.SPARE)
            if not (verdict is Verdict.BLANK or (verdict is Verdict.TITANS3 and reusable)):
                log.info("not claiming %s: %s", dev.path, reason)
                reasons.append(f"{dev.path}: {reason}")
                continue
            slot = self.slot_name(len(self.drives))
            try:
                if verdict is Verdict.TITANS3:
                    assert dev.drive_id
                    fstype = dev.filesystem.name if dev.filesystem else "xfs"
                    drive = await self._bring_up(dev, dev.drive_id, fstype)
                    self.ledger.add(self._record(dev, dev.drive_id, fstype, DiskState.ACTIVE, slot))
                    log.info("slot %s: adopted TitanS3 drive %s on %s", slot, dev.drive_id, dev.path)
                else:
                    drive = await self._format_and_open(dev, slot, force=False)
            except (DiskRefused, DiskOperationFailed) as e:
                log.error("not using %s: %s", dev.path, e.message)
                reasons.append(f"{dev.path}: {e.message}")
                continue
            self.drives.append(drive)
        if not self.drives:
            raise ConfigError(
                f"disks: no disk qualifies (blank, or already a TitanS3 drive); {len(devices)} in scope"
                + (": " + "; ".join(reasons[:8]) if reasons else "")
            )

    def attach(self, host: Any) -> None:
        """Hand over the daemon's Host (``drives`` is this manager's list,
        ``store``, ``roster``): replacements then go live in the store."""
        self._host = host

    # ------------------------------------------------------------ disk work
    def _record(self, dev: DeviceInfo, drive_id: str, fstype: str, state: DiskState, slot: str) -> DiskRecord:
        return DiskRecord(drive_id, state, fstype, slot=slot, device=dev.path,
                          backing_file=dev.backing_file, serial=dev.serial, size=dev.size)

    async def _bring_up(self, dev: DeviceInfo, drive_id: str, fstype: str, *, spare: bool = False) -> LocalDrive:
        """Mount (unless already mounted at its mount point) and open a TitanS3 drive.
        A spare's filesystem is still empty: its drive identity is written now."""
        mp = self.mountpoint(drive_id)
        cur = await trio.to_thread.run_sync(probe.mounted_device, mp)
        if cur is None:
            if dev.mountpoints:
                raise DiskOperationFailed(f"{dev.path} is mounted on {dev.mountpoints[0]}, not {mp}")
            try:
                await trio.to_thread.run_sync(fs.mount, dev.path, mp, fstype)
            except fs.FormatError as e:
                raise DiskOperationFailed(f"cannot mount {dev.path}: {e}") from None
        elif cur != (dev.major, dev.minor):
            raise DiskOperationFailed(f"{mp} has another filesystem mounted on it")
        drive = LocalDrive(mp, drive_id=drive_id, create=spare, threads=self.threads)
        try:
            await drive.open()
        except DriveInUse:
            raise  # another daemon has it mounted and open: never unmount its disk
        except Exception as e:  # noqa: BLE001 -- any failure to open means "not usable"
            await trio.to_thread.run_sync(fs.unmount, mp)
            raise DiskOperationFailed(f"drive {drive_id} on {dev.path} does not open: {e}") from None
        self._track(drive, (dev.major, dev.minor))
        return drive

    def _format_sync(self, path: str, drive_id: str, force: bool) -> tuple[DeviceInfo, str]:
        """Re-probe right before formatting (the scan may be seconds old), then mkfs."""
        info, props = probe.device_info(path)
        info = probe.probe(info, props)
        verdict, reason = classify(info)
        if not may_format(verdict, force=force):
            raise DiskRefused(f"{path}: {reason}")
        try:
            with probe.open_exclusive(path):
                pass
        except probe.ProbeError as e:
            raise DiskRefused(str(e)) from None
        fstype = fs.choose_fs(info.size)
        try:
            if force and verdict is not Verdict.BLANK:
                fs.wipe(path)
            fs.make_filesystem(path, drive_id, fstype, force=force)
        except fs.FormatError as e:
            raise DiskOperationFailed(str(e)) from None
        return info, fstype

    async def _format(self, path: str, *, force: bool) -> tuple[DeviceInfo, str, str]:
        drive_id = uuid.uuid4().hex
        info, fstype = await trio.to_thread.run_sync(self._format_sync, path, drive_id, force)
        log.info("formatted %s as %s for drive %s", path, fstype, drive_id)
        return info, drive_id, fstype

    async def _format_and_open(self, dev: DeviceInfo, slot: str, *, force: bool) -> LocalDrive:
        info, drive_id, fstype = await self._format(dev.path, force=force)
        drive = await self._open_new(info, drive_id, fstype)
        self.ledger.add(self._record(info, drive_id, fstype, DiskState.ACTIVE, slot))
        return drive

    async def _open_new(self, info: DeviceInfo, drive_id: str, fstype: str) -> LocalDrive:
        mp = self.mountpoint(drive_id)
        try:
            await trio.to_thread.run_sync(fs.mount, info.path, mp, fstype)
        except fs.FormatError as e:
            raise DiskOperationFailed(f"cannot mount the new filesystem on {info.path}: {e}") from None
        drive = LocalDrive(mp, drive_id=drive_id, create=True, threads=self.threads)
        try:
            await drive.open()
        except DriveInUse:
            raise
        except Exception as e:  # noqa: BLE001
            await trio.to_thread.run_sync(fs.unmount, mp)
            raise DiskOperationFailed(f"the new drive on {info.path} does not open: {e}") from None
        self._track(drive, (info.major, info.minor))
        return drive

    def _track(self, drive: LocalDrive, devnum: tuple[int, int]) -> None:
        """Watch a drive that runs from block device ``devnum``."""
        self._devnums[drive.drive_id] = devnum
        self._watches[drive.drive_id] = self._new_watch()

    async def _release(self, drive: LocalDrive) -> None:
        """Close a failed drive once its in-flight calls are done, then unmount it."""
        with trio.move_on_after(CLOSE_WAIT):
            # LocalDrive counts its thread-run calls; closing LMDB under one is unsafe.
            while getattr(drive, "_inflight", 0) or getattr(drive, "_abandoned", 0):
                await trio.sleep(0.05)
        try:
            await drive.close()
        except Exception as e:  # noqa: BLE001 -- a dead disk may fail its close too
            log.warning("closing failed drive %s: %s", drive.drive_id, e)
        drive.mark_failed()  # close() leaves OFFLINE; the verdict stands
        mp = self.mountpoint(drive.drive_id)
        try:
            await trio.to_thread.run_sync(fs.unmount, mp)
        except fs.FormatError as e:
            log.warning("unmounting %s: %s", mp, e)
        self._devnums.pop(drive.drive_id, None)
        self._watches.pop(drive.drive_id, None)

    # ------------------------------------------------------------ slots
    async def _fail(self, index: int, reason: str, state: DiskState = DiskState.FAILED) -> None:
        drive = self.drives[index]
        drive.mark_failed()
        if self.ledger.get(drive.drive_id) is not None:
            self.ledger.set_state(drive.drive_id, state, reason=reason)
        self._failures += 1
        log.error("slot %s: drive %s %s (%s)", self.slot_name(index), drive.drive_id,
                  "drained" if state is DiskState.DRAINED else "failed", reason)
        await self._release(drive)
        self._notify(self.on_failed, DriveFailed(self.slot_name(index), index, drive.drive_id, reason))

    def _install(self, index: int, drive: LocalDrive) -> DriveReplaced:
        """Put ``drive`` into slot ``index``, live: the host's list, the store,
        the roster (which decides healing) and the hooks."""
        old = self.drives[index]
        self.drives[index] = drive
        slot = self.slot_name(index)
        healing = True
        host = self._host
        if host is not None:
            roster = self._roster()
            if roster is not None:
                healing = roster.observe(slot, str(drive.root), drive.drive_id).healing
                roster.save()
            store = getattr(host, "store", None)
            if store is not None:
                replace = getattr(store, "replace_drive", None)
                if replace is not None:
                    replace(index, drive)
                else:
                    store.drives[index] = drive
                (store.healing.add if healing else store.healing.discard)(index)
            # The refill worker polls store.healing; telling it saves the wait.
            refill = getattr(host, "workers", {}).get("refill")
            if healing and refill is not None and hasattr(refill, "start"):
                refill.start(index)
        self._replacements += 1
        event = DriveReplaced(slot, index, drive.drive_id, old.drive_id, healing)
        log.warning("slot %s: drive %s replaces %s%s", slot, drive.drive_id, old.drive_id,
                    " (healing: refill pending)" if healing else "")
        self._notify(self.on_replaced, event)
        return event

    def _notify(self, hooks: list[Callable[[Any], Any]], event: Any) -> None:
        for hook in list(hooks):
            try:
                hook(event)
            except Exception:  # noqa: BLE001 -- a subscriber's bug must not stop disk handling
                log.exception("disk hook %r failed", hook)

    async def _fill(self, index: int, devices: list[DeviceInfo] | None) -> DriveReplaced | None:
        """Put a spare or a blank in-scope disk into an empty slot, if there is one."""
        slot = self.slot_name(index)
        if devices is None:
            devices = await self.scan()
        by_id = {d.drive_id: d for d in devices if d.drive_id}
        for rec in self.ledger.in_state(DiskState.SPARE):
            dev = by_id.get(rec.drive_id)
            if dev is None:
                continue
            try:
                drive = await self._bring_up(dev, rec.drive_id, rec.fs, spare=True)
            except DiskOperationFailed as e:
                log.error("spare drive %s on %s is unusable: %s", rec.drive_id, dev.path, e.message)
                self.ledger.set_state(rec.drive_id, DiskState.FAILED, reason=str(e.message))
                continue
            self.ledger.set_state(rec.drive_id, DiskState.ACTIVE, slot=slot)
            return self._install(index, drive)
        for dev in self._ordered(devices):
            # A disk that failed to format is not retried until it changes (a
            # bad blank disk must not be mkfs'd on every pass).
            key = (dev.path, dev.major, dev.minor, dev.size, dev.backing_file)
            if key in self._bad or classify(dev)[0] is not Verdict.BLANK:
                continue
            try:
                drive = await self._format_and_open(dev, slot, force=False)
            except (DiskRefused, DiskOperationFailed) as e:
                log.warning("slot %s: could not use %s: %s", slot, dev.path, e.message)
                self._bad[key] = str(e.message)
                continue
            return self._install(index, drive)
        return None

    # ------------------------------------------------------------ run time
    def _on_uevent(self, action: str, node: str) -> None:
        self._events += 1
        log.debug("uevent %s %s", action, node)
        self._kick.set()

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch_block_events, self._on_uevent)
            task_status.started()
            next_scan = 0.0
            first = True
            while True:
                with trio.move_on_after(self.presence_interval):
                    await self._kick.wait()
                kicked = self._kick.is_set()
                rescan = kicked or trio.current_time() >= next_scan
                if kicked:
                    await trio.sleep(DEBOUNCE)
                    self._kick = trio.Event()
                try:
                    # Spares only when a disk may have come (uevent, start-up): it probes every device.
                    await self.reconcile(rescan=rescan, spares=kicked or first)
                    first = False
                except Exception:  # noqa: BLE001 -- the manager must outlive one bad pass
                    log.exception("disk reconcile failed")
                if rescan:
                    next_scan = trio.current_time() + self.rescan_interval

    async def reconcile(self, *, rescan: bool = True, spares: bool = True) -> None:
        """Fail drives whose disk is gone or failing; fill empty slots; with
        ``spares``, make new blank disks spares when every slot is served."""
        async with self._lock:
            mounts = await trio.to_thread.run_sync(probe.mount_table)
            now = time.monotonic()
            for i, drive in enumerate(self.drives):
                rec = self.ledger.get(drive.drive_id)
                if rec is None or rec.state is not DiskState.ACTIVE:
                    continue
                reason = self._gone(drive, mounts) or self._failing(drive, now)
                if reason:
                    await self._fail(i, reason)
            empty = [i for i in range(len(self.drives)) if not self._active(i)]
            if empty and rescan:
                devices = await self.scan()
                for i in empty:
                    if await self._fill(i, devices) is None:
                        break
                    devices = await self.scan()
            elif rescan and spares and self.drives:  # every slot served: a new blank disk is a spare (spares.py)
                await take_blank_disks_as_spares(self, await self.scan())

    def _gone(self, drive: LocalDrive, mounts: dict[tuple[int, int], list[str]]) -> str | None:
        if drive.state is DriveState.FAILED:
            return "marked failed"
        devnum = self._devnums.get(drive.drive_id)
        if devnum is None:
            return None
        if not probe.device_present(*devnum):
            return "disk removed"
        if str(self.mountpoint(drive.drive_id)) not in mounts.get(devnum, []):
            return "filesystem no longer mounted"
        return None

    def _failing(self, drive: LocalDrive, now: float) -> str | None:
        watch = self._watches.get(drive.drive_id)
        if watch is None:
            return None
        st = drive.statistics()
        return watch.observe(now, online=drive.state is DriveState.ONLINE,
                             io_errors=max(0, st.errors - st.quarantined))

    def statistics(self) -> DiskManagerStatistics:
        roster = self._roster()
        healing = sum(1 for s in roster.slots.values() if s.healing) if roster is not None else 0
        return DiskManagerStatistics(
            mode="auto" if self.auto else "list",
            slots=len(self.drives),
            active=sum(1 for i in range(len(self.drives)) if self._active(i)),
            failed=sum(1 for i in range(len(self.drives)) if not self._active(i)),
            healing=healing,
            spares=len(self.ledger.in_state(DiskState.SPARE)),
            events=self._events,
            scans=self._scans,
            failures=self._failures,
            replacements=self._replacements,
        )


async def open_disks(cfg: Any, host_id: str) -> tuple[DiskManager, list[LocalDrive], Any]:
    """The daemon's entry point for ``--disks``: the manager, its drives by
    slot, and ``cfg`` with ``drives`` set to the number of slots."""
    manager = DiskManager.from_config(cfg, host_id)
    drives = await manager.start()
    cfg = dataclasses.replace(cfg, drives=len(drives))
    ec = cfg.ec_scheme()
    if ec and ec[0] + ec[1] > len(drives) and not cfg.peers:
        raise ConfigError(f"ec: {cfg.ec} needs {ec[0] + ec[1]} drives, found {len(drives)} disks")
    return manager, drives, cfg
