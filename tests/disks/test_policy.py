"""Which disks may be touched (scope, allow-list), what they hold (classify),
whether they may be formatted, and when a drive counts as failed."""

from __future__ import annotations

import json

import pytest

from titans3.disks.policy import (
    DeviceInfo,
    FailureWatch,
    Verdict,
    allowed,
    classify,
    in_scope,
    may_format,
    parse_blkid_export,
    parse_globs,
    parse_mountinfo,
    parse_wipefs_json,
)
from titans3.disks.signatures import Signature, fs_label, fs_uuid

GiB = 1 << 30
LOOP = DeviceInfo("/dev/loop3", "loop3", size=GiB, backing_file="/tmp/t/disk-3.img", probed=True)
SDB = DeviceInfo("/dev/sdb", "sdb", size=GiB, links=("/dev/disk/by-id/ata-X_123",), probed=True)


# ------------------------------------------------------------------ allow-list
def test_allow_glob_matches_device_path_link_or_loop_backing_file():
    assert allowed(LOOP, ["/dev/loop3"])
    assert allowed(LOOP, ["/tmp/t/disk-*.img"])
    assert allowed(SDB, ["/dev/disk/by-id/ata-X_*"])
    assert allowed(SDB, ["/dev/sd*"])
    assert not allowed(LOOP, ["/tmp/t/other-*.img", "/dev/loop30"])
    assert not allowed(SDB, [])


def test_allow_glob_matches_a_deleted_backing_file_by_its_old_name():
    dev = DeviceInfo("/dev/loop4", "loop4", size=GiB, backing_file="/tmp/t/disk-4.img (deleted)")
    assert allowed(dev, ["/tmp/t/disk-4.img"])


def test_globs_are_a_comma_separated_list():
    assert parse_globs(" /a/*.img, /dev/sdb ,,") == ["/a/*.img", "/dev/sdb"]


# ----------------------------------------------------------------------- scope
def test_auto_without_allow_list_skips_virtual_removable_and_partitions():
    assert in_scope(SDB, auto=True, explicit=[], globs=[]) == (True, "")
    for dev in (LOOP, DeviceInfo("/dev/zram0", "zram0", size=GiB), DeviceInfo("/dev/dm-0", "dm-0", size=GiB),
                DeviceInfo("/dev/sdc", "sdc", size=GiB, removable=True),
                DeviceInfo("/dev/sdb1", "sdb1", devtype="partition", size=GiB)):
        ok, why = in_scope(dev, auto=True, explicit=[], globs=[])
        assert not ok and why


def test_auto_with_allow_list_takes_only_matching_devices_of_any_kind():
    assert in_scope(LOOP, auto=True, explicit=[], globs=["/tmp/t/*.img"]) == (True, "")
    assert in_scope(SDB, auto=True, explicit=[], globs=["/tmp/t/*.img"]) == (False, "not matched by --disk-allow")


def test_an_explicit_list_names_the_devices_in_scope():
    assert in_scope(SDB, auto=False, explicit=["/dev/sdb"], globs=[])[0]
    assert in_scope(SDB, auto=False, explicit=["/dev/disk/by-id/ata-X_123"], globs=[])[0]
    assert not in_scope(LOOP, auto=False, explicit=["/dev/sdb"], globs=[])[0]
    assert not in_scope(SDB, auto=False, explicit=[], globs=[])[0]  # directories mode


# -------------------------------------------------------------------- classify
def fs_sig(name: str, label: str = "", u: str = "") -> Signature:
    return Signature("filesystem", name, 0, label=label, uuid=u)


@pytest.mark.parametrize(
    "dev,verdict,reason",
    [
        (DeviceInfo("/dev/x", "x", size=0), Verdict.UNUSABLE, "no medium"),
        (DeviceInfo("/dev/x", "x", size=GiB, read_only=True, probed=True), Verdict.UNUSABLE, "read-only"),
        (DeviceInfo("/dev/x", "x", size=64 << 20, probed=True), Verdict.UNUSABLE, "too small (64 MiB < 128 MiB)"),
        (DeviceInfo("/dev/x", "x", size=GiB, mountpoints=("/srv",), signatures=(fs_sig("ext4"),), probed=True),
         Verdict.IN_USE, "mounted on /srv"),
        (DeviceInfo("/dev/x", "x", size=GiB, swap=True, probed=True), Verdict.IN_USE, "active swap"),
        (DeviceInfo("/dev/x", "x", size=GiB, holders=("dm-0",), probed=True), Verdict.IN_USE, "held by dm-0"),
        (DeviceInfo("/dev/x", "x", size=GiB, partitions=("x1", "x2"), probed=True), Verdict.HAS_DATA,
         "has partitions (x1, x2)"),
        (DeviceInfo("/dev/x", "x", size=GiB, signatures=(
            Signature("partition-table", "gpt", 512), fs_sig("ext4")), probed=True),
         Verdict.HAS_DATA, "has a gpt partition table and an ext4 filesystem"),
        (DeviceInfo("/dev/x", "x", size=GiB, probed=False, probe_error="blkid exited 4"), Verdict.UNUSABLE,
         "could not be probed (blkid exited 4)"),
        (DeviceInfo("/dev/x", "x", size=GiB, probed=True), Verdict.BLANK, "blank"),
    ],
)
def test_classify_says_what_a_disk_holds(dev, verdict, reason):
    assert classify(dev) == (verdict, reason)


def test_a_titans3_drive_is_recognised_even_while_mounted():
    drive_id = "0123456789abcdef0123456789abcdef"
    dev = DeviceInfo("/dev/x", "x", size=GiB, mountpoints=("/state/disks/" + drive_id,), probed=True,
                     signatures=(fs_sig("xfs", fs_label(drive_id), fs_uuid(drive_id)),))
    assert dev.drive_id == drive_id
    assert classify(dev)[0] is Verdict.TITANS3


def test_a_lookalike_label_is_not_a_titans3_drive():
    dev = DeviceInfo("/dev/x", "x", size=GiB, probed=True,
                     signatures=(fs_sig("xfs", "titans3-abcd", "00000000-0000-0000-0000-000000000001"),))
    assert dev.drive_id is None
    assert classify(dev)[0] is Verdict.HAS_DATA


def test_force_erases_data_but_never_a_disk_in_use_or_unusable():
    assert may_format(Verdict.BLANK, force=False)
    assert not may_format(Verdict.HAS_DATA, force=False)
    assert may_format(Verdict.HAS_DATA, force=True)
    assert not may_format(Verdict.TITANS3, force=False)
    for v in (Verdict.IN_USE, Verdict.UNUSABLE):
        assert not may_format(v, force=True)


# --------------------------------------------------------------------- parsers
def test_blkid_export_gives_filesystems_and_partition_tables():
    out = parse_blkid_export("DEVNAME=/dev/x\nLABEL=a b\nUUID=u-1\nTYPE=ext4\nUSAGE=filesystem\n")
    assert out == [Signature("filesystem", "ext4", -1, "blkid", "a b", "u-1")]
    assert parse_blkid_export("PTUUID=x\nPTTYPE=gpt\n") == [Signature("partition-table", "gpt", -1, "blkid")]
    assert parse_blkid_export("TYPE=swap\nUSAGE=other\n")[0].kind == "swap"
    assert parse_blkid_export("") == []


def test_wipefs_json_lists_every_signature_with_its_offset():
    doc = {"signatures": [{"device": "x", "offset": "0x200", "type": "gpt", "uuid": None, "label": None},
                          {"device": "x", "offset": "0x438", "type": "ext4", "uuid": "u", "label": "l"},
                          {"device": "x", "offset": "0x1000", "type": "linux_raid_member"}]}
    out = parse_wipefs_json(json.dumps(doc))
    assert [(s.kind, s.name, s.offset, s.label) for s in out] == [
        ("partition-table", "gpt", 0x200, ""), ("filesystem", "ext4", 0x438, "l"),
        ("container", "linux_raid_member", 0x1000, "")]
    assert parse_wipefs_json("") == []


def test_mountinfo_maps_devices_to_mount_points_with_escapes():
    text = ("22 1 252:1 / / rw,relatime - ext4 /dev/vda1 rw\n"
            "40 22 7:3 / /srv/my\\040disk rw - xfs /dev/loop3 rw\n"
            "41 22 7:3 / /mnt/again rw - xfs /dev/loop3 rw\n")
    assert parse_mountinfo(text) == {(252, 1): ["/"], (7, 3): ["/srv/my disk", "/mnt/again"]}


# -------------------------------------------------------------- failure policy
def test_io_errors_above_the_limit_within_the_window_fail_a_drive():
    w = FailureWatch(error_limit=5, window=60, offline_limit=1e9)
    assert w.observe(0, online=True, io_errors=0) is None
    assert w.observe(10, online=True, io_errors=4) is None
    assert w.observe(20, online=True, io_errors=5) == "5 I/O errors in 60s"


def test_io_errors_spread_over_longer_than_the_window_do_not():
    w = FailureWatch(error_limit=5, window=60, offline_limit=1e9)
    for errors, t in enumerate(range(0, 1000, 20), start=1):  # one error every 20 s: 3 per window
        assert w.observe(t, online=True, io_errors=errors) is None


def test_a_drive_offline_without_a_break_for_the_limit_fails():
    w = FailureWatch(error_limit=100, window=60, offline_limit=30)
    assert w.observe(0, online=False, io_errors=0) is None
    assert w.observe(20, online=False, io_errors=0) is None
    assert w.observe(25, online=True, io_errors=0) is None  # came back: the clock restarts
    assert w.observe(40, online=False, io_errors=0) is None
    assert w.observe(69, online=False, io_errors=0) is None
    assert w.observe(70, online=False, io_errors=0) == "offline for 30s"


def test_udev_properties_alone_do_not_make_a_titans3_drive():
    # udev's view may predate a wipe; only what is read from the device counts.
    drive_id = "0123456789abcdef0123456789abcdef"
    stale = Signature("filesystem", "xfs", -1, "udev", fs_label(drive_id), fs_uuid(drive_id))
    dev = DeviceInfo("/dev/x", "x", size=GiB, probed=True, signatures=(stale,))
    assert dev.drive_id is None
    assert classify(dev)[0] is Verdict.HAS_DATA
