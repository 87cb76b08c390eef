"""Signature detection on crafted images: made by the real tools (mkfs, sfdisk,
mkswap) on regular files, read by our sector scan and by the full probe
(scan + blkid + wipefs).  No block device is touched."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from titans3.disks import fs, probe, signatures
from titans3.disks.policy import DeviceInfo, Verdict, classify

MiB = 1 << 20


def need(tool: str) -> None:
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed (scripts/setup.sh installs it)")


def image(tmp_path: Path, name: str, size: int) -> Path:
    p = tmp_path / name
    with open(p, "wb") as f:
        f.truncate(size)
    return p


def run(*argv: str, stdin: str | None = None) -> None:
    subprocess.run(argv, input=stdin, text=True, check=True, capture_output=True)


def scan_file(p: Path) -> signatures.ScanResult:
    size = p.stat().st_size
    head, tail = probe.read_head_tail(str(p), size)
    return signatures.scan(head, tail, size)


def probed(p: Path) -> DeviceInfo:
    return probe.probe(DeviceInfo(path=str(p), name=p.name, size=p.stat().st_size))


def names(result: signatures.ScanResult | DeviceInfo) -> set[str]:
    return {s.name for s in result.signatures}


def test_zero_file_is_blank_without_residual_data(tmp_path):
    p = image(tmp_path, "zero.img", 256 * MiB)
    r = scan_file(p)
    assert r.blank and not r.residual
    info = probed(p)
    assert info.probed and info.signatures == ()
    assert classify(info) == (Verdict.BLANK, "blank")


def test_data_without_signatures_is_blank_but_flagged_residual(tmp_path):
    p = image(tmp_path, "used.img", 256 * MiB)
    with open(p, "r+b") as f:
        f.write(b"\x01" * 4096)
    r = scan_file(p)
    assert r.blank and r.residual
    assert classify(probed(p))[0] is Verdict.BLANK


def test_ext4_made_by_mkfs_is_found_with_label_and_uuid(tmp_path):
    need("mkfs.ext4")
    p = image(tmp_path, "ext4.img", 200 * MiB)
    u = str(uuid.uuid4())
    run("mkfs.ext4", "-q", "-F", "-L", "photos", "-U", u, str(p))
    (sig,) = scan_file(p).signatures
    assert (sig.kind, sig.name, sig.label, sig.uuid) == ("filesystem", "ext4", "photos", u)
    info = probed(p)
    assert {(s.name, s.source) for s in info.signatures} == {("ext4", "scan")}  # merged, one entry
    verdict, reason = classify(info)
    assert verdict is Verdict.HAS_DATA
    assert reason == "has an ext4 filesystem labelled 'photos'"


def test_xfs_made_by_mkfs_is_found(tmp_path):
    need("mkfs.xfs")
    p = image(tmp_path, "xfs.img", 320 * MiB)
    run("mkfs.xfs", "-q", "-L", "media", str(p))
    (sig,) = scan_file(p).signatures
    assert (sig.name, sig.label) == ("xfs", "media")


@pytest.mark.parametrize("label,found", [("gpt", "gpt"), ("dos", "dos")])
def test_partition_tables_written_by_sfdisk_are_found(tmp_path, label, found):
    need("sfdisk")
    p = image(tmp_path, f"{label}.img", 256 * MiB)
    run("sfdisk", "-q", str(p), stdin=f"label: {label}\n,,L\n")
    assert found in names(scan_file(p))
    info = probed(p)
    assert found in names(info)
    assert classify(info)[0] is Verdict.HAS_DATA


def test_gpt_is_found_from_its_backup_header_when_the_start_is_wiped(tmp_path):
    need("sfdisk")
    p = image(tmp_path, "gpt.img", 256 * MiB)
    run("sfdisk", "-q", str(p), stdin="label: gpt\n,,L\n")
    with open(p, "r+b") as f:
        f.write(bytes(MiB))  # primary header, protective MBR and entries gone
    r = scan_file(p)
    assert [(s.name, s.offset) for s in r.signatures] == [("gpt", 256 * MiB - 512)]


def test_swap_is_found(tmp_path):
    need("mkswap")
    p = image(tmp_path, "swap.img", 256 * MiB)
    run("mkswap", "-q", str(p))
    assert names(scan_file(p)) == {"swap"}
    assert classify(probed(p))[0] is Verdict.HAS_DATA


def test_md_superblock_at_the_end_is_found(tmp_path):
    # md 1.0 keeps its superblock 8 KiB before the end (no mdadm here: craft it).
    size = 256 * MiB
    p = image(tmp_path, "md.img", size)
    with open(p, "r+b") as f:
        f.seek((size - 8192) & ~4095)
        f.write(b"\xfc\x4e\x2b\xa9")
    assert names(scan_file(p)) == {"linux_raid_member"}


def test_titans3_filesystems_are_recognised_by_label_and_uuid(tmp_path):
    need("mkfs.xfs")
    need("mkfs.ext4")
    for fstype, size in (("xfs", 320 * MiB), ("ext4", 200 * MiB)):
        p = image(tmp_path, f"t-{fstype}.img", size)
        drive_id = uuid.uuid4().hex
        fs.make_filesystem(str(p), drive_id, fstype)
        info = probed(p)
        assert info.drive_id == drive_id
        assert classify(info) == (Verdict.TITANS3, f"TitanS3 drive {drive_id}")


def test_mkfs_without_force_refuses_a_disk_with_a_filesystem(tmp_path):
    need("mkfs.xfs")
    need("mkfs.ext4")
    p = image(tmp_path, "taken.img", 320 * MiB)
    run("mkfs.ext4", "-q", "-F", str(p))
    with pytest.raises(fs.FormatError, match="existing filesystem"):
        fs.make_filesystem(str(p), uuid.uuid4().hex, "xfs")
    assert names(scan_file(p)) == {"ext4"}


def test_label_fits_xfs_and_maps_back_to_the_drive_id():
    drive_id = uuid.uuid4().hex
    assert len(signatures.fs_label(drive_id)) <= 12
    assert signatures.drive_id_of("xfs", signatures.fs_label(drive_id), signatures.fs_uuid(drive_id)) == drive_id
    assert signatures.drive_id_of("ext4", "titans3-0000", signatures.fs_uuid(drive_id)) is None
    assert signatures.drive_id_of("btrfs", signatures.fs_label(drive_id), signatures.fs_uuid(drive_id)) is None
    assert signatures.drive_id_of("xfs", "data", signatures.fs_uuid(drive_id)) is None
