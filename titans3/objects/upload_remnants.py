"""Upload remnants: the rows of multipart uploads that ended on some drives only.

Theory of operation
-------------------
An upload is rows in two meta tables of its placement drives (``mpu``: the
upload, ``mpp``: its parts; :mod:`titans3.objects.multipart`).  Abort and
Complete remove the part rows, then the upload rows, on every drive that
answers; a drive away at that moment keeps its rows.  Part rows name their
part's data, and GC counts every part row as a reference
(``Maintenance.referenced_data``), so rows left behind keep their data on the
disk for ever.  GC removes them here -- rows only: the data they named becomes
an orphan, which GC's orphan sweep takes after the commit window unless a
version record names it (a Complete's version owns its parts' data).

* :func:`drop_upload_remnant` -- an upload record on fewer than ``W``
  placement drives while every one of them answers: no listing shows it and no
  call reaches it.
* :func:`drop_part_remnants` -- part rows of an upload no drive holds any
  more (a drive that missed the Create got a part, and was away at the end).

Both refuse to judge while a drive they must ask is silent: "not held" cannot
be told from "not asked".
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection
from typing import TYPE_CHECKING

import msgpack

from titans3.core.errors import DriveError
from titans3.drive.keys import BUCKET_ID_LEN
from titans3.drive.protocol import Drive, DriveState
from titans3.objects.multipart import PART_KEY_BYTES, PARTS, UPLOAD_ID_BYTES, UPLOADS
from titans3.objects.resolve import write_quorum

if TYPE_CHECKING:
    from titans3.objects.buckets import BucketRecord
    from titans3.objects.context import StoreContext

log = logging.getLogger(__name__)


async def drop_upload_remnant(ctx: StoreContext, brec: BucketRecord, kb: bytes,
                              upload_id: str) -> int:
    """Remove an upload that is a *remnant*: its record is on fewer than ``W``
    placement drives although every one of them answered -- a drive that
    missed the Abort or Complete, or a Create that never reached quorum.  No
    listing shows it and no call can reach it, but its part records still
    name their data, so without this the data would never be an orphan.
    Only the rows go (part records, then the upload record, on the drives
    holding them); the data they named is then unreferenced and the orphan
    sweep takes it after the commit window -- unless a version record names
    it (the upload was completed), which the orphan sweep respects.
    Returns 1 if the remnant was removed, else 0 (not a remnant, or a drive
    could not be asked: "not held" cannot be told from "not asked")."""
    positions = ctx.placement(brec.bucket_id, kb)
    ukey = brec.bucket_id + bytes.fromhex(upload_id)  # as multipart keys an upload
    held: list[int] = []
    for pos in positions:
        d = ctx.drives[pos]
        if d.state != DriveState.ONLINE:
            return 0
        try:
            raw = await d.get_meta(UPLOADS, ukey)
        except DriveError:
            return 0
        if raw is not None and msgpack.unpackb(raw, raw=False).get("key") == kb:
            held.append(pos)
    sch = ctx.scheme_for(brec)
    if not held or len(held) >= write_quorum(sch.k, sch.m):
        return 0
    prefix = bytes.fromhex(upload_id)
    for pos in held:
        d = ctx.drives[pos]
        rows: list[bytes] = []
        start: bytes | None = None
        while True:
            page = await d.list_meta(PARTS, prefix=prefix, start_after=start, limit=1000)
            rows.extend(k for k, _ in page if len(k) == PART_KEY_BYTES)  # not a substitute's rows
            if len(page) < 1000:
                break
            start = page[-1][0]
        for k in rows:
            await d.put_meta(PARTS, k, None)
        await d.put_meta(UPLOADS, ukey, None)
    log.info("upload %s of %r: remnant on %d of %d drives removed", upload_id, kb,
             len(held), len(positions))
    return 1


async def drop_part_remnants(ctx: StoreContext, window: float, positions: Collection[int]) -> int:
    """Drop part records older than ``window`` seconds, on the drives at
    ``positions``, whose upload no drive of the store holds any more;
    returns how many.

    The upload-remnant rule removes a drive's rows only where it holds the
    upload record; a part record on a drive that never got it (its Create
    write failed) outlives every upload row.  Safe: an upload no
    drive holds cannot be completed, and data a Complete put in a version is
    that version's (the orphan sweep honours version records).  The part
    rows are read *before* the upload rows, and only rows older than the
    window count, so an upload created meanwhile cannot be missed.  Every
    drive must answer: "not held" cannot be told from "not asked"."""
    drives = list(ctx.drives)
    if any(d.state != DriveState.ONLINE for d in drives):
        return 0
    cutoff = time.time_ns() - int(window * 1e9)
    try:
        old: list[tuple[int, bytes, bytes]] = []  # position, part key, upload id
        for p in positions:
            for k, raw in await _rows(drives[p], PARTS):
                doc = msgpack.unpackb(raw, raw=False)
                if isinstance(doc, dict) and doc.get("t", 0) <= cutoff:
                    old.append((p, k, k[:UPLOAD_ID_BYTES]))
        if not old:
            return 0
        live: set[bytes] = set()  # bucket id | upload id [| /h<j> of a substitute]
        for d in drives:
            live.update(k[BUCKET_ID_LEN:BUCKET_ID_LEN + UPLOAD_ID_BYTES]
                        for k, _ in await _rows(d, UPLOADS))
    except DriveError as e:
        log.info("gc: part remnants not judged: %s", e)
        return 0
    removed = 0
    for p, k, upload_id in old:
        if upload_id not in live:
            await drives[p].put_meta(PARTS, k, None)
            removed += 1
    if removed:
        log.info("gc: removed %d part records of uploads no drive holds", removed)
    return removed


async def _rows(d: Drive, table: str) -> list[tuple[bytes, bytes]]:
    """Every row of one of ``d``'s meta tables (DriveError if it cannot list)."""
    out: list[tuple[bytes, bytes]] = []
    start: bytes | None = None
    while True:
        page = await d.list_meta(table, start_after=start, limit=1000)
        out.extend(page)
        if len(page) < 1000:
            return out
        start = page[-1][0]
