"""What server-side encryption costs: PUT/GET throughput with SSE-S3, SSE-KMS and
SSE-C against unencrypted objects, measured in the same run on one daemon.

    .venv/bin/python bench/sse_bench.py            # ~1 minute
    .venv/bin/python bench/sse_bench.py --quick    # ~20 s
    .venv/bin/python bench/sse_bench.py --json

Starts ``titans3 serve`` (6 directory drives, EC 4+2) on free 127.0.0.1 ports
with fresh root credentials, and for each mode runs, interleaved so drift on a
shared machine hits every column alike: large PUT MB/s, large GET MB/s
(bodies compared), 4 KiB PUT ops/s and 4 KiB range GETs across a package
boundary (ops/s). Prints a Markdown table with each mode's ratio to "none".
Stops the daemon's whole process group at the end.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from s3bench import log, new_credentials, start_titans3, wait_ready  # noqa: E402

CK = os.urandom(32)
FIRST = 65536 - 2048  # a 4 KiB range straddling the first package boundary
MODES = {
    "none": {},
    "SSE-S3": {"ServerSideEncryption": "AES256"},
    "SSE-KMS": {"ServerSideEncryption": "aws:kms"},
    "SSE-C": {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": base64.b64encode(CK).decode(),
              "SSECustomerKeyMD5": base64.b64encode(hashlib.md5(CK).digest()).decode()},
}


def read_kw(mode: str) -> dict[str, str]:
    return MODES[mode] if mode == "SSE-C" else {}


def timed(seconds: float, op) -> tuple[int, float]:
    n, t0 = 0, time.perf_counter()
    while True:
        op(n)
        n += 1
        dt = time.perf_counter() - t0
        if dt >= seconds:
            return n, dt


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--size-mib", type=int, default=64)
    args = ap.parse_args(argv)
    cell = 1.5 if args.quick else 5.0
    import boto3
    from botocore.config import Config

    big = os.urandom(args.size_mib << 20)
    small = os.urandom(4096)
    with tempfile.TemporaryDirectory(prefix="sse-bench-") as tmp:
        access, secret = new_credentials()
        server, endpoint = start_titans3(Path(tmp), access, secret)
        try:
            wait_ready(endpoint, server, 60)
            s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=access,
                              aws_secret_access_key=secret, region_name="us-east-1",
                              config=Config(s3={"addressing_style": "path"},
                                            retries={"total_max_attempts": 1}, read_timeout=300))
            s3.create_bucket(Bucket="ssebench")
            for mode, kw in MODES.items():
                s3.put_object(Bucket="ssebench", Key=f"big-{mode}", Body=big, **kw)
                s3.put_object(Bucket="ssebench", Key=f"range-{mode}", Body=big[: 1 << 20], **kw)
                got = s3.get_object(Bucket="ssebench", Key=f"big-{mode}", **read_kw(mode))["Body"].read()
                assert got == big, mode
            rows: dict[str, dict[str, float]] = {m: {} for m in MODES}
            for mode, kw in MODES.items():
                log(f"measuring {mode}")
                n, dt = timed(cell, lambda i, kw=kw, mode=mode: s3.put_object(
                    Bucket="ssebench", Key=f"big-{mode}", Body=big, **kw))
                rows[mode]["large PUT MB/s"] = n * len(big) / dt / 1e6
                n, dt = timed(cell, lambda i, mode=mode: s3.get_object(
                    Bucket="ssebench", Key=f"big-{mode}", **read_kw(mode))["Body"].read())
                rows[mode]["large GET MB/s"] = n * len(big) / dt / 1e6
                n, dt = timed(cell, lambda i, kw=kw, mode=mode: s3.put_object(
                    Bucket="ssebench", Key=f"small-{mode}-{i % 64}", Body=small, **kw))
                rows[mode]["4 KiB PUT ops/s"] = n / dt
                def rng(i: int, mode: str = mode) -> None:
                    r = s3.get_object(Bucket="ssebench", Key=f"range-{mode}",
                                      Range=f"bytes={FIRST}-{FIRST + 4095}", **read_kw(mode))
                    assert r["Body"].read() == big[FIRST : FIRST + 4096]

                n, dt = timed(cell, rng)
                rows[mode]["4 KiB range GET ops/s"] = n / dt
        finally:
            server.stop()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    metrics = list(rows["none"])
    print(f"| mode | {' | '.join(metrics)} |")
    print("|---|" + "---|" * len(metrics))
    for mode, vals in rows.items():
        cells = [f"{vals[m]:.0f}" + ("" if mode == "none" else f" ({vals[m] / rows['none'][m]:.2f}×)")
                 for m in metrics]
        print(f"| {mode} | {' | '.join(cells)} |")
    print(f"\n{args.size_mib} MiB objects, concurrency 1, {cell:.1f} s per cell; ratios against 'none'.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
