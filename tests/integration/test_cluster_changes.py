"""Membership changes under contention and failure (titans3/cluster/leases.py, membership.py).

Four hosts on 127.0.0.1..4 (one drive each, EC 2+1) and two lone hosts on
127.0.0.5..6 waiting to be joined.  The rebalancer is throttled (256 KiB/s)
so a ring change takes several seconds, and a coordinator that is down for
2 s is replaced (``TITANS3_FAILOVER_AFTER``).

1. Two operators ask two different hosts to join a host *at the same time*.
   The change lease allows at most one of them: never two cluster documents
   with the same version.  Every host ends with the same document.
2. The coordinator of that change is SIGKILLed while it moves data.  Another
   host takes the change over and finishes it; every object stays readable
   and the new host holds fragments.
3. The killed coordinator restarts: it learns that it was replaced and takes
   the cluster's newest document instead of resuming its own move.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from typing import Any

import pytest

from titans3.cli.ctl_repair import CtlError

from .durability import admin, wait_for
from .peerhosts import ClusterHost, LoneHost, plan, read_all, running, s3_client

BUCKET = "changes"
OBJECTS = {f"obj-{i:02d}": os.urandom(300_000 + 4099 * i) for i in range(24)}
ENV = {"TITANS3_REBALANCE_RATE": str(256 << 10), "TITANS3_FAILOVER_AFTER": "2"}


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[ClusterHost]]:
    base = tmp_path_factory.mktemp("changes")
    addrs, ports, peers = plan(6)
    four = [ClusterHost(a, base, i + 1, peers[:4], p, extra=["--ec", "2+1"], env=ENV)
            for i, (a, p) in enumerate(zip(addrs[:4], ports[:4], strict=True))]
    lone = [LoneHost(addrs[i], base, i + 1, [peers[i]], ports[i], env=ENV) for i in (4, 5)]
    with running(four), running(lone):
        yield [*four, *lone]


def cstatus(h: ClusterHost) -> dict[str, Any]:
    return admin(h, "GET", "cluster/status")


def doc_of(h: ClusterHost) -> tuple[int, tuple[str, ...], str | None]:
    d = cstatus(h)["document"]
    return d["version"], tuple(sorted(x["address"] for x in d["hosts"])), d["coordinator"]


def _read_all(h: ClusterHost) -> None:
    read_all(h, BUCKET, OBJECTS)


def test_concurrent_joins_make_one_change_and_a_killed_coordinator_is_replaced(
    hosts: list[ClusterHost],
) -> None:
    members, (new_a, new_b) = hosts[:4], hosts[4:]
    with closing(s3_client(members[0])) as s3:
        s3.create_bucket(Bucket=BUCKET)
        for key, body in OBJECTS.items():
            s3.put_object(Bucket=BUCKET, Key=key, Body=body)

    # 1. Two joins at once, through two different hosts.
    outcome: dict[str, Any] = {}
    go = threading.Barrier(2)

    def join(via: ClusterHost, new: ClusterHost) -> None:
        go.wait()
        try:
            outcome[new.name] = admin(via, "POST", "cluster/join", address=new.peer_address)
        except CtlError as e:
            outcome[new.name] = e

    threads = [threading.Thread(target=join, args=(members[0], new_a)),
               threading.Thread(target=join, args=(members[1], new_b))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    won = [name for name, r in outcome.items() if not isinstance(r, Exception)]
    assert len(outcome) == 2 and len(won) <= 1, outcome
    for r in outcome.values():
        if isinstance(r, Exception):
            assert "ClusterChangeRefused" in str(r) or "changing the cluster" in str(r), r
    print(f"\nconcurrent joins: {outcome}")
    # Whatever happened, every member agrees on one document.
    wait_for("one document everywhere", lambda: len({doc_of(h) for h in members}) == 1, timeout=20)
    if not won:  # both were refused (each got half the grants): the operator retries
        admin(members[0], "POST", "cluster/join", address=new_a.peer_address)
        won = [new_a.name]
    joined = new_a if won == [new_a.name] else new_b
    other = new_b if joined is new_a else new_a
    version, addresses, coordinator = doc_of(members[2])
    assert joined.peer_address in addresses and other.peer_address not in addresses
    coord = next(h for h in members if h.peer_address == coordinator)

    # 2. Kill the coordinator while it moves data.
    def moving() -> bool:
        reb = cstatus(coord)["rebalance"]
        return reb["state"] == "moving" and reb["bytes_moved"] > 0

    wait_for("the rebalance moving", moving, timeout=60, every=0.2)
    assert cstatus(coord)["document"]["moving"] is True
    coord.kill()
    survivors = [h for h in members if h is not coord]
    t0 = time.monotonic()

    def taken_over() -> bool:
        d = cstatus(survivors[0])["document"]
        return d["coordinator"] not in (None, coordinator) or not d["moving"]

    wait_for("another host coordinating", taken_over, timeout=60, every=0.5)
    took = cstatus(survivors[0])["document"]
    print(f"taken over after {time.monotonic() - t0:.1f}s: {took['coordinator']} at version "
          f"{took['version']}")
    assert took["version"] > version
    # The successor counts its takeover once its publish returned, which waits
    # for pushes to the dead coordinator: other hosts may show the new document first.
    def successors() -> list[ClusterHost]:
        return [h for h in [*survivors, joined] if cstatus(h)["document"]["takeovers"] > 0]

    wait_for("the successor counting its takeover", lambda: bool(successors()), timeout=30,
             every=0.5)
    successor = successors()[0]
    assert successor.peer_address == sorted(h.peer_address for h in survivors)[0]

    wait_for("the change finished without its first coordinator",
             lambda: not cstatus(survivors[0])["document"]["moving"], timeout=120, every=1.0)
    final = {doc_of(h) for h in [*survivors, joined]}
    assert len(final) == 1, final
    assert len(joined.fragment_files()) > 0
    for h in (survivors[1], joined):
        _read_all(h)

    # 3. The old coordinator comes back: it takes the newer document, it does not resume.
    coord.start(wait=False)
    coord.wait_ready(60)
    wait_for("the restarted coordinator caught up",
             lambda: doc_of(coord) == next(iter(final)), timeout=60, every=0.5)
    assert cstatus(coord)["rebalance"]["state"] == "idle"
    _read_all(coord)
    assert "takes over" not in coord.log_tail(400)
