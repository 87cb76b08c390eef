"""The fragment file format (titans3/drive/fragment.py): pure byte vectors."""

from __future__ import annotations

import os

import pytest
import xxhash
from hypothesis import given, settings
from hypothesis import strategies as st

from titans3.drive import fragment as fmt
from titans3.drive.fragment import (
    BLOCK,
    DIGEST_SIZE,
    HEADER_SIZE,
    PAYLOAD,
    FragmentFormatError,
    FragmentHeader,
    blocks_for_range,
    frame,
    frame_into,
    seal_tail,
    unpack_header,
    verify_and_extract,
)

DATA_ID = "0123456789abcdef0123456789abcdef"


def extract(buf: bytes, first: int, offset: int, length: int, logical: int) -> bytes:
    return b"".join(verify_and_extract(buf, first, offset, length, logical))


# --------------------------------------------------------------------- header
def test_geometry_constants_keep_blocks_aligned() -> None:
    assert BLOCK == 65536 and PAYLOAD == 65520 and HEADER_SIZE == 4096
    assert HEADER_SIZE % 4096 == 0 and BLOCK % 4096 == 0


def test_header_round_trips_and_is_one_aligned_page() -> None:
    h = FragmentHeader(DATA_ID, frag_index=7, logical_len=123_456_789)
    raw = h.pack()
    assert len(raw) == HEADER_SIZE
    assert raw.startswith(b"T3FRAG\x00\x01")
    assert unpack_header(raw) == h
    assert raw[200:] == bytes(HEADER_SIZE - 200)  # zero padded


def test_header_rejects_bad_magic() -> None:
    raw = bytearray(FragmentHeader(DATA_ID, 0, 10).pack())
    raw[0:8] = b"XXXXXXXX"
    with pytest.raises(FragmentFormatError, match="magic") as e:
        unpack_header(bytes(raw))
    assert e.value.block is None


def test_unfinished_file_has_no_valid_header() -> None:
    with pytest.raises(FragmentFormatError, match="magic"):
        unpack_header(bytes(HEADER_SIZE))


@pytest.mark.parametrize("pos", [8, 12, 20, 30, 40, 60, 90])
def test_header_detects_any_flipped_field_byte(pos: int) -> None:
    raw = bytearray(FragmentHeader(DATA_ID, 3, 999).pack())
    raw[pos] ^= 0x01
    with pytest.raises(FragmentFormatError):
        unpack_header(bytes(raw))


def test_header_rejects_unsupported_version_even_with_valid_checksum() -> None:
    raw = FragmentHeader(DATA_ID, 0, 10, version=2).pack()
    with pytest.raises(FragmentFormatError, match="version"):
        unpack_header(raw)


def test_header_rejects_truncation_and_oversized_ids() -> None:
    with pytest.raises(FragmentFormatError, match="truncated"):
        unpack_header(b"T3FRAG\x00\x01")
    with pytest.raises(ValueError):
        FragmentHeader("a" * 65, 0, 0).pack()


# ------------------------------------------------------------------- geometry
def test_file_size_is_header_plus_full_blocks_plus_aligned_tail() -> None:
    assert fmt.file_size(0) == HEADER_SIZE
    assert fmt.file_size(1) == HEADER_SIZE + 4096
    assert fmt.file_size(PAYLOAD) == HEADER_SIZE + BLOCK
    assert fmt.file_size(PAYLOAD + 1) == HEADER_SIZE + BLOCK + 4096
    assert fmt.file_size(4096 - DIGEST_SIZE + 1) == HEADER_SIZE + 8192


def test_range_in_the_middle_covers_only_its_blocks() -> None:
    logical = 10 * PAYLOAD + 123
    r = blocks_for_range(3 * PAYLOAD + 10, 2 * PAYLOAD, logical)
    assert (r.first_block, r.last_block) == (3, 5)
    assert r.file_offset == HEADER_SIZE + 3 * BLOCK
    assert r.file_length == 3 * BLOCK


def test_range_is_clipped_at_the_end_and_tail_is_aligned() -> None:
    logical = 2 * PAYLOAD + 100
    r = blocks_for_range(PAYLOAD + 5, 10 * PAYLOAD, logical)
    assert (r.first_block, r.last_block) == (1, 2)
    assert r.file_length == BLOCK + 4096


def test_empty_ranges_read_nothing() -> None:
    for off, ln, logical in [(0, 0, 100), (100, 5, 100), (500, 5, 100), (0, 10, 0)]:
        r = blocks_for_range(off, ln, logical)
        assert r.last_block < r.first_block and r.file_length == 0


@given(
    logical=st.integers(0, 6 * PAYLOAD),
    offset=st.integers(0, 7 * PAYLOAD),
    length=st.integers(0, 7 * PAYLOAD),
)
def test_every_block_range_is_4k_aligned(logical: int, offset: int, length: int) -> None:
    r = blocks_for_range(offset, length, logical)
    assert r.file_offset % 4096 == 0 and r.file_length % 4096 == 0
    if r.file_length:
        assert r.file_offset + r.file_length <= fmt.file_size(logical)


# -------------------------------------------------------------------- framing
@settings(max_examples=60, deadline=None)
@given(data=st.data(), logical=st.sampled_from([0, 1, 100, PAYLOAD - 1, PAYLOAD, PAYLOAD + 1, 3 * PAYLOAD + 77]))
def test_frame_then_extract_round_trips_any_range(data: st.DataObject, logical: int) -> None:
    payload = os.urandom(logical)
    on_disk = frame(payload)
    assert len(on_disk) + HEADER_SIZE == fmt.file_size(logical)
    offset = data.draw(st.integers(0, logical + 10))
    length = data.draw(st.integers(0, logical + 10))
    r = blocks_for_range(offset, length, logical)
    window = on_disk[r.file_offset - HEADER_SIZE : r.file_offset - HEADER_SIZE + r.file_length]
    got = extract(window, r.first_block, offset, length, logical) if r.file_length else b""
    assert got == payload[offset : offset + length]


@settings(max_examples=30, deadline=None)
@given(sizes=st.lists(st.integers(0, 3 * PAYLOAD), min_size=1, max_size=8))
def test_streaming_frame_into_matches_one_shot(sizes: list[int]) -> None:
    payload = os.urandom(sum(sizes))
    slots = 2
    buf = memoryview(bytearray(slots * BLOCK))
    out = bytearray()
    filled, block, pos = 0, 0, 0
    for n in sizes:
        src = memoryview(payload)[pos : pos + n]
        pos += n
        while len(src):
            taken, filled = frame_into(buf, src, filled, first_block=block)
            src = src[taken:]
            if filled == fmt.capacity(buf):
                out += buf
                block += slots
                filled = 0
    out += buf[: seal_tail(buf, filled, first_block=block)]
    assert bytes(out) == frame(payload)


def test_tail_padding_is_zeroed_even_in_a_reused_buffer() -> None:
    buf = memoryview(bytearray(b"\xee" * BLOCK))
    _, filled = frame_into(buf, b"abc", 0, first_block=0)
    n = seal_tail(buf, filled, first_block=0)
    assert n == 4096
    assert bytes(buf[DIGEST_SIZE + 3 : n]) == bytes(n - DIGEST_SIZE - 3)


def test_block_digest_is_seeded_with_the_block_index() -> None:
    payload = os.urandom(2 * PAYLOAD)
    on_disk = frame(payload)
    assert on_disk[:DIGEST_SIZE] == xxhash.xxh3_128_digest(payload[:PAYLOAD], seed=0)
    assert on_disk[BLOCK : BLOCK + DIGEST_SIZE] == xxhash.xxh3_128_digest(payload[PAYLOAD:], seed=1)


# ----------------------------------------------------------------- corruption
@pytest.mark.parametrize("block", [0, 1, 2, 3])
@pytest.mark.parametrize("where", ["digest", "payload_start", "payload_end"])
def test_a_flipped_byte_is_reported_in_its_block(block: int, where: str) -> None:
    logical = 3 * PAYLOAD + 500
    on_disk = bytearray(frame(os.urandom(logical)))
    plen = fmt.block_payload_len(block, logical)
    pos = block * BLOCK + {"digest": 3, "payload_start": DIGEST_SIZE, "payload_end": DIGEST_SIZE + plen - 1}[where]
    on_disk[pos] ^= 0x40
    with pytest.raises(FragmentFormatError) as e:
        extract(bytes(on_disk), 0, 0, logical, logical)
    assert e.value.block == block
    # Ranges that do not touch the damaged block still verify and read.
    for other in range(4):
        if other != block:
            r = blocks_for_range(other * PAYLOAD, 1, logical)
            window = bytes(on_disk[r.file_offset - HEADER_SIZE : r.file_offset - HEADER_SIZE + r.file_length])
            assert len(extract(window, other, other * PAYLOAD, 1, logical)) == 1


def test_a_block_at_the_wrong_offset_fails_verification() -> None:
    logical = 2 * PAYLOAD
    on_disk = frame(os.urandom(logical))
    swapped = on_disk[BLOCK:] + on_disk[:BLOCK]
    with pytest.raises(FragmentFormatError) as e:
        extract(swapped, 0, 0, logical, logical)
    assert e.value.block == 0


def test_padding_damage_is_not_data_damage() -> None:
    on_disk = bytearray(frame(b"x" * 10))
    on_disk[4000] ^= 0xFF  # in the tail block's padding
    assert extract(bytes(on_disk), 0, 0, 10, 10) == b"x" * 10


def test_truncated_block_is_corrupt_but_a_short_window_is_partial() -> None:
    logical = 2 * PAYLOAD
    on_disk = frame(os.urandom(logical))
    with pytest.raises(FragmentFormatError, match="truncated"):
        extract(on_disk[: BLOCK + 100], 0, 0, logical, logical)
    # A window of whole blocks yields what it covers (streaming through a buffer).
    assert len(extract(on_disk[:BLOCK], 0, 0, logical, logical)) == PAYLOAD
