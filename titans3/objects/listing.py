"""Listing by merging the drives' sorted LMDB ranges (DESIGN §6).

Theory of operation
-------------------
Every drive returns, in binary key order, the keys it holds (with their
version records) after a cursor, with prefix and delimiter pushed down (a
common prefix comes back as one entry).  The gateway k-way merges the pages.
A merged entry is *complete* only up to the smallest last entry among drives
whose page was full: beyond that some drive has not spoken yet.  Entries up to
that cutoff are resolved with the same quorum rule as a HEAD
(:mod:`titans3.objects.resolve`), so a listing shows exactly the keys a GET
would find: acknowledged writes are never missed, remnants of failed writes
and keys whose newest version is a delete marker are not shown.

A common prefix sorts as the prefix itself; resuming *after* it uses
``prefix + b"\\xff"`` -- no UTF-8 key contains 0xFF, so that cursor is past
every key under the prefix.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Collection, Sequence
from dataclasses import dataclass

import trio

from titans3.core.errors import DriveError, QuorumError
from titans3.drive.protocol import Drive, ListEntry
from titans3.drive.records import VersionRecord, unpack_versions
from titans3.objects.resolve import Resolved, resolve_packed, resolve_versions, under_quorum

PAST = b"\xff"


@dataclass(frozen=True, slots=True)
class Listed:
    key: bytes
    is_prefix: bool
    versions: list[Resolved]  # empty for a prefix
    # Some version on the pages has fewer holders than its write quorum (a
    # remnant, or hinted and not replayed yet): resolve the key again with its
    # hints before trusting ``versions`` (objects/catalog.py, ``relist``).
    # A prefix of a ``live`` listing: fewer than W drives reported it.
    unsure: bool = False


def after(entry_key: bytes, is_prefix: bool) -> bytes:
    return entry_key + PAST if is_prefix else entry_key


async def merged_entries(
    drives: Sequence[Drive],
    bucket_id: bytes,
    placement_of: Callable[[bytes], list[int]],
    *,
    k: int,
    w: int,
    prefix: bytes,
    delimiter: bytes | None,
    start_after: bytes | None,
    page: int = 1000,
    min_answers: int = 1,
    skip: Collection[int] = (),
    m: int | None = None,
    live: bool = False,
) -> AsyncIterator[Listed]:
    """Yield merged, resolved entries in order (keys with no visible version
    are still yielded, with an empty ``versions``, so callers can count work).

    ``placement_of(key)`` gives the positions in ``drives`` that hold ``key``.
    Drives in ``skip`` are not asked and count as not answering.  ``m``: the
    placement's parity (a delete marker's visibility, objects/resolve.py).

    ``live``: the drives leave out keys whose newest record is dead on them,
    and prefixes with no live key below (drive/liveness.py) -- for listings
    of current objects.  A prefix that fewer than ``w`` drives reported
    comes ``unsure``: a current key below it would be live on at least ``w``
    (a stale drive, or drives down), so the caller checks it.  A key that
    drives holding a newer but invisible dead record (a delete cut short on
    fewer than ``k`` drives) left out resolves to no version here, and the
    caller relists it with a full lookup, which sees that record and ignores it.
    """
    cursor = start_after
    if delimiter and cursor and cursor.startswith(prefix) and cursor.endswith(delimiter):
        cursor = cursor + PAST  # resuming after a common prefix
    cursors: list[bytes | None] = [cursor] * len(drives)
    done = [False] * len(drives)
    failed = [i in skip for i in range(len(drives))]
    while not all(done[i] or failed[i] for i in range(len(drives))):
        pages: list[list[ListEntry] | None] = [None] * len(drives)

        async def one(i: int, pages: list[list[ListEntry] | None]) -> None:
            try:
                if live:
                    pages[i] = await drives[i].list_versions(
                        bucket_id, prefix=prefix, start_after=cursors[i], delimiter=delimiter,
                        limit=page, live=True)
                else:
                    pages[i] = await drives[i].list_versions(
                        bucket_id, prefix=prefix, start_after=cursors[i], delimiter=delimiter,
                        limit=page)
            except DriveError:
                failed[i] = True

        async with trio.open_nursery() as nursery:
            for i in range(len(drives)):
                if not (done[i] or failed[i]):
                    nursery.start_soon(one, i, pages)
        if sum(1 for f in failed if not f) < min_answers:
            raise QuorumError("too few drives answered the listing")

        cutoff: bytes | None = None
        for pg in pages:
            if pg is not None and len(pg) == page and pg:
                end = after(pg[-1].key, pg[-1].is_prefix)
                cutoff = end if cutoff is None or end < cutoff else cutoff
        for i, pg in enumerate(pages):
            # A short page ends the drive's listing -- unless the cutoff hides its
            # tail: then the drive is asked again from the next cursor.
            if pg is not None and len(pg) < page and (
                cutoff is None or not pg or after(pg[-1].key, pg[-1].is_prefix) <= cutoff
            ):
                done[i] = True
        # per key, per drive: the packed version list (LocalDrive) or the records
        merged: dict[bytes, dict[int, bytes | list[VersionRecord]]] = {}
        prefixes: dict[bytes, int] = {}  # prefix -> how many drives reported it
        for i, pg in enumerate(pages):
            for e in pg or ():
                key = e.key
                if e.is_prefix:
                    if cutoff is not None and key + PAST > cutoff:
                        break
                    prefixes[key] = prefixes.get(key, 0) + 1
                    continue
                if cutoff is not None and key > cutoff:
                    break
                v = e.packed if e.packed is not None else (e.versions or [])
                held = merged.get(key)
                if held is None:
                    merged[key] = {i: v}
                else:
                    held[i] = v
        # One placement lookup per key; positions that failed read as None.
        names = sorted(merged.keys() | prefixes) if prefixes else sorted(merged)
        for name in names:
            if name in prefixes:
                yield Listed(name, True, [], live and prefixes[name] < w)
                continue
            holders = merged[name]
            per_drive: list[bytes | list[VersionRecord] | None] = [
                None if failed[pos] else holders.get(pos, []) for pos in placement_of(name)
            ]
            resolved = resolve_packed(per_drive, k, w, m)
            if resolved is None:
                unpacked = [unpack_versions(x) if isinstance(x, bytes) else x for x in per_drive]
                resolved = resolve_versions(unpacked, k=k, w=w, m=m)
                unsure = under_quorum(unpacked, k=k, w=w)
            else:  # one version on every page: hidden only if it is on too few of them
                unsure = not resolved and any(isinstance(x, bytes) for x in per_drive)
            yield Listed(name, False, resolved, unsure)
        if cutoff is None:
            return
        for i in range(len(drives)):
            cursors[i] = cutoff
