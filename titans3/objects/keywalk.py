"""Walk every key of a bucket across drives, with each drive's raw records.

Theory of operation
-------------------
The background workers (refill, GC) need what :mod:`titans3.objects.listing`
hides: every key any drive holds, *with each drive's own version records*,
including remnants that no reader would show.  Same k-way merge as listing:
each drive returns a page in binary key order after the cursor; merged keys are
complete only up to the smallest last key among drives whose page was full
(beyond it some drive has not spoken yet), and the next round resumes from
there.  A drive that fails mid-walk drops out; the caller sees which drives
answered for every key (``answered``), because "no record on a drive that
answered" and "a drive that did not answer" mean different things to the
quorum rule.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Sequence
from dataclasses import dataclass

import trio

from titans3.core.errors import DriveError
from titans3.drive.protocol import Drive, ListEntry
from titans3.drive.records import VersionRecord


@dataclass(frozen=True, slots=True)
class KeyRecords:
    key: bytes
    per_drive: dict[int, list[VersionRecord]]  # drive position -> its records (holders only)
    answered: frozenset[int]  # positions whose listing covered this key


async def walk_keys(
    drives: Sequence[Drive],
    bucket_id: bytes,
    *,
    start_after: bytes | None = None,
    skip: Collection[int] = (),
    page: int = 500,
) -> AsyncIterator[KeyRecords]:
    """Yield every key after ``start_after`` that some asked drive holds, in order."""
    n = len(drives)
    cursor = start_after
    skipped = set(skip)
    done = [i in skipped for i in range(n)]
    failed = [False] * n
    while not all(done[i] or failed[i] for i in range(n)):
        pages: list[list[ListEntry] | None] = [None] * n

        async def one(i: int, pages: list[list[ListEntry] | None], at: bytes | None) -> None:
            try:
                pages[i] = await drives[i].list_versions(bucket_id, start_after=at, limit=page)
            except DriveError:
                failed[i] = True

        async with trio.open_nursery() as nursery:
            for i in range(n):
                if not (done[i] or failed[i]):
                    nursery.start_soon(one, i, pages, cursor)
        cutoff: bytes | None = None
        for pg in pages:
            if pg is not None and len(pg) == page and (cutoff is None or pg[-1].key < cutoff):
                cutoff = pg[-1].key
        for i, pg in enumerate(pages):
            # A short page ends the drive's keys -- unless the cutoff hides part of
            # it: then it must be asked again from the next cursor.
            if pg is not None and len(pg) < page and (cutoff is None or not pg or pg[-1].key <= cutoff):
                done[i] = True
        # A drive that finished earlier has listed everything it holds: it answered.
        answered = frozenset(i for i in range(n) if i not in skipped and not failed[i])
        merged: dict[bytes, dict[int, list[VersionRecord]]] = {}
        for i, pg in enumerate(pages):
            for e in pg or ():
                if cutoff is not None and e.key > cutoff:
                    break
                if not e.is_prefix:
                    merged.setdefault(e.key, {})[i] = e.versions or []
        for key in sorted(merged):
            yield KeyRecords(key, merged[key], answered)
        if cutoff is None:
            return
        cursor = cutoff
