"""Deciding what a key's versions are from what its drives say (pure).

Theory of operation
-------------------
A write is acknowledged once ``W`` drives of its placement committed it
(DESIGN §4: ``W = k + 1``, or ``k`` without parity).  Readers see the records of
the drives that answered (``seen``) and know how many of the placement did not
answer (``unseen``).  For every version id:

* ``count + unseen < W``: it cannot have been acknowledged -- it is the remnant
  of a failed or interrupted write (or of a delete that reached the others);
  **ignore it**.  This is what makes a PUT killed mid-commit leave the previous
  version, and what keeps a drive that missed a delete from resurrecting data.
* otherwise it may have been acknowledged and must not be skipped:
  - a delete marker needs no data: it counts;
  - a data version is *readable* with ``count >= k`` fragments;
  - a data version with fewer is *unavailable*: reading it raises
    ``QuorumError`` rather than silently serving an older version (strong
    consistency: never stale, at worst unavailable).

A version's mutable fields (its tags) are re-committed in place with a change
stamp (``extra["mu"]``); the holder with the newest stamp is the representative
record, so an update that reached ``W`` drives is what every read quorum sees.

Only the newest surviving null version is visible (older nulls are purged
after their successor reached quorum; until then they are shadowed).
Last writer wins by version id, which sorts in time order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from titans3.drive.records import HIDDEN, REFS, VersionRecord


@dataclass(frozen=True, slots=True)
class Resolved:
    record: VersionRecord  # a representative record (frag_index is one drive's)
    count: int  # drives holding it
    holders: tuple[int, ...]  # positions (in the caller's drive list) holding it
    readable: bool  # delete marker, or data with >= k fragments seen


def s3_version_id(rec: VersionRecord) -> str:
    """The version id as S3 shows it: ``null`` for the null version."""
    return "null" if rec.null else rec.vid


def write_quorum(k: int, m: int) -> int:
    return k + 1 if m > 0 else k


def resolve_versions(
    per_drive: Sequence[Sequence[VersionRecord] | None], *, k: int, w: int,
    anchors: bool = False,
) -> list[Resolved]:
    """Visible versions, newest first.

    ``per_drive[i]`` is drive ``i``'s record list, or ``None`` if it did not
    answer.  ``k``/``w`` are the placement's read and write quorums; a version's
    own EC scheme (``record.ec``) overrides ``k``/``w`` for data versions.

    Rename anchors (``titans3/objects/rename.py``) are invisible to reads;
    ``anchors=True`` (repair, GC, inspection, which must keep their data)
    includes them, and also every version other versions reference even
    when a newer null version shadows it.
    """
    unseen = sum(1 for recs in per_drive if recs is None)
    by_vid: dict[str, list[tuple[int, VersionRecord]]] = {}
    for pos, recs in enumerate(per_drive):
        for r in recs or ():
            if not r.tomb:
                by_vid.setdefault(r.vid, []).append((pos, r))
    out: list[Resolved] = []
    null_seen = False
    for vid in sorted(by_vid, reverse=True):
        holders = by_vid[vid]
        # Fields of a version can change after it was written (object tags): the
        # copy with the newest change stamp speaks for it (see objects/tagging.py).
        rec = max(holders, key=lambda h: h[1].extra.get("mu", ""))[1]
        vk, vw = k, w
        if not rec.dm:
            ek, em, _ = rec.ec
            vk, vw = ek, write_quorum(ek, em)
        count = len({pos for pos, _ in holders})
        if count + unseen < vw:
            continue  # never acknowledged
        hidden = bool(rec.extra.get(HIDDEN))
        if hidden and not anchors:
            # A rename anchor: read through its references.  It still shadows
            # the null versions before it, as it did while it was visible.
            null_seen = null_seen or rec.null
            continue
        if anchors and (hidden or rec.extra.get(REFS)):
            null_seen = null_seen or rec.null
            out.append(Resolved(rec, count, tuple(pos for pos, _ in holders),
                                len({r.frag_index for _, r in holders}) >= vk))
            continue
        if rec.null:
            if null_seen:
                continue  # shadowed by a newer null version
            null_seen = True
        readable = rec.dm or len({r.frag_index for _, r in holders}) >= vk
        out.append(Resolved(rec, count, tuple(pos for pos, _ in holders), readable))
    return out


def under_quorum(per_drive: Sequence[Sequence[VersionRecord] | None], *, k: int, w: int) -> bool:
    """Whether some version on these pages has fewer holders than its write
    quorum -- so :func:`resolve_versions` hid it.  That is a failed write's
    remnant, or a write acknowledged through hinted handoff whose hints are
    not replayed yet: only a lookup that merges the hints tells which."""
    unseen = sum(1 for recs in per_drive if recs is None)
    holders: dict[str, set[int]] = {}
    first: dict[str, VersionRecord] = {}
    for pos, recs in enumerate(per_drive):
        for r in recs or ():
            if not r.tomb:
                holders.setdefault(r.vid, set()).add(pos)
                first.setdefault(r.vid, r)
    for vid, where in holders.items():
        rec = first[vid]
        vw = w if rec.dm else write_quorum(rec.ec[0], rec.ec[1])
        if len(where) + unseen < vw:
            return True
    return False


def latest(resolved: Sequence[Resolved]) -> Resolved | None:
    return resolved[0] if resolved else None
