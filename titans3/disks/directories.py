"""Drain and replace for directory drives (a directory standing in for a disk).

Theory of operation
-------------------
Directory mode (``--data DIR --drives N``, the default) has no disk manager:
slot ``i`` is always the directory ``DIR/drive-i`` (the daemon opens exactly
those paths at start-up).  The operator's two actions mirror the disk
manager's, so the status page and ``titanctl disk drain|replace`` work the
same in both modes:

* **drain** takes a serving drive out: marked FAILED (the store stops using
  it at once), closed once its in-flight calls are done.  The directory is
  left as it is; the slot runs on parity until it is replaced.
* **fail** is the health loop's verdict (``drive_error_limit`` I/O errors
  within ``drive_error_window``; checksum mismatches are the scrubber's
  business and do not count): the drive is taken out as by drain.
* **replace** puts a *blank* directory into a slot whose drive is not serving
  (failed, offline -- its directory vanished -- or drained).  Blank means the
  path does not exist or is an empty directory: a directory that still holds
  files (the old drive, anything else) is refused, never wiped, because a
  directory cannot be told apart from someone's data.  The new drive gets a
  new identity and takes the slot in place -- ``host.drives`` (which the peer
  listener serves), the store's position, the bucket table -- is marked
  *healing* in the roster (reads ignore it, writes go to it), and the refill
  worker is told; its progress shows on the page and in ``titanctl repair
  status``, and the flag clears when the refill is done.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any

import trio

from titans3.disks.errors import DiskRefused, NoSuchDisk
from titans3.drive.local import LocalDrive
from titans3.drive.protocol import DriveState

# The daemon's Host (typed as titans3.cluster.host.HostServices above this
# layer); disks/ sits below the cluster layer, so it names no type from there.
Host = Any

log = logging.getLogger(__name__)

CLOSE_WAIT = 30.0  # s a drained drive's in-flight calls get before it is closed


def slot_index(host: Host, target: str) -> int:
    """A local drive index from ``drive-3``, ``3``, a slot name, a drive id (prefix) or a path."""
    t = target.strip().rstrip("/")
    for i, d in enumerate(host.drives):
        names = {f"drive-{i}", str(i), f"{host.host_id}/drive-{i}", str(d.root), d.drive_id}
        with contextlib.suppress(OSError):
            names.add(str(Path(d.root).resolve()))
        if t in names or (len(t) >= 4 and d.drive_id.startswith(t)):
            return i
    with contextlib.suppress(OSError):
        resolved = str(Path(t).resolve())
        for i, d in enumerate(host.drives):
            if str(Path(d.root).resolve()) == resolved:
                return i
    raise NoSuchDisk(f"no drive {target!r} on this host (give drive-N, a drive id or its directory)")


def _position(host: Host, drive: Any) -> int:
    for pos, d in enumerate(host.store.drives):
        if d is drive:
            return pos
    raise NoSuchDisk(f"drive {drive.drive_id} is not in the store")


async def _release(drive: LocalDrive) -> None:
    drive.mark_failed()
    with trio.move_on_after(CLOSE_WAIT):
        while getattr(drive, "_inflight", 0) or getattr(drive, "_abandoned", 0):
            await trio.sleep(0.05)
    try:
        await drive.close()
    except Exception as e:  # noqa: BLE001 -- a dead directory may fail its close too
        log.warning("closing drive %s: %s", drive.drive_id, e)
    drive.mark_failed()  # close() leaves OFFLINE; the verdict stands


async def fail(host: Host, index: int, reason: str) -> None:
    """The health loop's verdict on slot ``index`` (too many I/O errors): out of
    service like a drained drive, its directory left as it is for the operator
    to look at; the slot runs on parity until it is replaced."""
    drive = host.drives[index]
    await _release(drive)
    log.error("slot drive-%d: drive %s failed (%s); replace its directory %s with an empty one "
              "and run `titanctl disk replace drive-%d %s` to refill it", index, drive.drive_id,
              reason, drive.root, index, drive.root)


async def drain(host: Host, target: str) -> dict[str, Any]:
    i = slot_index(host, target)
    drive = host.drives[i]
    if drive.state is not DriveState.ONLINE:
        raise DiskRefused(f"drive {drive.drive_id} in slot drive-{i} is not serving ({drive.state.value})")
    await _release(drive)
    log.warning("slot drive-%d: drive %s drained by the operator", i, drive.drive_id)
    return {"drive_id": drive.drive_id, "slot": f"{host.host_id}/drive-{i}", "state": "drained",
            "message": f"drive {drive.drive_id} (slot drive-{i}) is out of service; replace its "
                       f"directory {drive.root} with an empty one and run replace"}


def _blank(path: Path) -> bool:
    if not path.exists():
        return True
    return path.is_dir() and not any(path.iterdir())


async def replace(host: Host, target: str, new: str = "") -> dict[str, Any]:
    i = slot_index(host, target)
    old = host.drives[i]
    path = Path(old.root)
    if new and Path(new).resolve() != path.resolve():
        raise DiskRefused(f"in directory mode slot drive-{i} is always {path}; put the new "
                          f"directory there (got {new})")
    if old.state is DriveState.ONLINE:
        raise DiskRefused(f"drive {old.drive_id} in slot drive-{i} is serving; drain it first")
    if not await trio.to_thread.run_sync(_blank, path):
        raise DiskRefused(f"{path} is not empty; a replacement directory must be empty or absent "
                          "(nothing is ever wiped)")
    pos = _position(host, old)
    await _release(old)
    drive = LocalDrive(path, create=True, threads=host.config.drive_threads)
    await drive.open()
    return install(host, i, pos, drive, old.drive_id)


def install(host: Host, index: int, pos: int, drive: LocalDrive, old_id: str) -> dict[str, Any]:
    """``drive`` takes slot ``index`` (store position ``pos``), live, marked healing."""
    slot = f"{host.host_id}/drive-{index}"
    host.drives[index] = drive
    store = host.store
    store.replace_drive(pos, drive)
    healing = True
    if host.roster is not None:
        healing = host.roster.observe(slot, str(drive.root), drive.drive_id).healing
        host.roster.save()
    (store.healing.add if healing else store.healing.discard)(pos)
    refill = host.workers.get("refill")
    if healing and refill is not None:
        refill.start(pos)
    log.warning("slot %s: drive %s replaces %s%s", slot, drive.drive_id, old_id,
                " (healing: refill started)" if healing else "")
    return {"drive_id": drive.drive_id, "slot": slot, "replaced": old_id,
            "state": "healing" if healing else "online",
            "message": f"{drive.root} is drive {drive.drive_id} in slot drive-{index}"
                       + (" (healing: refill started)" if healing else "")}
