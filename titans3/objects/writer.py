"""Streaming erasure-coded write of one data stream (an object or a part).

Theory of operation
-------------------
The body is cut into fixed segments (``scheme.segment_size``); each segment is
erasure-coded into ``n`` fragments and fragment ``i`` is appended to drive
``i``'s staging file.  Nothing is visible until the caller commits version
records that *promote* the staged data (two-phase, DESIGN §4), so a client
that disconnects, a drive that dies, or a daemon that is killed mid-stream
leaves only staging garbage.

Memory stays bounded by two segments (one being received while the previous
one is written) plus the drives' write buffers, whatever the object size; the
host bounds the sum over concurrent streams (``objects/admission.py``).  A stream whose every fragment fits ``inline_max`` is kept in
memory instead and later stored inside the drives' LMDB records (one
transaction, no files).

A drive that fails mid-stream is dropped; the stream goes on while at least
``W`` drives still take fragments, so one slow or dying disk costs durability
margin, not availability.  A drive that is merely *slow* is dropped the same
way once ``W`` others finished a step and a bounded cutoff passed
(``objects/stragglers.py``): its call goes on in the background and its
writer is aborted when that call returns.  MD5 (the S3 ETag) runs in a worker thread beside the
fragment writes: hashlib releases the GIL, and MD5 is the single-stream ceiling.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import secrets
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from functools import partial

import trio

from titans3.core.errors import DriveError, DriveFull, IncompleteBody, QuorumError, StorageFull
from titans3.drive.protocol import Drive, FragmentWriter
from titans3.erasure.codec import Codec, ECScheme
from titans3.objects.stragglers import Cutoff, Phases

log = logging.getLogger(__name__)


# Consecutive data ids share their first four hex digits -- the fragment
# file's chunks/xx/yy directory (drive/chunks.py) -- for DIR_RUN ids, then move
# on to the next directory.  Fully random ids put nearly every new fragment
# into a directory that does not exist yet on a young drive (65,536 of them):
# two mkdirs and two more directory fsyncs per fragment, ~a quarter of a 4 MiB
# extent write's system time.  Over a drive's life the spread is the same.
# The other 112 bits stay random: ids are unique without coordination.
DIR_RUN = 256
_ids = itertools.count()
_first_dir = secrets.randbits(16)


def new_data_id() -> str:
    n = next(_ids)  # atomic under the GIL: safe from any thread
    return f"{(_first_dir + n // DIR_RUN) & 0xFFFF:04x}{secrets.token_hex(14)}"


@dataclass(slots=True)
class Written:
    data_id: str
    size: int
    md5: bytes
    ok: list[int]  # fragment positions whose drive holds a complete staged fragment
    inline: list[bytes] | None = None  # per-position fragment bytes when stored inline
    extra_hashes: dict[str, object] = field(default_factory=dict)


async def write_stream(
    body: AsyncIterator[bytes | memoryview],
    drives: Sequence[Drive | None],
    scheme: ECScheme,
    codec: Codec,
    *,
    write_quorum: int,
    inline_max: int,
    expected_size: int | None = None,
    on_data: Callable[[memoryview], None] | None = None,
    hash_md5: bool = True,
    phases: Phases | None = None,
) -> Written:
    """Consume ``body`` and stage its fragments on ``drives`` (position = fragment).

    ``on_data`` sees every body byte (checksums beyond MD5).  Raises
    ``QuorumError`` when fewer than ``write_quorum`` drives can take the data,
    ``IncompleteBody`` when ``expected_size`` does not match.  On any error all
    staged fragments are removed.  ``hash_md5`` False: the caller hashes
    (an encrypted stream's ETag is of the plaintext, ``objects/sse.py``).
    ``phases``: runs each step on the drives (``objects/stragglers.py``); by
    default every step waits for every drive.
    """
    phases = phases or Phases(None, Cutoff(0))
    seg_size = scheme.segment_size
    data_id = new_data_id()
    md5 = hashlib.md5()
    # A body known to be smaller than a segment gets a buffer of its size: two
    # zeroed 1 MiB segments cost ~170 us, more than the rest of a 4 KiB PUT's
    # data path.  The spare (double buffering) only exists once a full segment
    # has been cut.
    seg = bytearray(seg_size if expected_size is None else min(seg_size, expected_size))
    fill = 0
    total = 0
    writers: list[FragmentWriter | None] | None = None
    alive = [d is not None for d in drives]
    full = [False] * len(drives)  # dropped because the drive had no room

    def live_count() -> int:
        return sum(alive)

    def lost(i: int, e: DriveError) -> None:
        alive[i] = False
        full[i] = isinstance(e, DriveFull)

    def short() -> Exception:
        """The error for a stream that fell below its quorum: 507 when full drives made
        the difference (they are there, they have no room), else 503."""
        if live_count() + sum(full) >= write_quorum:
            return StorageFull()
        return QuorumError()

    if live_count() < write_quorum:
        raise QuorumError()

    async def open_writers() -> list[FragmentWriter | None]:
        out: list[FragmentWriter | None] = [None] * len(drives)

        async def one(i: int, d: Drive) -> bool:
            try:
                out[i] = await d.create_fragment(data_id, i)
            except DriveError as e:
                log.warning("stage %s on %s failed: %s", data_id, d.drive_id, e)
                lost(i, e)
                return False
            return True

        cut = await phases.gather({i: partial(one, i, d) for i, d in enumerate(drives)
                                   if d is not None}, write_quorum)
        for i in cut:  # a writer it opens late is aborted once it exists
            alive[i] = False
            await phases.after(i, partial(_abort_late, out, i))
        if live_count() < write_quorum:
            await _abort(out, phases)
            raise short()
        return out

    async def flush_segment(view: memoryview) -> None:
        assert writers is not None
        fragments = codec.encode(view)

        async def hash_it() -> None:
            await trio.to_thread.run_sync(md5.update, view)

        async def put(i: int, w: FragmentWriter) -> bool:
            try:
                await w.write(fragments[i])
            except DriveError as e:
                log.warning("fragment %d of %s lost: %s", i, data_id, e)
                lost(i, e)
                writers[i] = None
                await w.abort()
                return False
            return True

        async with trio.open_nursery() as nursery:
            if hash_md5:
                nursery.start_soon(hash_it)
            cut = await phases.gather({i: partial(put, i, w) for i, w in enumerate(writers)
                                       if w is not None and alive[i]}, write_quorum)
        await drop(cut)
        if live_count() < write_quorum:
            raise short()

    # One segment's flush runs in the background while the next one is being
    # received: the socket is read while the drives write (double buffering).
    # At most one flush is in flight, so MD5 sees the segments in order and a
    # buffer is refilled only after the flush that used it finished.
    async def drop(cut: list[int]) -> None:
        """Go on without the stragglers; abort their writers once their calls return."""
        assert writers is not None
        for i in cut:
            w = writers[i]
            alive[i] = False
            writers[i] = None
            if w is not None:
                await phases.after(i, w.abort)

    spare: bytearray | None = None
    in_flight: trio.Event | None = None
    flush_error: list[BaseException] = []

    async def settle() -> None:
        """Wait for the segment in flight; raise what its flush raised."""
        nonlocal in_flight
        if in_flight is not None:
            await in_flight.wait()
            in_flight = None
        if flush_error:
            raise flush_error[0]

    async def flush_in_background(view: memoryview, done: trio.Event) -> None:
        try:
            await flush_segment(view)
        except trio.Cancelled:
            raise
        except BaseException as e:  # noqa: BLE001 -- re-raised by settle() in the writer's task
            flush_error.append(e)
        finally:
            done.set()

    try:
        async with trio.open_nursery() as nursery:
            async for chunk in body:
                mv = memoryview(chunk).cast("B")
                if on_data is not None and len(mv):
                    on_data(mv)
                total += len(mv)
                if expected_size is not None and total > expected_size:
                    raise IncompleteBody("The request body is longer than its declared size.")
                while len(mv):
                    # a short ``seg`` never overflows: a body longer than its
                    # declared size was refused above
                    take = min(len(mv), len(seg) - fill)
                    seg[fill : fill + take] = mv[:take]
                    fill += take
                    mv = mv[take:]
                    if fill == seg_size:
                        if writers is None:
                            writers = await open_writers()
                        await settle()
                        in_flight = trio.Event()
                        nursery.start_soon(flush_in_background, memoryview(seg), in_flight)
                        if spare is None:
                            spare = bytearray(seg_size)
                        seg, spare = spare, seg
                        fill = 0
                if flush_error:  # fail fast: stop reading a body no quorum will take
                    await settle()
            await settle()
        if expected_size is not None and total != expected_size:
            raise IncompleteBody()
        tail = memoryview(seg)[:fill]
        if writers is None and inline_max >= 0 and (
            total == 0 or codec.fragment_size(total) <= inline_max
        ):
            if hash_md5:
                md5.update(tail)
            frags = [bytes(f) for f in codec.encode(tail)] if total else [b""] * len(drives)
            ok = [i for i, a in enumerate(alive) if a]
            return Written(data_id, total, md5.digest(), ok, inline=frags)
        if writers is None:
            writers = await open_writers()
        if fill:
            await flush_segment(tail)

        async def finish(i: int, w: FragmentWriter) -> bool:
            try:
                await w.finish()
            except DriveError as e:
                log.warning("finish fragment %d of %s failed: %s", i, data_id, e)
                lost(i, e)
                writers[i] = None  # type: ignore[index]
                await w.abort()
                return False
            return True

        await drop(await phases.gather({i: partial(finish, i, w) for i, w in enumerate(writers)
                                        if w is not None and alive[i]}, write_quorum))
        if live_count() < write_quorum:
            raise short()
        ok = [i for i, a in enumerate(alive) if a and writers[i] is not None]
        return Written(data_id, total, md5.digest(), ok)
    except BaseException as e:
        if writers is not None:
            with trio.CancelScope(shield=True):
                await _abort(writers, phases)
        inner = _unwrap(e)
        if inner is e:
            raise
        raise inner from None


def _unwrap(e: BaseException) -> BaseException:
    """The one error inside a nursery's group (the write path raises typed errors)."""
    while isinstance(e, BaseExceptionGroup) and len(e.exceptions) == 1:
        e = e.exceptions[0]
    return e


async def _abort(writers: Sequence[FragmentWriter | None], phases: Phases) -> None:
    """Abort every writer; one whose call is still running (a straggler) once it returns."""
    async def one(i: int, w: FragmentWriter) -> None:
        try:
            await phases.after(i, w.abort)
        except Exception as e:  # noqa: BLE001 -- best effort: staging GC catches leftovers
            log.debug("abort failed: %s", e)

    async with trio.open_nursery() as nursery:
        for i, w in enumerate(writers):
            if w is not None:
                nursery.start_soon(one, i, w)


async def _abort_late(out: Sequence[FragmentWriter | None], i: int) -> None:
    """Abort the writer a cut-off ``create_fragment`` opened after all (if it did)."""
    w = out[i]
    if w is not None:
        await w.abort()
