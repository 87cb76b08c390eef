"""The pure rules of a multipart upload: no drive, no clock, no I/O.

:mod:`titans3.objects.multipart` reads upload and part records off the drives
and writes them back; what it *decides* -- which part list a Complete accepts,
which part records count, when a write is acknowledged -- lives here, so each
rule can be read (and tested) on plain values.

Invariants
----------
- A part number is in ``1..MAX_PARTS``; a Complete lists at least one part, at
  most ``MAX_PARTS``, in strictly ascending order (:func:`check_complete_list`).
- A part record counts only when a quorum could have acknowledged it: it is on
  at least ``k`` placement indexes and, counting the indexes that did not
  answer as holders, on ``w`` (:func:`quorum_parts`).  Of the records that count
  for one part number the newest (``t``) wins -- a re-uploaded part replaces the
  older one.
- Complete takes exactly the listed parts, each matching its record's ETag
  (quotes and case ignored), and every part but the last is at least
  ``min_part_size`` (:func:`choose_parts`).  The caller passes the minimum in so
  it stays one setting of the multipart module.
- An upload id is a clock id: 32 lowercase hex digits (:func:`valid_upload_id`);
  anything else names no upload.
- An upload or part row is acknowledged by handoff's durability rule
  (:func:`durable`): ``w`` drives took it, ``k`` distinct ones, and losing any
  one drive still leaves ``k`` -- a substitute may hold several positions.
- The object's ETag is the MD5 of the parts' binary MD5s, ``-`` and the part
  count (:func:`composite_etag`), the same for a first and a repeated Complete.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from titans3.core.errors import (
    EntityTooSmall,
    InvalidArgument,
    InvalidPart,
    InvalidPartOrder,
    InvalidRequest,
)
from titans3.drive.records import Part

MAX_PARTS = 10_000
_RANGE = "Part number must be an integer between 1 and 10000, inclusive"


def valid_upload_id(upload_id: str) -> bool:
    return len(upload_id) == 32 and all(c in "0123456789abcdef" for c in upload_id)


def durable(where: Sequence[int], k: int, w: int) -> bool:
    """Handoff's rule over the drives (by position in the store) that took a
    fragment or a record: ``w`` of them, on ``k`` distinct drives, and losing
    any one drive still leaves ``k``."""
    load: dict[int, int] = {}
    for pos in where:
        load[pos] = load.get(pos, 0) + 1
    counts = list(load.values()) or [0]
    return sum(counts) >= w and len(load) >= k and sum(counts) - max(counts) >= k


def check_part_number(part_number: int) -> None:
    """UploadPart's part number must be in ``1..MAX_PARTS``."""
    if not 1 <= part_number <= MAX_PARTS:
        raise InvalidArgument(_RANGE, ArgumentName="partNumber", ArgumentValue=str(part_number))


def check_complete_list(upload_id: str, parts: Sequence[tuple[int, str]]) -> None:
    """The shape of a Complete's list, before any part record is read."""
    if not parts:
        raise InvalidArgument("You must specify at least one part")  # AWS: MalformedXML in front
    if len(parts) > MAX_PARTS:
        raise InvalidArgument(_RANGE)
    numbers = [n for n, _ in parts]
    if any(not 1 <= n <= MAX_PARTS for n in numbers):
        raise InvalidArgument(_RANGE, ArgumentName="partNumber")
    if any(b <= a for a, b in zip(numbers, numbers[1:], strict=False)):
        raise InvalidPartOrder(UploadId=upload_id)


def check_part_checksum(expected: str | None, got: Mapping[str, str]) -> None:
    """A part of an upload created with a checksum algorithm must carry that checksum."""
    if expected is not None and expected not in got:
        actual = next(iter(got), None)
        raise InvalidRequest(
            "Checksum Type mismatch occurred, expected checksum Type: "
            f"{expected.lower()}, actual checksum Type: {actual.lower() if actual else 'null'}"
        )


def quorum_parts(
    per: Sequence[Sequence[dict[str, Any]] | None], k: int, w: int
) -> tuple[dict[int, dict[str, Any]], dict[int, set[str]]]:
    """From the part records each placement index returned (None: it did not
    answer): number -> the record that counts, and per index the data ids it holds."""
    unseen = sum(1 for p in per if p is None)
    counts: dict[str, int] = {}
    recs: dict[str, dict[str, Any]] = {}
    held: dict[int, set[str]] = {}
    for j, rows in enumerate(per):
        held[j] = set()
        for r in rows or ():
            counts[r["data"]] = counts.get(r["data"], 0) + 1
            recs[r["data"]] = r
            held[j].add(r["data"])
    best: dict[int, dict[str, Any]] = {}
    for data_id, r in recs.items():
        c = counts[data_id]
        if c < k or c + unseen < w:
            continue
        cur = best.get(r["n"])
        if cur is None or r["t"] > cur["t"]:
            best[r["n"]] = r
    return best, held


def choose_parts(
    upload_id: str, parts: Sequence[tuple[int, str]], best: Mapping[int, Mapping[str, Any]],
    min_part_size: int,
) -> list[Part]:
    """The listed parts as the version record's part table, or the S3 error
    that refuses the Complete (an unknown or mismatched part, a short one)."""
    chosen: list[Part] = []
    for i, (n, etag) in enumerate(parts):
        r = best.get(n)
        if r is None or r["etag"] != etag.strip().strip('"').lower():
            raise InvalidPart(UploadId=upload_id, PartNumber=str(n), ETag=etag)
        if i < len(parts) - 1 and r["size"] < min_part_size:
            raise EntityTooSmall(UploadId=upload_id, PartNumber=str(n),
                                 ProposedSize=str(r["size"]), MinSizeAllowed=str(min_part_size))
        chosen.append(Part(n, r["size"], r["etag"], r["data"], dict(r.get("cks", {}))))
    return chosen


def composite_etag(md5_hexes: Sequence[str]) -> str:
    """The multipart ETag of parts with these MD5s (hex; ``ValueError`` if one is not)."""
    md5s = b"".join(bytes.fromhex(h) for h in md5_hexes)
    return f"{hashlib.md5(md5s).hexdigest()}-{len(md5_hexes)}"
