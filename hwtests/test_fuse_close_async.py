"""The daemon's mount with commit after close (``fuse_close_async``,
titans3/fuse/closecommit.py): a real kernel mount, real files, boto3.

close() returns before the commit; the mount sees every file at once, S3
sees it shortly after, fsync makes it durable, and an unlink right after
close does not let the commit in flight bring the file back."""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
from collections.abc import Iterator

import pytest
from botocore.exceptions import ClientError
from conftest import require_fuse
from fusemount import MountDaemon, build_tree, tree_digests

from tests.integration.cluster import s3_client

BUCKET = "closeasync"


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MountDaemon]:
    require_fuse()
    base = tmp_path_factory.mktemp("fuse-close-async")
    d = MountDaemon(base / "data", base / "titans3.log", mount_spec=BUCKET,
                    mountpoint=base / "mnt", name="titans3-fuse-close-async",
                    env={"TITANS3_FUSE_CLOSE_ASYNC": str(1 << 20)})
    try:
        d.start()
        yield d
    finally:
        d.stop()


def s3_digests(s3, prefix: str, want: int, timeout: float = 60) -> dict[str, str]:
    """sha256 of every object below ``prefix`` once ``want`` of them are listed."""
    deadline = time.monotonic() + timeout
    while True:
        keys = [o["Key"] for p in s3.get_paginator("list_objects_v2").paginate(
            Bucket=BUCKET, Prefix=prefix) for o in p.get("Contents", [])
            if not o["Key"].endswith("/")]  # directory markers (mkdir)
        if len(keys) >= want or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    return {k[len(prefix):]: hashlib.sha256(s3.get_object(Bucket=BUCKET, Key=k)["Body"].read())
            .hexdigest() for k in keys}


def test_tar_x_is_seen_by_the_mount_at_once_and_by_s3_after_the_commits(node, tmp_path):
    n = build_tree(tmp_path / "src", 300)
    subprocess.run(["tar", "-C", str(tmp_path / "src"), "-cf", str(tmp_path / "t.tar"), "."],
                   check=True)
    dest = node.mountpoint / "tree"
    dest.mkdir()
    subprocess.run(["tar", "-C", str(dest), "-xf", str(tmp_path / "t.tar")], check=True,
                   timeout=600)
    want = tree_digests(tmp_path / "src")
    assert len(want) == n
    assert tree_digests(dest) == want  # this mount: right away, commits still landing
    got = s3_digests(s3_client(node), "tree/", n)
    assert got == want  # S3: every file, once its commit landed


def test_fsync_is_durable_and_unlink_after_close_does_not_bring_a_file_back(node):
    s3 = s3_client(node)
    mnt = node.mountpoint
    data = os.urandom(100_000)
    fd = os.open(mnt / "synced", os.O_CREAT | os.O_WRONLY, 0o644)
    os.write(fd, data)
    os.fsync(fd)
    assert s3.get_object(Bucket=BUCKET, Key="synced")["Body"].read() == data  # durable: in S3
    os.close(fd)
    for i in range(20):
        p = mnt / f"gone{i}"
        p.write_bytes(b"x" * i)
        p.unlink()  # right after close: the commit may still be in flight
    (mnt / "kept").write_bytes(b"k")
    s3_digests(s3, "kept", 1)
    time.sleep(0.5)
    for i in range(20):
        with pytest.raises(ClientError):
            s3.head_object(Bucket=BUCKET, Key=f"gone{i}")
    names = os.listdir(mnt)
    assert "kept" in names and "synced" in names
    assert not [n for n in names if n.startswith("gone")]
