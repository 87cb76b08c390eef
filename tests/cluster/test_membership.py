"""Which scheme a join leaves the cluster with (titans3/cluster/membership.py: rederive)."""

from titans3.cluster.membership import rederive
from titans3.cluster.peers import HostEntry
from titans3.erasure.codec import ECScheme


def entries(*drives: int) -> list[HostEntry]:
    return [HostEntry(f"127.0.0.{i + 1}:9100", f"host{i}", d) for i, d in enumerate(drives)]


def test_a_founders_single_host_scheme_is_replaced_once_it_cannot_survive_a_host_down() -> None:
    founder = ECScheme(1, 1)  # one host, two drives
    assert rederive(founder, entries(2, 2), explicit=False, ring_n=2) == founder  # two hosts: readable
    assert rederive(founder, entries(2, 2, 2), explicit=False, ring_n=2) == ECScheme(4, 2)


def test_a_scheme_that_survives_a_host_down_is_kept_when_hosts_join() -> None:
    # 6 x 1 at 4+2 joined by a 7th host: kept (the cluster can shrink back; no re-layout).
    assert rederive(ECScheme(4, 2), entries(*[1] * 7), explicit=False, ring_n=6) == ECScheme(4, 2)


def test_an_explicit_ec_is_never_rederived() -> None:
    assert rederive(ECScheme(1, 1), entries(2, 2, 2), explicit=True, ring_n=2) == ECScheme(1, 1)


def test_a_scheme_is_never_narrowed_by_a_join() -> None:
    # A 6-disk founder (4+2) joined by another: 2+2 would survive a host down, but the
    # ring is 6 wide -- kept; the third host makes 4+2 survive again.
    assert rederive(ECScheme(4, 2), entries(6, 6), explicit=False, ring_n=6) == ECScheme(4, 2)
    assert rederive(ECScheme(4, 2), entries(6, 6, 6), explicit=False, ring_n=6) == ECScheme(4, 2)
    # 4 disks each: 2+2 -> 8+4 once the third host joins (wider: the ring grows).
    assert rederive(ECScheme(2, 2), entries(4, 4, 4), explicit=False, ring_n=4) == ECScheme(8, 4)
