"""The default scheme of a multi-host cluster (titans3/cluster/scheme.py)."""

import pytest

from titans3.cluster.scheme import default_scheme, fragments_per_host, survives_host_down
from titans3.erasure.codec import ECScheme
from titans3.ring.builder import Member, build_ring


def km(host_drives: list[int]) -> tuple[int, int]:
    s = default_scheme(host_drives)
    return s.k, s.m


@pytest.mark.parametrize(("host_drives", "expected"), [
    ([2, 2, 2], (4, 2)),   # the appliance's 3-node test cluster: 1.5x, one host down keeps 4
    ([1] * 6, (4, 2)),
    ([4, 4, 4], (8, 4)),
    ([6, 6, 6], (8, 4)),
    ([1, 1, 1], (1, 2)),
    ([1] * 4, (2, 2)),
    ([2, 2], (2, 2)),      # two hosts: readable with one down; writes need both (majority)
    ([6, 6], (2, 2)),      # not 8+4: 6 of its 12 fragments would sit on each host
    ([1, 1], (1, 1)),
    ([6, 1, 1], (1, 2)),   # lopsided: the big host must not hold more than m
    ([3, 3, 3, 3], (8, 4)),
    ([2], (1, 1)),         # one host: the single-host table, unchanged
    ([6], (4, 2)),
])
def test_default_scheme_survives_one_host_down(host_drives: list[int], expected: tuple[int, int]) -> None:
    assert km(host_drives) == expected
    if len(host_drives) > 1:
        assert survives_host_down(default_scheme(host_drives), host_drives)


def test_two_plus_two_on_three_hosts_would_refuse_writes_with_one_host_down() -> None:
    # 4 fragments over 3 hosts: one host holds 2; with it down 2 of 4 remain -- no majority.
    assert not survives_host_down(ECScheme(2, 2), [2, 2, 2])
    assert survives_host_down(ECScheme(4, 2), [2, 2, 2])


def test_a_single_host_scheme_does_not_survive_on_three_hosts() -> None:
    # The founder of a cluster formed by joins starts with 1+1 on its 2 drives.
    assert not survives_host_down(ECScheme(1, 1), [2, 2, 2])
    assert survives_host_down(ECScheme(1, 1), [2, 2])


@pytest.mark.parametrize("host_drives", [[2, 2, 2], [6, 6], [6, 1, 1], [3, 2, 1], [4, 4, 4, 1]])
def test_fragments_per_host_is_what_the_ring_builder_places(host_drives: list[int]) -> None:
    members = [Member(f"h{h}/drive-{d}", f"h{h}") for h, n in enumerate(host_drives) for d in range(n)]
    for width in range(2, min(sum(host_drives), 12) + 1):
        ring = build_ring(members, width, partition_power=8)
        worst = max(max(sum(1 for i in row if ring.members[i].host == f"h{h}") for h in range(len(host_drives)))
                    for row in ring.table)
        assert worst == fragments_per_host(host_drives, width), (host_drives, width)
