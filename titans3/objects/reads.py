"""GET and HEAD: resolving the version, then streaming its fragments.

Theory of operation
-------------------
A read resolves the key's versions from its placement drives
(:class:`~titans3.objects.lookup.Lookup`), picks the current or the named
version, maps the byte range (or part number) onto it and streams it: an
inline version decodes ``k`` fragments from the records' drives, a file
version goes through :func:`~titans3.objects.reader.read_stream` one batch of
segments at a time.  A renamed object's reference reads its anchor's
fragments (``objects/anchors.py``).  A read that needed parity or met a bad
fragment calls ``on_degraded`` (the heal queue) after it finished.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence

import trio

from titans3.core.errors import DriveError, InvalidRange, QuorumError
from titans3.core.sse import Decryptor, stored_size
from titans3.drive.protocol import Drive
from titans3.drive.records import MOVING, REF, VersionRecord
from titans3.erasure.stripe import resolve_range
from titans3.objects import handoff
from titans3.objects.anchors import Anchors
from titans3.objects.buckets import BucketRecord
from titans3.objects.context import StoreContext
from titans3.objects.lookup import DOUBTFUL, Lookup, delete_marker_error, object_info, pick
from titans3.objects.parts import part_span
from titans3.objects.reader import ReadStats, read_stream
from titans3.objects.resolve import Resolved, same_encoding, write_quorum
from titans3.objects.sse import SSE, Opened, decryptor, feed, finish
from titans3.objects.types import GetResult, ObjectInfo
from titans3.objects.validate import check_key

log = logging.getLogger("titans3.objects.store")


class Reads:
    def __init__(self, ctx: StoreContext, lookup: Lookup, anchors: Anchors) -> None:
        self.ctx = ctx
        self.lookup = lookup
        self.anchors = anchors
        self.degraded_reads = 0
        # Heal-on-read: called with (bucket_id, key, vid, bad drive ids) after a
        # read that needed parity or met a bad fragment (the repair worker's queue).
        self.on_degraded: Callable[[bytes, bytes, str, set[str]], None] | None = None
        # Called with (bucket record, key, vid) for a rename mark older than the
        # rename window (the store settles it in the background, objects/rename.py).
        self.on_marked: Callable[[BucketRecord, bytes, str], None] | None = None

    async def head_object(self, bucket: str, key: str, *, version_id: str | None = None,
                          customer_key: bytes | None = None) -> ObjectInfo:
        """``customer_key``: the SSE-C key, checked as GET checks it (objects/sse.py)."""
        brec = await self.ctx.buckets.get(bucket)
        kb = check_key(key)
        _, per, resolved = await self.lookup.resolve(brec, kb, doubtful=True)
        r, latest = pick(resolved, version_id)
        if not r.certain:
            raise QuorumError(DOUBTFUL)
        self._complete_later(brec, kb, r, per)
        if r.record.dm:
            raise delete_marker_error(r.record, key, version_id, "HEAD")
        doc = r.record.extra.get(SSE)
        if (doc and doc["m"] == "C") or (customer_key is not None and REF not in r.record.extra):
            await self.ctx.keys.check(brec.bucket_id, kb, r.record, customer_key)
        self._settle_later(brec, kb, r.record)
        return object_info(bucket, key, r, latest)

    def _complete_later(self, brec: BucketRecord, key: bytes, r: Resolved,
                        per: Sequence[object]) -> None:
        """A version visible on fewer than its write quorum of drives (a PUT or
        DELETE cut short after ``k`` commits, objects/resolve.py) goes to the heal
        queue: this read showed it, so it must stay visible when one more of its
        drives is away -- repair copies it to the drives that lack it."""
        rec = r.record
        sch = self.ctx.scheme_for(brec)
        w = write_quorum(rec.ec[0], rec.ec[1]) if not rec.dm else write_quorum(sch.k, sch.m)
        answered = sum(1 for recs in per if recs is not None)
        if r.count < min(w, answered) and self.on_degraded is not None:
            self.on_degraded(brec.bucket_id, key, rec.vid, set())

    def _settle_later(self, brec: BucketRecord, key: bytes, rec: VersionRecord) -> None:
        """A read that meets a rename mark older than the rename window settles
        it in the background (objects/rename.py: "whoever next touches it")."""
        mv = rec.extra.get(MOVING)
        if mv is not None and self.on_marked is not None and \
                (time.time_ns() - int(mv[2])) / 1e9 >= self.anchors.window:
            self.on_marked(brec, key, rec.vid)

    async def get_object(
        self,
        bucket: str,
        key: str,
        *,
        version_id: str | None = None,
        byte_range: tuple[int | None, int | None] | None = None,
        part_number: int | None = None,
        customer_key: bytes | None = None,
    ) -> GetResult:
        """``part_number``: serve that part (``objects/parts.py``) instead of a range;
        ``customer_key``: the SSE-C key of an SSE-C version (objects/sse.py)."""
        brec = await self.ctx.buckets.get(bucket)
        kb = check_key(key)
        positions, per, resolved = await self.lookup.resolve(brec, kb, doubtful=True)
        r, latest = pick(resolved, version_id)
        if not r.certain:
            raise QuorumError(DOUBTFUL)
        self._complete_later(brec, kb, r, per)
        rec = r.record
        if rec.dm:
            raise delete_marker_error(rec, key, version_id, "GET")
        if not r.readable:
            raise QuorumError("too few fragments of this version are reachable")
        info = object_info(bucket, key, r, latest)
        if part_number is not None:
            span = part_span(rec.size, [p.size for p in rec.parts], part_number)
            byte_range = span if rec.size and rec.parts else None  # one piece: the whole object
        if byte_range is None:
            first, last, partial = 0, rec.size - 1, False
        else:
            rng = resolve_range(byte_range[0], byte_range[1], rec.size)
            if rng is None:
                raise InvalidRange(RangeRequested=_range_text(byte_range),
                                   ActualObjectSize=str(rec.size))
            first, last, partial = rng[0], rng[1], True
        self._settle_later(brec, kb, rec)
        holders: dict[int, Drive] = {}
        data_key = kb
        if REF in rec.extra:  # a renamed object: the bytes are its anchor's (objects/rename.py)
            rec, holders, data_key = await self.anchors.anchor_holders(brec, kb, rec)
        for j, recs in enumerate(per if data_key is kb else ()):
            for x in recs or ():
                if x.vid == rec.vid and not x.tomb and same_encoding(x, rec):
                    holders.setdefault(x.frag_index,
                                       handoff.holder(self.ctx, self.ctx.drives[positions[j]], x))
        opened = await self.ctx.keys.check(brec.bucket_id, data_key, rec, customer_key)
        body = self._read_version(rec, holders, first, last, brec.bucket_id, data_key, opened)
        return GetResult(info=info, body=body, first=first, last=last, partial=partial)

    async def _read_version(
        self, rec: VersionRecord, holders: dict[int, Drive], first: int, last: int,
        bucket_id: bytes = b"", key: bytes = b"", opened: Opened | None = None,
    ) -> AsyncIterator[bytes]:
        k, m, _ = rec.ec
        codec = self.ctx.codec(k, m)
        stats = ReadStats()
        if rec.inline:
            frags: dict[int, bytes] = {}
            candidates = sorted(holders)
            while len(frags) < k and candidates:
                batch, candidates = candidates[: k - len(frags)], candidates[k - len(frags) :]

                async def one(idx: int) -> None:
                    try:
                        frags[idx] = await holders[idx].read_fragment(rec.data or "", 0, 1 << 62)
                    except DriveError as e:
                        _bad(stats, holders[idx], idx, e)

                waits = []
                for idx in batch:
                    nowait = getattr(holders[idx], "read_inline_nowait", None)
                    blob = None
                    if nowait is not None:
                        try:
                            blob = nowait(rec.data or "", 0, 1 << 62)
                        except DriveError as e:
                            _bad(stats, holders[idx], idx, e)
                            continue
                    if blob is not None:
                        frags[idx] = blob
                    else:
                        waits.append(idx)
                if waits:
                    async with trio.open_nursery() as nursery:
                        for idx in waits:
                            nursery.start_soon(one, idx)
                else:
                    await trio.lowlevel.checkpoint()
            if len(frags) < k:
                raise QuorumError("too few inline fragments readable")
            if opened is not None:  # the inline bytes are the whole sealed stream
                stored = bytes(codec.decode(frags))[: stored_size(rec.size)]
                dec = Decryptor(opened.stream_key(rec.extra[SSE]["s"]), rec.size)
                data = await feed(dec, stored)
                finish(dec)
            else:
                data = codec.decode(frags) if rec.size else b""
            yield data[first : last + 1]
        else:
            streams = [(rec.data or "", rec.size)] if not rec.parts else [
                (p.data_id, p.size) for p in rec.parts
            ]
            salts = _salts(rec)
            base = 0
            for n, (data_id, size) in enumerate(streams):
                lo, hi = max(first, base), min(last, base + size - 1)
                if lo <= hi and opened is not None:
                    dec, a, b = decryptor(opened, salts[n], size, lo - base, hi - base)
                    layout = self.ctx.layout(rec.ec, stored_size(size))
                    async for chunk in read_stream(holders, data_id, layout, codec, a, b,
                                                   stats=stats):
                        out = await feed(dec, chunk)
                        if out:
                            yield out
                    finish(dec)
                elif lo <= hi:
                    layout = self.ctx.layout(rec.ec, size)
                    async for chunk in read_stream(holders, data_id, layout, codec, lo - base,
                                                   hi - base, stats=stats):
                        yield chunk
                base += size
                if base > last:
                    break
        if stats.degraded:
            self.degraded_reads += 1
            if self.on_degraded is not None:
                self.on_degraded(bucket_id, key, rec.vid, stats.bad_drives or set())

    # ----------------------------------------------------------- deletes


def _bad(stats: ReadStats, drive: Drive, idx: int, e: DriveError) -> None:
    """An unreadable inline fragment: the read is degraded, the drive named
    for heal-on-read (as read_stream does for fragment files)."""
    stats.degraded = True
    stats.bad_drives = (stats.bad_drives or set()) | {drive.drive_id}
    log.warning("inline fragment %d unreadable: %s", idx, e)


def _salts(rec: VersionRecord) -> list[str]:
    doc = rec.extra.get(SSE)
    if doc is None:
        return []
    return list(doc["ps"]) if rec.parts else [doc["s"]]


def _range_text(r: tuple[int | None, int | None]) -> str:
    a, b = r
    return f"bytes={'' if a is None else a}-{'' if b is None else b}"
