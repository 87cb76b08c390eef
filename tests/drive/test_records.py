from titans3.drive.records import Part, VersionRecord, merge_commit, pack_versions, unpack_versions


def rec(vid: str, **kw) -> VersionRecord:
    return VersionRecord(vid=vid, data="d" + vid, size=1, **kw)


def test_record_round_trip_keeps_unknown_fields():
    r = rec("a", meta={"content-type": "x"}, parts=[Part(1, 5, "e", "p1")])
    raw = r.to_dict()
    raw["future"] = 1
    back = VersionRecord.from_dict(raw)
    assert back.extra == {"future": 1}
    assert unpack_versions(pack_versions([back]))[0].parts[0].data_id == "p1"


def test_commit_inserts_newest_first_and_is_idempotent():
    recs, freed = merge_commit([rec("a")], rec("b"))
    assert [r.vid for r in recs] == ["b", "a"] and freed == []
    again, freed = merge_commit(recs, rec("b"))
    assert [r.vid for r in again] == ["b", "a"] and freed == []


def test_new_null_version_keeps_old_null_until_purged():
    recs, freed = merge_commit([rec("a", null=True)], rec("b", null=True))
    assert [r.vid for r in recs] == ["b", "a"] and freed == []
    recs, freed = merge_commit(recs, VersionRecord(vid="b", tomb=True, null=True))
    assert [r.vid for r in recs] == ["b"] and freed == ["da"]


def test_tombstone_removes_only_its_version_and_is_not_stored():
    recs, freed = merge_commit([rec("b"), rec("a")], VersionRecord(vid="a", tomb=True))
    assert [r.vid for r in recs] == ["b"] and freed == ["da"]


def test_null_purge_leaves_versioned_records_alone():
    recs, _ = merge_commit([rec("c", null=True), rec("b"), rec("a", null=True)],
                           VersionRecord(vid="c", tomb=True, null=True))
    assert [r.vid for r in recs] == ["c", "b"]
