"""Fragment file format: a pure (sans-I/O) codec.

Theory of operation
-------------------
A fragment file holds one stream of erasure-coded bytes (one fragment index of
one object version or multipart part).  Layout::

    offset 0        header, HEADER_SIZE (4096) bytes, zero padded
    offset 4096     block 0:  [16-byte digest][payload, PAYLOAD (65520) bytes]
    offset 4096+B   block 1:  ...
    ...
    last block      [digest][tail payload][zero padding to a 4 KiB multiple]

with ``B = BLOCK = 65536``.  Invariants:

* Every block starts at ``HEADER_SIZE + i * BLOCK``: 4 KiB aligned, so an
  O_DIRECT read of any block range is aligned in offset and length.
* Each block carries ``xxh3_128(payload, seed=i)``.  Seeding with the block
  index makes a block written to (or read from) the wrong offset fail its
  check just like flipped bits do.  The padding of the last block is not
  covered; it is never returned.
* Only the last block may be short; its on-disk size is rounded up to 4 KiB.
  The file size is therefore a pure function of the logical length.
* The header is written *last* (after every block), so a file whose writer
  died mid-way has no valid magic and can never be mistaken for a fragment.
  It records the data id and fragment index (a file renamed onto the wrong
  name is detected), the block geometry (so the geometry can change in a later
  format version without ambiguity) and the logical length, and is itself
  protected by an xxh3-64 over its fields.

Functions here move bytes between caller-owned buffers (``memoryview`` of an
aligned ``mmap`` on the hot path) and never allocate more than the one copy
each direction needs.  Errors are :class:`FragmentFormatError`, carrying the
failing block index (``None`` for the header); the drive turns them into
``FragmentCorrupt`` after quarantining the file.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import NamedTuple

import xxhash

MAGIC = b"T3FRAG\x00\x01"
FORMAT_VERSION = 1
HEADER_SIZE = 4096
ALIGN = 4096
BLOCK = 65536
DIGEST_SIZE = 16
PAYLOAD = BLOCK - DIGEST_SIZE  # 65520 payload bytes per block
MAX_DATA_ID = 64

# magic, version, block size, payload per block, frag index, logical length,
# data-id length, data id (ascii, zero padded).  Then an xxh3-64 of those bytes.
_FIELDS = struct.Struct(f"<8sHIIIQB{MAX_DATA_ID}s")
_CHECK = struct.Struct("<Q")
_ZERO_PAD = bytes(ALIGN)


class FragmentFormatError(ValueError):
    """The bytes are not a valid fragment: bad header (``block is None``) or a
    block whose digest does not match (``block`` = its index)."""

    def __init__(self, message: str, *, block: int | None = None) -> None:
        self.block = block
        super().__init__(message if block is None else f"block {block}: {message}")


@dataclass(frozen=True, slots=True)
class FragmentHeader:
    data_id: str
    frag_index: int
    logical_len: int
    block_size: int = BLOCK
    version: int = FORMAT_VERSION

    @property
    def payload_per_block(self) -> int:
        return self.block_size - DIGEST_SIZE

    @property
    def nblocks(self) -> int:
        return block_count(self.logical_len)

    @property
    def file_size(self) -> int:
        return file_size(self.logical_len)

    def pack(self) -> bytes:
        """The full HEADER_SIZE bytes to write at offset 0."""
        raw_id = self.data_id.encode("ascii")
        if not 0 < len(raw_id) <= MAX_DATA_ID:
            raise ValueError(f"data id must be 1..{MAX_DATA_ID} ascii chars")
        fields = _FIELDS.pack(
            MAGIC,
            self.version,
            self.block_size,
            self.payload_per_block,
            self.frag_index,
            self.logical_len,
            len(raw_id),
            raw_id,
        )
        head = fields + _CHECK.pack(xxhash.xxh3_64_intdigest(fields))
        return head + bytes(HEADER_SIZE - len(head))


def unpack_header(buf: bytes | memoryview) -> FragmentHeader:
    """Parse and validate a header; raises :class:`FragmentFormatError`."""
    if len(buf) < _FIELDS.size + _CHECK.size:
        raise FragmentFormatError("header truncated")
    fields = bytes(buf[: _FIELDS.size])
    (check,) = _CHECK.unpack_from(buf, _FIELDS.size)
    magic, version, block_size, payload, frag_index, logical_len, id_len, raw_id = (
        _FIELDS.unpack(fields)
    )
    if magic != MAGIC:
        raise FragmentFormatError("bad magic (not a fragment, or never finished)")
    if xxhash.xxh3_64_intdigest(fields) != check:
        raise FragmentFormatError("header checksum mismatch")
    if version != FORMAT_VERSION:
        raise FragmentFormatError(f"unsupported fragment format version {version}")
    if block_size != BLOCK or payload != PAYLOAD:
        raise FragmentFormatError(f"unsupported block geometry {block_size}/{payload}")
    if not 0 < id_len <= MAX_DATA_ID:
        raise FragmentFormatError("bad data id length")
    return FragmentHeader(
        data_id=raw_id[:id_len].decode("ascii"),
        frag_index=frag_index,
        logical_len=logical_len,
        block_size=block_size,
        version=version,
    )


# ------------------------------------------------------------------ geometry
def align_up(n: int, a: int = ALIGN) -> int:
    return (n + a - 1) // a * a


def block_count(logical_len: int) -> int:
    return (logical_len + PAYLOAD - 1) // PAYLOAD


def block_payload_len(index: int, logical_len: int) -> int:
    """Payload bytes held by block ``index`` of a fragment of ``logical_len``."""
    return min(PAYLOAD, logical_len - index * PAYLOAD)


def block_disk_len(index: int, logical_len: int) -> int:
    """On-disk bytes of block ``index`` (only the last block is short)."""
    return align_up(DIGEST_SIZE + block_payload_len(index, logical_len))


def file_size(logical_len: int) -> int:
    n = block_count(logical_len)
    if n == 0:
        return HEADER_SIZE
    return HEADER_SIZE + (n - 1) * BLOCK + block_disk_len(n - 1, logical_len)


class BlockRange(NamedTuple):
    first_block: int
    last_block: int  # inclusive; last_block < first_block means "nothing to read"
    file_offset: int
    file_length: int


def blocks_for_range(offset: int, length: int, logical_len: int) -> BlockRange:
    """The blocks (and the aligned file span) covering logical
    ``[offset, offset+length)``, clipped to the fragment's end."""
    if offset < 0 or length < 0:
        raise ValueError("negative offset or length")
    end = min(offset + length, logical_len)
    if offset >= end:
        return BlockRange(0, -1, HEADER_SIZE, 0)
    first = offset // PAYLOAD
    last = (end - 1) // PAYLOAD
    file_length = (last - first) * BLOCK + block_disk_len(last, logical_len)
    return BlockRange(first, last, HEADER_SIZE + first * BLOCK, file_length)


# ------------------------------------------------------------------ framing
def frame_into(buf: memoryview, payload: memoryview | bytes, filled: int, *, first_block: int) -> tuple[int, int]:
    """Copy as much of ``payload`` as fits into the block slots of ``buf``.

    ``buf`` holds ``len(buf) // BLOCK`` slots; slot ``j`` becomes file block
    ``first_block + j``.  ``filled`` is the payload already in ``buf``.  Each
    slot that becomes full gets its digest.  Returns ``(consumed, filled)``;
    the buffer is full when ``filled == capacity(buf)``.
    """
    cap = capacity(buf)
    src = memoryview(payload)
    consumed = 0
    while consumed < len(src) and filled < cap:
        slot, pos = divmod(filled, PAYLOAD)
        base = slot * BLOCK + DIGEST_SIZE
        n = min(PAYLOAD - pos, len(src) - consumed)
        buf[base + pos : base + pos + n] = src[consumed : consumed + n]
        consumed += n
        filled += n
        if pos + n == PAYLOAD:
            buf[base - DIGEST_SIZE : base] = xxhash.xxh3_128_digest(
                buf[base : base + PAYLOAD], seed=first_block + slot
            )
    return consumed, filled


def seal_tail(buf: memoryview, filled: int, *, first_block: int) -> int:
    """Digest a partly filled last slot and zero its padding.  Returns the
    number of bytes of ``buf`` to write (full slots + the aligned tail)."""
    slot, pos = divmod(filled, PAYLOAD)
    if pos == 0:
        return slot * BLOCK
    base = slot * BLOCK + DIGEST_SIZE
    buf[base - DIGEST_SIZE : base] = xxhash.xxh3_128_digest(buf[base : base + pos], seed=first_block + slot)
    end = align_up(DIGEST_SIZE + pos) + slot * BLOCK
    pad = end - (base + pos)
    buf[base + pos : end] = _ZERO_PAD[:pad]
    return end


def capacity(buf: memoryview) -> int:
    """Payload bytes a framing buffer can hold."""
    return (len(buf) // BLOCK) * PAYLOAD


def verify_and_extract(
    buf: memoryview | bytes, first_block: int, offset: int, length: int, logical_len: int
) -> list[memoryview]:
    """Verify every block in ``buf`` (file bytes starting at ``first_block``) and
    return views of the payload for logical ``[offset, offset+length)``.

    ``buf`` must hold whole blocks as :func:`blocks_for_range` describes (it may
    cover fewer blocks than the range: the views then stop at its end, so a
    caller can stream a large range through a small buffer).  Raises
    :class:`FragmentFormatError` naming the first bad block.
    """
    mv = memoryview(buf)
    end = min(offset + length, logical_len)
    out: list[memoryview] = []
    j = 0
    while True:
        index = first_block + j
        block_start = index * PAYLOAD
        if block_start >= end:
            break
        plen = block_payload_len(index, logical_len)
        base = j * BLOCK
        if base + DIGEST_SIZE + plen > len(mv):
            if base >= len(mv):
                break  # caller passed a partial window; the rest comes later
            raise FragmentFormatError("block truncated", block=index)
        body = mv[base + DIGEST_SIZE : base + DIGEST_SIZE + plen]
        if xxhash.xxh3_128_digest(body, seed=index) != mv[base : base + DIGEST_SIZE]:
            raise FragmentFormatError("checksum mismatch", block=index)
        lo = max(offset, block_start) - block_start
        hi = min(end, block_start + plen) - block_start
        if hi > lo:
            out.append(body[lo:hi])
        j += 1
    return out


def frame(payload: bytes | memoryview) -> bytes:
    """Encode a whole payload into its on-disk block bytes (no header).
    Convenience for tests and small writers; the drive streams instead."""
    n = max(1, block_count(len(payload)))
    buf = memoryview(bytearray(n * BLOCK))
    _, filled = frame_into(buf, payload, 0, first_block=0)
    used = seal_tail(buf, filled, first_block=0)
    return bytes(buf[:used])
