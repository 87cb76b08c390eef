#!/usr/bin/env python3
"""Erasure-coding speed with and without tune_malloc() -- the evidence for the tuning.

What it runs
------------
For each scheme (default 4+2 and 8+4, 1 MiB segments, ISA-L via
``titans3.erasure.Codec``) and each operation, two fresh subprocesses: one with
glibc's default allocator settings (MALLOC_* / GLIBC_TUNABLES removed from the
environment) and one that calls ``tune_malloc()`` first.  A fresh process per
case matters: glibc's default thresholds adapt to allocation history, so one
process running all cases would measure whatever the previous case left behind.

Every iteration works on *fresh* buffers, as the data path does: the input
(a segment, or the fragments a GET reads from drives) is copied into new bytes
objects, and pyeclib allocates the outputs.  Inputs are prepared by the parent
and handed over as one file, so preparing them leaves no holes in the child's
heap that would hide the effect.

Reported per case: GB/s of segment data for the whole iteration (materialise
the input + codec call), GB/s of the codec call alone, and minor page faults
per segment (the mechanism: ~1000 faults = 4 MiB of first-touch pages).

    .venv/bin/python bench/ec_speed.py                  # ~1 minute
    .venv/bin/python bench/ec_speed.py --seconds 1 --json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SEGMENT = 1 << 20
SEGMENTS = 16  # distinct segments cycled through (16 MiB of data)

OPS = {
    "encode": "encode",
    "decode_degraded": "decode, m data frags lost",
    "decode_healthy": "decode, all data frags",
    "reconstruct_1": "rebuild 1 fragment",
}


# ------------------------------------------------------------------------ child
def child(k: int, m: int, op: str, blob_path: str, seconds: float, tuned: bool) -> dict:
    applied = None
    if tuned:
        from titans3.core.alloc import tune_malloc

        applied = tune_malloc()  # first thing, as the daemon does
    from titans3.erasure.codec import Codec, ECScheme

    codec = Codec(ECScheme(k, m, SEGMENT))
    n = k + m
    frag = codec.fragment_size(SEGMENT)
    with open(blob_path, "rb") as f:
        blob = f.read()  # one allocation: segments, then every fragment of each
    frag_base = SEGMENTS * SEGMENT

    def fragment(s: int, i: int) -> bytes:
        off = frag_base + (s * n + i) * frag
        return blob[off : off + frag]  # a fresh copy, like a read from a drive

    if op == "encode":
        wanted: list[int] = []
    elif op == "decode_degraded":
        wanted = list(range(m, n))
    elif op == "decode_healthy":
        wanted = list(range(k))
    else:
        wanted = list(range(1, k + 1))

    def one(s: int) -> float:
        if op == "encode":
            segment = blob[s * SEGMENT : (s + 1) * SEGMENT]
            t = time.perf_counter()
            codec.encode(segment)
        else:
            frags = {i: fragment(s, i) for i in wanted}
            t = time.perf_counter()
            if op == "reconstruct_1":
                codec.reconstruct(frags, [0])
            else:
                codec.decode(frags)
        return time.perf_counter() - t

    for s in range(8):
        one(s)
    faults0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    codec_time = 0.0
    done = 0
    start = time.perf_counter()
    while True:
        codec_time += one(done % SEGMENTS)
        done += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            break
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults0
    return {
        "scheme": f"{k}+{m}",
        "op": op,
        "tuned": tuned,
        "tune_malloc_applied": applied,
        "segments": done,
        "gbps_total": done * SEGMENT / elapsed / 1e9,
        "gbps_codec": done * SEGMENT / codec_time / 1e9,
        "faults_per_segment": faults / done,
    }


# ----------------------------------------------------------------------- parent
def prepare(k: int, m: int, path: Path) -> None:
    from titans3.erasure.codec import Codec, ECScheme

    codec = Codec(ECScheme(k, m, SEGMENT))
    segments = [os.urandom(SEGMENT) for _ in range(SEGMENTS)]
    with open(path, "wb") as f:
        for s in segments:
            f.write(s)
        for s in segments:
            for fragment in codec.encode(s):
                f.write(fragment)


def run_child(k: int, m: int, op: str, blob: Path, seconds: float, tuned: bool) -> dict:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("MALLOC_") and key != "GLIBC_TUNABLES"
    }
    repo = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = repo + os.pathsep + env.get("PYTHONPATH", "")
    args = [sys.executable, __file__, "--child", f"{k}+{m}", op, str(blob), "--seconds"]
    args += [str(seconds)] + (["--tuned"] if tuned else [])
    out = subprocess.run(args, check=True, capture_output=True, text=True, env=env, timeout=600)
    return json.loads(out.stdout)


def table(results: list[dict], schemes: list[str]) -> str:
    by = {(r["scheme"], r["op"], r["tuned"]): r for r in results}
    lines = [
        "| scheme | operation | default GB/s | tuned GB/s | ratio "
        "| codec-only default | codec-only tuned | faults/seg default -> tuned |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for scheme in schemes:
        for op, text in OPS.items():
            a, b = by[(scheme, op, False)], by[(scheme, op, True)]
            lines.append(
                f"| {scheme} | {text} | {a['gbps_total']:.2f} | {b['gbps_total']:.2f} "
                f"| **{b['gbps_total'] / a['gbps_total']:.1f}x** "
                f"| {a['gbps_codec']:.2f} | {b['gbps_codec']:.2f} "
                f"| {a['faults_per_segment']:.0f} -> {b['faults_per_segment']:.0f} |"
            )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schemes", default="4+2,8+4", help="comma-separated k+m list")
    parser.add_argument("--seconds", type=float, default=2.0, help="timed seconds per case")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--child", nargs=3, metavar=("K+M", "OP", "BLOB"), help=argparse.SUPPRESS)
    parser.add_argument("--tuned", action="store_true", help=argparse.SUPPRESS)
    opts = parser.parse_args()

    if opts.child:
        scheme, op, blob = opts.child
        k, m = (int(x) for x in scheme.split("+"))
        print(json.dumps(child(k, m, op, blob, opts.seconds, opts.tuned)))
        return 0

    schemes = opts.schemes.split(",")
    results = []
    with tempfile.TemporaryDirectory(prefix="titans3-ec-speed-") as tmp:
        for scheme in schemes:
            k, m = (int(x) for x in scheme.split("+"))
            blob = Path(tmp) / f"{k}+{m}.bin"
            prepare(k, m, blob)
            for op in OPS:
                for tuned in (False, True):
                    r = run_child(k, m, op, blob, opts.seconds, tuned)
                    results.append(r)
                    print(
                        f"# {scheme} {op:16} {'tuned  ' if tuned else 'default'} "
                        f"{r['gbps_total']:6.2f} GB/s  ({r['faults_per_segment']:.0f} faults/seg)",
                        file=sys.stderr,
                        flush=True,
                    )
    if opts.json:
        print(json.dumps({"segment_size": SEGMENT, "results": results}, indent=2))
        return 0
    print(
        "\nISA-L (isa_l_rs_cauchy) through titans3.erasure.Codec, 1 MiB segments, fresh "
        "buffers, one core.\nGB/s of segment data per iteration (fresh input + codec call); "
        "ratio = tuned / default.\n"
    )
    print(table(results, schemes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
