"""Whether a key is *live* on one drive: its newest visible record holds data.

Theory of operation
-------------------
Listings of current objects (S3 ListObjects, FUSE readdir) have no use for a
key whose newest record is a delete marker, or whose only records are
hidden rename anchors (``records.HIDDEN``: a file renamed away, or the old
version behind a metadata update).  The drive drops such keys -- and a
delimiter listing's common prefixes with no live key below them -- inside
its own scan (``list_versions(live=True)``, :func:`keys.walk_listing`), so
neither the wire nor the gateway ever sees them.

This is one drive's view.  The gateway still resolves every key it gets with
the quorum rule, so a stale drive that missed a delete only shows the key to
the merge, which hides it; and a key acknowledged at ``W`` is live on at
least ``W`` drives, so a prefix with a current key below it is reported by
at least ``W`` drives (``objects/listing.py`` checks prefixes reported by
fewer).  A live key is never dropped: dropping needs a newer dead record on
this drive.

The check runs in the drive's scan thread for every listed key, so the
common case reads no record: the packed list is searched for msgpack's
encoding of ``"dm": True`` and ``"hid": True`` (fixstr key, ``0xc3``), and
only a list containing one is decoded.  A false hit (those bytes inside some
other field) costs a decode, never a wrong answer.
"""

from __future__ import annotations

from collections.abc import Iterable

from titans3.drive.records import HIDDEN, VersionRecord, unpack_versions

_DM_TRUE = b"\xa2dm\xc3"
_HIDDEN_TRUE = b"\xa3" + HIDDEN.encode() + b"\xc3"
_EMPTY_ARRAY = 0x90


def packed_is_live(packed: bytes) -> bool:
    """:func:`records_are_live` of a packed version list (``records.pack_versions``)."""
    if _DM_TRUE not in packed and _HIDDEN_TRUE not in packed:
        return bool(packed) and packed[0] != _EMPTY_ARRAY
    return records_are_live(unpack_versions(packed))


def records_are_live(records: Iterable[VersionRecord]) -> bool:
    """The newest record (newest first) that is not a hidden anchor is data."""
    for r in records:
        if r.tomb or r.extra.get(HIDDEN):
            continue
        return not r.dm
    return False
