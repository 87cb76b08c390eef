"""What access control costs per request, against a build without it, in one run.

Starts three ``titans3 serve`` daemons on free 127.0.0.1 ports (4 drives each):
the *baseline*, this tree's code before access control (``--baseline``, a git
ref, default ``main``; its ``titans3/`` is extracted with ``git archive`` and
run from this venv through ``PYTHONPATH``), this build as shipped (the
authorization step, audit log on) and this build with the audit log off
(``TITANS3_AUDIT=false``).  It measures small GETs and PUTs as the root user on
a bucket without a policy (the fast path; the baseline has only this), then as
a user whose identity policy and the bucket policy (with an ``IpAddress``
condition) are evaluated.  Reported per cell: requests per second seen by the
client and the *server's* CPU microseconds per request (from /proc, so other
work on the machine does not count -- the number to compare); the last column
is that CPU against the baseline's root cell of the same operation.  Cells are
measured interleaved, round after round, so drifting machine load hits every
daemon alike.

    .venv/bin/python bench/access_overhead.py [--seconds 5] [--rounds 3] [--baseline main]

Prints a Markdown table.  Binds only 127.0.0.1 and stops both daemons.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import boto3
import psutil
from botocore.config import Config

REPO = Path(__file__).resolve().parents[1]
BIN = REPO / ".venv" / "bin"
ROOT = ("BENCHROOTKEY00000001", "bench-root-secret-key-0123456789abcdefghij")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Daemon:
    def __init__(self, base: Path, name: str, env: dict[str, str], pythonpath: Path | None = None) -> None:
        self.ports = [free_port() for _ in range(3)]
        self.endpoint = f"http://127.0.0.1:{self.ports[0]}"
        environ = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TITANS3_"))}
        environ.update({"TITANS3_ROOT_ACCESS_KEY": ROOT[0], "TITANS3_ROOT_SECRET_KEY": ROOT[1],
                        "TITANS3_AUDIT_JOURNAL": "off", **env})  # fmt: skip
        if pythonpath is not None:  # another tree's package, ahead of this venv's editable install
            environ["PYTHONPATH"] = str(pythonpath)
        self.log = open(base / f"{name}.log", "wb")  # noqa: SIM115 -- closed in stop()
        self.proc = subprocess.Popen(
            [str(BIN / "titans3"), "serve", "--data", str(base / name), "--drives", "4",
             "--listen", f"127.0.0.1:{self.ports[0]}", "--peer-listen", f"127.0.0.1:{self.ports[1]}",
             "--web-listen", f"127.0.0.1:{self.ports[2]}"],
            env=environ, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.ports[0]), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError(f"{name} did not start; see {self.log.name}") from None
                time.sleep(0.2)

    def cpu(self) -> float:
        t = psutil.Process(self.proc.pid).cpu_times()
        return t.user + t.system

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)
        self.log.close()


def client(endpoint: str, key: tuple[str, str]):  # noqa: ANN201
    return boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=key[0], aws_secret_access_key=key[1],
                        region_name="us-east-1",
                        config=Config(s3={"addressing_style": "path"}, retries={"total_max_attempts": 1}))


def extract(ref: str, into: Path) -> Path | None:
    """``ref``'s ``titans3`` package under ``into`` (None: no such ref)."""
    into.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", ref, "titans3"], capture_output=True)
    if archive.returncode != 0:
        print(f"baseline {ref!r}: {archive.stderr.decode().strip()}; measuring without it", file=sys.stderr)
        return None
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into


def prepare_baseline(d: Daemon) -> None:
    root = client(d.endpoint, ROOT)
    root.create_bucket(Bucket="fast")
    root.put_object(Bucket="fast", Key="k", Body=os.urandom(4096))


def prepare(d: Daemon) -> tuple[str, str]:
    root = client(d.endpoint, ROOT)
    for b in ("fast", "policed"):
        root.create_bucket(Bucket=b)
        root.put_object(Bucket=b, Key="k", Body=os.urandom(4096))
    root.delete_public_access_block(Bucket="policed")
    root.put_bucket_policy(Bucket="policed", Policy=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": "arn:aws:s3:::policed/*",
         "Condition": {"NotIpAddress": {"aws:SourceIp": "127.0.0.0/8"}}}]}))  # fmt: skip
    env = {"TITANS3_ENDPOINT": d.endpoint, "TITANS3_ROOT_ACCESS_KEY": ROOT[0], "TITANS3_ROOT_SECRET_KEY": ROOT[1]}
    run = lambda *a: subprocess.run([str(BIN / "titanctl"), *a, "--json"], env={**os.environ, **env},  # noqa: E731
                                    capture_output=True, text=True, check=True).stdout  # fmt: skip
    run("user", "create", "bench")
    key = json.loads(run("key", "create", "bench"))["key"]
    policy = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"], "Resource": "arn:aws:s3:::policed/*"}]})
    subprocess.run([str(BIN / "titanctl"), "user", "policy", "put", "bench", "p", "-"], input=policy, text=True,
                   env={**os.environ, **env}, check=True, capture_output=True)  # fmt: skip
    time.sleep(0.5)
    return key["id"], key["secret"]


def cell(d: Daemon, key: tuple[str, str], bucket: str, op: str, seconds: float) -> tuple[float, float]:
    s3 = client(d.endpoint, key)
    body = os.urandom(4096)
    n = 0
    c0, t0 = d.cpu(), time.monotonic()
    while time.monotonic() - t0 < seconds:
        if op == "GET":
            s3.get_object(Bucket=bucket, Key="k")["Body"].read()
        else:
            s3.put_object(Bucket=bucket, Key=f"p{n % 16}", Body=body)
        n += 1
    wall, cpu = time.monotonic() - t0, d.cpu() - c0
    s3.close()
    return n / wall, cpu / n * 1e6  # ops/s, server CPU microseconds per op


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=5.0, help="per cell and round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--baseline", default="main", help="git ref of the build without access control")
    args = ap.parse_args()
    # (caller, bucket, daemon name): every cell measured; the baseline has root only.
    plan = [("root", "fast", "baseline"), ("root", "fast", "audit off"), ("root", "fast", "audit on"),
            ("user+policies", "policed", "audit off"), ("user+policies", "policed", "audit on")]
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        src = extract(args.baseline, base / "baseline-src")
        daemons: dict[str, Daemon] = {}
        try:
            if src is not None:
                daemons["baseline"] = Daemon(base, "baseline", {}, pythonpath=src)
            daemons["audit on"] = Daemon(base, "audit-on", {})
            daemons["audit off"] = Daemon(base, "audit-off", {"TITANS3_AUDIT": "false"})
            users = {name: prepare(d) for name, d in daemons.items() if name != "baseline"}
            if "baseline" in daemons:
                prepare_baseline(daemons["baseline"])
            plan = [c for c in plan if c[2] in daemons]
            totals: dict[tuple[str, str, str], list[float]] = {}  # cell -> [ops, wall, cpu]
            for _ in range(args.rounds):
                for op in ("GET", "PUT"):
                    for who, bucket, name in plan:
                        key = ROOT if who == "root" else users[name]
                        rate, cpu_us = cell(daemons[name], key, bucket, op, args.seconds)
                        t = totals.setdefault((op, who, name), [0.0, 0.0, 0.0])
                        n = rate * args.seconds
                        t[0] += n
                        t[1] += args.seconds
                        t[2] += cpu_us * n
        finally:
            for d in daemons.values():
                d.stop()
    print(f"{args.rounds} rounds of {args.seconds:g} s per cell, 4 KiB objects, one client, 127.0.0.1")
    print()
    print("| op | caller | build | ops/s | server CPU µs/op | CPU vs baseline root |")
    print("|---|---|---|---|---|---|")
    for op in ("GET", "PUT"):
        ref = totals.get((op, "root", "baseline"))
        for who, _bucket, name in plan:
            n, wall, cpu = totals[(op, who, name)]
            per = cpu / n
            ratio = f"{per / (ref[2] / ref[0]):.2f}" if ref else "-"
            label = f"{args.baseline} (no access control)" if name == "baseline" else name
            print(f"| {op} | {who} | {label} | {n / wall:.0f} | {per:.0f} | {ratio} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
