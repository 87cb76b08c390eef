"""Formatting, mounting and unmounting a TitanS3 disk (blocking; worker threads).

Theory of operation
-------------------
A claimed disk gets one filesystem on the whole device -- no partition table:
there is nothing to share the disk with, and a whole-disk filesystem keeps
"is this disk ours?" a one-superblock question.  XFS when ``mkfs.xfs`` exists
and the disk is big enough for it (XFS refuses devices under 300 MiB), else
ext4.  The filesystem label is ``titans3-<first 4 hex of the drive id>`` (XFS
labels hold 12 bytes) and the filesystem UUID *is* the drive id, so a disk is
recognised by libblkid, udev (``/dev/disk/by-uuid``) and our own sector scan
alike, and survives device renames across reboots.

Formatting without ``force`` never passes the tools' own force flags
(``mkfs.xfs -f``, ``mke2fs -F``): both refuse to overwrite a signature they
see, a second safety net under policy.may_format.  With ``force`` the old
signatures are erased by ``wipefs --all`` first.

Mounts use ``noatime`` (no metadata write per read) and ``nodev,nosuid,noexec``
(a drive holds data, never programs or device nodes).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from pathlib import Path

from titans3.disks.probe import mount_table
from titans3.disks.signatures import fs_label, fs_uuid

XFS_MIN_BYTES = 300 << 20
MKFS_TIMEOUT = 600.0
MOUNT_TIMEOUT = 120.0
MOUNT_OPTIONS = "noatime,nodev,nosuid,noexec"


class FormatError(Exception):
    pass


def choose_fs(size: int) -> str:
    return "xfs" if shutil.which("mkfs.xfs") and size >= XFS_MIN_BYTES else "ext4"


def _run(argv: list[str], timeout: float) -> None:
    if shutil.which(argv[0]) is None:
        raise FormatError(f"{argv[0]} is not installed")
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, check=False)
    except subprocess.TimeoutExpired:
        raise FormatError(f"{argv[0]} did not finish in {timeout:.0f}s") from None
    if proc.returncode != 0:
        msg = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
        raise FormatError(f"{' '.join(argv)} failed ({proc.returncode}): {' / '.join(msg[-3:])[:400]}")


def wipe(device: str) -> None:
    """Erase every signature libblkid knows (partition tables included)."""
    _run(["wipefs", "--all", "--quiet", device], MKFS_TIMEOUT)


def make_filesystem(device: str, drive_id: str, fstype: str, *, force: bool = False) -> None:
    label, uuid = fs_label(drive_id), fs_uuid(drive_id)
    if fstype == "xfs":
        # -K: no discard pass (minutes on some SSDs; nothing to gain on a blank disk).
        argv = ["mkfs.xfs", "-q", "-K", "-L", label, "-m", f"uuid={uuid}"] + (["-f"] if force else [])
    elif fstype == "ext4":
        # -m 0: no blocks reserved for root on a data disk; lazy init keeps mkfs fast.
        argv = ["mkfs.ext4", "-q", "-L", label, "-U", uuid, "-m", "0",
                "-E", "lazy_itable_init=1,lazy_journal_init=1,nodiscard"] + (["-F"] if force else [])
    else:
        raise FormatError(f"unsupported filesystem {fstype!r}")
    _run([*argv, device], MKFS_TIMEOUT)


def mount(device: str, mountpoint: Path, fstype: str) -> None:
    mountpoint.mkdir(parents=True, exist_ok=True)
    os.chmod(mountpoint, 0o700)
    _run(["mount", "-t", fstype, "-o", MOUNT_OPTIONS, device, str(mountpoint)], MOUNT_TIMEOUT)


def is_mounted(mountpoint: Path) -> bool:
    """From the mount table, not stat(): the root of a filesystem whose disk
    vanished may fail every stat with EIO, yet it is still mounted."""
    target = str(mountpoint)
    return any(target in mps for mps in mount_table().values())


def unmount(mountpoint: Path, *, lazy_if_busy: bool = True) -> None:
    """Unmount ``mountpoint`` if mounted; if busy (or its disk is gone), detach it lazily."""
    if not is_mounted(mountpoint):
        return
    try:
        _run(["umount", str(mountpoint)], MOUNT_TIMEOUT)
    except FormatError:
        if not lazy_if_busy:
            raise
        _run(["umount", "-l", str(mountpoint)], MOUNT_TIMEOUT)


def remove_mountpoint(mountpoint: Path) -> None:
    """Remove an unmounted, empty mount point directory; leave anything else alone."""
    if not is_mounted(mountpoint):
        with contextlib.suppress(OSError):
            mountpoint.rmdir()
