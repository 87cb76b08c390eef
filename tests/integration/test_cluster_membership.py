"""Growing and shrinking a running cluster with ``titanctl cluster join/remove`` (issue 4).

Six hosts on 127.0.0.1..6 (one drive each, EC 4+2) hold a few objects.  A
seventh host on 127.0.0.7, started with the same secret and no ``--peers``, is
joined with ``titanctl cluster join``: while the rebalance runs every object is
read in a loop and must keep its bytes; afterwards fragment files sit on the
new host and the old ring is retired.  Then host 2 is removed with ``titanctl
cluster remove``, which returns once its data is on the others; host 2 is
stopped and every object still reads through every remaining host.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from .cluster import ROOT, TITANCTL, clean_env
from .peerhosts import ClusterHost, LoneHost, plan, read_all, running, s3_client

MiB = 1 << 20
BUCKET = "grow"
OBJECTS = {f"obj-{i:02d}": os.urandom(600_000 + 7919 * i) for i in range(16)}  # >128 KiB fragments: files
OBJECTS.update({f"tiny-{i}": os.urandom(500) for i in range(6)})  # inline


def titanctl(host: ClusterHost, *args: str, timeout: float = 150) -> subprocess.CompletedProcess[str]:
    env = clean_env({"TITANS3_ENDPOINT": host.endpoint, "TITANS3_ROOT_ACCESS_KEY": ROOT.access_key,
                     "TITANS3_ROOT_SECRET_KEY": ROOT.secret_key})
    return subprocess.run([str(TITANCTL), *args], env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[ClusterHost]]:
    base = tmp_path_factory.mktemp("membership")
    addrs, ports, peers = plan(7)
    six = [ClusterHost(a, base, i + 1, peers[:6], p)
           for i, (a, p) in enumerate(zip(addrs[:6], ports[:6], strict=True))]
    seventh = LoneHost(addrs[6], base, 7, peers[6:], ports[6])
    with running(six), running([seventh]):
        yield [*six, seventh]


def _read_all(host: ClusterHost) -> None:
    read_all(host, BUCKET, OBJECTS)


def test_join_moves_fragments_to_the_new_host_while_everything_stays_readable(
    hosts: list[ClusterHost],
) -> None:
    with closing(s3_client(hosts[0])) as s3:
        s3.create_bucket(Bucket=BUCKET)
        for key, body in OBJECTS.items():
            s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    new = hosts[6]
    assert new.fragment_files() == []

    failures: list[BaseException] = []
    stop = threading.Event()
    rounds = [0]

    def reader() -> None:  # reads through a host that is not coordinating
        while not stop.is_set() and rounds[0] < 200:
            try:
                _read_all(hosts[3])
            except BaseException as e:  # noqa: BLE001 -- reported below
                failures.append(e)
                return
            rounds[0] += 1

    t = threading.Thread(target=reader)
    t.start()
    try:
        r = titanctl(hosts[0], "cluster", "join", new.peer_address)
    finally:
        stop.set()
        t.join(60)
    assert r.returncode == 0, r.stderr + r.stdout + hosts[0].log_tail()
    assert not failures, failures[0]
    assert rounds[0] >= 1

    status = json.loads(titanctl(hosts[0], "cluster", "status", "--json").stdout)
    assert len(status["hosts"]) == 7
    assert status["document"]["moving"] is False
    assert status["rebalance"]["fragments_moved"] > 0
    assert status["rebalance"]["errors"] == 0
    # The new host holds fragments now, and every host reads every object.
    assert len(new.fragment_files()) >= 10
    for h in hosts:
        _read_all(h)
    text = titanctl(hosts[5], "cluster", "status")
    assert text.returncode == 0 and "ring version: 3" in text.stdout, text.stdout + text.stderr
    # The joined host (no --peers) restarts into the cluster from its saved document.
    new.restart()
    _read_all(new)
    with closing(s3_client(new)) as s3:
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]]
    assert keys == sorted(OBJECTS)


def test_remove_drains_a_host_before_it_leaves(hosts: list[ClusterHost]) -> None:
    gone = hosts[1]
    before = len(gone.fragment_files())
    assert before > 0
    r = titanctl(hosts[0], "cluster", "remove", gone.peer_address)
    assert r.returncode == 0, r.stderr + r.stdout + hosts[0].log_tail()
    assert gone.fragment_files() == []  # everything moved off
    gone.stop()
    status = json.loads(titanctl(hosts[4], "cluster", "status", "--json").stdout)
    assert len(status["hosts"]) == 6
    assert gone.peer_address not in {h["address"] for h in status["hosts"]}
    for h in hosts:
        if h is not gone:
            _read_all(h)
    with closing(s3_client(hosts[2])) as s3:
        assert [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]] == sorted(OBJECTS)
    with closing(s3_client(hosts[6])) as s3:  # and the shrunken cluster still takes writes
        s3.put_object(Bucket=BUCKET, Key="after-remove", Body=b"y" * 4000)
        assert s3.get_object(Bucket=BUCKET, Key="after-remove")["Body"].read() == b"y" * 4000
    # The removed host was told: its saved document no longer names it.
    doc = json.loads((Path(gone.data_dir) / ".titans3" / "cluster.json").read_text())["document"]
    assert gone.peer_address not in {h["address"] for h in doc["hosts"]}
