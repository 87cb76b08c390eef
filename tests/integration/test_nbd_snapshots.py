"""Snapshots, clones and rollback through real clients.

A snapshot taken while a client writes holds every write acknowledged before
the snapshot was asked for and none sent after it was answered; a clone of it
is writable and leaves the snapshot as it was; rollback brings the volume
back; resize grows what clients see; deletes refuse while something depends
on what they would remove.
"""

from __future__ import annotations

import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .nbdtools import PATH_ENV, SYSTEM_PYTHON, NbdDaemon, module_daemon, run, wait_detached

MiB = 1 << 20
BLOCKS = 8192  # 32 MiB
BASE = b"\xaa" * (32 * MiB)  # what the volume holds before the writer starts


@pytest.fixture(scope="module")
def nbd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NbdDaemon]:
    yield from module_daemon(tmp_path_factory, "nbdsnap")


def copy_out(d: NbdDaemon, export: str, where: Path) -> bytes:
    run(["nbdcopy", d.uri(export), str(where)])
    return where.read_bytes()


def block_tag(image: bytes, b: int) -> int:
    """What a block of the seqwriter's holds: its number; -1 for anything else (the base pattern)."""
    data = image[b * 4096 : (b + 1) * 4096]
    (tag,) = struct.unpack_from(">Q", data)
    return tag if data == struct.pack(">Q", tag) * 512 and data != BASE[:4096] else -1


def test_snapshot_during_writes_clone_rollback_and_deletes(nbd: NbdDaemon, tmp_path: Path) -> None:
    nbd.create_volume("db", "32M")
    base = tmp_path / "base.img"
    base.write_bytes(BASE)
    run(["nbdcopy", "--flush", str(base), nbd.uri("db")])

    log_path = tmp_path / "writer.log"
    writer = subprocess.Popen([SYSTEM_PYTHON, str(Path(__file__).parent / "nbdclients" / "seqwriter.py"),
                               nbd.uri("db"), "0", str(BLOCKS), str(log_path)], env=PATH_ENV,
                              stderr=subprocess.PIPE)
    try:
        time.sleep(1.0)
        t0 = time.monotonic()
        nbd.titanctl("volume", "snapshot", "create", "db", "mid")
        t1 = time.monotonic()
        assert writer.wait(300) == 0, writer.stderr.read() if writer.stderr else ""
    finally:
        if writer.poll() is None:
            writer.kill()
    sent, acked = {}, {}
    for line in log_path.read_text().splitlines():
        kind, b, t = line.split()
        (sent if kind == "S" else acked)[int(b)] = float(t)
    before = [b for b, t in acked.items() if t < t0]
    after = [b for b, t in sent.items() if t > t1]
    assert before and after, "the snapshot did not fall in the middle of the writes"

    snap = copy_out(nbd, "db@mid", tmp_path / "snap.img")
    assert all(block_tag(snap, b) == b for b in before), "a write acknowledged before the snapshot is missing"
    wrong = {b: block_tag(snap, b) for b in after if block_tag(snap, b) != -1}
    assert not wrong, f"writes sent after the snapshot are in it: {list(wrong.items())[:8]} of {len(wrong)}"
    assert all(block_tag(snap, b) in (b, -1) for b in range(BLOCKS))
    now = copy_out(nbd, "db", tmp_path / "now.img")
    assert all(block_tag(now, b) == b for b in range(BLOCKS))

    # A clone of the snapshot is writable and leaves the snapshot alone.
    nbd.titanctl("volume", "clone", "db@mid", "db-clone")
    patch = tmp_path / "patch.img"
    patch.write_bytes(b"\x55" * (8 * MiB))
    run(["nbdcopy", "--flush", str(patch), nbd.uri("db-clone")])  # the first 8 MiB of the clone
    clone = copy_out(nbd, "db-clone", tmp_path / "clone.img")
    assert clone[: 8 * MiB] == patch.read_bytes() and clone[8 * MiB :] == snap[8 * MiB :]
    assert copy_out(nbd, "db@mid", tmp_path / "snap2.img") == snap
    assert nbd.volume_json("info", "db-clone")["allocated"] == 8 * MiB  # copy-on-write: only what it wrote

    # Snapshot and volume deletes refuse while the clone depends on them.
    busy = nbd.titanctl("volume", "snapshot", "delete", "db", "mid", check=False)
    assert busy.returncode == 1 and "db-clone" in busy.stderr
    assert "db-clone" in nbd.titanctl("volume", "delete", "db", check=False).stderr

    # Rollback (no client attached) makes the volume what the snapshot holds.
    wait_detached(nbd, "db")
    nbd.titanctl("volume", "rollback", "db", "mid")
    assert copy_out(nbd, "db", tmp_path / "rolled.img") == snap

    # Resize: new connections see the new size; the new space reads as zeroes.
    wait_detached(nbd, "db")
    nbd.titanctl("volume", "resize", "db", "--size", "48M")
    assert run(["nbdinfo", "--size", nbd.uri("db")]).stdout.strip() == str(48 * MiB)
    assert copy_out(nbd, "db", tmp_path / "grown.img")[32 * MiB :] == bytes(16 * MiB)
    shrink = nbd.titanctl("volume", "resize", "db", "--size", "16M", check=False)
    assert shrink.returncode == 1 and "only grow" in shrink.stderr

    wait_detached(nbd, "db-clone")
    nbd.titanctl("volume", "delete", "db-clone")
    nbd.titanctl("volume", "snapshot", "delete", "db", "mid")
    wait_detached(nbd, "db")
    nbd.titanctl("volume", "delete", "db")
    assert "db" not in {v["name"] for v in nbd.volume_json("list")["volumes"]}
