#!/usr/bin/env python3
"""Do the daemon's start-up tunings help?  Measured end to end through S3.

Runs the same TitanS3 host four times -- glibc malloc thresholds default/tuned
(``TITANS3_MALLOC_TUNING``) x hypercorn socket read 64 KiB/1 MiB
(``TITANS3_HTTP_RECV_BYTES``) -- and for each does large PUTs and GETs with
the same raw SigV4 client, reporting MB/s and the daemon's CPU seconds per GiB
moved (lower is better; CPU is the honest measure on a shared 2-core box).

    .venv/bin/python bench/startup_tuning.py [--size-mib 256] [--rounds 3]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from s3bench import BIN, Server, free_port, group_cpu_seconds, log, new_credentials, wait_ready
from s3clients import RawClient

VARIANTS = [
    ("default malloc, 64 KiB recv", "0", 64 << 10),
    ("tuned malloc, 64 KiB recv", "1", 64 << 10),
    ("default malloc, 1 MiB recv", "0", 1 << 20),
    ("tuned malloc, 1 MiB recv (shipped)", "1", 1 << 20),
]


def run_variant(name: str, malloc: str, recv: int, size: int, rounds: int, tmp: Path) -> dict:
    access, secret = new_credentials()
    port = free_port()
    env = dict(
        os.environ,
        TITANS3_ROOT_ACCESS_KEY=access,
        TITANS3_ROOT_SECRET_KEY=secret,
        TITANS3_MALLOC_TUNING=malloc,
        TITANS3_HTTP_RECV_BYTES=str(recv),
    )
    for var in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"):
        env.pop(var, None)
    data_dir = tmp / name.replace(" ", "_").replace(",", "")
    argv = [
        str(BIN / "titans3"), "serve", "--data", str(data_dir), "--drives", "6",
        "--listen", f"127.0.0.1:{port}", "--peer-listen", f"127.0.0.1:{free_port()}",
        "--web-listen", f"127.0.0.1:{free_port()}",
    ]  # fmt: skip
    server = Server("titans3", argv, env, tmp / "daemon.log")
    try:
        endpoint = f"http://127.0.0.1:{port}"
        wait_ready(endpoint, server, 30)
        client = RawClient(endpoint, access, secret)
        client.create_bucket("tune")
        body = os.urandom(size)
        sha = hashlib.sha256(body).hexdigest()
        sink = memoryview(bytearray(size))
        out = {"variant": name}
        for op in ("PUT", "GET"):
            cpu0, t0 = group_cpu_seconds(server.proc.pid), time.monotonic()
            for r in range(rounds):
                if op == "PUT":
                    client.put("tune", f"obj{r}", body, sha)
                else:
                    client.get("tune", f"obj{r}", sink=sink)
                log(f"  {name}: {op} {r + 1}/{rounds}")
            secs = time.monotonic() - t0
            cpu = group_cpu_seconds(server.proc.pid) - cpu0
            gib = size * rounds / (1 << 30)
            out[f"{op} MB/s"] = round(size * rounds / secs / 1e6)
            out[f"{op} CPU s/GiB"] = round(cpu / gib, 2)
        client.close()
        return out
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mib", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="titans3-tuning-"))
    try:
        rows = [run_variant(n, m, r, args.size_mib << 20, args.rounds, tmp) for n, m, r in VARIANTS]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    cols = ["PUT MB/s", "PUT CPU s/GiB", "GET MB/s", "GET CPU s/GiB"]
    print("\n| variant | " + " | ".join(cols) + " |")
    print("|---|" + "---:|" * len(cols))
    for row in rows:
        print(f"| {row['variant']} | " + " | ".join(str(row[c]) for c in cols) + " |")
    base, shipped = rows[0], rows[-1]
    print(f"\nshipped vs default: PUT CPU/GiB {base['PUT CPU s/GiB'] / shipped['PUT CPU s/GiB']:.2f}x lower, "
          f"GET CPU/GiB {base['GET CPU s/GiB'] / shipped['GET CPU s/GiB']:.2f}x lower")
    return 0


if __name__ == "__main__":
    sys.exit(main())
