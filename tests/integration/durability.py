"""Helpers for the durability tests: admin calls, waiting on workers, damaging fragment files."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from titans3.cli.ctl_repair import call_json
from titans3.cli.titanctl import AdminClient

from .cluster import Daemon

# Faster, test-friendly worker settings (the defaults are for production).
WORKER_ENV = {
    "TITANS3_REPAIR_GRACE": "0",  # repair versions written a moment ago
    "TITANS3_SCRUB_RATE": "0",  # unthrottled unless a test sets a rate
}

HEADER = 4096  # fragment file: 4 KiB header, then 64 KiB blocks [16-byte digest | payload]
BLOCK = 65536
DIGEST = 16


def admin(d: Daemon, method: str, path: str, **query: str) -> dict[str, Any]:
    client = AdminClient(d.endpoint, d.credentials.access_key, d.credentials.secret_key,
                         timeout=120.0)
    return call_json(client, method, path, query)


def status(d: Daemon) -> dict[str, Any]:
    return admin(d, "GET", "repair/status")


def inspect(d: Daemon, bucket: str, key: str, *, deep: bool = False) -> dict[str, Any]:
    return admin(d, "GET", "object/inspect", bucket=bucket, key=key, **({"deep": "1"} if deep else {}))


def wait_for(what: str, fn: Callable[[], Any], timeout: float = 120.0, every: float = 0.3) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


def repair_idle(d: Daemon) -> bool:
    w = status(d)["workers"]
    return (w["heal-queue"]["queue_depth"] == 0 and w["repair"]["in_flight"] == 0
            and w["scrubber"]["state"] == "idle")


def all_healthy(d: Daemon, bucket: str, keys: list[str], *, deep: bool = True) -> list[str]:
    """Keys whose versions are not all at k+m ok fragments (empty list: all healthy)."""
    bad = []
    for key in keys:
        doc = inspect(d, bucket, key, deep=deep)
        for v in doc["versions"]:
            if v["healthy_fragments"] != v["fragments_total"] or v["fragments_total"] != 6:
                bad.append(f"{key}: {v['healthy_fragments']}/{v['fragments_total']} "
                           + ", ".join(f"{f['index']}={f['health']}" for f in v["fragments"]))
        if not doc["versions"]:
            bad.append(f"{key}: no visible version")
    return bad


def fragment_files(d: Daemon) -> dict[str, list[Path]]:
    """Data id -> its fragment files (one per drive holding it)."""
    out: dict[str, list[Path]] = {}
    for p in d.fragment_files():
        out.setdefault(p.name, []).append(p)
    return out


def flip_random_payload_byte(path: Path, rng: random.Random) -> int:
    """Flip one byte inside a block payload (never header or digest); returns its offset."""
    size = path.stat().st_size
    blocks = max(1, (size - HEADER) // BLOCK)
    # Full blocks only (the last block's payload may be short and padded).
    b = rng.randrange(max(1, blocks - 1))
    offset = HEADER + b * BLOCK + DIGEST + rng.randrange(BLOCK - DIGEST)
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ (1 << rng.randrange(8))]))
        f.flush()
        os.fsync(f.fileno())
    return offset


def quarantined(d: Daemon) -> set[tuple[int, str]]:
    """(drive index, data id) of every file in a quarantine/ directory."""
    out = set()
    for i in range(d.drives):
        q = d.drive_dir(i) / "quarantine"
        if q.is_dir():
            out |= {(i, p.name.split(".")[0]) for p in q.iterdir() if p.is_file()}
    return out


def drive_index(path: Path, d: Daemon) -> int:
    return int(path.relative_to(d.data_dir).parts[0].removeprefix("drive-"))
