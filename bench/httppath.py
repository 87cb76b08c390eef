#!/usr/bin/env python3
"""The cost of the HTTP path alone: server CPU per request with no object work.

    .venv/bin/python bench/httppath.py                          # this build
    .venv/bin/python bench/httppath.py --baseline ../other/.venv/bin/titans3

Starts ``titans3 serve`` (and optionally a baseline build) on 127.0.0.1 and
sends anonymous ``GET /`` on keep-alive connections: the S3 front parses the
request, refuses it (403 ``AccessDenied``, an XML body with request ids) and
hypercorn sends it -- everything a small request costs except the drives.
Rounds alternate between the builds (drift on a shared machine hits both);
each prints requests/s and the server's CPU time per request from /proc,
which stays meaningful when other work shares the CPU and requests/s does not.
"""

from __future__ import annotations

import argparse
import http.client
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from s3bench import BIN, group_cpu_seconds, new_credentials, start_titans3, wait_ready  # noqa: E402


def load(port: int, concurrency: int, seconds: float) -> int:
    stop = time.monotonic() + seconds
    counts = [0] * concurrency

    def worker(i: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        n = 0
        try:
            while time.monotonic() < stop:
                conn.request("GET", "/")
                resp = conn.getresponse()
                resp.read()
                if resp.status != 403:
                    raise RuntimeError(f"expected 403, got {resp.status}")
                n += 1
        finally:
            conn.close()
        counts[i] = n

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baseline", type=Path, help="another build's titans3 to compare with")
    ap.add_argument("--concurrency", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=4.0, help="per round")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="titans3-httppath-"))
    builds = {"this build": BIN / "titans3"}
    if args.baseline:
        builds["baseline"] = args.baseline
    servers = {}
    try:
        for name, binary in builds.items():
            access, secret = new_credentials()
            servers[name] = start_titans3(tmp, access, secret, binary=binary,
                                          name=name.replace(" ", "-"))  # fmt: skip
        for server, url in servers.values():
            wait_ready(url, server, 60)
            load(int(url.rsplit(":", 1)[1]), 1, 0.5)  # warm-up
        results: dict[str, list[tuple[float, float]]] = {name: [] for name in servers}
        for _ in range(args.rounds):
            for name, (server, url) in servers.items():
                port = int(url.rsplit(":", 1)[1])
                cpu0, t0 = group_cpu_seconds(server.proc.pid), time.monotonic()
                n = load(port, args.concurrency, args.seconds)
                took, cpu = time.monotonic() - t0, group_cpu_seconds(server.proc.pid) - cpu0
                results[name].append((n / took, 1e6 * cpu / max(n, 1)))
                print(f"{name}: {n / took:,.0f} req/s, server CPU {1e6 * cpu / max(n, 1):,.0f} us/req",
                      file=sys.stderr)  # fmt: skip
        print(f"| anonymous GET / (403), c={args.concurrency} | req/s (median) | server CPU per request (median) |")
        print("|---|---:|---:|")
        for name, rows in results.items():
            print(f"| {name} | {statistics.median(r for r, _ in rows):,.0f} | "
                  f"{statistics.median(c for _, c in rows):,.0f} us |")  # fmt: skip
    finally:
        for server, _ in servers.values():
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
