"""Acceptance: the remote mount (``titans3 mount`` over S3), and what a mount does
when the daemon dies -- fsync'd files survive SIGKILL, a dead endpoint gives
EIO in bounded time instead of a hang, and the mount recovers (issue 10)."""

from __future__ import annotations

import errno
import hashlib
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import require_fuse
from fusemount import MountDaemon, RemoteMount, mounted

from tests.integration.cluster import Daemon, s3_client

BUCKET = "remote"


@pytest.fixture
def daemon(tmp_path: Path):
    d = Daemon(tmp_path / "data", tmp_path / "titans3.log", name="titans3-remote")
    d.start()
    s3 = s3_client(d)
    s3.create_bucket(Bucket=BUCKET)
    s3.close()
    try:
        yield d
    finally:
        d.stop()


def test_remote_mount_reads_writes_and_unmounts_on_sigterm(daemon, tmp_path):
    require_fuse()
    m = RemoteMount(daemon.endpoint, f"{BUCKET}/pre", tmp_path / "mnt", tmp_path / "mount.log")
    try:
        m.start()
        (m.mountpoint / "dir").mkdir()
        data = os.urandom(3 << 20)
        (m.mountpoint / "dir" / "blob").write_bytes(data)
        os.symlink("blob", m.mountpoint / "dir" / "ln")
        s3 = s3_client(daemon)
        got = s3.get_object(Bucket=BUCKET, Key="pre/dir/blob")["Body"].read()
        assert got == data
        s3.put_object(Bucket=BUCKET, Key="pre/dir/from-s3", Body=b"hello")
        s3.close()
        time.sleep(1.2)
        assert sorted(os.listdir(m.mountpoint / "dir")) == ["blob", "from-s3", "ln"]
        assert (m.mountpoint / "dir" / "ln").read_bytes() == data
        assert os.stat(m.mountpoint / "dir" / "blob").st_size == len(data)
    finally:
        rc = m.stop()
    assert rc == 0 and not mounted(m.mountpoint)


def test_killed_endpoint_gives_eio_not_a_hang_and_the_mount_recovers(daemon, tmp_path):
    require_fuse()
    m = RemoteMount(daemon.endpoint, BUCKET, tmp_path / "mnt", tmp_path / "mount.log",
                    extra=("--timeout", "2", "--retry-window", "3", "--attr-timeout", "0.2",
                           "--entry-timeout", "0.2"))
    try:
        m.start()
        (m.mountpoint / "before").write_text("x")
        # A daemon restart within the retry window is ridden out.
        daemon.restart()
        assert (m.mountpoint / "after-restart").write_text("y") == 1
        daemon.kill()
        time.sleep(0.5)
        t0 = time.monotonic()
        with pytest.raises(OSError) as e:
            (m.mountpoint / "while-down").write_text("z")
        elapsed = time.monotonic() - t0
        assert e.value.errno == errno.EIO
        assert elapsed < 30, f"EIO took {elapsed:.1f}s"
        with pytest.raises(OSError) as e:
            os.listdir(m.mountpoint)
        assert e.value.errno == errno.EIO
        assert "no answer" in m.log_text() or "ConnectError" in m.log_text()
        daemon.start()
        deadline = time.monotonic() + 30
        while True:
            try:
                names = os.listdir(m.mountpoint)
                break
            except OSError:
                assert time.monotonic() < deadline, "the mount did not recover"
                time.sleep(0.5)
        assert {"before", "after-restart"} <= set(names)
        (m.mountpoint / "recovered").write_text("ok")
        assert (m.mountpoint / "recovered").read_text() == "ok"
    finally:
        m.stop()


WRITER = textwrap.dedent("""
    import hashlib, os, sys
    root, log = sys.argv[1], sys.argv[2]
    i = 0
    with open(log, "a") as out:
        while True:
            data = hashlib.sha256(str(i).encode()).digest() * (4096 * (1 + i % 40))
            path = os.path.join(root, f"f{i:04d}")
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.write(fd, data)
            os.fsync(fd)
            os.close(fd)
            out.write(f"{path} {hashlib.sha256(data).hexdigest()}\\n")
            out.flush()
            os.fsync(out.fileno())
            i += 1
""")


def test_sigkill_mid_write_keeps_every_fsynced_file(tmp_path):
    require_fuse()
    d = MountDaemon(tmp_path / "data", tmp_path / "titans3.log", mount_spec="crash",
                    mountpoint=tmp_path / "mnt", name="titans3-crash")
    log = tmp_path / "fsynced.txt"
    writer = None
    try:
        d.start()
        (d.mountpoint / "w").mkdir()
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(d.mountpoint / "w"),
                                   str(log)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  start_new_session=True)
        deadline = time.monotonic() + 60
        while (not log.exists() or len(log.read_text().splitlines()) < 15):
            assert writer.poll() is None, writer.stderr.read() if writer.stderr else ""
            assert time.monotonic() < deadline
            time.sleep(0.1)
        d.kill()  # mid-write: the writer is between files or inside one
        writer.wait(60)  # the mount is gone: its next call fails
        d.start()
        done = [line.split() for line in log.read_text().splitlines()]
        assert len(done) >= 15
        for path, digest in done:
            got = hashlib.sha256(Path(path).read_bytes()).hexdigest()
            assert got == digest, path
    finally:
        if writer is not None and writer.poll() is None:
            writer.kill()
            writer.wait(30)
        d.stop()


def test_titans3_mount_says_why_it_cannot_mount(daemon, tmp_path):
    from tests.integration.cluster import TITANS3, clean_env

    (tmp_path / "m").mkdir()
    env = clean_env({"AWS_ACCESS_KEY_ID": "TITANSTESTROOTKEY001", "AWS_SECRET_ACCESS_KEY": "wrong",
                     "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull})
    bad = subprocess.run([str(TITANS3), "mount", "--endpoint", daemon.endpoint, BUCKET,
                          str(tmp_path / "m")], capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode == 1 and "SignatureDoesNotMatch" in bad.stderr
    assert bad.stderr.count("titans3 mount:") == 1
    env.pop("AWS_SECRET_ACCESS_KEY")
    none = subprocess.run([str(TITANS3), "mount", "--endpoint", daemon.endpoint, BUCKET,
                           str(tmp_path / "m")], capture_output=True, text=True, env=env, timeout=60)
    assert none.returncode == 2 and "no credentials" in none.stderr
    assert not mounted(tmp_path / "m")


def _tmpfs(path: Path, mib: int) -> None:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={mib}m", "tmpfs", str(path)],
                   check=True, capture_output=True, timeout=30)


def _untmpfs(path: Path) -> None:
    if mounted(path):
        subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True, timeout=30)


WRITE_BIG = textwrap.dedent("""
    import errno, hashlib, os, sys
    path, mib = sys.argv[1], int(sys.argv[2])
    block = os.urandom(1 << 20)
    h = hashlib.sha256()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        for _ in range(mib):
            os.write(fd, block)
            h.update(block)
        os.fsync(fd)
        os.close(fd)
        print("ok", h.hexdigest())
    except OSError as e:
        print(errno.errorcode.get(e.errno, e.errno))
""")


def _write_big(path: Path, mib: int) -> tuple[str, float]:
    """Write ``mib`` MiB and fsync in a child (a hang fails the test instead of
    stalling it); returns the errno name (or "ok SHA256") and the seconds it took."""
    t0 = time.monotonic()
    out = subprocess.run([sys.executable, "-c", WRITE_BIG, str(path), str(mib)],
                         capture_output=True, text=True, timeout=180)
    return out.stdout.strip(), time.monotonic() - t0


def test_a_full_cluster_gives_enospc_not_a_hang_and_the_mount_stays_usable(tmp_path):
    require_fuse()
    data = tmp_path / "data"
    drives = [data / f"drive-{i}" for i in range(6)]
    d = MountDaemon(data, tmp_path / "titans3.log", mount_spec="full",
                    mountpoint=tmp_path / "mnt", name="titans3-full")
    remote = None
    try:
        for p in drives:  # 6 x 24 MiB, EC 4+2: about 96 MiB for data
            _tmpfs(p, 24)
        d.start()
        mnt = d.mountpoint
        (mnt / "small").write_bytes(b"s" * 4096)
        st = os.statvfs(mnt)
        assert st.f_blocks * st.f_frsize < 100 << 20, "statfs does not show the cluster's capacity"
        got, took = _write_big(mnt / "big", 160)
        assert got == "ENOSPC", f"a full cluster answered {got}, not ENOSPC"
        assert took < 120, f"ENOSPC took {took:.0f}s"
        assert "bytes free" in d.log_text()  # the reason is logged
        # Nothing torn is visible and the mount still serves what it holds.
        s3 = s3_client(d)
        with pytest.raises(s3.exceptions.ClientError):
            s3.head_object(Bucket="full", Key="big")
        assert (mnt / "small").read_bytes() == b"s" * 4096
        assert "small" in os.listdir(mnt)
        # Over S3 (titans3 mount): the same full cluster is a clean errno too.
        remote = RemoteMount(d.endpoint, "full", tmp_path / "rmnt", tmp_path / "mount.log",
                             extra=("--timeout", "5", "--retry-window", "5"))
        remote.start()
        got, took = _write_big(remote.mountpoint / "big-remote", 160)
        assert got in ("ENOSPC", "EIO"), f"the remote mount answered {got}"
        assert took < 150, f"{got} took {took:.0f}s"
        assert (remote.mountpoint / "small").read_bytes() == b"s" * 4096
        s3.close()
    finally:
        if remote is not None:
            remote.stop()
        d.stop()
        for p in drives:
            _untmpfs(p)


def test_a_full_staging_disk_writes_back_early_instead_of_failing(daemon, tmp_path):
    require_fuse()
    staging = tmp_path / "staging"
    m = RemoteMount(daemon.endpoint, BUCKET, tmp_path / "mnt", tmp_path / "mount.log",
                    staging=staging)
    try:
        _tmpfs(staging, 8)
        m.start()
        got, _ = _write_big(m.mountpoint / "f", 24)  # 3x the staging disk
        assert got.startswith("ok "), got
        assert "staging disk" in m.log_text()
        s3 = s3_client(daemon)
        body = s3.get_object(Bucket=BUCKET, Key="f")["Body"].read()
        s3.close()
        assert len(body) == 24 << 20 and hashlib.sha256(body).hexdigest() == got.split()[1]
    finally:
        m.stop()
        _untmpfs(staging)
