"""Which keys a live-only listing keeps (titans3/drive/liveness.py) and how the
drive's listing walk drops dead keys and the prefixes they alone made."""

from __future__ import annotations

from titans3.drive import keys
from titans3.drive.liveness import packed_is_live, records_are_live
from titans3.drive.records import HIDDEN, VersionRecord, pack_versions

from .test_keys import B, FakeTxn


def data(vid: str, **extra: object) -> VersionRecord:
    return VersionRecord(vid=vid * 32, size=3, etag="e", data="ab" * 16, extra=dict(extra),
                         meta={"x-amz-meta-note": "dm hid"})


def marker(vid: str) -> VersionRecord:
    return VersionRecord(vid=vid * 32, dm=True)


CASES = [
    ([data("2")], True),
    ([marker("2"), data("1")], False),  # deleted in a versioned bucket
    ([data("2"), marker("1")], True),  # written again after a delete
    ([data("1", **{HIDDEN: True})], False),  # renamed away: only the hidden anchor
    ([data("3"), data("1", **{HIDDEN: True})], True),  # a metadata update's reference + anchor
    ([data("1", **{HIDDEN: True}), marker("0")], False),
    ([], False),
]


def test_the_newest_record_that_is_not_a_hidden_anchor_decides() -> None:
    for records, live in CASES:
        assert records_are_live(records) is live, records
        assert packed_is_live(pack_versions(records)) is live, records


def test_bytes_that_look_like_a_marker_inside_metadata_are_only_a_slower_yes() -> None:
    rec = data("1")
    rec.meta["x-amz-meta-x"] = "\xa2dm\xc3"
    assert packed_is_live(pack_versions([rec]))


def stored(rows: dict[bytes, list[VersionRecord]]) -> FakeTxn:
    txn = FakeTxn()
    for k, recs in rows.items():
        keys.update_record(txn, None, B, k, lambda _cur, recs=recs: pack_versions(recs))
    return txn


def walk(txn: FakeTxn, **kw: object) -> list[tuple[bytes, bool]]:
    return [(k, v is None) for k, v in keys.walk_listing(txn.cursor(), B, keep=packed_is_live, **kw)]


def test_a_live_walk_drops_dead_keys_and_prefixes_with_no_live_key() -> None:
    gone = [data("1", **{HIDDEN: True})]
    txn = stored({
        b"a": [data("1")], b"b": [marker("2"), data("1")],
        b"moved/x": gone, b"moved/y": gone,  # a directory renamed away
        b"half/a": gone, b"half/b": [marker("1")], b"half/c": [data("1")],
        b"z": [data("1")],
    })
    assert walk(txn, delimiter=b"/") == [(b"a", False), (b"half/", True), (b"z", False)]
    assert walk(txn) == [(b"a", False), (b"half/c", False), (b"z", False)]
    assert walk(txn, delimiter=b"/", limit=2) == [(b"a", False), (b"half/", True)]
    assert walk(txn, delimiter=b"/", start_after=b"half/") == [(b"z", False)]
    assert walk(txn, prefix=b"moved/", delimiter=b"/") == []
    every = [(k, v is None) for k, v in keys.walk_listing(txn.cursor(), B, delimiter=b"/")]
    assert (b"moved/", True) in every  # without keep: every key counts, as ListObjectVersions needs
