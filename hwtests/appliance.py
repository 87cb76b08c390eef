"""What the appliance VM tests share: building the image once, S3 and titanctl against a VM.

The image is built by ``image/build.sh`` -- the same command an operator runs --
into the session's temporary directory; the slow parts (the mmdebstrap
tarball, the dependency wheels) come from its content-keyed cache, so a
session pays ~1-2 minutes for a build, ~4 on a machine that never built one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hwtests.vm import OVMF_CODE, QEMU, VM, log

REPO = Path(__file__).resolve().parent.parent
TITANCTL = REPO / ".venv" / "bin" / "titanctl"
BUILD_TIMEOUT = 1800  # s; the target is 10 minutes on an idle machine


def require_vm_tools() -> None:
    if os.geteuid() != 0:
        pytest.skip("the image build needs root (chroot)")
    missing = [t for t in (QEMU, "mmdebstrap", "qemu-img", "mcopy", "debugfs") if shutil.which(t) is None]
    if not OVMF_CODE.exists():
        missing.append(str(OVMF_CODE) + " (ovmf)")
    if missing:
        pytest.fail(f"missing {', '.join(missing)}: run ./scripts/setup.sh")


@dataclass
class Build:
    version: str
    raw: Path
    upgrade: Path
    parts: Path
    seconds: float


def build(out: Path, version: str) -> Build:
    t0 = time.monotonic()
    log(f"building image {version} into {out}")
    proc = subprocess.Popen([str(REPO / "image" / "build.sh"), "--out", str(out), "--version", version],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        log("build: " + line.rstrip())
    rc = proc.wait(timeout=BUILD_TIMEOUT)
    assert rc == 0, "image/build.sh failed:\n" + "".join(lines[-40:])
    b = Build(version, out / f"titans3-{version}.raw", out / f"titans3-{version}.upgrade.img",
              out / f"parts-{version}", time.monotonic() - t0)
    assert b.raw.exists() and b.upgrade.exists()
    assert b.raw.stat().st_size <= 1536 << 20, "image over 1.5 GiB"
    return b


@dataclass
class Update:
    """An upgrade medium made from an earlier build's parts (image/mkupdate.sh)."""

    version: str
    upgrade: Path
    parts: Path
    seconds: float


def update(out: Path, base: Build, version: str) -> Update:
    """Release ``version``: ``base``'s Debian root, kernel and venv with this
    checkout's package and appliance files -- seconds, where build() takes minutes."""
    t0 = time.monotonic()
    proc = subprocess.run([str(REPO / "image" / "mkupdate.sh"), "--from", str(base.parts), "--version", version,
                           "--out", str(out)], capture_output=True, text=True, timeout=BUILD_TIMEOUT, check=False)
    for line in proc.stdout.splitlines():
        log("mkupdate: " + line)
    assert proc.returncode == 0, f"image/mkupdate.sh failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    u = Update(version, out / f"titans3-{version}.upgrade.img", out / f"parts-{version}", time.monotonic() - t0)
    assert u.upgrade.exists() and (u.parts / "root.img").exists()
    return u


def untrusted_medium(good: Update, out: Path) -> Path:
    """``good``'s release signed by a key no node trusts (a stranger's medium)."""
    medium = out / f"titans3-{good.version}.untrusted.upgrade.img"
    subprocess.run([str(REPO / "image" / "mkbundle.sh"), "--version", good.version, "--root",
                    str(good.parts / "root.img"), "--kernel", str(good.parts / "vmlinuz"), "--initrd",
                    str(good.parts / "initrd.img"), "--out", str(medium), "--key", str(out / "stranger.pem")],
                   check=True)
    return medium


def broken_release(good: Build | Update, version: str, out: Path) -> Path:
    """An upgrade medium whose daemon cannot start: the release of ``good`` with
    its ``titans3`` entry point replaced by one that exits 3, relabelled ``version``."""
    work = out / f"broken-{version}"
    work.mkdir()
    root = work / "root.img"
    subprocess.run(["cp", "--sparse=always", str(good.parts / "root.img"), str(root)], check=True)
    (work / "titans3").write_text("#!/bin/sh\necho 'titans3: broken on purpose by the test' >&2\nexit 3\n")
    (work / "titans3").chmod(0o755)
    (work / "release").write_text(version + "\n")
    cmds = "\n".join([
        "rm /opt/titans3/venv/bin/titans3",
        f"write {work / 'titans3'} /opt/titans3/venv/bin/titans3",
        "sif /opt/titans3/venv/bin/titans3 mode 0100755",
        "rm /etc/titans3-release",
        f"write {work / 'release'} /etc/titans3-release",
    ])
    subprocess.run(["debugfs", "-w", "-f", "-", str(root)], input=cmds, text=True, check=True,
                   capture_output=True)
    medium = out / f"titans3-{version}.upgrade.img"
    subprocess.run([str(REPO / "image" / "mkbundle.sh"), "--version", version, "--root", str(root),
                    "--kernel", str(good.parts / "vmlinuz"), "--initrd", str(good.parts / "initrd.img"),
                    "--out", str(medium), "--tries", "1"], check=True)
    shutil.rmtree(work)
    return medium


class Node:
    """A booted appliance VM and the credentials its console showed."""

    def __init__(self, vm: VM) -> None:
        self.vm = vm
        self.fields: dict[str, str] = {}
        self.access_key = ""
        self.secret_key = ""

    @property
    def s3_url(self) -> str:
        return f"http://127.0.0.1:{self.vm.forwards[9000]}"

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.vm.forwards[80]}/"

    def boot(self, timeout: float = 1200) -> dict[str, str]:
        self.vm.start()
        return self.ready(timeout)

    def ready(self, timeout: float = 1200, since: int = 0, version: str = "") -> dict[str, str]:
        pat = r"TITANS3-READY version=" + (version or r"\S+") + r"[^\r\n]*\r?\n"
        m = self.vm.wait_for(pat, timeout, since=since)
        self.fields = dict(kv.split("=", 1) for kv in m.group(0).split()[1:] if "=" in kv)
        if "access_key" in self.fields:
            self.access_key, self.secret_key = self.fields["access_key"], self.fields["secret_key"]
        return self.fields

    def s3(self) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3", endpoint_url=self.s3_url, region_name="us-east-1",
            aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key,
            config=Config(connect_timeout=30, read_timeout=300, retries={"max_attempts": 3},
                          s3={"addressing_style": "path"}),
        )

    def titanctl(self, *args: str, timeout: float = 180) -> Any:
        out = subprocess.run(
            [str(TITANCTL), "--endpoint", self.s3_url, "--access-key", self.access_key,
             "--secret-key", self.secret_key, "--json", *args],
            capture_output=True, text=True, timeout=timeout, check=False,
            env={**os.environ, "TITANS3_CTL_TIMEOUT": "150"},  # a disk list takes seconds under TCG
        )
        assert out.returncode == 0, f"titanctl {' '.join(args)}: {out.stderr}"
        return json.loads(out.stdout)

    def disks(self) -> list[dict[str, Any]]:
        return self.titanctl("disk", "list")["disks"]

    def wait_disks(self, what: str, pred: Any, timeout: float = 600) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        last: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            try:
                last = self.disks()
            except (AssertionError, subprocess.TimeoutExpired) as e:
                log(f"disk list: {e}")
            else:
                if pred(last):
                    log(f"disks: {what}")
                    return last
            time.sleep(5)
        with contextlib.suppress(Exception):
            self.vm.sysrq("w")  # what is blocked, on the serial console (in the failure's tail)
            time.sleep(5)
        raise AssertionError(f"disks never {what}; last list: {json.dumps(last, indent=1)}\n"
                             f"console:\n{self.vm.console()[-4000:]}")


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()
