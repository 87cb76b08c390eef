"""A 3-host cluster grown by joins keeps taking writes with one host down (issue 12).

The appliance's cluster shape, with real daemons: host 1 founds a cluster of
itself (``--peers`` its own address, two directory drives: EC 1+1), hosts 2
and 3 (two drives each, no ``--peers``) are joined with ``titanctl cluster
join``.  The join re-derives the scheme for host failure
(titans3/cluster/scheme.py): 4+2 on 3 x 2 drives, the ring widened from 2 to 6
positions.  Objects written with 1+1 before the joins still read.  Then host 3
is killed (what an upgrade's reboot does to its peers): PUT and GET through
hosts 1 and 2 keep working, the missing fragments handed off; host 3 comes
back, the hints replay, and every object written while it was down is 6/6
healthy on its primaries -- and reads with host 1 down, which needs host 3's
fragments.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import closing

import pytest

from . import access
from .durability import all_healthy, status, wait_for
from .peerhosts import ClusterHost, LoneHost, plan, read_all, running, s3_client

BUCKET = "rolling"
OLD = {f"old-{i}": os.urandom(200_000 + 1009 * i) for i in range(4)} | {"old-tiny": b"x" * 300}
DURING = {f"during-{i}": os.urandom(150_000 + 7919 * i) for i in range(10)} | {
    f"during-tiny-{i}": os.urandom(400 + i) for i in range(3)}


def titanctl(host: ClusterHost, *args: str) -> subprocess.CompletedProcess[str]:
    return access.titanctl(host.endpoint, *args, check=False, timeout=300)


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[ClusterHost]]:
    base = tmp_path_factory.mktemp("hostdown")
    addrs, ports, peers = plan(3)
    founder = ClusterHost(addrs[0], base, 1, peers[:1], ports[0], drives=2)
    joiners = [LoneHost(addrs[i], base, i + 1, peers[i:i + 1], ports[i], drives=2) for i in (1, 2)]
    with running([founder]), running(joiners):
        yield [founder, *joiners]


def test_joins_rederive_the_scheme_for_host_failure_and_old_objects_still_read(
    hosts: list[ClusterHost],
) -> None:
    a, b, c = hosts
    with closing(s3_client(a)) as s3:
        s3.create_bucket(Bucket=BUCKET)
        for key, body in OLD.items():
            s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    for new in (b, c):
        r = titanctl(a, "cluster", "join", new.peer_address)
        assert r.returncode == 0, r.stderr + r.stdout + a.log_tail()
    st = json.loads(titanctl(a, "cluster", "status", "--json").stdout)
    assert len(st["hosts"]) == 3 and st["document"]["moving"] is False
    assert st["ec"] == {"k": 4, "m": 2}, st["ec"]
    for h in hosts:  # written as 1+1 on host 1 alone, read through every host
        read_all(h, BUCKET, OLD)


def test_writes_and_reads_continue_with_one_host_down_and_hints_replay(hosts: list[ClusterHost]) -> None:
    a, b, c = hosts
    c.kill()

    def c_seen_down() -> bool:  # the steady state this test is about: host 3 known down
        docs = [json.loads(titanctl(h, "cluster", "status", "--json").stdout) for h in (a, b)]
        return all(not h["online"] for doc in docs for h in doc["hosts"] if h["address"] == c.peer_address)

    # (A PUT in the moment between the kill and its detection may answer 503
    # -- its inline fragments meet the dead drives at commit; clients retry.)
    wait_for("host 3 seen down", c_seen_down, timeout=60, every=0.5)
    t0 = time.monotonic()
    for i, (key, body) in enumerate(DURING.items()):
        via = (a, b)[i % 2]
        with closing(s3_client(via)) as s3:
            s3.put_object(Bucket=BUCKET, Key=key, Body=body)  # raises on 503: the finding
    print(f"\n{len(DURING)} PUTs with host 3 down: {time.monotonic() - t0:.1f}s")
    for h in (a, b):
        read_all(h, BUCKET, OLD | DURING)
    held = sum(status(h)["workers"]["handoff"]["hints_held"] for h in (a, b))
    # W = 5 of 4+2 with host 3's two primaries down: every PUT handed off at
    # least one fragment (the second may be cut off as a straggler under load,
    # objects/stragglers.py, and is repaired later -- checked below).
    assert held >= len(DURING), held

    c.start()

    def replayed() -> bool:
        return all(status(h)["workers"]["handoff"]["hints_held"] == 0 for h in hosts)

    wait_for("hints replayed", replayed, timeout=120, every=0.5)
    wait_for("every fragment in place", lambda: all_healthy(a, BUCKET, sorted(DURING), deep=False) == [],
             timeout=180, every=2)
    # Host 1 down: 4 fragments must come from hosts 2 and 3 -- host 3's own now.
    a.kill()
    try:
        read_all(b, BUCKET, DURING)
        read_all(c, BUCKET, DURING)
    finally:
        a.start()
