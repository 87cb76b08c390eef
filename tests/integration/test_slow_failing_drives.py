"""Slow and failing drives: injected delays and EIO in one drive of a real daemon.

The daemon runs with ``TITANS3_FAULT_INJECTION=1`` (titans3/drive/faults.py):
a drive obeys ``<drive>/titans3-faults.json``, stalling its worker thread
before fragment reads/writes and then, if asked, failing them with EIO -- the
drive's own error handling and everything above it run as in production.

* a drive whose reads stall for 5 s costs a GET one hedge delay, not 5 s per
  fragment (the reader hedges to another holder);
* a drive whose writes fail with EIO does not fail PUTs (W = 5 of 6);
* a drive whose reads fail with EIO does not fail GETs (reconstruction), and
  after ``drive_error_limit`` I/O errors it is marked *failed* -- in
  ``titanctl info`` and on the status page -- instead of flapping between
  offline and online; once its directory is replaced the refill restores
  every object to k + m healthy fragments.

Memory and open descriptors of the daemon are printed before and after.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx

from .cluster import Daemon, MiB, s3_client
from .durability import WORKER_ENV, admin, all_healthy, wait_for
from .test_titanctl import titanctl

ENV = {**WORKER_ENV, "TITANS3_FAULT_INJECTION": "1", "TITANS3_DRIVE_ERROR_LIMIT": "4"}
BUCKET = "faulty"


def set_faults(d: Daemon, index: int, **faults: Any) -> None:
    path = d.drive_dir(index) / "titans3-faults.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(faults))
    tmp.rename(path)
    time.sleep(0.3)  # the drive re-reads it at most every 0.2 s


def files_open(pid: int) -> int:
    """Open descriptors that are not sockets (the test's own idle keep-alive
    connections come and go; files and pipes are what would leak)."""
    return sum(1 for n in os.listdir(f"/proc/{pid}/fd")
               if not os.readlink(f"/proc/{pid}/fd/{n}").startswith("socket:"))


def figures(d: Daemon) -> tuple[int, int]:
    assert d.proc is not None
    pid = d.proc.pid
    rss = next(int(line.split()[1]) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
               if line.startswith("VmRSS:"))
    return rss, files_open(pid)


def put_objects(s3: Any, n: int, size: int, prefix: str = "o") -> dict[str, str]:
    out = {}
    for i in range(n):
        body = os.urandom(size)
        s3.put_object(Bucket=BUCKET, Key=f"{prefix}{i:02d}", Body=body)
        out[f"{prefix}{i:02d}"] = hashlib.sha256(body).hexdigest()
    return out


def read_back(s3: Any, objects: dict[str, str]) -> float:
    """Reads every object, checks its bytes; the slowest GET's seconds."""
    worst = 0.0
    for key, digest in objects.items():
        t0 = time.monotonic()
        got = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        worst = max(worst, time.monotonic() - t0)
        assert hashlib.sha256(got).hexdigest() == digest, key
    return worst


def drive_states(d: Daemon) -> list[str]:
    return [dr["state"] for dr in admin(d, "GET", "info")["drives"]]


def test_a_drive_whose_reads_stall_costs_a_get_one_hedge_not_the_stall(
        daemon_factory: Callable[..., Daemon]) -> None:
    d = daemon_factory(drives=6, env=ENV)
    with closing(s3_client(d)) as s3:
        s3.create_bucket(Bucket=BUCKET)
        objects = put_objects(s3, 6, 2 * MiB)
        calm = read_back(s3, objects)
        set_faults(d, 0, read_delay=5.0)
        stalled = read_back(s3, objects)
        print(f"\nslowest GET of 2 MiB: {calm:.2f}s healthy, {stalled:.2f}s with a drive stalling "
              f"5 s per read")
        assert stalled < 4.0, f"a GET waited {stalled:.1f}s on a stalled drive"
        assert drive_states(d) == ["online"] * 6  # slow is not failed


def test_a_drive_failing_with_eio_is_failed_after_the_threshold_and_refilled_when_replaced(
        daemon_factory: Callable[..., Daemon]) -> None:
    d = daemon_factory(drives=6, env=ENV)
    with closing(s3_client(d)) as s3:
        s3.create_bucket(Bucket=BUCKET)
        objects = put_objects(s3, 8, 1 * MiB)
        rss0, fds0 = figures(d)

        set_faults(d, 1, write_eio=True)
        objects.update(put_objects(s3, 3, 1 * MiB, prefix="w"))  # W = 5 of 6: acknowledged
        set_faults(d, 1)  # writes fine again

        set_faults(d, 3, read_eio=True)
        deadline = time.monotonic() + 120
        states = drive_states(d)
        while states[3] != "failed":
            read_back(s3, objects)  # every GET still answers right, by reconstruction
            assert time.monotonic() < deadline, f"drive-3 not failed after 120 s: {states}"
            time.sleep(1.0)
            states = drive_states(d)
        assert states[:3] + states[4:] == ["online"] * 5, states
        assert "failed" in titanctl("info", endpoint=d.endpoint).stdout
        page = httpx.get(f"{d.web_endpoint}/api/status", timeout=10).json()
        assert [r["state"] for r in page["drives"]][3] == "failed"
        read_back(s3, objects)
        assert "I/O errors" in d.log_text(), "the log names why the drive failed"

        # The operator replaces the directory; the refill brings every object back to 6/6.
        shutil.move(str(d.drive_dir(3)), str(d.drive_dir(3).with_name("drive-3.failed")))
        r = titanctl("disk", "replace", "drive-3", str(d.drive_dir(3)), endpoint=d.endpoint)
        assert r.returncode == 0, r.stderr
        wait_for("the refill of drive-3",
                 lambda: not admin(d, "GET", "repair/status").get("healing"), timeout=120)
        assert all_healthy(d, BUCKET, sorted(objects)) == []
        read_back(s3, objects)
        rss1, fds1 = figures(d)
        print(f"\nfailing drive: RSS {rss0} -> {rss1} KiB, open files (not sockets) {fds0} -> {fds1}")
        assert fds1 <= fds0 + 8, (fds0, fds1)
