from collections import Counter

import pytest

from titans3.ring.builder import Member, build_ring


def members(hosts: int, per_host: int) -> list[Member]:
    return [Member(f"h{h}-d{d}", f"h{h}") for h in range(hosts) for d in range(per_host)]


def test_same_members_in_any_order_build_the_same_ring():
    ms = members(3, 4)
    a = build_ring(ms, 6, partition_power=6)
    b = build_ring(list(reversed(ms)), 6, partition_power=6)
    assert a.table == b.table


def test_stripe_spreads_over_hosts_first():
    ring = build_ring(members(6, 2), 6, partition_power=7)
    for row in ring.table:
        assert len({ring.members[i].host for i in row}) == 6


def test_no_host_holds_more_than_its_share_of_a_stripe():
    ring = build_ring(members(4, 3), 6, partition_power=7)
    for row in ring.table:
        per_host = Counter(ring.members[i].host for i in row)
        assert max(per_host.values()) <= 2


def test_adding_a_drive_moves_few_partitions():
    ms = members(1, 8)
    before = build_ring(ms, 6, partition_power=8)
    after = build_ring(ms + [Member("h0-d8", "h0")], 6, partition_power=8)
    changed = sum(
        len({before.members[i].drive_id for i in r1} ^ {after.members[i].drive_id for i in r2})
        for r1, r2 in zip(before.table, after.table, strict=True)
    ) // 2
    # the new drive should take about 6/9 of a stripe slot per partition -> ~ 256*6/9 moves
    assert changed <= 256 * 6 / 9 * 1.3


def test_placement_is_deterministic_per_key():
    ring = build_ring(members(1, 6), 6)
    assert ring.drives_for(b"bucket01", b"k") == ring.drives_for(b"bucket01", b"k")
    assert sorted(ring.drives_for(b"bucket01", b"k")) == sorted(m.drive_id for m in ring.members)


def test_too_few_drives_is_an_error():
    with pytest.raises(ValueError):
        build_ring(members(1, 3), 6)
