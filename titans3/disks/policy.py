"""Which disks TitanS3 may touch, and when a drive has failed (pure).

Theory of operation
-------------------
Everything here is a decision over values that probe.py gathered; nothing
reads a device.  Three questions:

1. **Is the device in scope?**  ``--disks /dev/x,/dev/y`` names the devices;
   ``--disks auto`` takes every whole disk except virtual and removable ones
   (loop, zram, ram, device-mapper, md, nbd, optical, floppy, removable media),
   unless ``--disk-allow GLOB`` is given: then *only* devices matching a glob
   -- by device path, a ``/dev/disk/by-*`` link or, for a loop device, its
   backing file -- are in scope, whatever their kind.  Out of scope means never
   opened, not even for reading.

2. **What does it hold?**  :func:`classify` -- in this order, first match wins:
   unusable (no medium, read-only, too small), a TitanS3 drive (its filesystem
   label and UUID say so), in use (mounted, swap, held by device-mapper/md),
   has data (partitions, any signature from the sector scan, blkid, wipefs or
   udev), not probed (a probe failed: fail closed), else blank.

3. **May it be formatted?**  :func:`may_format`: a blank disk, yes; a disk
   with data only with ``force`` (``titanctl disk claim --force``); a disk in
   use or unusable never -- ``force`` overrides the operator's caution, not the
   kernel's ownership of a mounted filesystem.

:class:`FailureWatch` decides from a drive's own counters when the disk
manager should give up on it: too many I/O errors in a window (checksum
mismatches are the scrubber's business and not counted), or offline without
pause for too long.  A missing device is decided by the manager directly.
"""

from __future__ import annotations

import json
import re
from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum
from fnmatch import fnmatchcase

from titans3.disks.signatures import Signature, drive_id_of

MIN_DISK_BYTES = 128 << 20

# Kernel name prefixes of block devices that are not disks to claim by default.
_VIRTUAL = ("loop", "ram", "zram", "dm-", "md", "nbd", "sr", "fd", "mtdblock", "drbd", "rbd", "bcache")


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """What probe.py found out about one block device."""

    path: str  # /dev/loop3
    name: str  # loop3
    devtype: str = "disk"  # "disk" or "partition"
    major: int = 0
    minor: int = 0
    size: int = 0  # bytes; 0 = no medium (an unattached loop device)
    read_only: bool = False
    removable: bool = False
    backing_file: str = ""  # loop devices
    links: tuple[str, ...] = ()  # /dev/disk/by-* (only when udevd runs)
    serial: str = ""
    model: str = ""
    partitions: tuple[str, ...] = ()
    holders: tuple[str, ...] = ()
    mountpoints: tuple[str, ...] = ()
    swap: bool = False
    signatures: tuple[Signature, ...] = ()
    residual: bool = False  # non-zero bytes without a signature
    probed: bool = False  # the signature probe ran to the end
    probe_error: str = ""

    @property
    def virtual(self) -> bool:
        return self.name.startswith(_VIRTUAL)

    @property
    def drive_id(self) -> str | None:
        """The TitanS3 drive id this device carries, if any -- read from the
        device itself (udev's properties may lag behind a fresh mkfs or wipe)."""
        for s in self.signatures:
            if s.label and s.uuid and s.source != "udev":
                found = drive_id_of(s.name, s.label, s.uuid)
                if found:
                    return found
        return None

    @property
    def filesystem(self) -> Signature | None:
        return next((s for s in self.signatures if s.kind == "filesystem"), None)


# ------------------------------------------------------------------- scope
def match_candidates(dev: DeviceInfo) -> list[str]:
    """The names a ``--disk-allow`` glob is matched against."""
    names = [dev.path, *dev.links]
    if dev.backing_file:
        names.append(dev.backing_file.removesuffix(" (deleted)"))
    return names


def allowed(dev: DeviceInfo, globs: list[str] | tuple[str, ...]) -> bool:
    """True if a glob matches the device path, a by-* link or the loop backing file.
    ``*`` matches ``/`` too (fnmatch), so ``/dev/sd*`` means what it says."""
    return any(fnmatchcase(name, g) for g in globs for name in match_candidates(dev))


def parse_globs(text: str) -> list[str]:
    return [g.strip() for g in text.split(",") if g.strip()]


def in_scope(dev: DeviceInfo, *, auto: bool, explicit: list[str], globs: list[str]) -> tuple[bool, str]:
    """Whether the disk manager may look at ``dev`` at all, and if not, why."""
    if explicit:
        if dev.path not in explicit and not set(dev.links) & set(explicit):
            return False, "not listed in --disks"
        if globs and not allowed(dev, globs):
            return False, "not matched by --disk-allow"
        return True, ""
    if not auto:
        return False, "disk management is off"
    if globs:
        if not allowed(dev, globs):
            return False, "not matched by --disk-allow"
        if dev.devtype != "disk":
            return False, "a partition (auto claims whole disks only)"
        return True, ""
    if dev.devtype != "disk":
        return False, "a partition (auto claims whole disks only)"
    if dev.virtual:
        return False, "virtual device (name it in --disk-allow to use it)"
    if dev.removable:
        return False, "removable media (name it in --disk-allow to use it)"
    return True, ""


# ---------------------------------------------------------------- classify
class Verdict(StrEnum):
    BLANK = "blank"
    TITANS3 = "titans3"
    IN_USE = "in-use"
    HAS_DATA = "has-data"
    UNUSABLE = "unusable"


def classify(dev: DeviceInfo) -> tuple[Verdict, str]:
    """What ``dev`` holds, with a reason an operator can act on."""
    if dev.size <= 0:
        return Verdict.UNUSABLE, "no medium"
    if dev.read_only:
        return Verdict.UNUSABLE, "read-only"
    if dev.size < MIN_DISK_BYTES:
        return Verdict.UNUSABLE, f"too small ({dev.size >> 20} MiB < {MIN_DISK_BYTES >> 20} MiB)"
    if dev.drive_id:
        return Verdict.TITANS3, f"TitanS3 drive {dev.drive_id}"
    if dev.mountpoints:
        return Verdict.IN_USE, f"mounted on {dev.mountpoints[0]}"
    if dev.swap:
        return Verdict.IN_USE, "active swap"
    if dev.holders:
        return Verdict.IN_USE, f"held by {', '.join(dev.holders)}"
    if dev.partitions:
        return Verdict.HAS_DATA, f"has partitions ({', '.join(dev.partitions)})"
    if dev.signatures:
        return Verdict.HAS_DATA, "has " + describe_signatures(dev.signatures)
    if not dev.probed:
        return Verdict.UNUSABLE, f"could not be probed ({dev.probe_error or 'unknown error'})"
    return Verdict.BLANK, "blank" + (" (residual data, no signatures)" if dev.residual else "")


def describe_signatures(sigs: tuple[Signature, ...] | list[Signature]) -> str:
    """``"an ext4 filesystem"``, ``"a gpt partition table and ..."`` -- deduplicated."""
    seen: list[str] = []
    for s in sigs:
        text = s.describe()
        if text not in seen:
            seen.append(text)
    words = [("an " if t[0] in "aeiou" else "a ") + t for t in seen]
    return " and ".join(words)


def may_format(verdict: Verdict, *, force: bool) -> bool:
    """May a disk with this verdict be (re)formatted?  TitanS3 drives only with
    ``force`` too: whether one is ours to reuse is the manager's call."""
    if verdict is Verdict.BLANK:
        return True
    if verdict in (Verdict.HAS_DATA, Verdict.TITANS3):
        return force
    return False


# ------------------------------------------------------------------ parsers
def parse_blkid_export(text: str, source: str = "blkid") -> list[Signature]:
    """``blkid -p -o export`` output -> signatures (TYPE / PTTYPE lines)."""
    kv: dict[str, str] = {}
    for line in text.splitlines():
        k, sep, v = line.partition("=")
        if sep:
            kv[k.strip()] = v.strip()
    out: list[Signature] = []
    if kv.get("PTTYPE"):
        out.append(Signature("partition-table", kv["PTTYPE"], -1, source))
    if kv.get("TYPE"):
        usage = kv.get("USAGE", "filesystem")
        kind = {"filesystem": "filesystem", "other": "swap" if kv["TYPE"] == "swap" else "container"}.get(
            usage, "container"
        )
        out.append(Signature(kind, kv["TYPE"], -1, source, kv.get("LABEL", ""), kv.get("UUID", "")))
    return out


def parse_udev_properties(props: dict[str, str]) -> list[Signature]:
    """udevd's ``ID_FS_*`` / ``ID_PART_TABLE_TYPE`` properties -> signatures."""
    out: list[Signature] = []
    if props.get("ID_PART_TABLE_TYPE"):
        out.append(Signature("partition-table", props["ID_PART_TABLE_TYPE"], -1, "udev"))
    if props.get("ID_FS_TYPE"):
        usage = props.get("ID_FS_USAGE", "filesystem")
        kind = "filesystem" if usage == "filesystem" else "swap" if props["ID_FS_TYPE"] == "swap" else "container"
        out.append(Signature(kind, props["ID_FS_TYPE"], -1, "udev",
                             props.get("ID_FS_LABEL", ""), props.get("ID_FS_UUID", "")))
    return out


def parse_wipefs_json(text: str) -> list[Signature]:
    """``wipefs --json`` output (empty when nothing is found) -> signatures."""
    if not text.strip():
        return []
    doc = json.loads(text)
    out: list[Signature] = []
    for s in doc.get("signatures", []):
        name = s.get("type", "?")
        if name in ("gpt", "dos", "PMBR", "atari", "bsd", "sun", "sgi", "mac"):
            kind = "partition-table"
        elif name == "swap":
            kind = "swap"
        elif name.endswith("_member") or name.startswith("crypto_") or name in ("bcache", "VMFS_volume_member"):
            kind = "container"  # RAID, LVM, ZFS, LUKS, bcache: something owns the disk
        else:
            kind = "filesystem"
        try:
            offset = int(str(s.get("offset", "-1")), 0)
        except ValueError:
            offset = -1
        out.append(Signature(kind, name, offset, "wipefs", s.get("label") or "", s.get("uuid") or ""))
    return out


_OCTAL = re.compile(r"\\([0-7]{3})")


def _unescape(field_: str) -> str:
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), field_)


def parse_mountinfo(text: str) -> dict[tuple[int, int], list[str]]:
    """``/proc/self/mountinfo`` -> {(major, minor): [mount points]}."""
    out: dict[tuple[int, int], list[str]] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 5 or ":" not in parts[2]:
            continue
        major, minor = (int(x) for x in parts[2].split(":", 1))
        out.setdefault((major, minor), []).append(_unescape(parts[4]))
    return out


# ------------------------------------------------------------ failure policy
@dataclass
class FailureWatch:
    """Decides from one drive's counters when it has failed.

    Feed :meth:`observe` periodically; it returns a reason once the drive has
    had ``error_limit`` I/O errors within ``window`` seconds, or has been
    offline without a break for ``offline_limit`` seconds.
    """

    error_limit: int = 8
    window: float = 600.0
    offline_limit: float = 60.0
    _samples: deque[tuple[float, int]] = field(default_factory=deque)
    _offline_since: float | None = None

    def observe(self, now: float, *, online: bool, io_errors: int) -> str | None:
        self._samples.append((now, io_errors))
        while len(self._samples) > 1 and self._samples[0][0] < now - self.window:
            self._samples.popleft()
        recent = io_errors - self._samples[0][1]
        if recent >= self.error_limit:
            return f"{recent} I/O errors in {self.window:.0f}s"
        if online:
            self._offline_since = None
        elif self._offline_since is None:
            self._offline_since = now
        elif now - self._offline_since >= self.offline_limit:
            return f"offline for {now - self._offline_since:.0f}s"
        return None
