"""Acceptance: s3fs-fuse and our mount read each other's trees (issue 10):
contents, modes, owners, mtimes, directories and symlinks."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import require_fuse
from fusemount import MountDaemon, unmount, wait_mounted

BUCKET = "interop"


def start_s3fs(endpoint: str, creds, mnt: Path, tmp: Path) -> subprocess.Popen:
    if shutil.which("s3fs") is None:
        pytest.skip("s3fs is not installed (apt package s3fs)")
    mnt.mkdir(parents=True, exist_ok=True)
    pw = tmp / "s3fs.passwd"
    pw.write_text(f"{creds.access_key}:{creds.secret_key}\n")
    pw.chmod(0o600)
    argv = ["s3fs", BUCKET, str(mnt), "-f", "-o", f"url={endpoint}", "-o", "use_path_request_style",
            "-o", f"passwd_file={pw}", "-o", "endpoint=us-east-1", "-o", "stat_cache_expire=1",
            "-o", "allow_other"]
    with open(tmp / "s3fs.log", "ab") as log:
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=log,
                                start_new_session=True)
    wait_mounted(mnt, proc=proc)
    return proc


def stop_s3fs(proc: subprocess.Popen, mnt: Path) -> None:
    unmount(mnt)
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(20)


def write_sample(root: Path) -> dict[str, tuple[int, int, bytes]]:
    """A small tree with modes, mtimes and a symlink; returns rel -> (mode, mtime, bytes)."""
    (root / "sub" / "deeper").mkdir(parents=True)
    want = {}
    for rel, mode, data in (("top.txt", 0o644, b"top\n"), ("sub/run.sh", 0o755, b"#!/bin/sh\n"),
                            ("sub/deeper/secret", 0o600, os.urandom(70_000))):
        p = root / rel
        p.write_bytes(data)
        os.chmod(p, mode)
        os.utime(p, (1_500_000_000, 1_500_000_000))
        want[rel] = (mode, 1_500_000_000, data)
    os.symlink("../top.txt", root / "sub" / "link")
    return want


def check_sample(root: Path, want: dict[str, tuple[int, int, bytes]]) -> None:
    deadline = time.monotonic() + 30  # s3fs's caches, on a loaded machine
    while True:
        try:
            assert sorted(os.listdir(root / "sub")) == ["deeper", "link", "run.sh"]
            for rel, (mode, mtime, data) in want.items():
                st = os.stat(root / rel)
                assert (root / rel).read_bytes() == data, rel
                assert st.st_mode & 0o7777 == mode, (rel, oct(st.st_mode))
                assert int(st.st_mtime) == mtime, rel
            assert os.readlink(root / "sub" / "link") == "../top.txt"
            assert (root / "sub" / "link").read_bytes() == b"top\n"
            assert os.path.isdir(root / "sub" / "deeper")
            return
        except (AssertionError, OSError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def test_s3fs_and_our_mount_read_each_others_trees(tmp_path):
    require_fuse()
    d = MountDaemon(tmp_path / "data", tmp_path / "titans3.log", mount_spec=BUCKET,
                    mountpoint=tmp_path / "ours", name="titans3-interop")
    proc = None
    try:
        d.start()
        proc = start_s3fs(d.endpoint, d.credentials, tmp_path / "s3fs", tmp_path)
        (tmp_path / "s3fs" / "by-s3fs").mkdir()
        want = write_sample(tmp_path / "s3fs" / "by-s3fs")
        check_sample(d.mountpoint / "by-s3fs", want)
        (d.mountpoint / "by-us").mkdir()
        want = write_sample(d.mountpoint / "by-us")
        time.sleep(0.2)  # batched metadata (fs.META_DELAY)
        check_sample(tmp_path / "s3fs" / "by-us", want)
    finally:
        if proc is not None:
            stop_s3fs(proc, tmp_path / "s3fs")
        d.stop()
