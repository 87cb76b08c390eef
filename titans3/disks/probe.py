"""Finding block devices and what they hold (blocking; run in worker threads).

Theory of operation
-------------------
pyudev enumerates the ``block`` subsystem; sysfs (through pyudev's
attributes) gives size, read-only and removable flags, partitions, holders and
a loop device's backing file; ``/proc/self/mountinfo`` and ``/proc/swaps``
say what is in use.  None of that opens the device.

Only a device already found *in scope* (policy.in_scope) is then *probed* for
signatures, by three independent readers whose findings are merged: our own
sector scan (signatures.py, on the first and last MiB), ``blkid -p`` (libblkid
reading the device itself, so it works without udevd) and ``wipefs --json``;
when udevd runs, its ``ID_FS_*`` properties are added too.  A reader that is
missing is skipped; a reader that fails leaves the device *unprobed*, which
policy.classify treats as "do not touch" (fail closed).

:func:`open_exclusive` is the last check before formatting: Linux refuses an
``O_EXCL`` open of a block device that is mounted or held by the kernel.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyudev

from titans3.disks import signatures
from titans3.disks.policy import (
    DeviceInfo,
    parse_blkid_export,
    parse_mountinfo,
    parse_udev_properties,
    parse_wipefs_json,
)

log = logging.getLogger(__name__)

TOOL_TIMEOUT = 30.0
UDEV_CONTROL = "/run/udev/control"


class ProbeError(Exception):
    pass


def udevd_running() -> bool:
    """udevd listens on this socket; without it only kernel properties exist."""
    return os.path.exists(UDEV_CONTROL)


def _text(attr: Any) -> str:
    if attr is None:
        return ""
    return (attr.decode("utf-8", "replace") if isinstance(attr, bytes) else str(attr)).strip()


def _attr(dev: pyudev.Device, name: str) -> str:
    try:
        return _text(dev.attributes.get(name))
    except (OSError, KeyError):
        return ""


def mount_table() -> dict[tuple[int, int], list[str]]:
    with open("/proc/self/mountinfo") as f:
        return parse_mountinfo(f.read())


def active_swaps() -> set[str]:
    try:
        with open("/proc/swaps") as f:
            lines = f.read().splitlines()[1:]
    except OSError:
        return set()
    return {os.path.realpath(line.split()[0]) for line in lines if line.split()}


def _listdir(path: Path) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []


def describe(dev: pyudev.Device, mounts: dict[tuple[int, int], list[str]], swaps: set[str]) -> DeviceInfo:
    """The cheap, non-opening part: sysfs, udev properties, mounts."""
    sys_path = Path(dev.sys_path)
    name = dev.sys_name
    props = dict(dev.properties)
    major, minor = int(props.get("MAJOR", 0)), int(props.get("MINOR", 0))
    devtype = dev.device_type or props.get("DEVTYPE", "disk")
    sectors = _attr(dev, "size")
    partitions = tuple(
        p for p in _listdir(sys_path) if p.startswith(name) and (sys_path / p / "partition").exists()
    )
    # A partition's mounts and holders make its disk busy too.
    mps = list(mounts.get((major, minor), []))
    holders = list(_listdir(sys_path / "holders"))
    for p in partitions:
        holders += _listdir(sys_path / p / "holders")
        with contextlib.suppress(OSError, ValueError):
            pmaj, pmin = (int(x) for x in (sys_path / p / "dev").read_text().split(":"))
            mps += mounts.get((pmaj, pmin), [])
    path = dev.device_node or f"/dev/{name}"
    links = tuple(sorted(str(x) for x in dev.device_links if "/by-" in str(x)))
    return DeviceInfo(
        path=path,
        name=name,
        devtype=devtype,
        major=major,
        minor=minor,
        size=int(sectors) * 512 if sectors.isdigit() else 0,
        read_only=_attr(dev, "ro") == "1",
        removable=_attr(dev, "removable") == "1",
        backing_file=_attr(dev, "loop/backing_file"),
        links=links,
        serial=props.get("ID_SERIAL_SHORT") or props.get("ID_SERIAL") or _attr(dev, "serial")
        or _attr(dev, "device/serial"),
        model=props.get("ID_MODEL") or _attr(dev, "device/model"),
        partitions=partitions,
        holders=tuple(holders),
        mountpoints=tuple(mps),
        swap=os.path.realpath(path) in swaps,
    )


def enumerate_devices(context: pyudev.Context | None = None) -> list[tuple[DeviceInfo, dict[str, str]]]:
    """Every block device with its udev properties, without opening any."""
    ctx = context or pyudev.Context()
    mounts, swaps = mount_table(), active_swaps()
    out: list[tuple[DeviceInfo, dict[str, str]]] = []
    for dev in ctx.list_devices(subsystem="block"):
        try:
            out.append((describe(dev, mounts, swaps), dict(dev.properties)))
        except (OSError, ValueError) as e:
            log.debug("skipping %s: %s", dev.sys_name, e)
    return out


def device_info(path: str, context: pyudev.Context | None = None) -> tuple[DeviceInfo, dict[str, str]]:
    """One device by path (``/dev/x`` or a symlink to it)."""
    ctx = context or pyudev.Context()
    try:
        dev = pyudev.Devices.from_device_file(ctx, path)
    except (pyudev.DeviceNotFoundError, OSError, ValueError) as e:
        raise ProbeError(f"{path}: not a block device ({e})") from None
    if dev.subsystem != "block":
        raise ProbeError(f"{path}: not a block device")
    return describe(dev, mount_table(), active_swaps()), dict(dev.properties)


# ------------------------------------------------------------------ probing
def read_head_tail(path: str, size: int) -> tuple[bytes, bytes]:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        head = os.pread(fd, min(signatures.HEAD_BYTES, size), 0)
        tail_len = min(signatures.TAIL_BYTES, size)
        tail = os.pread(fd, tail_len, size - tail_len)
    finally:
        os.close(fd)
    if len(head) < min(signatures.HEAD_BYTES, size) or len(tail) < min(signatures.TAIL_BYTES, size):
        raise OSError(errno.EIO, "short read", path)
    return head, tail


def _run(argv: list[str], ok: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess[str] | None:
    """Run a probing tool; None if it is not installed."""
    if shutil.which(argv[0]) is None:
        return None
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=TOOL_TIMEOUT,
                          stdin=subprocess.DEVNULL, check=False)
    if proc.returncode not in ok:
        raise ProbeError(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr.strip()[:200]}")
    return proc


def blkid(path: str) -> list[signatures.Signature]:
    """``blkid -p``: exit 2 is "nothing found"; 8 ("ambivalent") means more than one
    signature, which is certainly not blank."""
    proc = _run(["blkid", "-p", "-o", "export", path], ok=(0, 2, 8))
    if proc is None:
        return []
    if proc.returncode == 8:
        return [signatures.Signature("filesystem", "ambivalent", -1, "blkid")]
    return parse_blkid_export(proc.stdout)


def wipefs(path: str) -> list[signatures.Signature]:
    proc = _run(["wipefs", "--no-act", "--json", path])
    if proc is None:
        return []
    try:
        return parse_wipefs_json(proc.stdout)
    except (ValueError, json.JSONDecodeError) as e:
        raise ProbeError(f"wipefs {path}: unreadable output ({e})") from None


def probe(info: DeviceInfo, props: dict[str, str] | None = None) -> DeviceInfo:
    """``info`` with its signatures filled in (or ``probe_error`` set)."""
    from dataclasses import replace

    if info.size <= 0:
        return replace(info, probed=False, probe_error="no medium")
    try:
        head, tail = read_head_tail(info.path, info.size)
        result = signatures.scan(head, tail, info.size)
        found = list(result.signatures) + blkid(info.path) + wipefs(info.path)
        if props and udevd_running():
            found += parse_udev_properties(props)
    except (OSError, ProbeError, subprocess.TimeoutExpired) as e:
        return replace(info, probed=False, probe_error=str(e))
    return replace(info, signatures=tuple(_merge(found)), residual=result.residual, probed=True)


def _merge(found: list[signatures.Signature]) -> list[signatures.Signature]:
    """One entry per (kind, name), preferring the one that knows label/UUID."""
    best: dict[tuple[str, str], signatures.Signature] = {}
    for s in found:
        key = (s.kind, s.name)
        cur = best.get(key)
        if cur is None or (not cur.uuid and s.uuid):
            best[key] = s
    return list(best.values())


@contextlib.contextmanager
def open_exclusive(path: str) -> Iterator[int]:
    """An ``O_EXCL`` descriptor of a block device: EBUSY if anything holds it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_EXCL | os.O_CLOEXEC)
    except OSError as e:
        if e.errno == errno.EBUSY:
            raise ProbeError(f"{path} is in use (mounted or held by the kernel)") from None
        raise ProbeError(f"{path}: {e.strerror}") from None
    try:
        yield fd
    finally:
        os.close(fd)


def device_present(major: int, minor: int) -> bool:
    return os.path.exists(f"/sys/dev/block/{major}:{minor}")


def mounted_device(mountpoint: Path) -> tuple[int, int] | None:
    """(major, minor) of the filesystem mounted exactly at ``mountpoint``, or None."""
    target = str(mountpoint)
    for dev, mps in mount_table().items():
        if target in mps:
            return dev
    return None
