"""s3cmd against the real daemon: put, get, ls, del, sync -- round trips with sha256.

s3cmd reads only the temporary config file written here: path style
(``host_bucket`` without ``%(bucket)s``), plain HTTP, SigV4.  Its defaults
otherwise, including 15 MiB multipart chunks (one file here is larger) and,
for ``sync``, server-side copies of files it finds already uploaded under
another name (CopyObject) and batch deletes (DeleteObjects) for
``--delete-removed``.
"""

from __future__ import annotations

import random
import shutil
import subprocess
from pathlib import Path

import pytest

from .cluster import BIN, HOST, Daemon, MiB, clean_env, s3_client
from .rawhttp import sha256_file, write_random_file

S3CMD = BIN / "s3cmd"


@pytest.fixture(scope="module")
def d(module_daemon: Daemon) -> Daemon:
    return module_daemon


@pytest.fixture(scope="module")
def s3cmd(d: Daemon, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    home = tmp_path_factory.mktemp("s3cmd")
    cfg = home / "s3cfg"
    cfg.write_text(
        "[default]\n"
        f"access_key = {d.credentials.access_key}\n"
        f"secret_key = {d.credentials.secret_key}\n"
        f"host_base = {HOST}:{d.s3_port}\n"
        f"host_bucket = {HOST}:{d.s3_port}\n"
        "bucket_location = us-east-1\n"
        "use_https = False\n"
        "signature_v2 = False\n"
    )
    env = clean_env({"HOME": str(home)})

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([str(S3CMD), "-c", str(cfg), *args], env=env, capture_output=True,
                              text=True, timeout=600, check=False)  # fmt: skip
        if proc.returncode != 0:
            raise AssertionError(f"s3cmd {' '.join(args)} exited {proc.returncode}\n"
                                 f"{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")  # fmt: skip
        return proc

    run("mb", "s3://s3cmd")
    return run


def tree_digest(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): sha256_file(p) for p in root.rglob("*") if p.is_file()}


def test_s3cmd_put_get_ls_del(s3cmd, tmp_path: Path) -> None:  # noqa: ANN001
    small, large = tmp_path / "small.txt", tmp_path / "large.bin"
    small.write_bytes(b"hello from s3cmd\n")
    digest = write_random_file(large, 17 * MiB + 9)  # > 15 MiB: s3cmd uploads it in parts
    s3cmd("put", str(small), str(large), "s3://s3cmd/files/")
    listing = s3cmd("ls", "s3://s3cmd/files/").stdout
    assert "s3://s3cmd/files/small.txt" in listing and "s3://s3cmd/files/large.bin" in listing
    out = tmp_path / "out"
    out.mkdir()
    s3cmd("get", "s3://s3cmd/files/large.bin", str(out / "large.bin"))
    s3cmd("get", "s3://s3cmd/files/small.txt", str(out / "small.txt"))
    assert sha256_file(out / "large.bin") == digest
    assert (out / "small.txt").read_bytes() == small.read_bytes()
    s3cmd("del", "s3://s3cmd/files/small.txt")
    listing = s3cmd("ls", "s3://s3cmd/files/").stdout
    assert "small.txt" not in listing and "large.bin" in listing
    buckets = s3cmd("ls").stdout
    assert "s3://s3cmd" in buckets


def test_s3cmd_sync_both_ways_with_deletes(d: Daemon, s3cmd, tmp_path: Path) -> None:  # noqa: ANN001
    src, back = tmp_path / "src", tmp_path / "back"
    rng = random.Random(11)
    for i in range(120):
        sub = src / f"d{i % 4}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"file{i:03d}.txt").write_bytes(rng.randbytes(rng.randrange(1, 4000)))
    s3cmd("sync", f"{src}/", "s3://s3cmd/sync/")
    s3cmd("sync", "s3://s3cmd/sync/", f"{back}/")
    assert tree_digest(back) == tree_digest(src)

    # A renamed file (same content, new name) makes s3cmd copy server-side.
    shutil.move(src / "d0" / "file000.txt", src / "d0" / "renamed.txt")
    for p in sorted((src / "d1").iterdir())[:5]:
        p.unlink()
    (src / "d2" / "new.txt").write_bytes(b"new\n")
    out = s3cmd("sync", "--delete-removed", f"{src}/", "s3://s3cmd/sync/").stdout
    assert "remote copy: 'd0/file000.txt' -> 'd0/renamed.txt'" in out  # CopyObject was used
    pages = s3_client(d).get_paginator("list_objects_v2").paginate(Bucket="s3cmd", Prefix="sync/")
    remote = {o["Key"][len("sync/"):] for page in pages for o in page.get("Contents", [])}
    assert remote == set(tree_digest(src))

    s3cmd("sync", "--delete-removed", "s3://s3cmd/sync/", f"{back}/")
    assert tree_digest(back) == tree_digest(src)
