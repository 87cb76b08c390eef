"""rclone against the real daemon: copy, sync, check --download, round trip.

rclone is configured purely through ``RCLONE_CONFIG_T3_*`` environment
variables (an S3 remote, provider Other, path style, us-east-1) and an empty
config file, so nothing outside the test steers it.  Its settings are the
defaults except in the one test that lowers ``--s3-upload-cutoff`` to make
rclone's own multipart upload run on a 20 MiB file.
"""

from __future__ import annotations

import os
import random
import subprocess
from pathlib import Path

import pytest

from .cluster import BIN, Daemon, MiB, clean_env, s3_client
from .rawhttp import sha256_file, write_random_file

RCLONE = BIN / "rclone"
SMALL_FILES = 200


@pytest.fixture(scope="module")
def d(module_daemon: Daemon) -> Daemon:
    return module_daemon


@pytest.fixture(scope="module")
def rclone(d: Daemon, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    home = tmp_path_factory.mktemp("rclone")
    (home / "rclone.conf").touch()
    env = clean_env({
        "HOME": str(home),
        "RCLONE_CONFIG": str(home / "rclone.conf"),
        "RCLONE_CONFIG_T3_TYPE": "s3",
        "RCLONE_CONFIG_T3_PROVIDER": "Other",
        "RCLONE_CONFIG_T3_ACCESS_KEY_ID": d.credentials.access_key,
        "RCLONE_CONFIG_T3_SECRET_ACCESS_KEY": d.credentials.secret_key,
        "RCLONE_CONFIG_T3_ENDPOINT": d.endpoint,
        "RCLONE_CONFIG_T3_REGION": "us-east-1",
        "RCLONE_CONFIG_T3_FORCE_PATH_STYLE": "true",
    })  # fmt: skip

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([str(RCLONE), *args], env=env, capture_output=True, text=True,
                              timeout=600, check=False)  # fmt: skip
        if proc.returncode != 0:
            raise AssertionError(f"rclone {' '.join(args)} exited {proc.returncode}\n{proc.stderr[-4000:]}")
        return proc

    return run


def tree_digest(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): sha256_file(p) for p in root.rglob("*") if p.is_file()}


def make_tree(root: Path) -> None:
    rng = random.Random(7)
    for i in range(SMALL_FILES):
        sub = root / f"dir{i % 5}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"f{i:03d} with space.dat").write_bytes(rng.randbytes(rng.randrange(0, 5000)))
    write_random_file(root / "big.bin", 6 * MiB + 1)


def test_rclone_copy_check_sync_round_trip(rclone, tmp_path: Path) -> None:  # noqa: ANN001
    src, back = tmp_path / "src", tmp_path / "back"
    make_tree(src)
    rclone("mkdir", "t3:rclone")
    rclone("copy", str(src), "t3:rclone/tree")
    rclone("check", "--download", str(src), "t3:rclone/tree")
    listed = rclone("lsf", "-R", "--files-only", "t3:rclone/tree").stdout.splitlines()
    assert len(listed) == SMALL_FILES + 1

    rclone("copy", "t3:rclone/tree", str(back))
    assert tree_digest(back) == tree_digest(src)

    # sync: the remote follows the source, deletions included.
    for p in sorted((src / "dir0").iterdir())[:10]:
        p.unlink()
    (src / "dir1" / "added.txt").write_bytes(b"added\n")
    (src / "big.bin").write_bytes(os.urandom(2 * MiB))
    rclone("sync", str(src), "t3:rclone/tree")
    rclone("check", "--download", str(src), "t3:rclone/tree")
    listed = rclone("lsf", "-R", "--files-only", "t3:rclone/tree").stdout.splitlines()
    assert sorted(listed) == sorted(tree_digest(src))

    rclone("sync", "t3:rclone/tree", str(back))
    assert tree_digest(back) == tree_digest(src)


def test_rclone_multipart_upload_round_trip(d: Daemon, rclone, tmp_path: Path) -> None:  # noqa: ANN001
    src = tmp_path / "mp"
    src.mkdir()
    digest = write_random_file(src / "twenty.bin", 20 * MiB + 3)
    rclone("copy", "--s3-upload-cutoff", "8M", "--s3-chunk-size", "5M", str(src), "t3:rclone/mp")
    head = s3_client(d).head_object(Bucket="rclone", Key="mp/twenty.bin")
    assert head["ETag"].endswith('-5"')  # rclone's own multipart upload: 5 MiB chunks
    rclone("check", "--download", str(src), "t3:rclone/mp")
    out = tmp_path / "out"
    rclone("copy", "t3:rclone/mp", str(out))
    assert sha256_file(out / "twenty.bin") == digest
