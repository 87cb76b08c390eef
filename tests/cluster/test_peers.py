"""Cluster formation pieces (titans3/cluster/peers.py) that need no network."""

from __future__ import annotations

import pytest

from titans3.cluster.peers import HostEntry, ring_for, scheme_for
from titans3.core.config import load
from titans3.core.errors import ConfigError

SECRET = "a-cluster-secret-of-some-length"


def test_every_host_derives_the_same_ring_whatever_order_it_learned_the_members() -> None:
    hosts = [HostEntry(f"127.0.0.{i}:9100", f"host{i:02d}", 1) for i in range(1, 7)]
    a = ring_for(hosts, 6)
    b = ring_for(list(reversed(hosts)), 6)
    assert a.table == b.table and a.members == b.members
    assert {m.drive_id for m in a.members} == {f"host{i:02d}/drive-0" for i in range(1, 7)}


def test_six_one_drive_hosts_put_each_fragment_of_a_stripe_on_its_own_host() -> None:
    ring = ring_for([HostEntry(f"a{i}", f"h{i}", 1) for i in range(6)], 6)
    for row in ring.table:
        assert len({ring.members[i].host for i in row}) == 6


def test_with_more_drives_than_fragments_no_host_holds_more_than_its_share() -> None:
    ring = ring_for([HostEntry(f"a{i}", f"h{i}", 3) for i in range(4)], 6)  # 12 drives, 6 per stripe
    for row in ring.table:
        per_host: dict[str, int] = {}
        for i in row:
            per_host[ring.members[i].host] = per_host.get(ring.members[i].host, 0) + 1
        assert max(per_host.values()) == 2  # ceil(6 / 4)


def test_the_scheme_follows_the_clusters_hosts_and_drives_unless_configured() -> None:
    cfg = load(flags={"drives": 1, "peers": "h:1", "cluster_secret": SECRET}, environ={})
    assert (scheme_for(cfg, [1] * 6).k, scheme_for(cfg, [1] * 6).m) == (4, 2)
    assert (scheme_for(cfg, [4, 4, 4]).k, scheme_for(cfg, [4, 4, 4]).m) == (8, 4)
    assert (scheme_for(cfg, [6, 6]).k, scheme_for(cfg, [6, 6]).m) == (2, 2)  # one host down: readable
    cfg = load(flags={"drives": 1, "ec": "5+3", "peers": "h:1", "cluster_secret": SECRET}, environ={})
    assert (scheme_for(cfg, [3, 3, 3]).k, scheme_for(cfg, [3, 3, 3]).m) == (5, 3)
    with pytest.raises(ConfigError, match="ec"):
        scheme_for(cfg, [2, 2, 2])
