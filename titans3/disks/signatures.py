"""On-disk signatures found in a device's first and last bytes (pure).

Theory of operation
-------------------
Before TitanS3 formats a disk it must be sure the disk holds nothing anyone
wants.  ``blkid -p`` and ``wipefs`` are the authorities (probe.py runs both);
this module is the third, independent opinion, and the only one that still
works where those tools are missing or too old: it looks for the magic numbers
of partition tables, filesystems, RAID/LVM/crypto containers and swap in the
first :data:`HEAD_BYTES` and last :data:`TAIL_BYTES` of the device.  Those two
windows cover every superblock and label location of the formats below (btrfs
at 64 KiB, ISO-9660 at 32 KiB, ZFS labels at 0/256 KiB and end-512/-256 KiB,
md 0.90/1.0 and the backup GPT at the end).

Any hit makes the disk "not blank".  The scan deliberately errs towards
false positives: a stray magic number costs the operator one
``titanctl disk claim --force``; a missed one costs someone their data.

Bytes that are not zero but carry no known signature (a disk that was
``wipefs -a``-ed, or simply used once) are *residual data*: reported, but not
a reason to refuse -- wiping signatures is exactly how operators release a
disk.

The module also decodes the label and UUID of XFS and ext2/3/4 superblocks, so
TitanS3's own drives (label ``titans3-xxxx``, filesystem UUID = drive id) are
recognised even without blkid.
"""

from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass

HEAD_BYTES = 1 << 20
TAIL_BYTES = 1 << 20

PARTITION_TABLE = "partition-table"
FILESYSTEM = "filesystem"
CONTAINER = "container"  # RAID, LVM, crypto, bcache, ZFS: something owns the disk
SWAP = "swap"


@dataclass(frozen=True, slots=True)
class Signature:
    kind: str  # PARTITION_TABLE, FILESYSTEM, CONTAINER, SWAP
    name: str  # "gpt", "dos", "ext4", "xfs", "linux_raid_member", ...
    offset: int  # byte offset from the start of the device (-1: unknown)
    source: str = "scan"  # "scan", "blkid", "wipefs", "udev"
    label: str = ""
    uuid: str = ""

    def describe(self) -> str:
        what = {PARTITION_TABLE: "partition table", CONTAINER: "signature"}.get(self.kind, "")
        if self.kind == FILESYSTEM:
            what = "filesystem"
        text = f"{self.name} {what}".strip() if what else self.name
        return text + (f" labelled {self.label!r}" if self.label else "")


@dataclass(frozen=True, slots=True)
class ScanResult:
    signatures: tuple[Signature, ...]
    residual: bool  # non-zero bytes without any known signature

    @property
    def blank(self) -> bool:
        return not self.signatures


def _at(buf: bytes, offset: int, magic: bytes) -> bool:
    return offset >= 0 and offset + len(magic) <= len(buf) and buf[offset : offset + len(magic)] == magic


def _cstr(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


def _uuid(raw: bytes) -> str:
    return "" if not any(raw) else str(uuid.UUID(bytes=bytes(raw)))


# ------------------------------------------------------------- filesystems
def _ext(head: bytes) -> Signature | None:
    sb = 1024
    if not _at(head, sb + 0x38, b"\x53\xef"):
        return None
    compat, incompat = struct.unpack_from("<I", head, sb + 0x5C)[0], struct.unpack_from("<I", head, sb + 0x60)[0]
    # extents | 64bit | flex_bg | mmp... -> ext4; a journal alone -> ext3.
    name = "ext4" if incompat & (0x40 | 0x80 | 0x200) else "ext3" if compat & 0x4 else "ext2"
    return Signature(FILESYSTEM, name, sb + 0x38, label=_cstr(head[sb + 0x78 : sb + 0x88]),
                     uuid=_uuid(head[sb + 0x68 : sb + 0x78]))


def _xfs(head: bytes) -> Signature | None:
    if not _at(head, 0, b"XFSB"):
        return None
    return Signature(FILESYSTEM, "xfs", 0, label=_cstr(head[108:120]), uuid=_uuid(head[32:48]))


def _boot_sector(head: bytes) -> Signature | None:
    """FAT, NTFS and exFAT share the 0x55AA boot-sector marker with MBR."""
    if _at(head, 3, b"NTFS    "):
        return Signature(FILESYSTEM, "ntfs", 3)
    if _at(head, 3, b"EXFAT   "):
        return Signature(FILESYSTEM, "exfat", 3)
    if _at(head, 510, b"\x55\xaa") and (
        _at(head, 54, b"FAT12") or _at(head, 54, b"FAT16") or _at(head, 82, b"FAT32")
        or _at(head, 54, b"FAT     ")
    ):
        return Signature(FILESYSTEM, "vfat", 0)
    return None


_SIMPLE: tuple[tuple[str, str, int, bytes], ...] = (
    (FILESYSTEM, "btrfs", 0x10040, b"_BHRfS_M"),
    (FILESYSTEM, "f2fs", 1024, b"\x10\x20\xf5\xf2"),
    (FILESYSTEM, "iso9660", 0x8001, b"CD001"),
    (FILESYSTEM, "udf", 0x8001, b"BEA01"),
    (FILESYSTEM, "squashfs", 0, b"hsqs"),
    (FILESYSTEM, "jfs", 0x8000, b"JFS1"),
    (FILESYSTEM, "reiserfs", 0x10034, b"ReIsEr"),
    (FILESYSTEM, "bluestore", 0, b"bluestore block device"),
    (CONTAINER, "crypto_LUKS", 0, b"LUKS\xba\xbe"),
    (CONTAINER, "crypto_LUKS", 0x4000, b"SKUL\xba\xbe"),  # LUKS2 secondary header
    (CONTAINER, "bcache", 4096 + 24, bytes.fromhex("c68573f64e1a45ca8265f57f48ba6d81")),
    (CONTAINER, "linux_raid_member", 0, b"\xfc\x4e\x2b\xa9"),  # md 1.1
    (CONTAINER, "linux_raid_member", 4096, b"\xfc\x4e\x2b\xa9"),  # md 1.2
)


def _lvm(head: bytes) -> Signature | None:
    for sector in range(4):
        off = sector * 512
        if _at(head, off, b"LABELONE") and _at(head, off + 24, b"LVM2 001"):
            return Signature(CONTAINER, "LVM2_member", off)
    return None


def _swap(head: bytes) -> Signature | None:
    for page in (4096, 8192, 16384, 65536):
        if _at(head, page - 10, b"SWAPSPACE2") or _at(head, page - 10, b"SWAP-SPACE"):
            return Signature(SWAP, "swap", page - 10)
    return None


_ZFS_MAGIC = (struct.pack("<Q", 0x00BAB10C), struct.pack(">Q", 0x00BAB10C))


def _zfs_label(buf: bytes, base: int) -> bool:
    """A ZFS vdev label keeps an uberblock ring at +128 KiB (slots of >= 1 KiB)."""
    for slot in range(128):
        off = base + 128 * 1024 + slot * 1024
        if any(_at(buf, off, m) for m in _ZFS_MAGIC):
            return True
    return False


# ---------------------------------------------------------- partition tables
def _gpt(head: bytes, tail: bytes, size: int) -> Signature | None:
    for sector in (512, 4096):
        if _at(head, sector, b"EFI PART"):
            return Signature(PARTITION_TABLE, "gpt", sector)
        # The backup header sits in the last sector: found even if the primary was wiped.
        if len(tail) >= sector and _at(tail, len(tail) - sector, b"EFI PART"):
            return Signature(PARTITION_TABLE, "gpt", size - sector)
    return None


def _mbr(head: bytes) -> Signature | None:
    if not _at(head, 510, b"\x55\xaa"):
        return None
    entries = [head[446 + 16 * i : 446 + 16 * (i + 1)] for i in range(4)]
    if any(e[0] not in (0x00, 0x80) for e in entries):
        return None  # not a partition table (boot code of some other format)
    if not any(e[4] for e in entries):
        return None
    if any(e[4] == 0xEE for e in entries):
        return Signature(PARTITION_TABLE, "PMBR", 510)  # GPT's protective MBR
    return Signature(PARTITION_TABLE, "dos", 510)


def _md_end(tail: bytes, size: int) -> Signature | None:
    """md 0.90 (64 KiB-aligned, 64 KiB before the end) and 1.0 (8 KiB before the end)."""
    base = size - len(tail)
    for off in ((size & ~0xFFFF) - 0x10000, (size - 8192) & ~4095):
        if off >= base and _at(tail, off - base, b"\xfc\x4e\x2b\xa9"):
            return Signature(CONTAINER, "linux_raid_member", off)
    return None


def scan(head: bytes, tail: bytes, size: int) -> ScanResult:
    """Signatures in ``head`` (the device's first bytes) and ``tail`` (its last
    bytes; the two may overlap on small devices).  ``size`` is the device size."""
    found: list[Signature] = []
    for sig in (_xfs(head), _ext(head), _boot_sector(head), _lvm(head), _swap(head)):
        if sig is not None:
            found.append(sig)
    for kind, name, off, magic in _SIMPLE:
        if _at(head, off, magic):
            found.append(Signature(kind, name, off))
    gpt = _gpt(head, tail, size)
    if gpt is not None:
        found.append(gpt)
    # FAT/NTFS boot sectors carry 0x55AA too: only look for an MBR on a disk
    # without a filesystem at offset 0; GPT's protective MBR adds nothing to GPT.
    mbr = None if any(s.kind == FILESYSTEM for s in found) else _mbr(head)
    if mbr is not None and not (mbr.name == "PMBR" and gpt is not None):
        found.append(mbr)
    md = _md_end(tail, size)
    if md is not None:
        found.append(md)
    tail_base = size - len(tail)
    if _zfs_label(head, 0) or _zfs_label(head, 256 * 1024) or any(
        size - back >= tail_base and _zfs_label(tail, size - back - tail_base)
        for back in (512 * 1024, 256 * 1024)
    ):
        found.append(Signature(CONTAINER, "zfs_member", -1))
    residual = not found and (any(head) or any(tail))
    return ScanResult(tuple(found), residual)


# ------------------------------------------------------------ TitanS3 labels
LABEL_PREFIX = "titans3-"
TITANS3_FILESYSTEMS = ("xfs", "ext4")


def fs_label(drive_id: str) -> str:
    """The filesystem label of a TitanS3 drive: XFS labels hold 12 bytes, so
    ``titans3-`` plus the id's first four hex digits (the UUID carries the rest)."""
    return LABEL_PREFIX + drive_id[:4]


def fs_uuid(drive_id: str) -> str:
    """The filesystem UUID of a TitanS3 drive *is* its drive id."""
    return str(uuid.UUID(hex=drive_id))


def drive_id_of(fs_type: str, label: str, uuid_text: str) -> str | None:
    """The drive id of a filesystem if it is a TitanS3 drive, else None."""
    if fs_type not in TITANS3_FILESYSTEMS or not label.startswith(LABEL_PREFIX):
        return None
    try:
        drive_id = uuid.UUID(uuid_text).hex
    except ValueError:
        return None
    return drive_id if fs_label(drive_id) == label else None
