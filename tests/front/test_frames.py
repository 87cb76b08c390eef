"""titans3.front.frames: the owner <-> front frame codec, and what a bad peer gets."""

from __future__ import annotations

import struct

import pytest

from titans3.core.errors import NoSuchKey, PreconditionFailed, QuorumError
from titans3.front.frames import MAX_FRAME, FrameError, FrameReader, Kind, dumps, encode, loads


def test_frames_split_anywhere_come_out_whole_and_in_order() -> None:
    wire = encode(Kind.CALL, 1, b"hello") + encode(Kind.DATA, 3, bytes(range(256)) * 40) + encode(Kind.PULL, 3)
    for cut in (1, 2, 7, 9, 100, len(wire) - 1):
        r = FrameReader()
        got = r.feed(wire[:cut]) + r.feed(wire[cut:])
        assert [(f.kind, f.call, bytes(f.payload)) for f in got] == [
            (Kind.CALL, 1, b"hello"), (Kind.DATA, 3, bytes(range(256)) * 40), (Kind.PULL, 3, b"")]
        assert r.pending == 0


def test_byte_by_byte_feed_yields_each_frame_once() -> None:
    wire = encode(Kind.END, 7, b"x" * 10) * 3
    r = FrameReader()
    got = [f for i in range(len(wire)) for f in r.feed(wire[i:i + 1])]
    assert len(got) == 3 and all(f.call == 7 and f.payload == b"x" * 10 for f in got)


def test_incomplete_frame_is_held_not_returned() -> None:
    r = FrameReader()
    assert r.feed(encode(Kind.RESULT, 2, b"abcdef")[:-2]) == []
    assert r.pending == 4 + 5 + 4


@pytest.mark.parametrize("raw", [
    struct.pack(">IBI", 3, Kind.CALL, 1),  # shorter than its own header
    struct.pack(">IBI", MAX_FRAME + 1, Kind.DATA, 1),  # over the limit
    struct.pack(">IBI", 5, 0, 1),  # kind 0
    struct.pack(">IBI", 5, 200, 1),  # unknown kind
])
def test_malformed_frames_are_refused(raw: bytes) -> None:
    with pytest.raises(FrameError):
        FrameReader().feed(raw)


def test_a_frame_over_the_limit_cannot_be_encoded() -> None:
    from titans3.front.frames import header

    with pytest.raises(FrameError):
        header(Kind.DATA, 1, MAX_FRAME)


def test_undecodable_payload_is_a_frame_error() -> None:
    with pytest.raises(FrameError):
        loads(b"\x80\x05not a pickle")


def test_s3_errors_cross_with_their_type_message_extra_and_headers() -> None:
    err = NoSuchKey(Key="a/b")
    err.headers.append(("x-amz-delete-marker", "true"))
    back = loads(dumps(err))
    assert type(back) is NoSuchKey and back.code == "NoSuchKey" and back.status == 404
    assert back.message == err.message and back.extra == {"Key": "a/b"}
    assert back.headers == [("x-amz-delete-marker", "true")] and str(back) == str(err)
    q = loads(dumps(QuorumError("2 of 6 drives answered")))
    assert isinstance(q, QuorumError) and q.status == 503 and q.message == "2 of 6 drives answered"


def test_exception_groups_of_s3_errors_cross_whole() -> None:
    group = ExceptionGroup("two", [PreconditionFailed(), NoSuchKey(Key="k")])
    back = loads(dumps(group))
    assert [type(e) for e in back.exceptions] == [PreconditionFailed, NoSuchKey]
    assert back.exceptions[1].extra == {"Key": "k"}
