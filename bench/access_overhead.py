"""What access control costs per request: the same build with and without it, one run.

Starts two ``titans3 serve`` daemons on free 127.0.0.1 ports (4 drives each): one
as shipped (authorization step, audit log on), one with the audit log off
(``TITANS3_AUDIT=false``), and measures small GETs and PUTs as the root user on
a bucket without a policy (the fast path), then as a user whose identity policy
and the bucket policy must be evaluated.  Reported per cell: requests per
second seen by the client and the *server's* CPU milliseconds per 1,000
requests (from /proc, so other work on the machine does not count); the ratio
column compares the two daemons measured in the same run, interleaved.

    .venv/bin/python bench/access_overhead.py [--seconds 5]

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
    def __init__(self, base: Path, name: str, env: dict[str, str]) -> None:
        self.ports = [free_port() for _ in range(3)]
        self.endpoint = f"http://127.0.0.1:{self.ports[0]}"
        environ = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TITANS3_"))}
        environ.update({"TITANS3_ROOT_ACCESS_KEY": ROOT[0], "TITANS3_ROOT_SECRET_KEY": ROOT[1],
                        "TITANS3_AUDIT_JOURNAL": "off", **env})  # fmt: skip
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
    ap.add_argument("--seconds", type=float, default=5.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        on = Daemon(base, "audit-on", {})
        off = Daemon(base, "audit-off", {"TITANS3_AUDIT": "false"})
        try:
            users = {"on": prepare(on), "off": prepare(off)}
            rows = []
            for who, bucket in (("root", "fast"), ("user+policies", "policed")):
                for op in ("GET", "PUT"):
                    res = {}
                    for name, d in (("on", on), ("off", off)):
                        key = ROOT if who == "root" else users[name]
                        res[name] = cell(d, key, bucket, op, args.seconds)
                    rows.append((who, op, res))
        finally:
            on.stop()
            off.stop()
    print("| caller | 4 KiB op | audit on: ops/s | server CPU µs/op | audit off: ops/s | server CPU µs/op "
          "| CPU on/off |")
    print("|---|---|---|---|---|---|---|")
    for who, op, res in rows:
        (r1, c1), (r2, c2) = res["on"], res["off"]
        print(f"| {who} | {op} | {r1:.0f} | {c1:.0f} | {r2:.0f} | {c2:.0f} | {c1 / c2:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
