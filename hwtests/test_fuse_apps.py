"""Acceptance: programs that live on the daemon's mount -- git, sqlite3 -- and the
POSIX answers the mount gives (issue 10)."""

from __future__ import annotations

import errno
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import require_fuse
from fusemount import MountDaemon

from tests.integration.cluster import s3_client

BUCKET = "apps"


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MountDaemon]:
    require_fuse()
    base = tmp_path_factory.mktemp("fuse-apps")
    d = MountDaemon(base / "data", base / "titans3.log", mount_spec=BUCKET,
                    mountpoint=base / "mnt", name="titans3-fuse-apps")
    try:
        d.start()
        yield d
    finally:
        d.stop()


def git(*args: str, cwd: Path) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid",
           "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(cwd)}
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, env=env,
                          timeout=300)
    assert proc.returncode == 0, f"git {' '.join(args)}: {proc.stderr}"
    return proc.stdout


def test_git_init_add_commit_branch_log_in_the_mount(node):
    repo = node.mountpoint / "repo"
    repo.mkdir()
    git("init", "-q", "-b", "main", ".", cwd=repo)
    for i in range(20):
        (repo / f"file{i}.txt").write_text(f"content {i}\n" * (i + 1))
    (repo / "sub").mkdir()
    (repo / "sub" / "x.py").write_text("print('x')\n")
    git("add", "-A", cwd=repo)
    git("commit", "-q", "-m", "first", cwd=repo)
    git("checkout", "-q", "-b", "feature", cwd=repo)
    (repo / "file3.txt").write_text("changed\n")
    git("commit", "-q", "-am", "second", cwd=repo)
    log = git("log", "--format=%s", cwd=repo).split()
    assert log == ["second", "first"]
    assert git("branch", "--format=%(refname:short)", cwd=repo).split() == ["feature", "main"]
    git("checkout", "-q", "main", cwd=repo)
    assert (repo / "file3.txt").read_text() == "content 3\n" * 4
    assert git("status", "--porcelain", cwd=repo) == ""
    git("fsck", "--strict", cwd=repo)


def test_sqlite_10000_rows_in_transactions_survive_a_remount(node):
    path = node.mountpoint / "db.sqlite"
    db = sqlite3.connect(path)
    db.execute("create table t (id integer primary key, v text not null)")
    for batch in range(20):
        with db:
            db.executemany("insert into t (v) values (?)",
                           [(f"row {batch}-{i} " * 4,) for i in range(500)])
    with db:
        db.execute("update t set v = 'updated' where id % 7 = 0")
    db.close()
    node.stop()
    node.start()
    db = sqlite3.connect(path)
    assert db.execute("pragma integrity_check").fetchone() == ("ok",)
    assert db.execute("select count(*) from t").fetchone() == (10000,)
    assert db.execute("select count(*) from t where v = 'updated'").fetchone() == (1428,)
    db.close()


def test_posix_errors_are_clean(node):
    m = node.mountpoint
    (m / "d").mkdir()
    (m / "d" / "f").write_text("x")
    with pytest.raises(OSError) as e:
        os.rmdir(m / "d")
    assert e.value.errno == errno.ENOTEMPTY
    with pytest.raises(OSError) as e:
        os.link(m / "d" / "f", m / "d" / "hard")
    assert e.value.errno == errno.EPERM
    with pytest.raises(OSError) as e:
        (m / ("n" * 256)).write_text("x")
    assert e.value.errno == errno.ENAMETOOLONG
    deep = m / "/".join(["p" * 200] * 6)  # the 6th level passes 1,024 bytes of key
    with pytest.raises(OSError) as e:
        deep.mkdir(parents=True)
    assert e.value.errno == errno.ENAMETOOLONG
    with pytest.raises(OSError) as e:
        os.mkfifo(m / "fifo")
    assert e.value.errno == errno.EPERM
    with pytest.raises(OSError) as e:
        os.mkdir(m / "d")
    assert e.value.errno == errno.EEXIST
    os.unlink(m / "d" / "f")
    os.rmdir(m / "d")
    assert not (m / "d").exists()


def test_metadata_xattrs_symlinks_and_statfs(node):
    m = node.mountpoint
    f = m / "meta.txt"
    f.write_text("hello")
    os.chmod(f, 0o640)
    os.chown(f, 1234, 5678)
    os.utime(f, ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_000))
    os.setxattr(f, "user.color", b"blue")
    with pytest.raises(OSError) as e:
        os.setxattr(f, "trusted.x", b"1")
    assert e.value.errno in (errno.ENOTSUP, errno.EPERM)
    os.symlink("meta.txt", m / "link")
    assert os.readlink(m / "link") == "meta.txt"
    assert (m / "link").read_text() == "hello"
    s3 = s3_client(node)
    import time

    time.sleep(1.2)  # batched metadata (fs.META_DELAY) and the attribute cache
    head = s3.head_object(Bucket=BUCKET, Key="meta.txt")["Metadata"]
    assert int(head["mode"]) == 0o100640 and head["uid"] == "1234" and head["gid"] == "5678"
    assert head["mtime"] == "1600000000"
    assert int(s3.head_object(Bucket=BUCKET, Key="link")["Metadata"]["mode"]) == 0o120777
    st = os.stat(f)
    assert (st.st_mode & 0o7777, st.st_uid, st.st_gid, st.st_mtime) == (0o640, 1234, 5678, 1.6e9)
    assert os.getxattr(f, "user.color") == b"blue"
    assert "user.color" in os.listxattr(f)
    os.removexattr(f, "user.color")
    assert os.listxattr(f) == []
    # A change through S3 shows in the mount within the attribute timeout.
    s3.put_object(Bucket=BUCKET, Key="meta.txt", Body=b"changed through S3")
    time.sleep(1.2)
    assert f.read_text() == "changed through S3"
    vfs = os.statvfs(m)
    assert vfs.f_blocks > 0 and vfs.f_bavail > 0 and vfs.f_namemax == 255
    s3.close()


def test_rename_moves_files_and_directories(node):
    m = node.mountpoint
    (m / "a" / "b").mkdir(parents=True)
    for i in range(30):
        (m / "a" / "b" / f"f{i}").write_text(str(i))
    (m / "a" / "top").write_text("top")
    os.rename(m / "a", m / "z")
    assert not (m / "a").exists()
    assert sorted(os.listdir(m / "z" / "b")) == sorted(f"f{i}" for i in range(30))
    assert (m / "z" / "b" / "f7").read_text() == "7"
    os.rename(m / "z" / "top", m / "z" / "b" / "f1")  # over an existing file
    assert (m / "z" / "b" / "f1").read_text() == "top"
    (m / "empty").mkdir()
    with pytest.raises(OSError) as e:
        os.rename(m / "empty", m / "z")
    assert e.value.errno == errno.ENOTEMPTY
    with pytest.raises(OSError) as e:
        os.rename(m / "z" / "b" / "f2", m / "empty")
    assert e.value.errno == errno.EISDIR


def test_a_rename_in_the_daemon_mount_moves_no_data_and_open_handles_follow(node):
    m = node.mountpoint
    data = os.urandom(12 << 20)
    (m / "mv").mkdir()
    (m / "mv" / "big.bin").write_bytes(data)
    s3 = s3_client(node)
    etag = s3.head_object(Bucket=BUCKET, Key="mv/big.bin")["ETag"]
    before = set(node.fragment_files())
    with open(m / "mv" / "big.bin", "rb") as f:
        head = f.read(1 << 20)
        os.rename(m / "mv" / "big.bin", m / "moved.bin")
        assert head + f.read() == data  # the open file reads on under its new name
    # rename_object: metadata commits only, so no fragment file was written.
    assert set(node.fragment_files()) - before == set()
    assert os.listdir(m / "mv") == []
    assert (m / "moved.bin").read_bytes() == data
    got = s3.get_object(Bucket=BUCKET, Key="moved.bin")
    assert got["ETag"] == etag and got["Body"].read() == data
    with pytest.raises(s3.exceptions.ClientError) as e:
        s3.head_object(Bucket=BUCKET, Key="mv/big.bin")
    assert e.value.response["Error"]["Code"] == "404"
    s3.close()


def test_keys_that_cannot_be_paths_are_hidden(node):
    s3 = s3_client(node)
    s3.put_object(Bucket=BUCKET, Key="hid/x", Body=b"file x")
    s3.put_object(Bucket=BUCKET, Key="hid/x/y", Body=b"under a file")
    s3.put_object(Bucket=BUCKET, Key="hid/a//b", Body=b"empty component")
    s3.put_object(Bucket=BUCKET, Key="hid/ok", Body=b"ok")
    s3.close()
    assert sorted(os.listdir(node.mountpoint / "hid")) == ["a", "ok", "x"]
    assert (node.mountpoint / "hid" / "x").read_bytes() == b"file x"
    assert os.listdir(node.mountpoint / "hid" / "a") == []


def test_titanctl_and_the_status_page_show_the_mount(node):
    import json
    import urllib.request

    from tests.integration.cluster import TITANCTL, clean_env

    env = clean_env({"TITANS3_ROOT_ACCESS_KEY": node.credentials.access_key,
                     "TITANS3_ROOT_SECRET_KEY": node.credentials.secret_key})
    out = subprocess.run([str(TITANCTL), "--endpoint", node.endpoint, "mounts", "--json"],
                         capture_output=True, text=True, env=env, timeout=60, check=True).stdout
    (m,) = json.loads(out)["mounts"]
    assert m["dir"] == str(node.mountpoint) and m["bucket"] == BUCKET
    assert m["state"] == "mounted" and m["ops"] > 0 and "dirty_bytes" in m
    table = subprocess.run([str(TITANCTL), "--endpoint", node.endpoint, "mounts"],
                           capture_output=True, text=True, env=env, timeout=60, check=True).stdout
    assert str(node.mountpoint) in table and "mounted" in table
    with urllib.request.urlopen(f"{node.web_endpoint}/api/status", timeout=10) as r:
        status = json.load(r)
    (w,) = [w for w in status["workers"] if w["name"] == f"mount:{node.mountpoint}"]
    assert w["state"] == "mounted" and w["bucket"] == BUCKET
