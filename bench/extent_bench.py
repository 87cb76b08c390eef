#!/usr/bin/env python3
"""The object layer's extent write alone: ``put_extent`` of 4 MiB buffers on 6 LocalDrives, no NBD.

    .venv/bin/python bench/extent_bench.py                 # 512 MiB, 8 extents in flight
    .venv/bin/python bench/extent_bench.py --mib 1024 --inflight 16
    cd ../other-checkout && ../this/.venv/bin/python ../this/bench/extent_bench.py --here   # A/B

Builds an ``ObjectStore`` over six ``LocalDrive`` directories (EC 4+2, sync
on, as ``titans3 serve --drives 6``) in a temporary directory, creates a
versioned system bucket as the NBD gateway does, and writes ``--mib`` of
distinct extents (one random 4 MiB buffer, new keys) with ``--inflight`` at a
time.  Prints MB/s and this process's CPU per GiB written (user, system:
every thread), which is what ``nbd_bench.py``'s sequential write row pays
in the object layer.  ``--here`` imports ``titans3`` from the current
directory instead of this script's checkout (to run another tree's code).
Numbers on a shared machine: compare interleaved runs of one session.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path


def cpu() -> tuple[float, float]:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime, r.ru_stime


async def run(root: Path, mib: int, inflight: int, extent: int) -> str:
    import trio

    from titans3.drive.local import LocalDrive
    from titans3.erasure.codec import ECScheme
    from titans3.objects.store import ObjectStore
    from titans3.ring.builder import Member, build_ring

    drives = [LocalDrive(root / f"drive-{i}", create=True) for i in range(6)]
    for d in drives:
        await d.open()
    ring = build_ring([Member(d.drive_id, "h") for d in drives], 6)
    store = ObjectStore(drives, ring, ECScheme(4, 2))
    data = os.urandom(extent)
    n = (mib << 20) // extent
    async with trio.open_nursery() as nursery:
        await nursery.start(store.run)
        await store.create_system_bucket("_titans3-bench")
        await store.put_bucket_versioning("_titans3-bench", "Enabled")
        limiter = trio.CapacityLimiter(inflight)

        async def one(i: int) -> None:
            async with limiter:
                await store.put_extent("_titans3-bench", f"v/b/e/{i:012x}", memoryview(data))

        (u0, s0), t0 = cpu(), time.perf_counter()
        async with trio.open_nursery() as writers:
            for i in range(n):
                writers.start_soon(one, i)
        took, (u1, s1) = time.perf_counter() - t0, cpu()
        nursery.cancel_scope.cancel()
    for d in drives:
        await d.close()
    gib = n * extent / (1 << 30)
    return (f"{n * extent >> 20} MiB in {took:.2f} s = {n * extent / took / 1e6:.0f} MB/s; CPU per GiB: "
            f"user {(u1 - u0) / gib:.2f} s, system {(s1 - s0) / gib:.2f} s, total {(u1 - u0 + s1 - s0) / gib:.2f} s")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mib", type=int, default=512, help="MiB to write (default 512)")
    ap.add_argument("--inflight", type=int, default=8, help="extents in flight (the gateway's 8)")
    ap.add_argument("--extent-mib", type=int, default=4, help="extent size in MiB (default 4)")
    ap.add_argument("--here", action="store_true", help="import titans3 from the current directory")
    ap.add_argument("--dir", default="", help="where the drives go (default: a temp dir)")
    args = ap.parse_args()
    sys.path.insert(0, os.getcwd() if args.here else str(Path(__file__).resolve().parents[1]))
    import trio

    from titans3.core.alloc import tune_malloc

    tune_malloc()  # as the daemon does
    root = Path(tempfile.mkdtemp(prefix="extbench-", dir=args.dir or None))
    try:
        print(trio.run(run, root, args.mib, args.inflight, args.extent_mib << 20))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
