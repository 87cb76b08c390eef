"""One daemon per drive, and start-up failures that are one clear line.

A second ``titans3 serve`` on the same ``--data`` (other ports) must refuse to
start, naming the drive and the pid that holds it, and must not have touched
anything; the first keeps serving.  A SIGKILLed holder releases its drives
(the kernel drops the lock).  A port that is already taken is one line naming
the listener and the address, exit status 2, no traceback.
"""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

from .cluster import HOST, TITANS3, Daemon, clean_env, free_port, s3_client


def serve(data: Path, *, drives: int = 2, s3: int | None = None, peer: int | None = None,
          web: int | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    argv = [str(TITANS3), "serve", "--data", str(data), "--drives", str(drives),
            "--listen", f"{HOST}:{s3 or free_port()}",
            "--peer-listen", f"{HOST}:{peer or free_port()}",
            "--web-listen", f"{HOST}:{web or free_port()}"]
    env = clean_env({"TITANS3_ROOT_ACCESS_KEY": "TITANSTESTROOTKEY001",
                     "TITANS3_ROOT_SECRET_KEY": "titans3-test-root-secret-key-0123456789ab"})
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env,
                          stdin=subprocess.DEVNULL)


def one_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("titans3: ")]
    assert len(lines) == 1, f"want one 'titans3: ...' line, got:\n{proc.stderr}"
    return lines[0]


def test_second_daemon_on_the_same_drives_refuses_naming_drive_and_pid(daemon_factory) -> None:
    first: Daemon = daemon_factory(drives=2)
    s3 = s3_client(first)
    s3.create_bucket(Bucket="held")
    s3.put_object(Bucket="held", Key="k", Body=b"first daemon's data")
    # The first daemon's own first write of its heal queue comes a moment after start
    # (later on a loaded machine): let it land before the snapshot.
    queue = first.data_dir / ".titans3" / "heal-queue.msgpack"
    deadline = time.monotonic() + 30
    while not queue.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.5)  # it is rewritten at most once a second
    before = {p: p.stat().st_mtime_ns for p in first.data_dir.rglob("*") if p.is_file()}

    second = serve(first.data_dir)
    assert second.returncode == 2, second.stderr
    msg = one_line(second)
    assert str(first.drive_dir(0).absolute()) in msg and str(first.pid) in msg, msg

    after = {p: p.stat().st_mtime_ns for p in first.data_dir.rglob("*") if p.is_file()}
    changed = {p for p in after if before.get(p) != after[p]} - {
        p for p in after if p.name.endswith(".log") or "access.log" in p.name}
    assert not changed, f"the refused daemon touched {sorted(map(str, changed))}"
    assert first.running
    assert s3.get_object(Bucket="held", Key="k")["Body"].read() == b"first daemon's data"


def test_a_killed_holder_releases_its_drives(daemon_factory) -> None:
    first: Daemon = daemon_factory(drives=2)
    s3_client(first).create_bucket(Bucket="released")
    first.kill()  # SIGKILL: no clean close; the kernel drops the flock
    first.start()
    assert s3_client(first).list_buckets()["Buckets"][0]["Name"] == "released"


def test_taken_s3_port_is_one_line_naming_listener_and_address(tmp_path: Path) -> None:
    port = free_port()
    with socket.socket() as squatter:
        squatter.bind((HOST, port))
        squatter.listen(1)
        proc = serve(tmp_path / "data", s3=port)
    assert proc.returncode == 2, proc.stderr
    msg = one_line(proc)
    assert "S3 API" in msg and f"{HOST}:{port}" in msg and "in use" in msg, msg


def test_taken_peer_port_is_one_line_too(tmp_path: Path) -> None:
    port = free_port()
    with socket.socket() as squatter:
        squatter.bind((HOST, port))
        squatter.listen(1)
        proc = serve(tmp_path / "data", peer=port)
    assert proc.returncode == 2, proc.stderr
    msg = one_line(proc)
    assert "peer API" in msg and f"{HOST}:{port}" in msg, msg
