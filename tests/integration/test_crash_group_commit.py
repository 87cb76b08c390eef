"""Group commit keeps every acknowledged small PUT across a SIGKILL.

Many concurrent small PUTs (inline objects: one LMDB transaction per drive
and no fragment files) share durable commits -- the daemon's /metrics shows
more requests than commits before the kill, so the batching this test guards
really happened.  The daemon's process group is SIGKILLed mid-load and
restarted on the same data: every PUT that got a 200 must read back byte-exact
(a PUT is acknowledged only after the transaction holding it is on disk), and
a PUT cut off by the crash reads back whole or not at all.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import signal
import threading
import time
import urllib.request

import botocore.exceptions

from .cluster import Daemon, s3_client

BUCKET = "groupcommit"


def _commit_counters(daemon: Daemon) -> tuple[float, float]:
    """(requests committed, durable commits) summed over the host's drives."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{daemon.web_port}/metrics",
                                  timeout=10).read().decode()  # fmt: skip
    def total(name: str) -> float:
        return sum(float(v) for v in re.findall(rf"^{name}_total{{[^}}]*}} (\S+)$", text, re.M))
    return total("titans3_drive_commits"), total("titans3_drive_commit_batches")


def test_sigkill_during_grouped_small_puts_loses_no_acknowledged_put(daemon: Daemon) -> None:
    _crash_under_small_puts(daemon, daemon.kill)


def _front_pids(daemon: Daemon) -> list[int]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{daemon.web_port}/metrics", timeout=10).read().decode()
    return [int(p) for i, p in re.findall(r'^titans3_s3_process_up\{index="(\d+)",pid="(\d+)"\} 1', text, re.M)
            if i != "0"]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[-1][:1] != "Z"
    except FileNotFoundError:
        return False


def test_sigkill_of_the_owner_under_load_through_fronts_loses_nothing_and_leaves_no_front(daemon_factory) -> None:  # noqa: ANN001
    """Three S3 processes (titans3/front/): the PUTs spread over them; only the
    owner is SIGKILLed -- its fronts must die with it (PR_SET_PDEATHSIG), and
    every PUT any front acknowledged must read back."""
    d = daemon_factory(drives=6, env={"TITANS3_S3_PROCESSES": "3"})
    fronts = _front_pids(d)
    assert len(fronts) == 2 and all(_alive(p) for p in fronts)

    def kill_owner() -> int:
        assert d.proc is not None
        os.kill(d.proc.pid, signal.SIGKILL)  # the owner alone, not its process group
        d.proc.wait(30)
        deadline = time.monotonic() + 10
        while any(_alive(p) for p in fronts) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not any(_alive(p) for p in fronts), "a front outlived its SIGKILLed owner"
        return d.kill()  # records the exit (the group is empty by now)

    _crash_under_small_puts(d, kill_owner)


def _crash_under_small_puts(daemon: Daemon, kill) -> None:  # noqa: ANN001
    seed = random.randrange(1 << 30)
    print(f"seed {seed}")
    s3_client(daemon).create_bucket(Bucket=BUCKET)
    lock = threading.Lock()
    acked: dict[str, str] = {}  # key -> sha256 of the body that got a 200
    in_flight: dict[str, str] = {}  # key -> sha256 of a body whose PUT had no answer
    stop = threading.Event()

    def writer(t: int) -> None:
        rng = random.Random(seed + t)
        s3 = s3_client(daemon)
        i = 0
        while not stop.is_set():
            key = f"w{t}/{i:06d}"
            body = rng.randbytes(rng.choice([1, 100, 4096, 9000]))
            digest = hashlib.sha256(body).hexdigest()
            with lock:
                in_flight[key] = digest
            try:
                s3.put_object(Bucket=BUCKET, Key=key, Body=body)
            except Exception:  # no answer: not acknowledged; the daemon is gone
                return
            with lock:
                del in_flight[key]
                acked[key] = digest
            i += 1

    threads = [threading.Thread(target=writer, args=(t,), daemon=True) for t in range(16)]
    for th in threads:
        th.start()
    deadline = time.monotonic() + 90
    while len(acked) < 300 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(acked) >= 300, f"only {len(acked)} PUTs acknowledged in 90 s"
    commits, batches = _commit_counters(daemon)
    assert commits > 1.3 * batches, f"no group commit under load: {commits} requests, {batches} commits"
    time.sleep(random.Random(seed).uniform(0.0, 0.5))
    rc = kill()
    stop.set()
    for th in threads:
        th.join(60)
    assert rc == -9
    assert not any(th.is_alive() for th in threads), "writer threads hung after the crash"

    daemon.start()
    s3 = s3_client(daemon)
    lost, wrong = [], []
    for key, digest in sorted(acked.items()):
        try:
            got = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        except botocore.exceptions.ClientError as e:
            lost.append(f"{key}: {e.response['Error']['Code']}")
            continue
        if hashlib.sha256(got).hexdigest() != digest:
            wrong.append(key)
    for key, digest in sorted(in_flight.items()):  # cut off: whole or absent, never torn
        try:
            got = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        except botocore.exceptions.ClientError as e:
            assert e.response["Error"]["Code"] == "NoSuchKey", f"{key}: {e}"
            continue
        if hashlib.sha256(got).hexdigest() != digest:
            wrong.append(key)
    assert not lost and not wrong, (
        f"seed {seed}: {len(acked)} acknowledged; lost {lost[:10]} ({len(lost)}), "
        f"wrong {wrong[:10]} ({len(wrong)})"
    )
    listed = {o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
              for o in page.get("Contents", [])}  # fmt: skip
    assert set(acked) <= listed, f"acknowledged keys missing from the listing: {sorted(set(acked) - listed)[:10]}"
