#!/usr/bin/env python3
"""Repair throughput: how fast a replaced drive is refilled (MB/s of fragments rebuilt).

    .venv/bin/python bench/repair_bench.py                 # 2 GiB of objects, ~1 minute
    .venv/bin/python bench/repair_bench.py --size 8GiB     # more data
    .venv/bin/python bench/repair_bench.py --object-size 4MiB --concurrency 8

What it does:

1. starts ``titans3 serve`` with 6 directory drives (EC 4+2) on free 127.0.0.1
   ports in a temporary directory (``--keep`` keeps it), fresh root credentials;
2. uploads ``--size`` bytes as objects of ``--object-size`` (random bytes,
   ``--upload-threads`` parallel PUTs);
3. stops the daemon, deletes one drive directory (``--drive``), starts it
   again: the roster sees a blank disk in the slot, marks it healing, and the
   refill tracker rebuilds everything that slot holds;
4. polls ``GET /titans3/admin/v1/repair/status`` and prints progress to
   stderr; when the drive is no longer healing it prints one result line:
   fragment bytes rebuilt / refill time (the tracker's own start and finish
   timestamps, so daemon start-up is not counted), and what was read to do it.

MB/s here is 10^6 bytes per second of *rebuilt fragment data written to the
new drive* (a refill reads ``k`` times that from the others).  Everything it
starts is killed by process group on exit, Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
BIN = REPO / ".venv" / "bin"
MiB = 1 << 20


def parse_size(text: str) -> int:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(i?)B?\s*", text, re.IGNORECASE)
    if not m:
        raise argparse.ArgumentTypeError(f"bad size {text!r} (e.g. 2GiB, 512MiB)")
    unit = m.group(2).upper()
    base = 1024 if m.group(3) or unit else 1
    return int(float(m.group(1)) * base ** ("KMGT".index(unit) + 1 if unit else 0))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Node:
    def __init__(self, root: Path, concurrency: int) -> None:
        self.root = root
        self.ports = [free_port() for _ in range(3)]
        self.access, self.secret = "BENCH" + secrets.token_hex(8).upper(), secrets.token_hex(20)
        self.concurrency = concurrency
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = root / "titans3.log"

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports[0]}"

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TITANS3_"))}
        env.update(TITANS3_ROOT_ACCESS_KEY=self.access, TITANS3_ROOT_SECRET_KEY=self.secret,
                   TITANS3_REPAIR_CONCURRENCY=str(self.concurrency), TITANS3_REPAIR_GRACE="0",
                   TITANS3_SCRUB_RATE="0")
        s3, peer, web = self.ports
        argv = [str(BIN / "titans3"), "serve", "--data", str(self.root / "data"), "--drives", "6",
                "--listen", f"127.0.0.1:{s3}", "--peer-listen", f"127.0.0.1:{peer}",
                "--web-listen", f"127.0.0.1:{web}"]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env,
                                         start_new_session=True, preexec_fn=_die_with_parent)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"titans3 exited with {self.proc.returncode}; see {self.log}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", s3), 0.5):
                return
            time.sleep(0.1)
        raise SystemExit(f"titans3 did not start; see {self.log}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def s3(self) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.session.Session().client(
            "s3", endpoint_url=self.endpoint, aws_access_key_id=self.access,
            aws_secret_access_key=self.secret, region_name="us-east-1",
            config=Config(s3={"addressing_style": "path"}, retries={"total_max_attempts": 1},
                          read_timeout=300))

    def status(self) -> dict[str, Any]:
        from titans3.cli.ctl_repair import call_json
        from titans3.cli.titanctl import AdminClient

        return call_json(AdminClient(self.endpoint, self.access, self.secret, timeout=30),
                         "GET", "repair/status")


def upload(node: Node, size: int, object_size: int, threads: int) -> tuple[int, float]:
    count = max(1, size // object_size)
    node.s3().create_bucket(Bucket="repairbench")
    block = os.urandom(object_size)  # one buffer; a per-object prefix makes bodies differ
    local = threading.local()
    done = [0]
    lock = threading.Lock()
    t0 = time.monotonic()

    def put(i: int) -> None:
        if not hasattr(local, "s3"):
            local.s3 = node.s3()
        body = i.to_bytes(8, "big") + block[8:]
        local.s3.put_object(Bucket="repairbench", Key=f"obj-{i:06d}", Body=body)
        with lock:
            done[0] += 1
            if done[0] % max(1, count // 10) == 0 or done[0] == count:
                rate = done[0] * object_size / (time.monotonic() - t0) / 1e6
                print(f"  uploaded {done[0]}/{count} objects ({rate:.0f} MB/s)", file=sys.stderr,
                      flush=True)

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(put, range(count)))
    return count, time.monotonic() - t0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=parse_size, default=parse_size("2GiB"),
                   help="data to upload before the drive is lost (default 2GiB)")
    p.add_argument("--object-size", type=parse_size, default=parse_size("32MiB"))
    p.add_argument("--upload-threads", type=int, default=4)
    p.add_argument("--concurrency", type=int, default=4, help="keys repaired at once")
    p.add_argument("--drive", type=int, default=2, help="which drive to lose (0-5)")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    args = p.parse_args()

    root = Path(tempfile.mkdtemp(prefix="repairbench-"))
    node = Node(root, args.concurrency)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        print(f"repair_bench: {args.size / 2**30:.2f} GiB as {args.object_size // MiB} MiB objects, "
              f"6 drives (EC 4+2), dir {root}", file=sys.stderr, flush=True)
        node.start()
        count, up_s = upload(node, args.size, args.object_size, args.upload_threads)
        node.stop()
        shutil.rmtree(root / "data" / f"drive-{args.drive}")
        print(f"  drive-{args.drive} deleted; restarting with a blank disk in its slot",
              file=sys.stderr, flush=True)
        t0 = time.monotonic()
        node.start()
        drive: dict[str, Any] = {}
        while True:
            st = node.status()
            drives = st["workers"]["refill"]["drives"]
            drive = drives[0] if drives else {}
            if drive:
                print(f"  refill {drive['state']}: {drive['objects_checked']} keys, "
                      f"{drive['bytes_rebuilt'] / 1e6:.0f} MB rebuilt, "
                      f"{drive['rate'] / 1e6:.0f} MB/s", file=sys.stderr, flush=True)
            if drive and not st["healing"] and drive.get("finished"):
                break
            if time.monotonic() - t0 > 3600:
                raise SystemExit("refill did not finish within an hour")
            time.sleep(0.5)
        seconds = drive["finished"] - drive["started"]
        rebuilt = drive["bytes_rebuilt"]
        result = {
            "fragments_rebuilt_bytes": rebuilt,
            "refill_seconds": round(seconds, 2),
            "repair_mb_per_s": round(rebuilt / seconds / 1e6, 1),
            "read_mb_per_s": round(rebuilt * 4 / seconds / 1e6, 1),  # k = 4 sources per fragment
            "objects": count,
            "object_size": args.object_size,
            "lost": drive["lost"],
            "concurrency": args.concurrency,
            "upload_mb_per_s": round(count * args.object_size / up_s / 1e6, 1),
        }
        if args.json:
            print(json.dumps(result))
        else:
            print(f"repair_bench: refilled drive-{args.drive}: {rebuilt / 1e6:.0f} MB of fragments "
                  f"({count} objects x {args.object_size // MiB} MiB, EC 4+2) rebuilt in "
                  f"{seconds:.1f} s = {result['repair_mb_per_s']} MB/s written "
                  f"({result['read_mb_per_s']} MB/s read from the other drives), "
                  f"concurrency {args.concurrency}, {drive['lost']} lost")
        return 0 if drive["lost"] == 0 else 1
    finally:
        node.stop()
        if args.keep:
            print(f"kept {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
