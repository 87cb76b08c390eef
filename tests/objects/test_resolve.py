from hypothesis import given, settings
from hypothesis import strategies as st

from titans3.drive.records import VersionRecord, pack_versions, unpack_versions
from titans3.objects import resolve
from titans3.objects.resolve import resolve_versions, write_quorum

EC = (4, 2, 1 << 20)


def data(vid: str, fi: int, *, null: bool = False) -> VersionRecord:
    return VersionRecord(vid=vid, ec=EC, frag_index=fi, data="d" + vid, size=10, null=null)


def dm(vid: str, *, null: bool = False) -> VersionRecord:
    return VersionRecord(vid=vid, dm=True, null=null)


def on(drives: int, make, held: set[int] | None = None):
    return [[make(i)] if held is None or i in held else [] for i in range(drives)]


def test_write_quorum_is_k_plus_one_with_parity():
    assert write_quorum(4, 2) == 5
    assert write_quorum(1, 0) == 1
    assert write_quorum(1, 2) == 2


def test_version_on_fewer_than_w_drives_is_a_failed_write_and_ignored():
    per = [[data("b", i), data("a", i)] if i < 3 else [data("a", i)] for i in range(6)]
    out = resolve_versions(per, k=4, w=5)
    assert [r.record.vid for r in out] == ["a"]


def test_acknowledged_version_with_one_drive_down_is_readable():
    per = on(6, lambda i: data("a", i), held={0, 1, 2, 3, 4})
    per[5] = None
    out = resolve_versions(per, k=4, w=5)
    assert out[0].record.vid == "a" and out[0].readable


def test_possibly_acknowledged_but_unreadable_version_is_not_skipped():
    # "b" may have reached 5 drives; only 3 answer with it -> must not serve "a".
    per = [[data("b", i), data("a", i)] for i in range(3)] + [None, None, [data("a", 5)]]
    out = resolve_versions(per, k=4, w=5)
    assert out[0].record.vid == "b" and not out[0].readable


def test_delete_marker_on_quorum_hides_older_version():
    per = [[dm("b"), data("a", i)] for i in range(5)] + [[data("a", 5)]]
    out = resolve_versions(per, k=4, w=5)
    assert out[0].record.dm and out[0].readable


def test_stale_drive_cannot_resurrect_a_purged_version():
    per = [[] for _ in range(5)] + [[data("a", 5)]]
    assert resolve_versions(per, k=4, w=5) == []


def test_only_newest_null_version_is_visible():
    per = [[data("b", i, null=True), data("a", i, null=True)] for i in range(6)]
    out = resolve_versions(per, k=4, w=5)
    assert [r.record.vid for r in out] == ["b"]


def test_versions_sorted_newest_first():
    per = [[data("c", i), data("a", i), data("b", i)] for i in range(6)]
    assert [r.record.vid for r in resolve_versions(per, k=4, w=5)] == ["c", "b", "a"]


# The single-version fast path must decide exactly what the general rule does.
_records = st.builds(
    VersionRecord,
    vid=st.sampled_from(["a", "b"]),
    dm=st.booleans(),
    tomb=st.sampled_from([False, False, True]),
    null=st.booleans(),
    ec=st.sampled_from([EC, (1, 0, 1 << 20), (2, 1, 1 << 20)]),
    frag_index=st.integers(0, 5),
    extra=st.sampled_from([{}, {}, {"mu": "x"}, {"hid": True}, {"tg": {"k": "v"}}]),
)
_per_drive = st.lists(st.one_of(st.none(), st.lists(_records, max_size=2)), min_size=1,
                      max_size=6)


@settings(max_examples=400, deadline=None)
@given(per=_per_drive, k=st.integers(1, 4), anchors=st.booleans())
def test_the_fast_path_agrees_with_the_general_rule(per, k, anchors):
    w = write_quorum(k, 2)
    assert resolve_versions(per, k=k, w=w, anchors=anchors) == \
        resolve._resolve_general(per, k, w, anchors)


@settings(max_examples=400, deadline=None)
@given(per=_per_drive, k=st.integers(1, 4))
def test_the_packed_fast_path_agrees_with_the_general_rule(per, k):
    w = write_quorum(k, 2)
    packed = [None if recs is None else (pack_versions(recs) if recs else []) for recs in per]
    fast = resolve.resolve_packed(packed, k, w)
    decoded = [None if recs is None else unpack_versions(pack_versions(recs)) for recs in per]
    if fast is not None:
        assert fast == resolve._resolve_general(decoded, k, w, False)


@st.composite
def _copies(draw):
    """Per drive: one version's copy with its own fragment index (the common
    case), sometimes nothing, no answer, or some other record."""
    base = draw(_records)
    out = []
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["copy", "copy", "copy", "none", "empty", "other"]))
        if kind == "copy":
            rec = unpack_versions(pack_versions([base]))[0]
            rec.frag_index = draw(st.integers(0, 200))  # beyond 127: not a fixint
            out.append([rec])
        elif kind == "none":
            out.append(None)
        elif kind == "empty":
            out.append([])
        else:
            out.append([draw(_records)])
    return out


@settings(max_examples=400, deadline=None)
@given(per=_copies(), k=st.integers(1, 4))
def test_the_packed_fast_path_agrees_on_copies_of_one_version(per, k):
    w = write_quorum(k, 2)
    packed = [None if recs is None else (pack_versions(recs) if recs else []) for recs in per]
    fast = resolve.resolve_packed(packed, k, w)
    decoded = [None if recs is None else unpack_versions(pack_versions(recs)) for recs in per]
    if fast is not None:
        assert fast == resolve._resolve_general(decoded, k, w, False)


def test_a_version_in_two_encodings_reads_one_never_a_mix():
    """A re-encode cut short (objects/transition.py): the old 4+2 encoding on
    some drives, the new 2+2 one (another data id, newer stamp) on others."""
    from titans3.drive.records import TRANSITIONED

    def new(fi: int) -> VersionRecord:
        return VersionRecord(vid="a", ec=(2, 2, 1 << 20), frag_index=fi, data="new", size=10,
                             extra={TRANSITIONED: "s1"})

    for landed, expect in [(1, "da"), (2, "new"), (4, "new")]:
        per = [[new(i)] if i < landed else [data("a", i)] for i in range(6)]
        (r,) = resolve_versions(per, k=4, w=5)
        assert r.record.data == expect and r.readable
        assert r.count == 6  # acknowledgement counts every holder
        assert {per[p][0].data for p in r.holders} == {expect}  # one encoding's holders only
    # Without extra fields on either side the fast path must not merge them either.
    per = [[VersionRecord(vid="a", ec=(2, 2, 1 << 20), frag_index=i, data="new", size=10)]
           if i < 2 else [data("a", i)] for i in range(6)]
    (r,) = resolve_versions(per, k=4, w=5)
    assert len({per[p][0].data for p in r.holders}) == 1


def test_a_failed_drives_partial_answer_counts_its_records_yet_leaves_its_slot_unseen():
    # "a" landed on 5 of 6 (W) and drive 5 failed since; its spare holds "b" only.
    per = [[data("a", i)] for i in range(4)] + [[data("b", 4)], resolve.Partial([data("b", 5)])]
    out = resolve_versions(per, k=4, w=5)
    assert [r.record.vid for r in out] == ["a"]  # 4 seen + the failed slot unseen: may be acked
    assert out[0].count == 4 and out[0].readable
    # The same answer as a plain list would have hidden an acknowledged version.
    plain = per[:5] + [[data("b", 5)]]
    assert resolve_versions(plain, k=4, w=5) == []


def test_a_spare_held_fragment_makes_a_version_readable_again():
    per = [[data("a", i)] for i in range(3)] + [None, None, resolve.Partial([data("a", 5)])]
    out = resolve_versions(per, k=4, w=5)
    assert [(r.record.vid, r.count, r.readable) for r in out] == [("a", 4, True)]
