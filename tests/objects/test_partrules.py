"""The pure rules of a multipart upload (titans3/objects/partrules.py), on plain values."""

from __future__ import annotations

import hashlib

import pytest

from titans3.core.errors import (
    EntityTooSmall,
    InvalidArgument,
    InvalidPart,
    InvalidPartOrder,
    InvalidRequest,
)
from titans3.objects.partrules import (
    MAX_PARTS,
    check_complete_list,
    check_part_checksum,
    check_part_number,
    choose_parts,
    composite_etag,
    durable,
    quorum_parts,
    valid_upload_id,
)

UID = "0" * 32


def rec(n: int, data: str, t: int = 1, size: int = 10, etag: str = "ab") -> dict:
    return {"n": n, "data": data, "t": t, "size": size, "etag": etag}


def test_upload_ids_are_32_lowercase_hex_digits():
    assert valid_upload_id("0123456789abcdef" * 2)
    assert not valid_upload_id("0123456789ABCDEF" * 2)
    assert not valid_upload_id("0" * 31)


def test_durable_needs_w_on_k_drives_surviving_one_loss():
    assert durable([0, 1, 2, 3], k=2, w=3)
    assert not durable([0, 1], k=2, w=3)
    assert not durable([0, 0, 1], k=2, w=3)  # losing drive 0 leaves one fragment
    assert durable([0, 0, 1, 2], k=2, w=3)
    assert not durable([], k=2, w=3)


def test_part_numbers_and_the_complete_list_shape():
    check_part_number(1)
    check_part_number(MAX_PARTS)
    for bad in (0, MAX_PARTS + 1):
        with pytest.raises(InvalidArgument):
            check_part_number(bad)
    check_complete_list(UID, [(1, "a"), (3, "b")])
    with pytest.raises(InvalidArgument):
        check_complete_list(UID, [])
    with pytest.raises(InvalidArgument):
        check_complete_list(UID, [(0, "a")])
    with pytest.raises(InvalidPartOrder):
        check_complete_list(UID, [(2, "a"), (2, "b")])


def test_part_checksum_must_be_the_uploads_algorithm():
    check_part_checksum(None, {})
    check_part_checksum("CRC32", {"CRC32": "x"})
    with pytest.raises(InvalidRequest, match="expected checksum Type: crc32, actual checksum Type: null"):
        check_part_checksum("CRC32", {})


def test_quorum_parts_counts_records_a_quorum_could_have_acknowledged():
    old, new = rec(1, "d-old", t=1), rec(1, "d-new", t=2)
    lone = rec(2, "d-lone")
    per = [[old, new], [old, new, lone], [old], None]
    best, held = quorum_parts(per, k=2, w=3)
    assert best == {1: new}  # newest of the counted wins; "d-lone" is on one drive only
    assert held == {0: {"d-old", "d-new"}, 1: {"d-old", "d-new", "d-lone"}, 2: {"d-old"}, 3: set()}


def test_choose_parts_matches_etags_and_minimum_size():
    best = {1: rec(1, "d1", size=5, etag="aa"), 2: rec(2, "d2", size=3, etag="bb")}
    chosen = choose_parts(UID, [(1, '"AA"'), (2, "bb")], best, min_part_size=5)
    assert [(p.number, p.data_id) for p in chosen] == [(1, "d1"), (2, "d2")]
    with pytest.raises(InvalidPart):
        choose_parts(UID, [(1, "cc")], best, min_part_size=5)
    with pytest.raises(EntityTooSmall):
        choose_parts(UID, [(2, "bb"), (1, "aa")], best, min_part_size=5)


def test_composite_etag_is_md5_of_binary_md5s_and_count():
    a, b = hashlib.md5(b"a").hexdigest(), hashlib.md5(b"b").hexdigest()
    want = hashlib.md5(bytes.fromhex(a) + bytes.fromhex(b)).hexdigest() + "-2"
    assert composite_etag([a, b]) == want
    with pytest.raises(ValueError):
        composite_etag(["zz"])
