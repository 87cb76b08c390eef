"""Loop devices for hardware tests: a test only ever touches devices it attached.

Theory of operation
-------------------
Loop devices are shared by the whole machine (other tests, other people), and
a loop *number* is reused as soon as it is free.  So :class:`LoopSet` keys
everything on the test's own backing files: a device is "ours" only while
``/sys/block/loopN/loop/backing_file`` names one of our files, and cleanup
finds our devices with ``losetup -j FILE`` rather than by remembered number.
Before any loop work the devices attached by others are logged and never
touched.

Cleanup (:meth:`LoopSet.cleanup`, run from a ``finally``): lazily unmount
every mount under the test's directory, then detach every loop device still
backed by one of our files.  ``losetup -d`` on a busy device only sets
autoclear, so cleanup waits briefly for the kernel to let go.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import time
from pathlib import Path

log = logging.getLogger(__name__)
MiB = 1 << 20


def sh(*argv: str, check: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, check=check, timeout=120)


def mounts_under(base: Path) -> list[str]:
    """Mount points at or below ``base``, deepest first."""
    prefix = str(base.resolve())
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4].replace("\\040", " ")
            if mp == prefix or mp.startswith(prefix + "/"):
                out.append(mp)
    return sorted(out, key=len, reverse=True)


def backing_file(dev: str) -> str:
    name = Path(dev).name
    try:
        return Path(f"/sys/block/{name}/loop/backing_file").read_text().strip()
    except OSError:
        return ""


class LoopSet:
    def __init__(self, base: Path) -> None:
        self.base = base.resolve()
        self.base.mkdir(parents=True, exist_ok=True)
        self.files: list[Path] = []
        self.others = sh("losetup", "-a", check=False).stdout  # never touched; logged for the record
        log.info("loop devices attached by others before this test:\n%s", self.others or "(none)")

    def file(self, name: str, size: int = 320 * MiB) -> Path:
        """A sparse backing file (XFS needs >= 300 MiB)."""
        p = self.base / name
        with open(p, "wb") as f:
            f.truncate(size)
        self.files.append(p)
        return p

    def attach(self, path: Path) -> str:
        assert path in self.files, "only our own backing files"
        dev = sh("losetup", "-f", "--show", str(path)).stdout.strip()
        assert backing_file(dev) == str(path), f"{dev} is not backed by {path}"
        return dev

    def devices_of(self, path: Path) -> list[str]:
        out = sh("losetup", "-j", str(path), check=False).stdout
        return [line.split(":", 1)[0] for line in out.splitlines() if line.strip()]

    def detach(self, dev: str) -> None:
        """``losetup -d`` -- only if ``dev`` is still backed by one of our files."""
        if backing_file(dev) not in {str(p) for p in self.files}:
            raise AssertionError(f"refusing to detach {dev}: not one of this test's devices")
        sh("losetup", "-d", dev)

    def gone(self, path: Path) -> bool:
        return not self.devices_of(path)

    def cleanup(self) -> None:
        for mp in mounts_under(self.base):
            sh("umount", "-l", mp, check=False)
        for p in self.files:
            for dev in self.devices_of(p):
                if backing_file(dev) == str(p):
                    sh("losetup", "-d", dev, check=False)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not all(self.gone(p) for p in self.files):
            time.sleep(0.1)
        for p in self.files:
            with contextlib.suppress(OSError):
                os.unlink(p)
