"""Several S3 processes per host (``s3_processes``, titans3/front/).

The daemon here runs with three S3 processes: the owner and two fronts that
forward object-layer calls to it.  Clients on fresh connections are spread
over the processes by the kernel (SO_REUSEPORT); /metrics shows how many
requests each process served.  These tests prove the requests really reach
more than one process, that every request is counted and logged once, that
concurrent writers of one key through different processes keep S3's version
rules, that a key created through the IAM API signs requests on every process
at once, and that a killed front is restarted while the others keep serving.
The crash test (owner SIGKILLed under load) is in test_crash_group_commit.py.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from .access import make_user
from .cluster import Daemon, s3_client

PROCESSES = 3


@pytest.fixture
def d(daemon_factory) -> Daemon:  # noqa: ANN001
    return daemon_factory(drives=6, env={"TITANS3_S3_PROCESSES": str(PROCESSES)})


def metrics_text(daemon: Daemon) -> str:
    return urllib.request.urlopen(f"http://127.0.0.1:{daemon.web_port}/metrics", timeout=10).read().decode()


def processes(daemon: Daemon) -> dict[int, tuple[int, float]]:
    """index -> (pid, S3 requests it served), from /metrics."""
    out = {}
    for index, pid, n in re.findall(
            r'^titans3_s3_process_requests_total\{index="(\d+)",pid="(\d*)"\} (\S+)$', metrics_text(daemon), re.M):
        out[int(index)] = (int(pid) if pid else 0, float(n))
    return out


def s3_total(daemon: Daemon) -> float:
    return sum(float(v) for v in re.findall(r"^titans3_s3_requests_total\{[^}]*\} (\S+)$", metrics_text(daemon), re.M))


def fresh_clients(daemon: Daemon, n: int, credentials=None) -> list:  # noqa: ANN001
    """``n`` clients, each with its own connection: the kernel picks a process for each."""
    return [s3_client(daemon, credentials, max_pool_connections=1) for _ in range(n)]


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[-1][:1] != "Z"
    except FileNotFoundError:
        return False


def test_requests_reach_several_processes_and_each_is_counted_and_logged_once(d: Daemon) -> None:
    procs = processes(d)
    assert sorted(procs) == list(range(PROCESSES)), procs
    assert len({pid for pid, _ in procs.values()}) == PROCESSES and all(alive(p) for p, _ in procs.values())
    s3_client(d).create_bucket(Bucket="spread")
    before = s3_total(d)
    made = 0
    for i, c in enumerate(fresh_clients(d, 24)):
        c.put_object(Bucket="spread", Key=f"k{i}", Body=b"v%d" % i)
        assert c.get_object(Bucket="spread", Key=f"k{i}")["Body"].read() == b"v%d" % i
        with pytest.raises(ClientError) as e:
            c.head_object(Bucket="spread", Key=f"missing{i}")
        assert e.value.response["Error"]["Code"] == "404"
        made += 3
        c.close()
    assert s3_total(d) - before == made  # right after the requests: counted, once each
    served = processes(d)
    busy = [i for i in served if served[i][1] > procs[i][1]]
    assert len(busy) >= 2, f"all requests reached one process: {served}"
    assert sum(n for _, n in served.values()) == s3_total(d)
    log = Path(d.data_dir) / ".titans3" / "access.log"
    deadline = time.monotonic() + 10
    while True:
        lines = [json.loads(x) for x in log.read_text().splitlines() if '"spread"' in x]
        ours = [x for x in lines if x.get("operation") != "CreateBucket" and "CreateBucket" not in str(x)]
        if len(ours) >= made or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    ids = [x.get("request_id") for x in ours]
    assert len(ids) == made and len(set(ids)) == made, (len(ids), len(set(ids)))


def test_concurrent_writers_of_one_key_through_several_processes_keep_the_version_rules(d: Daemon) -> None:
    s3 = s3_client(d)
    s3.create_bucket(Bucket="race")
    s3.put_bucket_versioning(Bucket="race", VersioningConfiguration={"Status": "Enabled"})
    lock = threading.Lock()
    written: set[bytes] = set()
    acked: dict[str, bytes] = {}  # version id -> body
    bad_reads: list[bytes] = []
    stop = threading.Event()

    def writer(t: int) -> None:
        c = s3_client(d, max_pool_connections=1)
        for i in range(12):
            body = b"writer %d version %d " % (t, i) * (1 + i * 50)
            with lock:
                written.add(body)
            vid = c.put_object(Bucket="race", Key="k", Body=body)["VersionId"]
            with lock:
                assert vid not in acked
                acked[vid] = body
            if i % 4 == 3:  # a fresh connection: maybe another process
                c.close()
                c = s3_client(d, max_pool_connections=1)

    def reader() -> None:
        c = s3_client(d, max_pool_connections=1)
        while not stop.is_set():
            try:
                got = c.get_object(Bucket="race", Key="k")["Body"].read()
            except ClientError as e:
                assert e.response["Error"]["Code"] == "NoSuchKey"
                continue
            with lock:
                if got not in written:
                    bad_reads.append(got[:40])

    writers = [threading.Thread(target=writer, args=(t,)) for t in range(6)]
    readers = [threading.Thread(target=reader) for _ in range(2)]
    for th in writers + readers:
        th.start()
    for th in writers:
        th.join(120)
    stop.set()
    for th in readers:
        th.join(30)
    assert not bad_reads, bad_reads[:3]
    assert len(acked) == 6 * 12
    listed = [v for page in s3.get_paginator("list_object_versions").paginate(Bucket="race")
              for v in page.get("Versions", [])]  # fmt: skip
    ids = [v["VersionId"] for v in listed]
    assert sorted(ids) == sorted(acked), "every acknowledged version listed exactly once"
    latest = next(v for v in listed if v["IsLatest"])
    assert s3.get_object(Bucket="race", Key="k")["Body"].read() == acked[latest["VersionId"]]

    outcomes: dict[str, list[object]] = {}

    def create_only(key: str, t: int, barrier: threading.Barrier) -> None:
        c = s3_client(d, max_pool_connections=1)
        barrier.wait()
        try:
            c.put_object(Bucket="race", Key=key, Body=b"%d" % t, IfNoneMatch="*")
            outcomes[key].append(200)
        except ClientError as e:
            outcomes[key].append(e.response["Error"]["Code"])

    for r in range(5):
        key = f"create-only-{r}"
        outcomes[key] = []
        barrier = threading.Barrier(6)
        threads = [threading.Thread(target=create_only, args=(key, t, barrier)) for t in range(6)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(60)
        assert outcomes[key].count(200) == 1, outcomes[key]
        assert set(outcomes[key]) <= {200, "PreconditionFailed", "ConditionalRequestConflict"}, outcomes[key]
    assert sum(1 for _, n in processes(d).values() if n > 0) >= 2


def test_a_key_created_through_iam_signs_at_once_on_every_process(d: Daemon) -> None:
    s3_client(d).create_bucket(Bucket="iamspread")
    creds, _ = make_user(d.endpoint, "alice", policy={
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]})
    for c in fresh_clients(d, 16, creds):  # at once: no sleep between the create and the use
        c.put_object(Bucket="iamspread", Key="by-alice", Body=b"hi")
        c.close()
    served = processes(d)
    assert sum(1 for _, n in served.values() if n > 0) >= 2, served


def test_a_killed_front_is_restarted_and_the_others_keep_serving(d: Daemon) -> None:
    s3_client(d).create_bucket(Bucket="survive")
    procs = processes(d)
    victim = procs[1][0]
    os.kill(victim, 9)
    deadline = time.monotonic() + 10
    while alive(victim) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not alive(victim)
    for i, c in enumerate(fresh_clients(d, 16)):  # while it is down: the others answer
        c.put_object(Bucket="survive", Key=f"k{i}", Body=b"x")
        c.close()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        now = processes(d)
        if now.get(1, (0, 0))[0] not in (0, victim) and alive(now[1][0]) and "titans3_s3_process_up" in \
                metrics_text(d) and re.search(r'^titans3_s3_process_up\{index="1",[^}]*\} 1', metrics_text(d), re.M):
            break
        time.sleep(0.1)
    now = processes(d)
    assert now[1][0] not in (0, victim), f"front 1 was not restarted: {now}"
    reborn = now[1][0]
    before = now[1][1]
    for _ in range(5):  # the restarted front serves again (fresh connections until one lands there)
        for i, c in enumerate(fresh_clients(d, 12)):
            assert c.get_object(Bucket="survive", Key=f"k{i}")["Body"].read() == b"x"
            c.close()
        if processes(d)[1][1] > before:
            break
    assert processes(d)[1][0] == reborn and processes(d)[1][1] > before
    assert d.proc is not None and d.proc.poll() is None
