"""The volume write log's segment format: pure encode/decode.

A log segment is one object, ``v/<volume id>/log/<first lsn:016x>``, written
whole at the write quorum (so it is all there or not there at all)::

    header   magic "TNBDLOG1", u16 version, u16 flags, 8-byte volume id,
             u64 first lsn, u64 last lsn, u32 record count
    records  u64 lsn, u8 kind, 3 bytes zero, u64 offset, u32 length, data
    trailer  16 bytes: blake3 of everything above (the object layer checks its
             fragments; this catches a segment of the wrong volume or a bug)

Record kinds:

``WRITE``   ``length`` bytes of data at byte ``offset`` (whole 4 KiB blocks);
``ZERO``    ``length`` bytes at ``offset`` read as zeroes (TRIM, WRITE_ZEROES);
``EXTENT``  the extent object ``offset`` (an extent index) was written whole
            (or deleted) and holds every write to it up to this record's lsn:
            replay drops what it gathered for that extent so far.

LSNs are ``epoch << 40 | counter``: a new writer's records sort after every
record of the writer it replaced.  Records of one segment are in LSN order
(the blocks of one write share its LSN); replay sorts the records of all
segments by LSN, so segments may overlap.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

from blake3 import blake3

MAGIC = b"TNBDLOG1"
VERSION = 1
HEADER = struct.Struct(">8sHH8sQQI")
RECORD = struct.Struct(">QB3xQI")
TRAILER = 16
EPOCH_SHIFT = 40


class Kind(IntEnum):
    WRITE = 1
    ZERO = 2
    EXTENT = 3


class LogFormatError(ValueError):
    """A segment that is not a well-formed segment of this volume."""


@dataclass(frozen=True, slots=True)
class Record:
    lsn: int
    kind: Kind
    offset: int
    length: int
    data: bytes | memoryview = b""


def lsn_of(epoch: int, counter: int) -> int:
    return (epoch << EPOCH_SHIFT) | counter


def epoch_of(lsn: int) -> int:
    return lsn >> EPOCH_SHIFT


def segment_key(prefix: str, first_lsn: int) -> str:
    return f"{prefix}log/{first_lsn:016x}"


def first_lsn_of(key: str) -> int:
    return int(key.rsplit("/", 1)[1], 16)


def encode(volume_id: bytes, records: list[Record]) -> bytes:
    """One segment holding ``records`` (in LSN order, at least one)."""
    if not records:
        raise ValueError("a segment holds at least one record")
    parts: list[bytes | memoryview] = [
        HEADER.pack(MAGIC, VERSION, 0, volume_id, records[0].lsn, records[-1].lsn, len(records))]
    last = -1
    for r in records:
        if r.lsn < last:
            raise ValueError("records must be in LSN order")
        last = r.lsn
        if r.kind is Kind.WRITE and len(r.data) != r.length:
            raise ValueError("a WRITE record's data must be its length")
        parts.append(RECORD.pack(r.lsn, r.kind, r.offset, r.length))
        if r.kind is Kind.WRITE:
            parts.append(r.data)
    body = b"".join(parts)
    return body + blake3(body).digest(length=TRAILER)


def decode(raw: bytes | memoryview, volume_id: bytes) -> list[Record]:
    """The records of a segment of volume ``volume_id``; ``LogFormatError`` otherwise."""
    view = memoryview(raw)
    if len(view) < HEADER.size + TRAILER:
        raise LogFormatError("segment too short")
    body, digest = view[:-TRAILER], bytes(view[-TRAILER:])
    if blake3(body).digest(length=TRAILER) != digest:
        raise LogFormatError("segment checksum mismatch")
    magic, version, _flags, vid, first, last, count = HEADER.unpack_from(body)
    if magic != MAGIC or version != VERSION:
        raise LogFormatError("not a log segment")
    if vid != volume_id:
        raise LogFormatError("segment of another volume")
    out: list[Record] = []
    pos = HEADER.size
    for _ in range(count):
        if pos + RECORD.size > len(body):
            raise LogFormatError("truncated record")
        lsn, kind, offset, length = RECORD.unpack_from(body, pos)
        pos += RECORD.size
        try:
            k = Kind(kind)
        except ValueError:
            raise LogFormatError(f"unknown record kind {kind}") from None
        data: bytes = b""
        if k is Kind.WRITE:
            if pos + length > len(body):
                raise LogFormatError("truncated record data")
            data = bytes(body[pos : pos + length])
            pos += length
        out.append(Record(lsn, k, offset, length, data))
    if pos != len(body) or (out and (out[0].lsn != first or out[-1].lsn != last)):
        raise LogFormatError("segment header does not match its records")
    return out
