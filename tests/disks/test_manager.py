"""The disk manager's decisions without block devices: the device views
(mount table, /sys/dev/block, the scan) are replaced by a fake world, the
drives by doubles with the LocalDrive surface it uses.  Formatting and
mounting real devices is covered by hwtests/test_disks.py."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trio

from titans3.core.errors import ConfigError
from titans3.disks import fs, manager, probe
from titans3.disks.ledger import DiskRecord, DiskState
from titans3.disks.manager import DiskManager, DriveFailed, DriveReplaced
from titans3.disks.policy import DeviceInfo, FailureWatch
from titans3.disks.roster import Roster
from titans3.drive.protocol import DriveState

GiB = 1 << 30


@dataclass
class Stats:
    errors: int = 0
    quarantined: int = 0


@dataclass
class FakeDrive:
    drive_id: str
    root: Path
    state: DriveState = DriveState.ONLINE
    stats: Stats = field(default_factory=Stats)
    closed: bool = False
    _inflight: int = 0

    def statistics(self) -> Stats:
        return self.stats

    def mark_failed(self) -> None:
        self.state = DriveState.FAILED

    async def close(self) -> None:
        self.closed = True
        self.state = DriveState.OFFLINE


@dataclass
class FakeStore:
    drives: list[Any]
    healing: set[int] = field(default_factory=set)

    def replace_drive(self, pos: int, drive: Any) -> None:
        self.drives[pos] = drive


@dataclass
class FakeRefill:
    started: list[int] = field(default_factory=list)

    def start(self, pos: int) -> None:
        self.started.append(pos)


class World:
    """What the manager would read from the kernel."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, mgr: DiskManager) -> None:
        self.present: set[tuple[int, int]] = set()
        self.mounts: dict[tuple[int, int], list[str]] = {}
        self.devices: list[DeviceInfo] = []
        monkeypatch.setattr(probe, "mount_table", lambda: self.mounts)
        monkeypatch.setattr(probe, "device_present", lambda a, b: (a, b) in self.present)
        monkeypatch.setattr(fs, "unmount", lambda mp, **kw: None)

        async def scan() -> list[DeviceInfo]:
            return list(self.devices)

        monkeypatch.setattr(mgr, "scan", scan)

    def plug(self, mgr: DiskManager, drive: FakeDrive, devnum: tuple[int, int]) -> None:
        self.present.add(devnum)
        self.mounts[devnum] = [str(mgr.mountpoint(drive.drive_id))]


def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, n: int = 3, **kw: Any) -> tuple[DiskManager, World, Any]:
    mgr = DiskManager(tmp_path, "h", auto=True, **kw)
    world = World(monkeypatch, mgr)
    roster = Roster(tmp_path)
    for i in range(n):
        d = FakeDrive(f"{i:032x}", mgr.mountpoint(f"{i:032x}"))
        mgr.drives.append(d)  # type: ignore[arg-type]
        mgr.ledger.add(DiskRecord(d.drive_id, DiskState.ACTIVE, "xfs", slot=mgr.slot_name(i)))
        roster.observe(mgr.slot_name(i), str(d.root), d.drive_id)
        mgr._track(d, (7, i))  # type: ignore[arg-type]
        world.plug(mgr, d, (7, i))
    roster.save()
    host = type("Host", (), {})()
    host.drives, host.roster = mgr.drives, roster
    host.store = FakeStore(mgr.drives)
    host.workers = {"refill": FakeRefill()}
    mgr.attach(host)
    return mgr, world, host


def test_a_drive_whose_disk_vanished_is_failed_released_and_reported(tmp_path, monkeypatch):
    mgr, world, host = setup(tmp_path, monkeypatch)
    failed: list[DriveFailed] = []
    mgr.on_failed.append(failed.append)
    world.present.discard((7, 1))

    trio.run(mgr.reconcile)

    victim = mgr.drives[1]
    assert victim.state is DriveState.FAILED and victim.closed  # type: ignore[attr-defined]
    assert failed == [DriveFailed("h/drive-1", 1, victim.drive_id, "disk removed")]
    assert mgr.ledger.get(victim.drive_id).state is DiskState.FAILED
    assert [d.state for d in (mgr.drives[0], mgr.drives[2])] == [DriveState.ONLINE] * 2
    trio.run(mgr.reconcile)
    assert len(failed) == 1  # failed once, not on every pass


def test_a_drive_whose_filesystem_was_unmounted_is_failed(tmp_path, monkeypatch):
    mgr, world, _ = setup(tmp_path, monkeypatch)
    world.mounts[(7, 2)] = []
    trio.run(mgr.reconcile)
    assert mgr.ledger.get(mgr.drives[2].drive_id).reason == "filesystem no longer mounted"


def test_io_errors_fail_a_drive_but_quarantined_fragments_do_not(tmp_path, monkeypatch):
    mgr, _, _ = setup(tmp_path, monkeypatch,
                      failure_watch=lambda: FailureWatch(error_limit=3, window=600, offline_limit=600))
    trio.run(mgr.reconcile)  # baseline sample
    mgr.drives[0].stats.errors = mgr.drives[0].stats.quarantined = 50  # type: ignore[attr-defined]
    mgr.drives[1].stats.errors = 3  # type: ignore[attr-defined]
    trio.run(mgr.reconcile)
    assert mgr.drives[0].state is DriveState.ONLINE
    assert mgr.drives[1].state is DriveState.FAILED
    assert mgr.ledger.get(mgr.drives[1].drive_id).reason == "3 I/O errors in 600s"


def test_an_installed_replacement_goes_live_healing_and_wakes_the_refill(tmp_path, monkeypatch):
    mgr, world, host = setup(tmp_path, monkeypatch)
    replaced: list[DriveReplaced] = []
    mgr.on_replaced.append(replaced.append)
    world.present.discard((7, 0))
    trio.run(mgr.reconcile)
    old = mgr.drives[0]

    new = FakeDrive("f" * 32, mgr.mountpoint("f" * 32))
    event = mgr._install(0, new)  # type: ignore[arg-type]

    assert host.drives[0] is new and host.store.drives[0] is new
    assert host.store.healing == {0} and Roster(tmp_path).slots["h/drive-0"].healing
    assert host.workers["refill"].started == [0]
    assert replaced == [event] == [DriveReplaced("h/drive-0", 0, new.drive_id, old.drive_id, True)]


def test_a_subscriber_that_raises_does_not_stop_disk_handling(tmp_path, monkeypatch):
    mgr, world, _ = setup(tmp_path, monkeypatch)
    seen: list[DriveFailed] = []
    mgr.on_failed += [lambda ev: 1 / 0, seen.append]
    world.present.clear()
    trio.run(mgr.reconcile)
    assert len(seen) == 3


def test_first_start_without_a_qualifying_disk_refuses_to_start(tmp_path, monkeypatch):
    mgr = DiskManager(tmp_path, "h", auto=True, allow=["/tmp/x/*"])
    world = World(monkeypatch, mgr)
    world.devices = [DeviceInfo("/dev/loop9", "loop9", size=GiB, probed=True, partitions=("loop9p1",))]
    with pytest.raises(ConfigError, match="no disk qualifies"):
        trio.run(mgr.start)


def test_a_host_that_ran_on_directories_is_not_taken_over(tmp_path, monkeypatch):
    roster = Roster(tmp_path)
    roster.observe("h/drive-0", str(tmp_path / "data/drive-0"), "a" * 32)
    roster.save()
    mgr = DiskManager(tmp_path, "h", auto=True)
    World(monkeypatch, mgr)
    with pytest.raises(ConfigError, match="directories"):
        trio.run(mgr.start)


def test_disk_config_is_validated_with_the_key_named():
    from titans3.core.config import load

    assert load(flags={"disks": "auto", "disk_allow": "/a/*.img,/dev/loop7"}, environ={}).disk_allow
    with pytest.raises(ConfigError, match="disks: expected 'auto' or device paths"):
        load(flags={"disks": "sdb"}, environ={})
    with pytest.raises(ConfigError, match="disk_allow: only meaningful with disks"):
        load(flags={"disk_allow": "/dev/sd*"}, environ={})
    mgr = DiskManager.from_config(load(flags={"disks": "/dev/sdb, /dev/sdc"}, environ={}), "h")
    assert (mgr.auto, mgr.explicit[:2]) == (False, ["/dev/sdb", "/dev/sdc"])
    assert manager.DiskManager.from_config(load(flags={"disks": "auto"}, environ={}), "h").auto


def test_mount_points_are_absolute_even_for_a_relative_state_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    mgr = DiskManager(Path("data/.titans3"), "h", auto=True)
    assert mgr.mountpoint("ab" * 16) == tmp_path.resolve() / "data/.titans3/disks" / ("ab" * 16)


def blank(path: str, minor: int) -> DeviceInfo:
    return DeviceInfo(path, path.rsplit("/", 1)[1], major=8, minor=minor, size=GiB, probed=True)


def fake_format(mgr: DiskManager, monkeypatch: pytest.MonkeyPatch, refuse: set[str] = frozenset()) -> list[str]:  # type: ignore[assignment]
    formatted: list[str] = []

    async def _format(path: str, *, force: bool) -> tuple[DeviceInfo, str, str]:
        assert not force  # a spare is only ever made of a blank disk
        formatted.append(path)
        if path in refuse:
            from titans3.disks.errors import DiskOperationFailed

            raise DiskOperationFailed(f"mkfs failed on {path}")
        return blank(path, 99), f"{len(formatted):032x}", "xfs"

    monkeypatch.setattr(mgr, "_format", _format)
    return formatted


def test_a_new_blank_disk_becomes_a_spare_when_every_slot_is_served(tmp_path, monkeypatch):
    mgr, world, _ = setup(tmp_path, monkeypatch)
    formatted = fake_format(mgr, monkeypatch)
    with_data = DeviceInfo("/dev/sdx", "sdx", major=8, minor=2, size=GiB, probed=True, partitions=("sdx1",))
    unprobed = DeviceInfo("/dev/sdy", "sdy", major=8, minor=3, size=GiB, probed=False)
    world.devices = [with_data, unprobed, blank("/dev/sdz", 4)]

    trio.run(mgr.reconcile)

    assert formatted == ["/dev/sdz"]  # never the disk with a partition table, nor one not probed
    (spare,) = mgr.ledger.in_state(DiskState.SPARE)
    assert spare.device == "/dev/sdz" and spare.slot == ""
    assert [d.state for d in mgr.drives] == [DriveState.ONLINE] * 3  # the slots are untouched


def test_no_spare_is_made_on_a_timer_pass_only_when_a_disk_may_have_come(tmp_path, monkeypatch):
    mgr, world, _ = setup(tmp_path, monkeypatch)
    formatted = fake_format(mgr, monkeypatch)
    world.devices = [blank("/dev/sdz", 4)]
    trio.run(lambda: mgr.reconcile(rescan=True, spares=False))
    assert formatted == [] and not mgr.ledger.in_state(DiskState.SPARE)


def test_a_disk_that_failed_to_format_as_a_spare_is_not_retried(tmp_path, monkeypatch):
    mgr, world, _ = setup(tmp_path, monkeypatch)
    formatted = fake_format(mgr, monkeypatch, refuse={"/dev/sdz"})
    world.devices = [blank("/dev/sdz", 4)]
    trio.run(mgr.reconcile)
    trio.run(mgr.reconcile)
    assert formatted == ["/dev/sdz"] and not mgr.ledger.in_state(DiskState.SPARE)


def test_an_empty_slot_takes_the_blank_disk_before_any_spare_is_made(tmp_path, monkeypatch):
    mgr, world, host = setup(tmp_path, monkeypatch)
    world.present.discard((7, 1))
    trio.run(mgr.reconcile)  # slot 1 failed
    opened: list[str] = []

    async def format_and_open(dev: DeviceInfo, slot: str, *, force: bool) -> FakeDrive:
        opened.append(dev.path)
        return FakeDrive("e" * 32, mgr.mountpoint("e" * 32))

    monkeypatch.setattr(mgr, "_format_and_open", format_and_open)
    formatted = fake_format(mgr, monkeypatch)
    world.devices = [blank("/dev/sdz", 4)]
    trio.run(mgr.reconcile)
    assert opened == ["/dev/sdz"] and formatted == []
    assert host.drives[1].drive_id == "e" * 32 and not mgr.ledger.in_state(DiskState.SPARE)
