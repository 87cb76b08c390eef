#!/usr/bin/env python3
"""The object layer alone: small PUT/GET/LIST on 6 LocalDrives, no HTTP.

    .venv/bin/python bench/objbench.py                    # put, get, list at c=1,8,32
    .venv/bin/python bench/objbench.py --ops put --concurrency 8 --seconds 3
    .venv/bin/python bench/objbench.py --list-keys 10000  # LIST pages of a 10,000-key bucket

Builds an ``ObjectStore`` over six ``LocalDrive`` directories (EC 4+2, sync
on, as ``titans3 serve --drives 6``) in a temporary directory and runs trio
tasks against it in this process.  Reports ops/s, CPU per operation of this
process (all threads) and, for PUT, how many requests each durable index
commit carried (group commit).  What s3bench.py measures minus this is the
HTTP front's share.  Numbers on a shared machine: compare runs of one session.
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
from titans3.erasure.codec import ECScheme  # noqa: E402
from titans3.objects.store import ObjectStore  # noqa: E402
from titans3.ring.builder import Member, build_ring  # noqa: E402


async def one_body(data: bytes):
    yield data


def cpu() -> float:
    t = os.times()
    return t.user + t.system


async def run(opts: argparse.Namespace, root: Path) -> list[str]:
    drives = [LocalDrive(root / f"drive-{i}", create=True) for i in range(6)]
    for d in drives:
        await d.open()
    ring = build_ring([Member(d.drive_id, "h") for d in drives], 6)
    store = ObjectStore(drives, ring, ECScheme(4, 2))
    out = []
    data = os.urandom(opts.size)
    async with trio.open_nursery() as nursery:
        await nursery.start(store.run)
        await store.create_bucket("bench")
        for i in range(64):
            await store.put_object("bench", f"get/{i}", one_body(data), size=len(data))

        async def measure(name: str, c: int, op) -> None:
            counter = [0]
            deadline = trio.current_time() + opts.seconds
            before = [d.statistics() for d in drives]

            async def worker(tid: int) -> None:
                i = 0
                while trio.current_time() < deadline:
                    await op(tid, i)
                    i += 1
                    counter[0] += 1

            c0, t0 = cpu(), time.perf_counter()
            async with trio.open_nursery() as n:
                for tid in range(c):
                    n.start_soon(worker, tid)
            secs, used = time.perf_counter() - t0, cpu() - c0
            n_ops = counter[0]
            after = [d.statistics() for d in drives]
            commits = sum(a.commits - b.commits for a, b in zip(after, before, strict=True))
            batches = sum(a.commit_batches - b.commit_batches
                          for a, b in zip(after, before, strict=True))  # fmt: skip
            batch = f"{commits / batches:.1f}" if batches else "—"
            out.append(f"| {name} | {c} | {n_ops / secs:,.0f} | {1000 * used / max(n_ops, 1):.2f} "
                       f"| {batch} |")  # fmt: skip

        for c in opts.concurrency:
            if "put" in opts.ops:
                async def put(tid: int, i: int, c: int = c) -> None:
                    await store.put_object("bench", f"put/{c}/{tid}/{i}", one_body(data),
                                           size=len(data))  # fmt: skip
                await measure(f"{opts.size // 1024} KiB PUT", c, put)
            if "get" in opts.ops:
                async def get(tid: int, i: int) -> None:
                    res = await store.get_object("bench", f"get/{(tid * 7 + i) % 64}")
                    got = b"".join([x async for x in res.body])
                    assert got == data
                await measure(f"{opts.size // 1024} KiB GET", c, get)
        if "list" in opts.ops:
            have = await store.list_objects("bench", prefix="list/", max_keys=1)
            if not have.objects:
                sem = trio.Semaphore(32)

                async def fill(i: int) -> None:
                    async with sem:
                        await store.put_object("bench", f"list/{i:08d}", one_body(b"x"), size=1)
                t0 = time.perf_counter()
                async with trio.open_nursery() as n:
                    for i in range(opts.list_keys):
                        n.start_soon(fill, i)
                print(f"filled {opts.list_keys} keys in {time.perf_counter() - t0:.1f} s",
                      file=sys.stderr)
            for c in opts.concurrency:
                async def page(tid: int, i: int) -> None:
                    n_pages = max(1, opts.list_keys // 1000)
                    start = (tid * 3 + i) % n_pages
                    res = await store.list_objects(
                        "bench", prefix="list/", max_keys=1000,
                        start_after=f"list/{start * 1000 - 1:08d}" if start else "")
                    assert len(res.objects) == min(1000, opts.list_keys), len(res.objects)
                await measure("LIST 1,000-key page", c, page)
        nursery.cancel_scope.cancel()
    for d in drives:
        await d.close()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ops", default="put,get,list")
    ap.add_argument("--concurrency", default="1,8,32")
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--list-keys", type=int, default=10_000)
    ap.add_argument("--tmpdir")
    opts = ap.parse_args()
    opts.ops = set(opts.ops.split(","))
    opts.concurrency = [int(x) for x in opts.concurrency.split(",")]
    tune_malloc()
    root = Path(tempfile.mkdtemp(prefix="titans3-objbench-", dir=opts.tmpdir))
    try:
        rows = trio.run(run, opts, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print("| op | c | ops/s | CPU ms/op | requests per commit |")
    print("|---|---:|---:|---:|---:|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
