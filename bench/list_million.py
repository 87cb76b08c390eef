#!/usr/bin/env python3
"""LIST pages of a bucket with a million keys: the object layer on 6 LocalDrives.

    .venv/bin/python bench/list_million.py                  # 1,000,000 keys (fill: minutes)
    .venv/bin/python bench/list_million.py --keys 20000     # the short form
    .venv/bin/python bench/list_million.py --data /var/tmp/m --keep   # reuse a filled set

Fills a bucket with ``--keys`` one-byte objects, then lists 1,000-key pages at
the start, the middle and the end of the key space (concurrency 1 and 8) and
walks ``--walk`` consecutive pages, printing pages/s and CPU ms per page.

The fill does what a PUT does on each drive -- the inline fragment staged,
then ``commit_version`` with the same record ``put_object`` writes -- but
skips the PUT coordination, so that a million keys take minutes, not an hour
(group commit batches the thousands of concurrent commits per drive).  A few
keys are read back through ``ObjectStore`` before measuring, so a fill that
wrote something a PUT would not is caught.  The listing itself is the
production code path (``ObjectStore.list_objects``).  bench/README.md has the
measured table; compare runs of one session.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from titans3.core.alloc import tune_malloc  # noqa: E402
from titans3.drive.local import LocalDrive  # noqa: E402
from titans3.drive.records import VersionRecord  # noqa: E402
from titans3.erasure.codec import ECScheme  # noqa: E402
from titans3.objects.store import ObjectStore  # noqa: E402
from titans3.objects.writer import new_data_id  # noqa: E402
from titans3.ring.builder import Member, build_ring  # noqa: E402

BUCKET = "million"
PAGE = 1000


def cpu() -> float:
    t = os.times()
    return t.user + t.system


def key_of(i: int) -> str:
    return f"k/{i:09d}"


async def fill(store: ObjectStore, drives: list[LocalDrive], n: int, inflight: int) -> None:
    brec = await store.context.buckets.get(BUCKET)
    sch = store.context.scheme_for(brec)
    codec = store.context.codec(sch.k, sch.m)
    frags = [bytes(f) for f in codec.encode(b"x")]
    etag = "9dd4e461268c8034f5c8564e155c67a6"  # md5 of b"x"
    done = [0]
    t0 = time.monotonic()

    async def one(i: int) -> None:
        kb = key_of(i).encode()
        data_id = new_data_id()
        vid = store.context.clock.new_id()
        now = time.time_ns()
        positions = store.context.placement(brec.bucket_id, kb)

        async def on(j: int, pos: int) -> None:
            rec = VersionRecord(vid=vid, mtime_ns=now, null=True, size=1, etag=etag,
                                ec=(sch.k, sch.m, sch.segment_size), frag_index=j,
                                data=data_id, inline=True)  # fmt: skip
            await drives[pos].put_inline(data_id, frags[j])
            await drives[pos].commit_version(brec.bucket_id, kb, rec, promote=[data_id])

        async with trio.open_nursery() as n2:
            for j, pos in enumerate(positions):
                n2.start_soon(on, j, pos)
        done[0] += 1

    async def progress() -> None:
        while True:
            await trio.sleep(5)
            rate = done[0] / max(time.monotonic() - t0, 1e-9)
            print(f"  filled {done[0]:,}/{n:,} keys ({rate:,.0f}/s, "
                  f"~{(n - done[0]) / max(rate, 1):.0f} s left)", file=sys.stderr)  # fmt: skip

    sem = trio.Semaphore(inflight)

    async def bounded(i: int) -> None:
        try:
            await one(i)
        finally:
            sem.release()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(progress)
        async with trio.open_nursery() as workers:
            for i in range(n):
                await sem.acquire()
                workers.start_soon(bounded, i)
        nursery.cancel_scope.cancel()
    print(f"filled {n:,} keys in {time.monotonic() - t0:.0f} s", file=sys.stderr)


async def run(opts: argparse.Namespace, root: Path) -> list[str]:
    drives = [LocalDrive(root / f"drive-{i}", create=True) for i in range(6)]
    for d in drives:
        await d.open()
    ring = build_ring([Member(f"slot-{i}", "h") for i in range(6)], 6)
    store = ObjectStore(drives, ring, ECScheme(4, 2), slots=[f"slot-{i}" for i in range(6)])
    rows: list[str] = []
    n = opts.keys
    async with trio.open_nursery() as nursery:
        await nursery.start(store.run)
        marker = root / "filled"
        if not (marker.exists() and int(marker.read_text()) == n):
            await store.create_bucket(BUCKET)
            await fill(store, drives, n, opts.inflight)
            marker.write_text(str(n))
        for i in (0, n // 2, n - 1):  # read back through the object layer
            res = await store.get_object(BUCKET, key_of(i))
            assert b"".join([x async for x in res.body]) == b"x", key_of(i)

        async def page_at(start: int) -> None:
            res = await store.list_objects(
                BUCKET, prefix="k/", max_keys=PAGE,
                start_after=key_of(start - 1) if start else "")  # fmt: skip
            want = min(PAGE, n - start)
            assert len(res.objects) == want, (start, len(res.objects))

        for where, start in (("start", 0), ("middle", n // 2), ("end", max(0, n - PAGE))):
            for c in (1, 8):
                reps = 3 * c
                c0, t0 = cpu(), time.perf_counter()
                async with trio.open_nursery() as ns:
                    for _ in range(reps):
                        ns.start_soon(page_at, start)
                secs, used = time.perf_counter() - t0, cpu() - c0
                rows.append(f"| page at the {where}, c={c} | {reps / secs:,.1f} | "
                            f"{1000 * used / reps:.1f} |")  # fmt: skip
        pages = min(opts.walk, max(1, n // PAGE))
        c0, t0 = cpu(), time.perf_counter()
        got = 0
        after = ""
        for _ in range(pages):
            res = await store.list_objects(BUCKET, prefix="k/", max_keys=PAGE, start_after=after)
            got += len(res.objects)
            if not res.is_truncated:
                break
            after = res.next_start_after or ""
        secs, used = time.perf_counter() - t0, cpu() - c0
        rows.append(f"| walk of {pages} consecutive pages ({got:,} keys) | {pages / secs:,.1f} | "
                    f"{1000 * used / pages:.1f} |")  # fmt: skip
        nursery.cancel_scope.cancel()
    for d in drives:
        await d.close()
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keys", type=int, default=1_000_000)
    ap.add_argument("--walk", type=int, default=50, help="consecutive pages walked")
    ap.add_argument("--inflight", type=int, default=2000, help="keys being filled at once")
    ap.add_argument("--data", help="data directory (default: a temporary one, removed)")
    ap.add_argument("--keep", action="store_true", help="keep --data for the next run")
    opts = ap.parse_args()
    tune_malloc()
    root = Path(opts.data) if opts.data else Path(tempfile.mkdtemp(prefix="titans3-million-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        rows = trio.run(run, opts, root)
    finally:
        if not (opts.data and opts.keep):
            shutil.rmtree(root, ignore_errors=True)
    print(f"\nLIST of a {opts.keys:,}-key bucket, object layer, 6 drives (EC 4+2):\n")
    print("| what | pages/s | CPU ms/page |")
    print("|---|---:|---:|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
