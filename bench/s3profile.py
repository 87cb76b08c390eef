#!/usr/bin/env python3
"""Profile one s3bench row on a fresh TitanS3 host with py-spy.

    .venv/bin/python bench/s3profile.py --row small_get --concurrency 8
    .venv/bin/python bench/s3profile.py --row small_put --seconds 10 --out /tmp/put

Starts ``titans3 serve`` exactly as bench/s3bench.py does (6 directory drives,
127.0.0.1 ports, a temporary data directory), prepares the bucket, then runs
the row's load while ``py-spy record --gil`` samples the server process: only
the thread holding the GIL is sampled.  Without ``--gil`` a thread that the
kernel preempted inside ``send()`` (the client it just woke took the core)
counts as busy, and on a shared 2-core machine that was ~40 % of all samples
of a small GET -- time that is neither user nor system CPU.  Writes
``<out>.txt`` (collapsed stacks; ``flamegraph.pl`` or speedscope draw them) and prints the
functions with the most samples, inclusive and self, as a share of all samples.
Everything started is stopped by process group; the temporary directory is
removed.  Needs root (or ptrace rights) for py-spy to attach.
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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import s3bench  # noqa: E402
from s3clients import CLIENTS, KiB  # noqa: E402


def summarize(collapsed: Path, top: int) -> str:
    """Inclusive and self shares per function from py-spy's collapsed stacks."""
    incl: collections.Counter[str] = collections.Counter()
    selfc: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        total += n
        frames = [f.split(" (")[0] + " (" + f.split(" (")[1].split(":")[0] + ")"
                  if " (" in f else f for f in stack.split(";")]  # fmt: skip
        for f in set(frames):
            incl[f] += n
        selfc[frames[-1]] += n
    if not total:
        return "no samples"
    out = [f"{total} samples", "", "inclusive:"]
    out += [f"  {100 * n / total:5.1f}%  {f}" for f, n in incl.most_common(top)]
    out += ["", "self:"]
    out += [f"  {100 * n / total:5.1f}%  {f}" for f, n in selfc.most_common(top)]
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--row", choices=s3bench.ROWS, default="small_get")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    ap.add_argument("--small-size", type=int, default=4 * KiB)
    ap.add_argument("--large-size", type=int, default=64 << 20)
    ap.add_argument("--no-gil", dest="gil", action="store_false",
                    help="sample every running thread, not only the one holding the GIL")
    ap.add_argument("--top", type=int, default=40)
    ap.add_argument("--out", default="s3profile", help="output path prefix")
    opts = ap.parse_args()

    pyspy = s3bench.BIN / "py-spy"
    if not pyspy.exists():
        print("py-spy is not installed (pip install py-spy)", file=sys.stderr)
        return 2
    rnd = os.urandom(max(opts.small_size, opts.large_size if "large" in opts.row else 0))
    small = rnd[: opts.small_size]
    large = rnd if "large" in opts.row else small
    payloads = s3bench.Payloads(small, hashlib.sha256(small).hexdigest(),
                                large, hashlib.sha256(large).hexdigest())  # fmt: skip
    tmp = Path(tempfile.mkdtemp(prefix="titans3-s3profile-"))
    server = None
    try:
        access, secret = s3bench.new_credentials()
        server, url = s3bench.start_titans3(tmp, access, secret)
        s3bench.wait_ready(url, server, timeout=90)
        target = s3bench.Target("titans3", "TitanS3", url, access, secret, "s3bench")
        client_cls = CLIENTS["raw"]
        s3bench.prepare(target, payloads, client_cls, (opts.row,))
        unit = "ops/s" if opts.row.startswith("small") else "MB/s"
        phase = s3bench.Phase(opts.row, opts.row, opts.concurrency, unit)
        raw = Path(f"{opts.out}.txt")
        spy = subprocess.Popen(
            [str(pyspy), "record", "--pid", str(server.proc.pid), "--rate", str(opts.rate),
             "--duration", str(int(opts.seconds)), "--format", "raw",
             "--output", str(raw), "--nonblocking", *(["--gil"] if opts.gil else [])],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        result: dict[str, s3bench.Result] = {}
        th = threading.Thread(target=lambda: result.setdefault("r", s3bench.run_phase(
            phase, target, payloads, client_cls, opts.seconds, 10**9, [server.proc.pid])))
        th.start()
        th.join()
        _, err = spy.communicate(timeout=60)
        r = result["r"]
        s = r.summary(unit)
        print(f"{opts.row} c={opts.concurrency}: {s['value']:.1f} {unit}, server CPU "
              f"{1000 * (r.server_cpu or 0) / max(r.ops, 1):.2f} ms/op "
              f"({s['server_cpu_pct']}% of a core)")  # fmt: skip
        if raw.exists():
            print(summarize(raw, opts.top))
        else:
            print(f"py-spy wrote nothing: {err.decode(errors='replace')[-500:]}", file=sys.stderr)
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
