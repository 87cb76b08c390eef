"""A real filesystem on a volume: ext4 over nbdfuse + a loop device, through a crash and lost drives.

The kernel here has no nbd module, so the block device is a loop device over
the file nbdfuse exposes.  ``sync`` makes the kernel flush the loop device,
which nbdfuse turns into NBD_CMD_FLUSH: after it returns, the filesystem
must survive SIGKILL of the daemon -- and, after the restart, losing two of
the six drives (EC 4+2 reads from the other four).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from . import cluster
from .nbdtools import (
    NbdDaemon,
    loop_device,
    make_tree,
    mounted,
    nbdfuse,
    run,
    tree_digest,
    wait_detached,
)

pytestmark = pytest.mark.skipif(not Path("/dev/fuse").exists() or shutil.which("nbdfuse") is None,
                                reason="needs /dev/fuse and nbdfuse")


def test_ext4_survives_sigkill_and_two_lost_drives(tmp_path: Path) -> None:
    d = NbdDaemon(tmp_path / "data", tmp_path / "titans3.log", drives=6, name="titans3-fs")
    cluster.LIVE.append(d)
    try:
        d.start()
        d.create_volume("fs", "384M")
        src = tmp_path / "tree"
        make_tree(src, seed=5)
        want = tree_digest(src)
        with nbdfuse(d.uri("fs"), tmp_path / "fuse1") as disk, loop_device(disk) as dev:
            run(["mkfs.ext4", "-q", "-F", dev])
            with mounted(dev, tmp_path / "mnt1") as mnt:
                shutil.copytree(src, mnt / "tree")
                run(["sync", "-f", str(mnt)])
            run(["sync"])
            # Unmounted and flushed; the NBD connections are still open: crash now.
            d.kill()
        d.start()
        with nbdfuse(d.uri("fs"), tmp_path / "fuse2") as disk, loop_device(disk) as dev:
            run(["fsck.ext4", "-fn", dev])
            with mounted(dev, tmp_path / "mnt2") as mnt:
                assert tree_digest(mnt / "tree") == want
        wait_detached(d, "fs")  # the next attach replays and reads with the drives gone
        for i in (0, 3):  # two of six drives are gone
            shutil.rmtree(d.drive_dir(i))
        with nbdfuse(d.uri("fs"), tmp_path / "fuse3") as disk, loop_device(disk) as dev:
            run(["fsck.ext4", "-fn", dev])
            # Read-only and without journal replay: reading needs k drives, writing a quorum.
            with mounted(dev, tmp_path / "mnt3", "ro,noload") as mnt:
                assert tree_digest(mnt / "tree") == want
    finally:
        d.stop()
        cluster.LIVE.remove(d)

