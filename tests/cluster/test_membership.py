"""Which scheme a join leaves the cluster with (titans3/cluster/membership.py: rederive)."""

from titans3.cluster.membership import rederive
from titans3.cluster.peers import HostEntry
from titans3.erasure.codec import ECScheme


def entries(*drives: int) -> list[HostEntry]:
    return [HostEntry(f"127.0.0.{i + 1}:9100", f"host{i}", d) for i, d in enumerate(drives)]


def test_a_founders_single_host_scheme_is_replaced_once_it_cannot_survive_a_host_down() -> None:
    founder = ECScheme(1, 1)  # one host, two drives
    assert rederive(founder, entries(2, 2), explicit=False) == founder  # two hosts: still readable
    assert rederive(founder, entries(2, 2, 2), explicit=False) == ECScheme(4, 2)


def test_a_scheme_that_survives_a_host_down_is_kept_when_hosts_join() -> None:
    # 6 x 1 at 4+2 joined by a 7th host: kept (the cluster can shrink back; no re-layout).
    assert rederive(ECScheme(4, 2), entries(*[1] * 7), explicit=False) == ECScheme(4, 2)


def test_an_explicit_ec_is_never_rederived() -> None:
    assert rederive(ECScheme(1, 1), entries(2, 2, 2), explicit=True) == ECScheme(1, 1)
