"""The audit trail's record format: a hash chain per host (pure).

Theory of operation
-------------------
Every host keeps one append-only chain.  A record is a JSON object encoded
compactly (no spaces, UTF-8) and stored as exactly those bytes -- the chain
is over the bytes, never over a re-encoding; it carries its host, a sequence number that grows by one, and
``prev`` -- the blake3 of the previous record's bytes (64 zero digits for
the first).  Whoever edits a byte of a record breaks the ``prev`` of the
record after it; whoever removes or reorders records breaks the sequence;
and a *head* (the last sequence number and the hash of the last record,
kept beside the records) catches a cut-off or edited tail.

:class:`Chain` appends (no I/O: it returns the bytes to store) and
:func:`verify` walks a host's records and names the first one that does not
fit.  Verification proves the records are the ones written, in order, as long
as the head was not rewritten along with them; the journald copy of every
record (``titans3.accounts.journal``) is the second witness.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import blake3

__all__ = ["GENESIS", "Chain", "Verdict", "decode", "digest", "encode", "verify"]

GENESIS = "0" * 64


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def encode(record: Mapping[str, Any]) -> bytes:
    """The stored bytes of a record: compact JSON in the record's own field order
    (the chain hashes these bytes as stored, so no canonical key order is needed)."""
    return _ENCODER.encode(record).encode()


def decode(raw: bytes) -> dict[str, Any]:
    doc = json.loads(raw)
    if not isinstance(doc, dict):
        raise ValueError("not a JSON object")
    return doc


def digest(raw: bytes) -> str:
    return blake3.blake3(raw).hexdigest()


class Chain:
    """The appending end of one host's chain."""

    def __init__(self, host: str, *, seq: int = 0, prev: str = GENESIS) -> None:
        self.host = host
        self.seq = seq  # the last sequence number written (0: none yet)
        self.prev = prev  # hash of the last record written

    def append(self, fields: Mapping[str, Any]) -> bytes:
        record = dict(fields)
        record["host"] = self.host
        record["seq"] = self.seq + 1
        record["prev"] = self.prev
        raw = encode(record)
        self.seq += 1
        self.prev = digest(raw)
        return raw


@dataclass(frozen=True, slots=True)
class Verdict:
    ok: bool
    checked: int  # records that verified
    last_seq: int
    problem: str = ""  # where and what, when not ok


def verify(
    records: Iterable[bytes], *, head: tuple[int, str] | None = None, first_seq: int = 1,
    first_prev: str = GENESIS,
) -> Verdict:  # fmt: skip
    """Check one host's records in stored order; the first break is reported.

    ``head``: the ``(seq, hash)`` of the last record as recorded beside them.
    ``first_seq``/``first_prev``: where the records start (a tail of the chain).
    """
    expect_seq, expect_prev = first_seq, first_prev
    checked = 0
    last_raw: bytes | None = None
    for position, raw in enumerate(records):
        try:
            doc = decode(raw)
            seq, prev = int(doc["seq"]), str(doc["prev"])
        except (ValueError, KeyError, TypeError):
            return Verdict(False, checked, expect_seq - 1,
                           f"record #{position + 1} (expected seq {expect_seq}) is not a valid record")  # fmt: skip
        if seq != expect_seq:
            if seq > expect_seq:
                gone = f"seq {expect_seq}" if seq == expect_seq + 1 else f"seq {expect_seq}..{seq - 1}"
                return Verdict(False, checked, expect_seq - 1,
                               f"{gone} missing: seq {expect_seq - 1} is followed by seq {seq}")  # fmt: skip
            return Verdict(False, checked, expect_seq - 1,
                           f"records out of order: seq {seq} found where seq {expect_seq} belongs")  # fmt: skip
        if prev != expect_prev:
            where = (f"seq {seq - 1} was edited (its hash is not the prev that seq {seq} carries)"
                     if seq > first_seq or first_prev != GENESIS else f"seq {seq} has a wrong prev")  # fmt: skip
            return Verdict(False, checked, seq - 1, where)
        expect_seq, expect_prev = seq + 1, digest(raw)
        checked += 1
        last_raw = raw
    last = expect_seq - 1
    if head is not None:
        head_seq, head_hash = head
        if head_seq > last:
            gone = f"seq {last + 1}" if head_seq == last + 1 else f"seq {last + 1}..{head_seq}"
            return Verdict(False, checked, last, f"{gone} missing at the end (the head records seq {head_seq})")
        if head_seq == last and last_raw is not None and head_hash != expect_prev:
            return Verdict(False, checked, last,
                           f"seq {last} was edited (its hash is not the one the head records)")  # fmt: skip
    return Verdict(True, checked, last)
