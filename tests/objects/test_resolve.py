import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from titans3.drive.records import VersionRecord, pack_versions, unpack_versions
from titans3.objects import resolve
from titans3.objects.resolve import resolve_versions, visible_quorum, write_quorum

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
@given(per=_per_drive, k=st.integers(1, 4), anchors=st.booleans(), doubtful=st.booleans())
def test_the_fast_path_agrees_with_the_general_rule(per, k, anchors, doubtful):
    w = write_quorum(k, 2)
    assert resolve_versions(per, k=k, w=w, anchors=anchors, doubtful=doubtful) == \
        resolve._resolve_general(per, k, w, anchors, doubtful)


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


# ---------------------------------------------------- who answered must not matter
# Issue #17: a PUT cut short after k (4) of its 6 commits read as absent while
# every drive answered (4 < W), and as the new object once a drive that lacked
# it did not answer (4 + 1 >= W) -- the crash torture saw "only absent is
# possible" a round after the checker had seen the key absent.


def _get(per, k: int = 4, w: int = 5):
    """What a GET answers: the served vid, None (absent / delete marker) or "503"."""
    out = resolve_versions(per, k=k, w=w, doubtful=True)
    if not out:
        return None
    r = out[0]
    if not r.certain:
        return "503"
    if r.record.dm:
        return None
    return r.record.vid if r.readable else "503"


def _over_a(held: set[int], newer, unseen: set[int]):
    """Version "a" on all six drives, ``newer(i)`` ("b") on ``held``; ``unseen`` do not answer."""
    return [None if i in unseen else ([newer(i)] if i in held else []) + [data("a", i)]
            for i in range(6)]


def test_a_put_cut_short_on_k_drives_reads_the_same_whoever_answers():
    held = {0, 1, 2, 3}
    assert _get(_over_a(held, lambda i: data("b", i), set())) == "b"
    assert _get(_over_a(held, lambda i: data("b", i), {4})) == "b"  # a drive lacking it is away
    assert _get(_over_a(held, lambda i: data("b", i), {0})) == "503"  # one holding it is away
    assert _get(_over_a(held, lambda i: data("b", i), {4, 5})) == "b"


def test_a_put_cut_short_below_k_drives_never_shows_and_never_serves_stale_unsure():
    held = {0, 1, 2}
    assert _get(_over_a(held, lambda i: data("b", i), set())) == "a"
    assert _get(_over_a(held, lambda i: data("b", i), {0})) == "a"  # 2 + 1 < k: ignored
    # 3 + 1 >= k: the absent drive decides -- neither "a" (stale if it holds "b")
    # nor "b" (unreadable, and absent for a reader that asked that drive).
    assert _get(_over_a(held, lambda i: data("b", i), {5})) == "503"


def test_a_delete_marker_cut_short_on_k_drives_hides_the_object_whoever_answers():
    held = {0, 1, 2, 3}
    assert _get(_over_a(held, lambda i: dm("b"), set())) is None
    assert _get(_over_a(held, lambda i: dm("b"), {5})) is None
    assert _get(_over_a(held, lambda i: dm("b"), {1})) == "503"


def test_listings_keep_the_old_rule_between_k_and_w_but_show_a_version_on_k_drives():
    held = {0, 1, 2, 3}
    per = _over_a(held, lambda i: data("b", i), set())
    assert [r.record.vid for r in resolve_versions(per, k=4, w=5)] == ["b", "a"]
    single = on(6, lambda i: data("b", i), held=held)
    fast = resolve.resolve_packed([pack_versions(x) if x else [] for x in single], 4, 5)
    assert fast is not None and fast[0].record.vid == "b" and fast[0].certain and fast[0].readable
    # 3 of 6 with one drive away: not served, not listed (it cannot have been acknowledged).
    per = _over_a({0, 1, 2}, lambda i: data("b", i), {5})
    assert [r.record.vid for r in resolve_versions(per, k=4, w=5)] == ["a"]


_SCHEMES = [(4, 2), (1, 2), (2, 2), (1, 1), (2, 1), (3, 3), (8, 4)]


def _answers(k: int, m: int, held: set[int], marker: bool, older: bool = True) -> set:
    """Every GET answer over every choice of drives not answering -- up to
    ``m``, and fewer than the holders that make a version visible (more could
    hide every holder of one: schemes with m >= k, mirrors of 2-3 drives, have
    no quorum intersection at k answers, under any rule) -- for version "b"
    (data or a marker) on ``held``, over "a" on every drive."""
    n, w = k + m, write_quorum(k, m)
    ec = (k, m, 1 << 20)
    silent = min(m, visible_quorum(k, m) - 1)

    def b(i: int) -> VersionRecord:
        return VersionRecord(vid="b", dm=True) if marker else \
            VersionRecord(vid="b", ec=ec, frag_index=i, data="db", size=10)

    out = set()
    for unseen in itertools.chain.from_iterable(
            itertools.combinations(range(n), u) for u in range(silent + 1)):
        per = [None if i in unseen else ([b(i)] if i in held else []) +
               ([VersionRecord(vid="a", ec=ec, frag_index=i, data="da", size=10)] if older else [])
               for i in range(n)]
        res = resolve_versions(per, k=k, w=w, doubtful=True, m=m)
        if not res:
            out.add(None)
        elif not res[0].certain or not res[0].readable:
            out.add("503")
        else:
            out.add(None if res[0].record.dm else res[0].record.vid)
    return out


@settings(max_examples=400, deadline=None)
@given(scheme=st.sampled_from(_SCHEMES), held=st.sets(st.integers(0, 11)), marker=st.booleans())
def test_what_a_read_serves_does_not_depend_on_which_drives_answered(scheme, held, marker):
    """Over every choice of up to m drives not answering, a GET serves one
    answer (or 503) -- and never the older version when the newer one may have
    been acknowledged (W holders)."""
    k, m = scheme
    held = {i for i in held if i < k + m}
    answers = _answers(k, m, held, marker) - {"503"}
    assert len(answers) <= 1, answers
    if len(held) >= write_quorum(k, m):
        assert answers <= {None if marker else "b"}


@settings(max_examples=300, deadline=None)
@given(scheme=st.sampled_from(_SCHEMES), held=st.sets(st.integers(0, 11)), marker=st.booleans())
def test_copies_a_delete_left_on_the_drives_that_missed_it_never_show(scheme, held, marker):
    """A DELETE reaches W drives: the n - W that missed it keep their copy."""
    k, m = scheme
    held = {i for i in held if i < k + m}
    if len(held) > k + m - write_quorum(k, m):
        held = set(sorted(held)[: k + m - write_quorum(k, m)])
    assert _answers(k, m, held, marker, older=False) <= {None, "503"}


def test_a_three_way_mirror_keeps_a_deleted_version_deleted():
    # 1+2: W = 2, so a DELETE that reached two drives leaves one copy; k = 1
    # alone would show it -- visibility takes m = 2 holders there.
    per = [[VersionRecord(vid="a", ec=(1, 2, 1 << 20), frag_index=0, data="d", size=1)], [], []]
    assert resolve_versions(per, k=1, w=2, m=2) == []
    per[0].append(VersionRecord(vid="b", dm=True))
    assert resolve_versions([per[0], [], []], k=1, w=2, m=2) == []


def test_a_failed_drives_partial_answer_counts_its_records_yet_leaves_its_slot_unseen():
    # "a" landed on 5 of 6 (W) and drive 5 failed since; its spare holds "b" only.
    per = [[data("a", i)] for i in range(4)] + [[data("b", 4)], resolve.Partial([data("b", 5)])]
    out = resolve_versions(per, k=4, w=5)
    assert [r.record.vid for r in out] == ["a"]  # 4 seen + the failed slot unseen: may be acked
    assert out[0].count == 4 and out[0].readable


def test_a_listing_keeps_a_version_the_failed_slot_may_hold():
    # "b" seen on three drives, one drive offline and the failed slot's spare
    # lacking "b": "b" may have reached W (with the offline drive and the failed
    # slot), so a listing keeps it.  Taking the spare's answer as the slot's
    # whole answer would drop an acknowledged version.
    per = ([[data("a", i), data("b", i)] for i in range(3)]
           + [None, [data("a", 4)], resolve.Partial([data("a", 5)])])
    assert [r.record.vid for r in resolve_versions(per, k=4, w=5)] == ["b", "a"]
    plain = per[:5] + [[data("a", 5)]]
    assert [r.record.vid for r in resolve_versions(plain, k=4, w=5)] == ["a"]


def test_a_spare_held_fragment_makes_a_version_readable_again():
    per = [[data("a", i)] for i in range(3)] + [None, None, resolve.Partial([data("a", 5)])]
    out = resolve_versions(per, k=4, w=5)
    assert [(r.record.vid, r.count, r.readable) for r in out] == [("a", 4, True)]
