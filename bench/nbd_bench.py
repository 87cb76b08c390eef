#!/usr/bin/env python3
"""NBD benchmark: a TitanS3 volume against ``nbdkit file`` on a raw file, same disk, same run.

    .venv/bin/python bench/nbd_bench.py              # ~3 minutes
    .venv/bin/python bench/nbd_bench.py --quick      # ~1 minute (smaller image, shorter fio)
    .venv/bin/python bench/nbd_bench.py --json

It starts ``titans3 serve`` (6 directory drives: EC 4+2, the NBD gateway on a
free 127.0.0.1 port) and ``nbdkit file`` over a raw file in the same temporary
directory, creates a volume of ``--size``, and runs each row against TitanS3 and
then nbdkit (interleaved, so drift on a shared machine hits both alike):

=====================  =================================================================
row                    what
=====================  =================================================================
seq write MB/s         ``nbdcopy --flush`` of a random image (``--size``) into the export
seq read MB/s          ``nbdcopy`` of the export to ``null:``
4K randwrite IOPS      ``fio --ioengine=nbd --rw=randwrite --bs=4k --iodepth=16
                       --fsync=256`` (a FLUSH every 256 writes), ``--runtime``
4K randread IOPS       ``fio --ioengine=nbd --rw=randread --bs=4k --iodepth=16``
=====================  =================================================================

Between the write rows and the read row the bench waits until the volume
holds no written data in memory any more (the gateway folds what the random
writes left into extents; the time it took is printed) and ``sync``s the
raw file, so the read row measures reads and not the write rows' leftovers.

The ratio column is TitanS3 / nbdkit (goals: >= 0.5 sequential, >= 0.25 random).
TitanS3 keeps erasure coding (4+2, W=5) and its durability rule; nbdkit's file
plugin writes to the page cache and fsyncs on FLUSH.  The read cache of the
gateway is set with ``--cache-mb`` (default: the image fits, as the page cache
holds nbdkit's file); the table says what it was.  ``uptime`` load before and
after goes with the table.  Everything started is killed by process group and
the temporary directory removed, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = REPO / ".venv" / "bin"
AK, SK = "TITANSBENCHROOTKEY01", "titans3-bench-root-secret-key-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def load() -> str:
    return Path("/proc/loadavg").read_text().split(" ", 3)[:3].__str__()


class Procs:
    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, argv: list[str], log_path: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        out = open(log_path, "ab")  # noqa: SIM115 -- lives as long as the process
        p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                             env={**os.environ, **(env or {})})
        self.procs.append(p)
        return p

    def stop(self) -> None:
        for p in self.procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                p.wait()


def group_cpu(pgid: int) -> float:
    """CPU seconds (user + system, every thread) of the processes in group ``pgid``."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # fields after the name: state ppid pgrp ... utime stime
            total += int(fields[11]) + int(fields[12])
    return total / tick


def wait_port(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


def timed(argv: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


def fio(uri: str, rw: str, size: int, runtime: int, extra: list[str]) -> float:
    res = subprocess.run(
        ["fio", "--name=b", "--ioengine=nbd", f"--uri={uri}", f"--rw={rw}", "--bs=4k", "--iodepth=16",
         f"--size={size}", "--time_based", f"--runtime={runtime}", "--output-format=json", *extra],
        capture_output=True, text=True)
    if res.returncode:
        raise RuntimeError(f"fio {rw} on {uri} failed: {res.stdout[-2000:]} {res.stderr[-2000:]}")
    out = res.stdout
    job = json.loads(out[out.index("{"):])["jobs"][0]
    return float(job["write" if "write" in rw else "read"]["iops"])


def settle(titanctl: list[str], env: dict[str, str], volume: str, timeout: float = 600) -> float:
    """Seconds until the volume holds no written data in memory (folded into
    extents, or detached cleanly): the background work a write row leaves."""
    t = time.perf_counter()
    while time.perf_counter() - t < timeout:
        res = subprocess.run([*titanctl, "volume", "info", volume, "--json"], capture_output=True, text=True,
                             env={**os.environ, **env})
        if res.returncode == 0:
            doc = json.loads(res.stdout)
            st = doc.get("statistics") or {}
            if not doc.get("attached") or not (st.get("buffered_bytes") or st.get("pending_records")):
                return time.perf_counter() - t
        time.sleep(0.5)
    raise RuntimeError(f"volume {volume} still holds written data after {timeout:.0f} s")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", default=1 << 30, type=int, help="image and volume size in bytes (1 GiB)")
    ap.add_argument("--runtime", default=20, type=int, help="seconds per fio row")
    ap.add_argument("--cache-mb", default=0, type=int, help="gateway read cache (default: size + 25%%)")
    ap.add_argument("--quick", action="store_true", help="256 MiB image, 8 s fio rows")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--dir", default="", help="where the drives and the raw file go (default: a temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (logs) afterwards")
    ap.add_argument("--bin", default=str(BIN), help="the venv bin/ whose titans3 runs (A/B runs of another "
                    "worktree's code; default this checkout's)")
    args = ap.parse_args()
    bindir = Path(args.bin)
    if args.quick:
        args.size, args.runtime = 256 << 20, 8
    cache_mb = args.cache_mb or (args.size * 5 // 4) >> 20
    tmp = Path(tempfile.mkdtemp(prefix="nbdbench-", dir=args.dir or None))
    procs = Procs()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    rows: list[tuple[str, str, float, float]] = []
    folded = 0.0
    before = load()
    try:
        s3, peer, web, nbd, kit = (free_port() for _ in range(5))
        env = {"TITANS3_ROOT_ACCESS_KEY": AK, "TITANS3_ROOT_SECRET_KEY": SK}
        daemon = procs.start([str(bindir / "titans3"), "serve", "--data", str(tmp / "titans3"), "--drives", "6",
                     "--listen", f"127.0.0.1:{s3}", "--peer-listen", f"127.0.0.1:{peer}",
                     "--web-listen", f"127.0.0.1:{web}", "--nbd-listen", f"127.0.0.1:{nbd}"],
                    tmp / "titans3.log", {**env, "TITANS3_NBD_CACHE_MB": str(cache_mb)})
        raw = tmp / "raw.img"
        with open(raw, "wb") as f:
            f.truncate(args.size)
        kitproc = procs.start(["nbdkit", "-f", "-i", "127.0.0.1", "-p", str(kit), "file", str(raw)], tmp / "nbdkit.log")
        wait_port(s3)
        wait_port(nbd)
        wait_port(kit)
        titanctl = [str(bindir / "titanctl"), "--endpoint", f"http://127.0.0.1:{s3}"]
        subprocess.run([*titanctl, "volume", "create", "bench", "--size", str(args.size)], check=True,
                       env={**os.environ, **env}, stdout=subprocess.DEVNULL)
        src = tmp / "src.img"
        log(f"writing a {args.size >> 20} MiB random image")
        with open(src, "wb") as f:
            left = args.size
            while left:
                n = min(left, 16 << 20)
                f.write(os.urandom(n))
                left -= n
        servers = {"titans3": f"nbd://127.0.0.1:{nbd}/bench", "nbdkit": f"nbd://127.0.0.1:{kit}/"}
        mb = args.size / 1e6

        def row(name: str, unit: str, measure) -> None:  # type: ignore[no-untyped-def]
            got = {}
            for server, uri in servers.items():
                log(f"{name}: {server} ...")
                got[server] = measure(uri)
                log(f"{name}: {server} {got[server]:.0f} {unit}")
            rows.append((name, unit, got["titans3"], got["nbdkit"]))

        def seq_write(uri: str) -> float:
            """MB/s; also each server's CPU per GiB written, the daemon's until
            the volume holds nothing in memory (its background folding too)."""
            pgid = daemon.pid if uri == servers["titans3"] else kitproc.pid
            c0 = group_cpu(pgid)
            took = timed(["nbdcopy", "--flush", str(src), uri])
            if uri == servers["titans3"]:
                settle(titanctl, env, "bench")
            cpu_per_gib[uri] = (group_cpu(pgid) - c0) / (args.size / (1 << 30))
            return mb / took

        cpu_per_gib: dict[str, float] = {}
        row("seq write (nbdcopy --flush)", "MB/s", seq_write)
        rows.append(("seq write server CPU", "s/GiB", cpu_per_gib[servers["titans3"]],
                     cpu_per_gib[servers["nbdkit"]]))
        row("seq read (nbdcopy)", "MB/s", lambda u: mb / timed(["nbdcopy", u, "null:"]))
        row("4K randwrite QD16, FLUSH/256", "IOPS",
            lambda u: fio(u, "randwrite", args.size, args.runtime, ["--fsync=256"]))
        # The write rows leave work behind: TitanS3 folds what its memory holds
        # into extents, the kernel writes nbdkit's dirty pages back.  Both
        # finish before the read row, which measures reads, not that.
        log("waiting for the volume to fold what the random writes left in memory ...")
        folded = settle(titanctl, env, "bench")
        os.sync()
        log(f"folded in {folded:.1f} s")
        row("4K randread QD16", "IOPS", lambda u: fio(u, "randread", args.size, args.runtime, []))
    finally:
        procs.stop()
        if args.keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    after = load()
    if args.json:
        print(json.dumps({"rows": [dict(zip(("row", "unit", "titans3", "nbdkit"), r, strict=True)) for r in rows],
                          "load_before": before, "load_after": after, "cache_mb": cache_mb,
                          "fold_after_randwrite_s": round(folded, 1),
                          "size": args.size}, indent=2))
        return 0
    print("| row | TitanS3 | nbdkit file | ratio |\n|---|---:|---:|---:|")
    for name, unit, t, k in rows:
        fmt = ",.1f" if max(t, k) < 100 else ",.0f"
        print(f"| {name} ({unit}) | {t:{fmt}} | {k:{fmt}} | {t / k:.2f} |")
    print(f"\nimage {args.size >> 20} MiB, gateway cache {cache_mb} MiB, fio {args.runtime} s/row; "
          f"folding the random writes into extents took {folded:.1f} s after the writer left; "
          f"load before {before}, after {after}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
