"""Raw disk management against real block devices (loop devices here).

Every test creates its own sparse backing files, attaches them with
``losetup -f --show``, allows the daemon exactly those files
(``--disk-allow`` with exact paths) or names exactly those devices
(``--disks /dev/loopA,...``), and in a ``finally`` stops the daemon, unmounts
everything under its directory and detaches every device backed by its files
(hwtests/loopdev.py).  Devices attached by anyone else are never touched.

Pulling a disk: loop devices cannot be hot-unplugged, so a "pull" is
``umount -l`` of the drive's mount point (the filesystem disappears from the
daemon's view at once; files it holds open stay readable, as on a disk whose
cable was pulled the filesystem would not) followed by ``losetup -d``, which
on a busy device only sets autoclear: the kernel detaches it when the daemon
lets go.  The test asserts the daemon does let go (the device disappears),
i.e. it closed the failed drive instead of pinning a dead filesystem.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import require_loop_devices
from loopdev import LoopSet, sh

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.integration.cluster import ROOT, TITANCTL, Daemon, clean_env, s3_client  # noqa: E402

MiB = 1 << 20


class DiskDaemon(Daemon):
    """``titans3 serve`` on raw disks: the harness's argv plus disk flags."""

    def __init__(self, *args: Any, disk_args: list[str], state_dir: Path, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.disk_args = disk_args
        self.state_dir = state_dir

    def argv(self) -> list[str]:
        return [*super().argv(), "--state-dir", str(self.state_dir), *self.disk_args]

    def ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = clean_env({"TITANS3_ROOT_ACCESS_KEY": ROOT.access_key,
                         "TITANS3_ROOT_SECRET_KEY": ROOT.secret_key})
        proc = subprocess.run([str(TITANCTL), "--endpoint", self.endpoint, *args], env=env,
                              capture_output=True, text=True, timeout=300, check=False)
        if check and proc.returncode != 0:
            raise AssertionError(f"titanctl {' '.join(args)} -> {proc.returncode}: {proc.stderr}\n"
                                 f"{self.log_tail(40)}")
        return proc

    def disks(self) -> list[dict[str, Any]]:
        return json.loads(self.ctl("disk", "list", "--json").stdout)["disks"]

    def slots(self) -> dict[str, dict[str, Any]]:
        return {r["slot"]: r for r in self.disks() if r["slot"]}


def wait_for(what: str, cond: Callable[[], Any], timeout: float = 60.0, daemon: Daemon | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            tail = daemon.log_tail(60) if daemon is not None else ""
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n{tail}")
        time.sleep(0.25)


@pytest.fixture
def rig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    require_loop_devices()
    for tool in ("losetup", "mkfs.xfs", "mkfs.ext4", "blkid", "wipefs", "debugfs"):
        if not any(os.access(os.path.join(d, tool), os.X_OK) for d in os.environ["PATH"].split(":")
                   + ["/usr/sbin", "/sbin"]):
            pytest.skip(f"{tool} is not installed (scripts/setup.sh installs it)")
    # boto3 in this process must not read the runner's ~/.aws or AWS_* settings.
    empty = tmp_path / "aws-empty"
    empty.touch()
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))
    loops = LoopSet(tmp_path)
    made: list[Daemon] = []
    try:
        yield {"loops": loops, "daemons": made, "tmp": tmp_path}
    finally:
        try:
            for d in made:
                d.stop()
        finally:
            loops.cleanup()


def start(rig: dict[str, Any], disk_args: list[str]) -> DiskDaemon:
    tmp: Path = rig["tmp"]
    d = DiskDaemon(tmp / "data", tmp / "titans3.log", disk_args=disk_args, state_dir=tmp / "state",
                   name="titans3-disks")
    rig["daemons"].append(d)
    return d.start()  # type: ignore[return-value]


def put_objects(s3: Any, n: int) -> dict[str, bytes]:
    s3.create_bucket(Bucket="hwdisks")
    objects = {}
    for i in range(n):
        # Mixed sizes: inline (LMDB) fragments and fragment files.
        body = os.urandom([1000, 300 * 1024, 1536 * 1024][i % 3] + i)
        s3.put_object(Bucket="hwdisks", Key=f"obj-{i:03d}", Body=body)
        objects[f"obj-{i:03d}"] = body
    return objects


def verify(s3: Any, objects: dict[str, bytes]) -> None:
    for key, body in objects.items():
        got = s3.get_object(Bucket="hwdisks", Key=key)["Body"].read()
        assert got == body, f"{key}: {len(got)} bytes differ from the {len(body)} written"


def pull(loops: LoopSet, dev: str, mountpoint: str) -> None:
    """As close to pulling a disk as loop devices allow (see the module docstring)."""
    sh("umount", "-l", mountpoint)
    loops.detach(dev)


def test_auto_claims_blank_disks_survives_a_pull_and_refills_a_new_disk(rig):
    loops: LoopSet = rig["loops"]
    blanks = [loops.file(f"disk-{i}.img") for i in range(6)]
    decoy = loops.file("decoy.img")
    content = rig["tmp"] / "decoy-content"
    content.mkdir()
    (content / "marker.txt").write_text("someone else's data\n")
    decoy_uuid = str(uuid.uuid4())
    sh("mkfs.ext4", "-q", "-F", "-U", decoy_uuid, "-d", str(content), str(decoy))
    spare_file = rig["tmp"] / "disk-new.img"  # allowed now, created later
    devs = {f: loops.attach(f) for f in [*blanks, decoy]}
    allow = [a for f in [*blanks, decoy, spare_file] for a in ("--disk-allow", str(f))]
    daemon = start(rig, ["--disks", "auto", *allow])

    # Six blank disks claimed, the ext4 one left alone (and refused by claim).
    slots = daemon.slots()
    assert len(slots) == 6 and {r["state"] for r in slots.values()} == {"online"}
    assert {r["device"] for r in slots.values()} == {devs[f] for f in blanks}
    (ignored,) = [r for r in daemon.disks() if r["device"] == devs[decoy]]
    assert ignored["state"] == "ignored" and "ext4" in ignored["reason"]
    refused = daemon.ctl("disk", "claim", devs[decoy], check=False)
    assert refused.returncode == 1
    assert "DiskRefused" in refused.stderr and "--force" in refused.stderr
    assert "Traceback" not in refused.stderr

    s3 = s3_client(daemon)
    objects = put_objects(s3, 12)

    # A restart with every disk unmounted finds the drives again by filesystem UUID.
    daemon.stop()
    for mp in sorted(os.listdir(daemon.state_dir / "disks")):
        sh("umount", str(daemon.state_dir / "disks" / mp))
    daemon.start()
    assert {s: r["drive_id"] for s, r in daemon.slots().items()} == {s: r["drive_id"] for s, r in slots.items()}
    verify(s3, objects)

    # Pull one disk: its drive fails, the daemon lets go of it, reads go on.
    victim_slot, victim = sorted(slots.items())[2]
    victim_file = next(f for f, d in devs.items() if d == victim["device"])
    pull(loops, victim["device"], str(daemon.state_dir / "disks" / victim["drive_id"]))
    wait_for("the pulled drive to be failed",
             lambda: daemon.slots()[victim_slot]["state"] == "failed", daemon=daemon)
    wait_for("the kernel to detach the pulled loop device", lambda: loops.gone(victim_file), daemon=daemon)
    verify(s3, objects)

    # A new blank disk appears: it takes the failed slot, healing, and is refilled.
    loops.file("disk-new.img")
    new_dev = loops.attach(spare_file)
    # Well inside the manager's 30 s rescan period: the uevent woke it.
    row = wait_for("the new disk to take the failed slot",
                   lambda: (r := daemon.slots()[victim_slot])["drive_id"] != victim["drive_id"] and r,
                   timeout=20, daemon=daemon)
    assert row["device"] == new_dev and row["state"] in ("healing", "online")
    verify(s3, objects)
    if importlib.util.find_spec("titans3.workers.refill") is None:
        assert row["state"] == "healing"  # no refill worker yet: marked, waiting
        return
    wait_for("the refill to finish", lambda: daemon.slots()[victim_slot]["state"] == "online",
             timeout=120, daemon=daemon)
    # Proof the new disk holds its fragments: lose two *other* disks (m = 2);
    # every read now needs the refilled one.
    for slot, r in sorted(slots.items())[4:6]:
        pull(loops, r["device"], str(daemon.state_dir / "disks" / r["drive_id"]))
        wait_for(f"{slot} to be failed", lambda s=slot: daemon.slots()[s]["state"] == "failed", daemon=daemon)
    verify(s3, objects)

    # The ext4 disk was never touched.
    assert sh("blkid", "-p", "-s", "UUID", "-o", "value", str(decoy)).stdout.strip() == decoy_uuid
    assert sh("debugfs", "-R", "cat /marker.txt", str(decoy)).stdout == "someone else's data\n"


def test_operator_claims_a_spare_drains_replaces_and_forgets(rig):
    loops: LoopSet = rig["loops"]
    files = [loops.file(f"d{i}.img") for i in range(6)]
    devs = [loops.attach(f) for f in files]
    listed, extra = devs[:4], devs[4:]
    daemon = start(rig, ["--disks", ",".join(listed)])
    slots = daemon.slots()
    assert sorted(r["device"] for r in slots.values()) == sorted(listed)
    assert not [r for r in daemon.disks() if r["device"] in extra]  # not listed: out of scope
    s3 = s3_client(daemon)
    objects = put_objects(s3, 6)

    # Every slot is served, so a claimed disk becomes a spare.
    out = daemon.ctl("disk", "claim", extra[0]).stdout
    assert "spare" in out
    (spare,) = [r for r in daemon.disks() if r["state"] == "spare"]

    # Drain: out of service, unmounted, and the spare takes the slot.
    slot1 = sorted(slots)[1]
    drained_id = slots[slot1]["drive_id"]
    out = daemon.ctl("disk", "drain", drained_id[:8]).stdout
    assert "can be pulled" in out and spare["drive_id"] in out
    assert not os.path.ismount(daemon.state_dir / "disks" / drained_id)
    now = daemon.slots()
    assert now[slot1]["drive_id"] == spare["drive_id"] and now[slot1]["state"] in ("healing", "online")
    verify(s3, objects)

    # Replace by device name with a disk that is not in --disks (explicit consent).
    slot2 = sorted(slots)[2]
    out = daemon.ctl("disk", "replace", slots[slot2]["device"], extra[1]).stdout
    assert f"{extra[1]} is drive" in out
    assert daemon.slots()[slot2]["device"] == extra[1]
    verify(s3, objects)

    # Refusals: a serving drive cannot be forgotten, a serving disk not claimed.
    busy = daemon.ctl("disk", "forget", daemon.slots()[slot2]["drive_id"], check=False)
    assert busy.returncode == 1 and "drain" in busy.stderr
    taken = daemon.ctl("disk", "claim", extra[1], check=False)
    assert taken.returncode == 1 and "already serves" in taken.stderr
    missing = daemon.ctl("disk", "drain", "ffffffffff", check=False)
    assert missing.returncode == 1 and "NoSuchDisk" in missing.stderr

    # Forget the drained drive: out of the records; its disk is now just a
    # foreign TitanS3 disk that nothing uses without --force.
    daemon.ctl("disk", "forget", drained_id)
    (row,) = [r for r in daemon.disks() if r["drive_id"] == drained_id]
    assert (row["device"], row["state"], row["slot"]) == (slots[slot1]["device"], "foreign", "")
    verify(s3, objects)
