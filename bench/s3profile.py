#!/usr/bin/env python3
"""Where a TitanS3 host spends its CPU under one S3 load: py-spy, summarised by layer.

    .venv/bin/python bench/s3profile.py                     # 4 KiB GET, c=1, 10 s
    .venv/bin/python bench/s3profile.py --op small_put --concurrency 8
    .venv/bin/python bench/s3profile.py --svg /tmp/get.svg  # also a flame graph

Starts ``titans3 serve`` (6 directory drives, as bench/s3bench.py does), writes
the objects the GET rows read, then drives one operation with the raw SigV4
client from bench/s3clients.py while ``py-spy record`` samples the server
(``--nonblocking``, so the server is not paused).  Every sample is attributed
to the innermost frame that belongs to a known layer -- hypercorn, h11, quart
and werkzeug, trio, socket syscalls, the S3 front, the object layer, drives,
erasure coding, logging -- and the table gives each layer's share of the busy
samples.  Idle samples are left out: py-spy does not record threads blocked
in a lock, and the event loop waiting in ``epoll_wait`` is dropped here.  The
folded stacks are kept (``--folded``) for a closer look; see bench/README.md
for what the numbers said.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from s3bench import (  # noqa: E402
    BIN,
    Payloads,
    Phase,
    Target,
    make_op,
    new_credentials,
    prepare,
    start_titans3,
    wait_ready,
)
from s3clients import KiB, RawClient  # noqa: E402

MiB = 1 << 20

# (layer, path fragments): the first layer whose fragment appears in a frame's file wins.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("waiting in epoll (idle)", ("/trio/_core/_io_epoll.py",)),
    ("socket send/recv (syscalls)", ("/trio/_socket.py",)),
    ("hypercorn", ("/hypercorn/",)),
    ("h11", ("/h11/",)),
    ("quart + werkzeug", ("/quart/", "/quart_trio/", "/werkzeug/", "/flask/", "/blinker/")),
    ("titans3.core.asgi / http11", ("/titans3/core/asgi.py", "/titans3/core/http11.py")),
    ("titans3.s3 (front)", ("/titans3/s3/",)),
    ("titans3.objects", ("/titans3/objects/",)),
    ("titans3.drive", ("/titans3/drive/",)),
    ("titans3.erasure", ("/titans3/erasure/",)),
    ("titans3 (other)", ("/titans3/",)),
    ("logging", ("/logging/",)),
    ("trio", ("/trio/", "/outcome/", "/sniffio/")),
    ("lmdb / hashing / codecs", ("lmdb", "hashlib", "blake3", "xxhash", "pyeclib")),
]


IDLE = LAYERS[0][0]


def layer_of(frame: str) -> str | None:
    """``frame`` is py-spy's ``function (path/file.py:line)``; paths are relative."""
    frame = "/" + frame.rpartition(" (")[2]
    for name, fragments in LAYERS:
        if any(f in frame for f in fragments):
            return name
    return None


def summarise(folded: Path) -> tuple[dict[str, int], int]:
    """Samples per layer (innermost known frame) and their total, from py-spy's raw
    output; samples of the loop waiting in ``epoll_wait`` are left out."""
    per: collections.Counter[str] = collections.Counter()
    total = 0
    for line in folded.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        if layer_of(frames[-1]) == IDLE:  # py-spy counts a thread inside epoll_wait as busy
            continue
        total += n
        for frame in reversed(frames):  # innermost first
            name = layer_of(frame)
            if name is not None:
                per[name] += n
                break
        else:
            per["other (stdlib, C)"] += n
    return dict(per), total


def drive_load(phase: Phase, t: Target, p: Payloads, seconds: float) -> tuple[int, float]:
    op = make_op(phase, t, p)
    stop = time.monotonic() + seconds
    counts = [0] * phase.concurrency

    def worker(tid: int) -> None:
        client = RawClient(t.endpoint, t.access_key, t.secret_key)
        sink = memoryview(bytearray(MiB))
        i = 0
        try:
            while time.monotonic() < stop:
                op(client, tid, i, sink)
                i += 1
        finally:
            client.close()
        counts[tid] = i

    start = time.monotonic()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(phase.concurrency)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return sum(counts), time.monotonic() - start


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--op", default="small_get",
                    choices=["small_get", "small_put", "large_get", "large_put"])  # fmt: skip
    ap.add_argument("--concurrency", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    ap.add_argument("--gil", action="store_true",
                    help="only samples holding the GIL: Python work, without syscalls and "
                         "time the loop was preempted (steadier on a shared machine)")
    ap.add_argument("--native", action="store_true",
                    help="also sample C frames (py-spy --native, which pauses the server per sample): "
                         "the cyclic GC, hashing, h11's regexes")
    ap.add_argument("--folded", type=Path, help="keep py-spy's folded stacks here")
    ap.add_argument("--bin", type=Path, default=BIN / "titans3",
                    help="the titans3 to profile (another checkout's .venv/bin/titans3: a baseline)")
    ap.add_argument("--svg", type=Path, help="also write a flame graph (second run of py-spy)")
    args = ap.parse_args(argv)
    pyspy = shutil.which("py-spy", path=str(BIN)) or shutil.which("py-spy")
    if pyspy is None:
        print("py-spy is missing: install the test extras (pip install -e '.[test]')", file=sys.stderr)
        return 2
    large = args.op.startswith("large")
    tmp = Path(tempfile.mkdtemp(prefix="titans3-s3profile-"))
    access, secret = new_credentials()
    server, endpoint = start_titans3(tmp, access, secret, binary=args.bin)
    try:
        wait_ready(endpoint, server, 60)
        small = os.urandom(4 * KiB)
        big = os.urandom(64 * MiB) if large else os.urandom(KiB)  # GET-row objects
        payloads = Payloads(small, hashlib.sha256(small).hexdigest(), big, hashlib.sha256(big).hexdigest())
        target = Target("titans3", "TitanS3", endpoint, access, secret, "s3profile")
        prepare(target, payloads, RawClient, rows=(args.op,))  # only this row's objects
        phase = Phase(args.op, args.op, args.concurrency, "ops/s")
        drive_load(phase, target, payloads, 1.0)  # warm-up
        folded = args.folded or tmp / "profile.folded"

        def profiled(fmt: str, output: Path) -> tuple[int, float]:
            spy = subprocess.Popen(
                [pyspy, "record", "--pid", str(server.proc.pid), "--rate", str(args.rate),
                 "--duration", str(int(args.seconds)), "--format", fmt,
                 *([] if args.native else ["--nonblocking"]),  # py-spy: native stacks need a pause
                 "--output", str(output), *(["--gil"] if args.gil else []),
                 *(["--native"] if args.native else [])],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            )  # fmt: skip
            time.sleep(0.5)  # let py-spy attach before the clock starts
            result = drive_load(phase, target, payloads, args.seconds)
            _, err = spy.communicate(timeout=60)
            if spy.returncode != 0:
                raise RuntimeError(f"py-spy failed: {err.decode(errors='replace')}")
            return result

        ops, took = profiled("raw", folded)
        per, total = summarise(folded)
        print(f"{args.op}, c={args.concurrency}: {ops / took:,.0f} ops/s over {took:.1f} s; "
              f"{total} busy samples at {args.rate}/s")  # fmt: skip
        print("| layer (innermost known frame) | share of busy samples |")
        print("|---|---:|")
        for name, n in sorted(per.items(), key=lambda kv: -kv[1]):
            print(f"| {name} | {100 * n / max(total, 1):.1f} % |")
        if args.svg:  # a second, identical round recorded as a flame graph
            profiled("flamegraph", args.svg)
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
