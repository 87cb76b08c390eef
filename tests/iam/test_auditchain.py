"""The audit hash chain finds an edited byte, a removed record, a reordering, a cut tail."""

from __future__ import annotations

from titans3.iam.auditchain import GENESIS, Chain, decode, digest, verify


def chain(n: int) -> tuple[list[bytes], tuple[int, str]]:
    c = Chain("host-a")
    records = [c.append({"op": "GetObject", "user": "alice", "status": 200, "i": i}) for i in range(n)]
    return records, (c.seq, c.prev)


def test_an_intact_chain_verifies():
    records, head = chain(5)
    assert decode(records[0])["prev"] == GENESIS and decode(records[1])["prev"] == digest(records[0])
    v = verify(records, head=head)
    assert v.ok and v.checked == 5 and v.last_seq == 5


def test_an_edited_byte_is_found_at_its_record():
    records, head = chain(5)
    records[2] = records[2].replace(b'"status":200', b'"status":403')
    v = verify(records, head=head)
    assert not v.ok and v.problem.startswith("seq 3 was edited")


def test_an_edited_last_record_is_caught_by_the_head():
    records, head = chain(3)
    records[2] = records[2].replace(b"alice", b"mallo")
    v = verify(records, head=head)
    assert not v.ok and "seq 3 was edited" in v.problem


def test_a_removed_record_is_named():
    records, head = chain(5)
    del records[1]
    v = verify(records, head=head)
    assert not v.ok and v.problem == "seq 2 missing: seq 1 is followed by seq 3"


def test_a_removed_tail_is_caught_by_the_head():
    records, head = chain(5)
    v = verify(records[:3], head=head)
    assert not v.ok and "seq 4..5 missing at the end" in v.problem


def test_reordered_records_are_found():
    records, head = chain(4)
    records[1], records[2] = records[2], records[1]
    v = verify(records, head=head)
    assert not v.ok and "seq 3" in v.problem


def test_a_record_that_is_not_json():
    records, _ = chain(2)
    records[1] = b"\xff" + records[1][1:]
    assert "not a valid record" in verify(records).problem


def test_a_chain_resumes_where_it_stopped():
    first = Chain("h")
    a = [first.append({"n": i}) for i in range(3)]
    again = Chain("h", seq=first.seq, prev=first.prev)
    b = [again.append({"n": i}) for i in range(2)]
    assert verify(a + b).ok
    assert verify(b, first_seq=4, first_prev=digest(a[-1])).ok
