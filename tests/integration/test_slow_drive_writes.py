"""A slow drive does not hold PUTs: the write cutoff (titans3/objects/stragglers.py).

A real daemon with six directory drives (EC 4+2, W = 5) and fault injection
(titans3/drive/faults.py): drive 2 stalls every fragment write and metadata
commit for SLOW seconds.  PUTs must stay near their healthy latency (W drives
plus the cutoff), read back right at once, and the slow drive must get its
fragments afterwards from the heal queue -- and no staging file may be left
behind by the abandoned writes.  Overwrites of one small key while the drive
is slow make late commits land after their version was superseded: reads
must still show the newest.
"""

from __future__ import annotations

import hashlib
import os
import statistics
import time
from collections.abc import Callable
from contextlib import closing
from typing import Any

import httpx

from .cluster import Daemon, MiB, s3_client
from .durability import all_healthy, wait_for
from .test_slow_failing_drives import ENV, set_faults

BUCKET = "slowwrites"
SLOW = 6.0  # s every write on the slow drive stalls
CUTOFF = 0.5


def timed_put(s3: Any, key: str, body: bytes) -> float:
    t0 = time.monotonic()
    s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    took = time.monotonic() - t0
    got = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()  # read-after-write, at once
    assert hashlib.sha256(got).digest() == hashlib.sha256(body).digest(), key
    return took


def staging_files(d: Daemon, i: int) -> list[str]:
    return sorted(p.name for p in (d.drive_dir(i) / "staging").rglob("*") if p.is_file())


def test_a_put_with_one_drive_slowed_by_seconds_is_acknowledged_at_quorum_and_repaired_later(
        daemon_factory: Callable[..., Daemon]) -> None:
    d = daemon_factory(drives=6, env={**ENV, "TITANS3_WRITE_CUTOFF": str(CUTOFF)})
    bodies: dict[str, bytes] = {}
    with closing(s3_client(d)) as s3:
        s3.create_bucket(Bucket=BUCKET)
        healthy = []
        for i in range(4):
            bodies[f"calm{i}"] = os.urandom(2 * MiB)
            healthy.append(timed_put(s3, f"calm{i}", bodies[f"calm{i}"]))

        set_faults(d, 2, write_delay=SLOW)
        slowed = []
        for i in range(4):
            bodies[f"slow{i}"] = os.urandom(2 * MiB + 12345)
            slowed.append(timed_put(s3, f"slow{i}", bodies[f"slow{i}"]))
        for n in range(3):  # inline objects: only the commit waits; the last one must win
            bodies["tiny"] = os.urandom(10_000 + n)
            slowed.append(timed_put(s3, "tiny", bodies["tiny"]))
        print(f"\nPUT latency, 2 MiB and 10 KB: healthy median {statistics.median(healthy):.2f}s "
              f"max {max(healthy):.2f}s; one drive stalling {SLOW:.0f}s per write: median "
              f"{statistics.median(slowed):.2f}s max {max(slowed):.2f}s")
        # Without the cutoff each PUT waited SLOW at least (open + finish + commit: 3x).
        assert max(slowed) < SLOW / 2, slowed
        assert max(slowed) < max(healthy) + CUTOFF * 4 + 1.5, (healthy, slowed)

        page = httpx.get(f"{d.web_endpoint}/api/status", timeout=10).json()
        assert page["store"]["write_stragglers"] >= 1, page["store"]
        # The first write cut drive 2; later ones left it out from the start while its
        # stalled call ran (a hint on another drive, or a partial write for the heal queue).
        assert page["store"]["partial_writes"] >= 1, page["store"]
        # Acknowledged on the five others; the slow drive has not got them yet.
        assert all_healthy(d, BUCKET, [f"slow{i}" for i in range(4)]), "drive 2 was waited for"

        set_faults(d, 2)  # the disk is fast again: the heal queue brings it up to date
        keys = sorted(bodies)
        wait_for("the slow drive's fragments", lambda: all_healthy(d, BUCKET, keys) == [],
                 timeout=180, every=1.0)
        for key, body in bodies.items():
            got = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
            assert got == body, key
        # The abandoned writes left nothing in staging (aborted when their calls returned).
        wait_for("no staging files", lambda: all(staging_files(d, i) == [] for i in range(6)),
                 timeout=30)
        assert "cut off" in d.log_text()
