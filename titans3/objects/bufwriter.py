"""Erasure-coded write of one body that is already whole in memory (a block front's extent).

Theory of operation
-------------------
:func:`~titans3.objects.writer.write_stream` is built for bodies that arrive
over a socket: segment by segment, each one copied into a segment buffer,
every step (open the fragment files, each segment's fragments, finish) one
phase over the drives and one worker-thread call per drive.  For a 4 MiB
extent of the NBD gateway that was six thread hops and six phases per drive,
and the hops -- trio's thread plumbing, GIL hand-offs, futex wake-ups -- cost
more CPU than the coding and the disk writes together (bench/README.md,
``nbd_bench.py``).

A body that is all here needs none of that.  :func:`write_buffer` encodes
every segment straight from the caller's buffer (no segment copy), then
stages each drive's whole fragment in ONE call (``write_fragment``: create,
frame, write, header, ``fdatasync``, close in one worker thread) and waits
for the drives in ONE phase.  What a fragment file holds, when it is durable
and what the caller gets back are exactly ``write_stream``'s: nothing is
visible until the caller commits records that promote the staged data, a
drive that fails or is cut off as a straggler (``objects/stragglers.py``) is
dropped while ``W`` remain, and on any error every staged fragment is
removed (a cut-off drive's once its call returns).

A drive without ``write_fragment`` (a handoff or a remote drive) gets its
fragment through its ordinary streaming writer, all parts in one go, in the
same phase.  Bodies small enough to be stored inline, and bodies over
``WHOLE_MAX`` (all their fragments would be in memory at once: 1.5x the body
under 4+2), go through ``write_stream`` unchanged.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from functools import partial

import trio

from titans3.core.errors import DriveError, DriveFull, QuorumError, StorageFull
from titans3.drive.protocol import Drive, FragmentWriter
from titans3.erasure.codec import Codec, ECScheme
from titans3.objects.stragglers import Cutoff, Phases
from titans3.objects.writer import Written, new_data_id, write_stream

log = logging.getLogger(__name__)

WHOLE_MAX = 64 << 20  # the largest extent a volume may have (nbd/catalog.py); 4 MiB by default


class WholeBody:
    """A request body that is one buffer already in memory.  It still iterates
    like any body (one chunk), so every path that takes a stream takes it."""

    __slots__ = ("data", "_given")

    def __init__(self, data: bytes | bytearray | memoryview) -> None:
        self.data = data
        self._given = False

    def __aiter__(self) -> WholeBody:
        return self

    async def __anext__(self) -> bytes:
        if self._given:
            raise StopAsyncIteration
        self._given = True
        return self.data  # type: ignore[return-value] -- the writer takes any buffer


async def write_buffer(
    data: bytes | bytearray | memoryview,
    drives: Sequence[Drive | None],
    scheme: ECScheme,
    codec: Codec,
    *,
    write_quorum: int,
    inline_max: int,
    hash_md5: bool = True,
    phases: Phases | None = None,
) -> Written:
    """Stage ``data`` on ``drives`` (position = fragment); ``write_stream``'s
    contract (errors, quorum, cleanup) for a body given whole."""
    mv = memoryview(data).cast("B")
    total = len(mv)
    small = total < scheme.segment_size and inline_max >= 0 and (
        total == 0 or codec.fragment_size(total) <= inline_max)
    if small or total > WHOLE_MAX:
        return await write_stream(WholeBody(mv), drives, scheme, codec, write_quorum=write_quorum,
                                  inline_max=inline_max, expected_size=total, hash_md5=hash_md5,
                                  phases=phases)
    phases = phases or Phases(None, Cutoff(0))
    alive = [d is not None for d in drives]
    full = [False] * len(drives)
    if sum(alive) < write_quorum:
        raise QuorumError()
    data_id = new_data_id()
    # pyeclib holds the GIL whatever thread runs it (docs/stack-notes.md), so
    # the loop encodes: ~0.15 ms per 1 MiB segment, less than one thread hop.
    per: list[list[bytes]] = [[] for _ in drives]
    seg = scheme.segment_size
    for off in range(0, total, seg):
        for i, f in enumerate(codec.encode(mv[off : off + seg])):
            per[i].append(f)
    md5 = hashlib.md5()

    writers: dict[int, FragmentWriter] = {}  # drives without write_fragment

    async def one(i: int, d: Drive) -> bool:
        try:
            whole = getattr(d, "write_fragment", None)
            if whole is not None:
                await whole(data_id, i, per[i])
            else:
                w = writers[i] = await d.create_fragment(data_id, i)
                for part in per[i]:
                    await w.write(part)
                await w.finish()
        except DriveError as e:
            log.warning("fragment %d of %s lost: %s", i, data_id, e)
            alive[i] = False
            full[i] = isinstance(e, DriveFull)
            w = writers.get(i)  # a failed write_fragment removed its file itself
            if w is not None:
                await w.abort()
            return False
        return True

    async def discard(i: int) -> None:
        """Remove what position ``i`` staged (nothing committed it)."""
        w = writers.get(i)
        if w is not None:
            await w.abort()  # safe after finish, and twice
        elif callable(getattr(drives[i], "write_fragment", None)):
            await drives[i].delete_data([data_id])  # type: ignore[union-attr]
        else:
            await trio.lowlevel.checkpoint()

    async def hash_it() -> None:
        await trio.to_thread.run_sync(md5.update, mv)

    jobs = {i: partial(one, i, d) for i, d in enumerate(drives) if d is not None}
    try:
        async with trio.open_nursery() as nursery:
            if hash_md5:
                nursery.start_soon(hash_it)
            cut = await phases.gather(jobs, write_quorum)
        for i in cut:  # what a straggler staged goes once its call returns
            alive[i] = False
            await phases.after(i, partial(discard, i))
        if sum(alive) < write_quorum:
            if sum(alive) + sum(full) >= write_quorum:
                raise StorageFull()
            raise QuorumError()
    except BaseException:
        with trio.CancelScope(shield=True):
            for i in jobs:
                await phases.after(i, partial(discard, i))
        raise
    return Written(data_id, total, md5.digest(), [i for i, a in enumerate(alive) if a])

