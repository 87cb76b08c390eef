import pytest

from titans3.ring.builder import Member, build_ring
from titans3.ring.evolve import (
    converged,
    moved_positions,
    next_ring,
    ring_from_doc,
    ring_to_doc,
    same_placement,
)


def hosts(n: int, drives: int = 1) -> list[Member]:
    return [Member(f"h{h}/drive-{d}", f"h{h}") for h in range(n) for d in range(drives)]


def test_document_round_trip_keeps_the_ring() -> None:
    ring = build_ring(hosts(6), 6, partition_power=6, version=3)
    back = ring_from_doc(ring_to_doc(ring))
    assert back == ring


def test_joining_host_moves_at_most_max_moves_per_partition_and_keeps_positions() -> None:
    old = build_ring(hosts(6), 6, partition_power=8)
    new = next_ring(old, hosts(7), max_moves=2)
    assert new.version == old.version + 1
    moved_any = 0
    for p in range(len(new.table)):
        moved = moved_positions(old, new, p)
        assert len(moved) <= 2
        moved_any += bool(moved)
        for j in moved:
            assert new.members[new.table[p][j]].drive_id == "h6/drive-0"
    # The newcomer takes about 6/7 of the partitions' one slot each.
    assert 0.7 * 256 < moved_any < 0.95 * 256
    assert converged(new, hosts(7), max_moves=2)


def test_removing_a_host_empties_it_and_keeps_one_fragment_per_host() -> None:
    old = build_ring(hosts(7), 6, partition_power=8)
    new = next_ring(old, hosts(6), max_moves=2)
    assert all(m.host != "h6" for m in new.members)
    for row in new.table:
        assert len({new.members[i].host for i in row}) == 6
    assert converged(new, hosts(6), max_moves=2)


def test_a_change_larger_than_max_moves_takes_several_epochs() -> None:
    old = build_ring(hosts(6, drives=1), 4, partition_power=6)
    target = [Member(f"x{h}/drive-0", f"x{h}") for h in range(6)]  # every drive replaced
    ring, epochs = old, 0
    while not converged(ring, target, max_moves=1):
        nxt = next_ring(ring, target, max_moves=1)
        for p in range(len(nxt.table)):
            assert len(moved_positions(ring, nxt, p)) <= 1
        ring, epochs = nxt, epochs + 1
    assert epochs == 4  # one fragment per partition per epoch
    assert same_placement(ring, build_ring(target, 4, partition_power=6))


def test_widening_keeps_the_old_positions_spreads_them_and_appends_new_ones() -> None:
    # A one-host cluster (1+1 on its 2 drives) joined by two hosts: the ring grows to 6 positions.
    old = build_ring(hosts(1, drives=2), 2, partition_power=8)
    new = next_ring(old, hosts(3, drives=2), max_moves=1, n=6)
    assert new.n == 6 and new.version == old.version + 1
    spread = 0
    for p, row in enumerate(new.table):
        assert len(set(row)) == 6  # every drive once
        assert len(moved_positions(old, new, p)) <= 1  # objects of the old width keep k = 1 copy
        spread += len({new.members[i].host for i in row[:2]}) == 2
    assert spread > 0.5 * 256  # old-width objects move onto the new hosts
    assert converged(new, hosts(3, drives=2), max_moves=1)


def test_a_ring_never_narrows() -> None:
    old = build_ring(hosts(6), 6, partition_power=4)
    with pytest.raises(ValueError, match="narrow"):
        next_ring(old, hosts(6), max_moves=2, n=4)
