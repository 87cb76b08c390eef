from titans3.objects.versionid import HybridClock, is_version_id, timestamp_ns


def test_ids_sort_in_creation_order_even_within_one_millisecond():
    clock = HybridClock(node_id=7, wall_ms=lambda: 1_700_000_000_000)
    ids = [clock.new_id() for _ in range(1000)]
    assert ids == sorted(ids) and len(set(ids)) == 1000
    assert all(is_version_id(i) for i in ids)


def test_wall_clock_stepping_back_never_goes_backwards():
    t = [2_000]
    clock = HybridClock(node_id=1, wall_ms=lambda: t[0])
    a = clock.new_id()
    t[0] = 1_000
    b = clock.new_id()
    assert b > a


def test_observe_moves_past_a_peer_id():
    peer = HybridClock(node_id=2, wall_ms=lambda: 5_000).new_id()
    mine = HybridClock(node_id=1, wall_ms=lambda: 4_000)
    mine.observe(peer)
    assert mine.new_id() > peer


def test_timestamp_round_trips_milliseconds():
    vid = HybridClock(node_id=3, wall_ms=lambda: 1234).new_id()
    assert timestamp_ns(vid) == 1234 * 1_000_000


def test_distinct_nodes_give_distinct_ids_at_same_instant():
    a = HybridClock(node_id=1, wall_ms=lambda: 9).new_id()
    b = HybridClock(node_id=2, wall_ms=lambda: 9).new_id()
    assert a != b
