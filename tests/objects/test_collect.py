"""GC's rule for version lists (pure): remnants after the commit window, shadowed nulls."""

from __future__ import annotations

from titans3.drive.records import VersionRecord
from titans3.objects.collect import plan

SEC = 1_000_000_000
NOW = 10_000 * SEC
K, W = 4, 5


def rec(vid: str, *, age: float = 7200, null: bool = False, idx: int = 0) -> VersionRecord:
    return VersionRecord(vid=vid, mtime_ns=NOW - int(age * SEC), null=null, size=10, etag="e",
                         ec=(4, 2, 1 << 20), frag_index=idx, data="ab" * 16)


def test_old_remnant_below_write_quorum_is_removed_where_held():
    per = [[rec("v2"), rec("v1")], [rec("v2"), rec("v1")], [rec("v1")], [rec("v1")],
           [rec("v1")], [rec("v1")]]
    out = plan(per, k=K, w=W, now_ns=NOW, window=3600)
    assert sorted((r.index, r.tomb.vid, r.reason) for r in out) == [
        (0, "v2", "remnant"), (1, "v2", "remnant")]
    assert all(r.tomb.tomb and not r.tomb.null for r in out)


def test_young_remnant_may_be_a_put_in_flight_and_is_kept():
    per = [[rec("v2", age=5)], [rec("v2", age=5)], [], [], [], []]
    assert plan(per, k=K, w=W, now_ns=NOW, window=3600) == []


def test_nothing_is_decided_while_a_placement_drive_is_silent():
    per = [[rec("v2")], [rec("v2")], [], [], [], None]
    assert plan(per, k=K, w=W, now_ns=NOW, window=3600) == []


def test_older_nulls_are_purged_once_the_newest_reached_write_quorum():
    new = [rec("v9", null=True), rec("v1", null=True)]
    per = [list(new), list(new), [rec("v9", null=True)], [rec("v9", null=True)],
           [rec("v9", null=True)], [rec("v1", null=True)]]
    out = plan(per, k=K, w=W, now_ns=NOW, window=3600)
    purges = sorted(r.index for r in out if r.reason == "shadowed-null")
    assert purges == [0, 1, 5]
    assert all(r.tomb.null and r.tomb.vid == "v9" for r in out if r.reason == "shadowed-null")


def test_older_null_is_kept_while_the_newer_one_is_below_write_quorum():
    per = [[rec("v9", null=True, age=5), rec("v1", null=True)]] * 4 + [[rec("v1", null=True)]] * 2
    out = plan(per, k=K, w=W, now_ns=NOW, window=3600)
    assert out == []  # v9 is young (maybe still committing); v1 stays visible meanwhile
