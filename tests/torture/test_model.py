"""The torture oracle's rules (model.py), on values: no daemon."""

from __future__ import annotations

import pytest

from tests.torture.model import (
    Listed,
    Outcome,
    PlainKey,
    Uploads,
    Value,
    VersionedKey,
    Violation,
    multipart_etag,
)

A, B, C = Value.of(b"a"), Value.of(b"bb"), Value.of(b"ccc")


def test_acknowledged_put_is_the_only_possibility() -> None:
    k = PlainKey("k")
    k.record(Outcome.MAYBE, A)
    k.record(Outcome.ACKED, B)
    assert k.certain and k.value == B
    with pytest.raises(Violation):
        k.observe(A, "GET")
    with pytest.raises(Violation):
        k.observe(None, "GET")


def test_acknowledged_delete_stays_deleted() -> None:
    k = PlainKey("k")
    k.record(Outcome.ACKED, A)
    k.record(Outcome.ACKED, None)
    with pytest.raises(Violation, match="only absent"):
        k.observe(A, "GET")


def test_refused_request_changes_nothing() -> None:
    k = PlainKey("k")
    k.record(Outcome.ACKED, A)
    k.record(Outcome.FAILED, B)
    k.record(Outcome.FAILED, None)
    assert k.possible == [A]


def test_unanswered_write_may_or_may_not_be_there_until_seen() -> None:
    k = PlainKey("k")
    k.record(Outcome.ACKED, A)
    k.record(Outcome.MAYBE, B)
    k.record(Outcome.MAYBE, None)
    assert not k.certain
    k.observe(B, "GET")
    assert k.possible == [B]
    # Seen once, it must never go back: repair must not undo a visible write.
    with pytest.raises(Violation):
        k.observe(A, "GET")


def test_invisible_uncertain_write_must_not_appear_later() -> None:
    k = PlainKey("k")
    k.record(Outcome.ACKED, A)
    k.record(Outcome.MAYBE, B)
    k.observe(A, "GET")
    with pytest.raises(Violation):
        k.observe(B, "GET")


def test_listing_row_collapses_only_when_one_value_fits() -> None:
    k = PlainKey("k")
    k.record(Outcome.ACKED, A)
    k.record(Outcome.MAYBE, B)
    k.observe_listing(B.size, B.etag, "LIST")
    assert k.possible == [B]
    with pytest.raises(Violation):
        k.observe_listing(C.size, C.etag, "LIST")


def test_copy_with_unknown_etag_matches_on_content() -> None:
    k = PlainKey("k")
    k.record(Outcome.MAYBE, Value(A.sha256, A.size, ""))
    k.observe(A, "GET")
    assert k.value is not None and k.value.etag == A.etag


def test_versions_must_fit_history_in_order() -> None:
    v = VersionedKey("v")
    v.put(Outcome.ACKED, A, "03")
    v.put(Outcome.ACKED, B, "05")
    ok = [Listed("05", False, B.size, B.etag), Listed("03", False, A.size, A.etag)]
    assert [e.vid for e in v.observe(ok)] == ["05", "03"]
    with pytest.raises(Violation):
        v.observe(ok[:1])  # an acknowledged version is gone
    with pytest.raises(Violation):
        v.observe(list(reversed(ok)))  # wrong order


def test_uncertain_version_may_be_absent_then_never_appears() -> None:
    v = VersionedKey("v")
    v.put(Outcome.ACKED, A, "03")
    v.put(Outcome.MAYBE, B, None)
    v.observe([Listed("03", False, A.size, A.etag)])
    with pytest.raises(Violation):
        v.observe([Listed("07", False, B.size, B.etag), Listed("03", False, A.size, A.etag)])


def test_uncertain_version_seen_gets_its_id_and_must_stay() -> None:
    v = VersionedKey("v")
    v.put(Outcome.MAYBE, None, None)  # a delete marker that got no answer
    v.observe([Listed("09", True, 0, "")])
    with pytest.raises(Violation):
        v.observe([])


def test_deleted_version_stays_deleted() -> None:
    v = VersionedKey("v")
    v.put(Outcome.ACKED, A, "03")
    v.put(Outcome.ACKED, B, "05")
    v.delete_version("03", Outcome.ACKED)
    with pytest.raises(Violation):
        v.observe([Listed("05", False, B.size, B.etag), Listed("03", False, A.size, A.etag)])
    v.observe([Listed("05", False, B.size, B.etag)])


def test_version_delete_without_answer_makes_it_optional() -> None:
    v = VersionedKey("v")
    v.put(Outcome.ACKED, A, "03")
    v.delete_version("03", Outcome.MAYBE)
    v.observe([Listed("03", False, A.size, A.etag)])
    assert v.certain_versions()[0].vid == "03"


def test_uploads_acknowledged_must_be_listed_and_nothing_else() -> None:
    u = Uploads()
    u.created(Outcome.ACKED, "u1", "w0/k00")
    with pytest.raises(Violation, match="not listed"):
        u.observe({})
    with pytest.raises(Violation, match="not in progress"):
        u.observe({"u1": "w0/k00", "u2": "w0/k01"})
    u.created(Outcome.MAYBE, None, "w0/k01")
    u.observe({"u1": "w0/k00", "u2": "w0/k01"})
    u.finished("u1", Outcome.MAYBE)
    u.observe({})


def test_multipart_etag_is_md5_of_part_md5s() -> None:
    import hashlib

    parts = [hashlib.md5(b"x").digest(), hashlib.md5(b"y").digest()]
    assert multipart_etag(parts) == hashlib.md5(parts[0] + parts[1]).hexdigest() + "-2"
