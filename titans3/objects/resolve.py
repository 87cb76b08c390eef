"""Deciding what a key's versions are from what its drives say (pure).

Theory of operation
-------------------
A write is acknowledged once ``W`` drives of its placement committed it
(DESIGN §4: ``W = k + 1``, or ``k`` without parity).  Readers see the records of
the drives that answered (``seen``) and know how many of the placement did not
answer (``unseen``).  A version's read quorum ``k`` is its own scheme's for
data, the placement's for a delete marker.

**The answer must not depend on which drives answered.**  A version is
*visible* exactly when at least ``V`` drives hold it -- a fact about the
drives, whoever is asked.  ``V`` is :func:`visible_quorum`: ``k``, or ``m``
where parity outnumbers data (3-way mirrors); "k" below means ``V``.  (``W`` decides acknowledgement, not visibility: a
PUT killed mid-commit on ``k`` of its drives is there, readable, and repair
completes it.)  For every version id, with ``count`` the drives seen holding
it:

* ``count >= k``: visible, whoever answers (*certain*);
* ``count + unseen < k``: fewer than ``k`` drives can hold it: a remnant of a
  failed or interrupted write, or of a delete that reached the others --
  **ignore it**.  This is what makes a PUT killed before ``k`` drives
  committed leave the previous version, and what keeps a drive that missed a
  delete from resurrecting data;
* in between (*doubtful*): the drives that did not answer decide, so the read
  cannot.  Serving it would be wrong if they lack it (a reader that asked them
  found nothing); serving the version before it would be stale if they hold
  it.  With ``doubtful=True`` (GET and HEAD, ``objects/lookup.py``) such a
  version is returned with ``certain=False`` and the read answers 503 --
  never stale, never a value another reader did not see, at worst
  unavailable.  Without it (listings, repair, GC) it is kept when it may
  have been acknowledged (``count + unseen >= W``: a listing never misses an
  acknowledged write) and ignored otherwise, as before.

A :class:`Partial` answer -- a failed drive's records held by spares -- counts
its records as holders *and* still counts as unseen: a spare that is not fully
rebuilt can make a version 503 (doubtful), never hide one.

  The old rule made visibility ``count + unseen >= W``: a PUT killed after
  ``k`` but before ``W`` commits was absent when every drive answered and
  present as soon as one that lacked it did not -- the crash torture saw an
  object read as absent come back a round later (issue #17).

A visible data version is *readable* with ``k`` distinct fragments of one
encoding; one with fewer raises ``QuorumError`` rather than silently serving
an older version.

A version's mutable fields (its tags) are re-committed in place with a change
stamp (``extra["mu"]``); the holder with the newest stamp is the representative
record, so an update that reached ``W`` drives is what every read quorum sees.

A version re-encoded into another storage class (``objects/transition.py``)
is, while the re-encode is under way or after a crash in it, held by some
drives in its old encoding and by others in its new one (another scheme,
another data id).  The encodings never mix: each is a group of holders with
the same data ids, and the version reads from the newest readable group
(newest by ``extra["tr"]``, the re-encode's stamp) -- old or new, never
neither, never fragments of one decoded with the other.  Visibility counts
every holder of the version, whatever its encoding.

Only the newest surviving null version is visible (older nulls are purged
after their successor reached quorum; until then they are shadowed).
Last writer wins by version id, which sorts in time order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgpack

from titans3.drive.records import HIDDEN, KNOWN_FIELDS, REFS, TRANSITIONED, VersionRecord


class Partial(list):  # type: ignore[type-arg]
    """A drive's answer that may lack versions it should hold: the records of a
    FAILED drive's slot held by its spare drives (objects/spares.py).  Its
    records count as holders, yet the slot still counts as unseen."""


@dataclass(frozen=True, slots=True)
class Resolved:
    record: VersionRecord  # a representative record (frag_index is one drive's)
    count: int  # drives holding it
    holders: tuple[int, ...]  # positions (in the caller's drive list) holding it
    readable: bool  # certain, and a delete marker or data with >= k fragments seen
    # Held by >= k of the drives seen: visible whoever answers.  False: it may
    # or may not be visible -- the drives that did not answer decide (module doc).
    certain: bool = True


def s3_version_id(rec: VersionRecord) -> str:
    """The version id as S3 shows it: ``null`` for the null version."""
    return "null" if rec.null else rec.vid


def write_quorum(k: int, m: int) -> int:
    return k + 1 if m > 0 else k


def visible_quorum(k: int, m: int) -> int:
    """Holders that make a version visible: ``k`` -- or ``m`` when there is
    more parity than data (a 3-way mirror, 1+2), because a DELETE that reached
    ``W`` drives leaves up to ``n - W = m - 1`` stale copies, which must stay
    invisible.  Never above ``W``: an acknowledged write is always visible."""
    return min(write_quorum(k, m), max(k, m))


def resolve_versions(
    per_drive: Sequence[Sequence[VersionRecord] | None], *, k: int, w: int,
    anchors: bool = False, doubtful: bool = False, m: int | None = None,
) -> list[Resolved]:
    """Visible versions, newest first.

    ``per_drive[i]`` is drive ``i``'s record list, or ``None`` if it did not
    answer.  ``k``/``w`` are the placement's read and write quorums; a version's
    own EC scheme (``record.ec``) overrides ``k``/``w`` for data versions.

    Rename anchors (``titans3/objects/rename.py``) are invisible to reads;
    ``anchors=True`` (repair, GC, inspection, which must keep their data)
    includes them, and also every version other versions reference even
    when a newer null version shadows it.

    ``doubtful``: also return the versions the drives that did not answer
    decide (``certain=False``, see the module doc); GET and HEAD answer 503
    for them.  ``m``: the placement's parity (what a delete marker's
    visibility takes, :func:`visible_quorum`); unknown, ``k`` is taken.
    """
    mt = _marker_quorum(k, w, m)
    if not any(isinstance(recs, Partial) for recs in per_drive):
        simple = _one_plain_version(per_drive, k, w, doubtful, mt)
        if simple is not None:
            return simple
    return _resolve_general(per_drive, k, w, anchors, doubtful, mt)


def _marker_quorum(k: int, w: int, m: int | None) -> int:
    return k if m is None else visible_quorum(k, m)


def _quorums(rec: VersionRecord, k: int, w: int, mt: int) -> tuple[int, int, int]:
    """(fragments to read, holders to be visible, holders to be acknowledged)."""
    if rec.dm:
        return k, mt, w
    ek, em, _ = rec.ec
    return ek, visible_quorum(ek, em), write_quorum(ek, em)


def shown(count: int, unseen: int, vt: int, vw: int, doubtful: bool) -> bool | None:
    """Whether a version held by ``count`` of the drives seen is returned:
    True (certain), False (doubtful, returned as uncertain) or None (ignored).
    ``vt``/``vw``: the holders that make it visible / acknowledged."""
    if count >= vt:
        return True
    if count + unseen >= (vt if doubtful else vw):
        return False
    return None


def _resolve_general(
    per_drive: Sequence[Sequence[VersionRecord] | None], k: int, w: int, anchors: bool,
    doubtful: bool = False, mt: int | None = None,
) -> list[Resolved]:
    mt = k if mt is None else mt
    unseen = sum(1 for recs in per_drive if recs is None or isinstance(recs, Partial))
    by_vid: dict[str, list[tuple[int, VersionRecord]]] = {}
    for pos, recs in enumerate(per_drive):
        for r in recs or ():
            if not r.tomb:
                by_vid.setdefault(r.vid, []).append((pos, r))
    out: list[Resolved] = []
    null_seen = False
    for vid in sorted(by_vid, reverse=True):
        every = by_vid[vid]
        holders = encoding_of(every)
        # Fields of a version can change after it was written (object tags): the
        # copy with the newest change stamp speaks for it (see objects/tagging.py).
        rec = max(holders, key=lambda h: h[1].extra.get("mu", ""))[1]
        vk, vt, vw = _quorums(rec, k, w, mt)
        count = len({pos for pos, _ in every})
        certain = shown(count, unseen, vt, vw, doubtful)
        if certain is None:
            continue  # held by fewer than k drives, whoever answers
        hidden = bool(rec.extra.get(HIDDEN))
        if hidden and not anchors:
            # A rename anchor: read through its references.  It still shadows
            # the null versions before it, as it did while it was visible.
            null_seen = null_seen or rec.null
            continue
        if anchors and (hidden or rec.extra.get(REFS)):
            null_seen = null_seen or rec.null
            out.append(Resolved(rec, count, tuple(pos for pos, _ in holders),
                                certain and len({r.frag_index for _, r in holders}) >= vk,
                                certain))
            continue
        if rec.null:
            if null_seen:
                continue  # shadowed by a newer null version
            null_seen = True
        readable = certain and (rec.dm or len({r.frag_index for _, r in holders}) >= vk)
        out.append(Resolved(rec, count, tuple(pos for pos, _ in holders), readable, certain))
    return out


def same_encoding(a: VersionRecord, b: VersionRecord) -> bool:
    """Fragments of ``a`` and ``b`` belong to one encoding of the version."""
    return a.ec == b.ec and a.data_ids() == b.data_ids()


def encoding_of(holders: list[tuple[int, VersionRecord]]) -> list[tuple[int, VersionRecord]]:
    """The holders of the encoding a version reads from: the newest (by the
    re-encode stamp) with enough distinct fragments, else the newest."""
    groups: list[list[tuple[int, VersionRecord]]] = []
    for h in holders:
        for g in groups:
            if same_encoding(g[0][1], h[1]):
                g.append(h)
                break
        else:
            groups.append([h])
    if len(groups) == 1:
        return holders
    groups.sort(key=lambda g: max(r.extra.get(TRANSITIONED, "") for _, r in g), reverse=True)
    for g in groups:
        rec = g[0][1]
        if rec.dm or len({r.frag_index for _, r in g}) >= rec.ec[0]:
            return g
    return groups[0]


def _one_plain_version(
    per_drive: Sequence[Sequence[VersionRecord] | None], k: int, w: int, doubtful: bool = False,
    mt: int | None = None,
) -> list[Resolved] | None:
    """The common case, decided without the general machinery: every drive
    that answered holds nothing or the same single version, with no change
    stamp and no rename state.  The result is exactly what the general rule
    gives for it; anything else returns None (take the general path).  A
    listing resolves every key of its page, so this is most of its CPU."""
    first: VersionRecord | None = None
    holders: list[int] = []
    frags: set[int] = set()
    unseen = 0
    for pos, recs in enumerate(per_drive):
        if recs is None:
            unseen += 1
            continue
        if not recs:
            continue
        if len(recs) != 1:
            return None
        r = recs[0]
        if first is None:
            x = r.extra
            if r.tomb or (x and ("mu" in x or HIDDEN in x or REFS in x)):
                return None
            first = r
        elif r.vid != first.vid or r.tomb or r.extra != first.extra or r.ec != first.ec \
                or r.data != first.data:
            return None
        holders.append(pos)
        frags.add(r.frag_index)
    if first is None:
        return []
    vk, vt, vw = _quorums(first, k, w, k if mt is None else mt)
    certain = shown(len(holders), unseen, vt, vw, doubtful)
    if certain is None:
        return []  # held by fewer than k drives, whoever answers
    return [Resolved(first, len(holders), tuple(holders),
                     certain and (first.dm or len(frags) >= vk), certain)]


_FI_KEY = b"\xa2fi"  # msgpack: the 2-byte string "fi"


def resolve_packed(
    per_drive: Sequence[bytes | None | Sequence[VersionRecord]], k: int, w: int,
    m: int | None = None,
) -> list[Resolved] | None:
    """``resolve_versions`` for the common case, from the drives' packed forms.

    ``per_drive[i]`` is drive ``i``'s packed version list (``bytes``), an empty
    list (answered, holds nothing) or None (did not answer).  When every
    packed list is one version with the same id, no tombstone and no fields
    beyond the known ones (no change stamp, rename state or tags), the answer
    is built decoding one copy; otherwise None (decode everything, take the
    general rule).  msgpack's C decoder is ~5x cheaper than building records,
    and a listing page would otherwise build one per key per drive."""
    first: dict[str, Any] | None = None
    first_raw = b""
    head = tail = b""  # first_raw around its frag-index byte (see below)
    at = -1
    holders: list[int] = []
    frags: set[int] = set()
    unseen = 0
    for pos, raw in enumerate(per_drive):
        if raw is None:
            unseen += 1
            continue
        if not isinstance(raw, bytes):
            if raw:
                return None  # decoded records: the general path
            continue
        if first is not None:
            # The drives' copies of one version differ only in the fragment
            # index.  When the first copy's "fi" key occurs once and its value
            # is a one-byte fixint, a copy equal to it byte for byte except
            # that value byte is the same record with another index: no decode.
            if raw == first_raw:
                holders.append(pos)
                frags.add(first.get("fi", 0))
                continue
            if at >= 0 and len(raw) == len(first_raw) and raw[at] < 0x80 and \
                    raw.startswith(head) and raw.endswith(tail):
                holders.append(pos)
                frags.add(raw[at])
                continue
        recs = msgpack.unpackb(raw, raw=False)
        if len(recs) != 1:
            return None
        d = recs[0]
        if "tomb" in d or d.keys() - KNOWN_FIELDS:
            return None
        if first is None:
            first, first_raw = d, raw
            i = raw.find(_FI_KEY)
            if "fi" in d and i >= 0 and raw.find(_FI_KEY, i + 1) < 0 and \
                    i + 3 < len(raw) and raw[i + 3] == d["fi"] and d["fi"] < 0x80:
                at, head, tail = i + 3, raw[: i + 3], raw[i + 4 :]
        elif d["vid"] != first["vid"] or d.get("data") != first.get("data") \
                or d.get("ec") != first.get("ec"):
            return None  # another version, or another encoding of it (objects/transition.py)
        holders.append(pos)
        frags.add(d.get("fi", 0))
    if first is None:
        return []
    rec = VersionRecord.from_dict(first)
    vk, vt, vw = _quorums(rec, k, w, _marker_quorum(k, w, m))
    certain = shown(len(holders), unseen, vt, vw, False)
    if certain is None:
        return []  # held by fewer than k drives, whoever answers
    return [Resolved(rec, len(holders), tuple(holders), certain and (rec.dm or len(frags) >= vk),
                     certain)]


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
