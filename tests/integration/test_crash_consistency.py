"""A SIGKILL never loses an acknowledged PUT and never exposes a half-written one.

The daemon's whole process group is SIGKILLed (a crash, not a shutdown) and
restarted on the same data directory:

* mid-body of a large overwrite: the key still reads as the old version;
* at a random moment under concurrent small (inline) and medium (fragment
  file) PUTs: every PUT that got a 200 reads back byte-exact, and every object
  that exists is exactly one of the versions written to it -- never a mix.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import random
import threading
import time
from dataclasses import dataclass, field

import botocore.exceptions
import pytest

from .cluster import Daemon, MiB, s3_client
from .rawhttp import pattern_chunks, sha256_of, stream_put

BUCKET = "crash"


def test_killed_mid_body_overwrite_leaves_old_version(s3, daemon: Daemon) -> None:
    s3.create_bucket(Bucket=BUCKET)
    v1 = os.urandom(3 * MiB)
    s3.put_object(Bucket=BUCKET, Key="k", Body=v1)

    total = 200 * MiB
    kill_at = 80 * MiB
    killed: list[int] = []

    def kill_midway(sent: int) -> None:
        if sent >= kill_at and not killed:
            killed.append(daemon.kill())

    # Signed with the real payload hash, so only a complete body could ever verify.
    v2_sha = sha256_of(pattern_chunks(total, seed=2))
    outcome: object
    try:
        outcome = stream_put(daemon, BUCKET, "k", pattern_chunks(total, seed=2), total,
                             payload_sha256=v2_sha, on_progress=kill_midway)  # fmt: skip
    except (OSError, http.client.HTTPException) as e:  # what a client sees when the server dies
        outcome = e
    assert killed, f"upload finished before {kill_at} bytes were sent? outcome={outcome!r}"
    assert killed[0] == -9, f"daemon did not die by SIGKILL: exit {killed[0]}"
    assert not (hasattr(outcome, "status") and outcome.status == 200), "a killed PUT got 200"

    daemon.start()
    s3 = s3_client(daemon)
    got = s3.get_object(Bucket=BUCKET, Key="k")["Body"].read()
    assert len(got) == len(v1), f"after crash the key is {len(got)} bytes, v1 is {len(v1)}"
    assert got == v1, "after crash the key is not v1"
    head = s3.head_object(Bucket=BUCKET, Key="k")
    assert head["ContentLength"] == len(v1)
    keys = s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])
    assert [(o["Key"], o["Size"]) for o in keys] == [("k", len(v1))]


@dataclass
class KeyHistory:
    """Versions one writer thread attempted for one key, in order, and which were acked."""

    key: str
    attempted: list[str] = field(default_factory=list)  # sha256 hex per version
    acked: list[bool] = field(default_factory=list)
    shared: bool = False  # written by several threads concurrently

    def allowed(self) -> tuple[set[str], bool]:
        """(contents the key may have after the crash, whether it must exist)."""
        if self.shared:
            return set(self.attempted), any(self.acked)
        last_ack = max((i for i, a in enumerate(self.acked) if a), default=None)
        if last_ack is None:
            return set(self.attempted), False
        # One writer per key and one request at a time: at most the version
        # after the last acked one can have been in flight.
        return set(self.attempted[last_ack : last_ack + 2]), True


def _payload(rng: random.Random) -> bytes:
    # Small ones stay inline in LMDB; medium ones get fragment files.
    size = rng.choice([0, 1, 777, 4096, 60_000, 130_000, 700_000, 1 * MiB + 5, 3 * MiB])
    return rng.randbytes(size)


def test_sigkill_under_concurrent_puts_keeps_acked_and_never_mixes(daemon: Daemon) -> None:
    seed = int(os.environ.get("TITANS3_CRASH_SEED", random.randrange(1 << 30)))
    print(f"crash test seed: {seed} (TITANS3_CRASH_SEED to replay)")
    s3_client(daemon).create_bucket(Bucket=BUCKET)

    threads_n = 8
    histories: list[KeyHistory] = []
    shared = KeyHistory("shared/contended", shared=True)
    lock = threading.Lock()
    acks = 0
    stop = threading.Event()

    def writer(t: int) -> None:
        nonlocal acks
        rng = random.Random(seed * 100 + t)
        s3 = s3_client(daemon)
        own = [KeyHistory(f"t{t}/key-{j}") for j in range(6)]
        with lock:
            histories.extend(own)
        while not stop.is_set():
            h = shared if rng.random() < 0.15 else rng.choice(own)
            body = _payload(rng)
            with lock:
                h.attempted.append(hashlib.sha256(body).hexdigest())
                h.acked.append(False)
                idx = len(h.attempted) - 1
            try:
                s3.put_object(Bucket=BUCKET, Key=h.key, Body=body)
            except Exception:  # any failure means "not acknowledged"
                return  # the daemon is gone; a thread stops at its first failure
            with lock:
                h.acked[idx] = True
                acks += 1

    threads = [threading.Thread(target=writer, args=(t,), daemon=True) for t in range(threads_n)]
    for th in threads:
        th.start()
    deadline = time.monotonic() + 60
    while acks < 40 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert acks >= 40, f"only {acks} PUTs acknowledged in 60 s before the crash"
    time.sleep(random.Random(seed).uniform(0.0, 1.5))
    rc = daemon.kill()
    stop.set()
    for th in threads:
        th.join(60)
    assert rc == -9
    assert not any(th.is_alive() for th in threads), "writer threads hung after the crash"

    daemon.start()
    s3 = s3_client(daemon)
    problems = []
    for h in [*histories, shared]:
        if not h.attempted:
            continue
        allowed, must_exist = h.allowed()
        try:
            got = s3.get_object(Bucket=BUCKET, Key=h.key)["Body"].read()
        except botocore.exceptions.ClientError as e:
            if e.response["Error"]["Code"] != "NoSuchKey":
                problems.append(f"{h.key}: GET failed: {e}")
            elif must_exist:
                problems.append(f"{h.key}: acknowledged PUT lost (NoSuchKey)")
            continue
        digest = hashlib.sha256(got).hexdigest()
        if digest not in allowed:
            which = (
                "a version never written (mixed/torn)"
                if digest not in h.attempted
                else ("an older version than the last acknowledged one")
            )
            problems.append(f"{h.key}: content ({len(got)} bytes) is {which}")
    total_acked = sum(sum(h.acked) for h in [*histories, shared])
    assert not problems, f"seed {seed}, {total_acked} acked PUTs:\n" + "\n".join(problems)


@pytest.mark.parametrize("cycles", [3])
def test_repeated_crashes_still_start_and_serve(daemon: Daemon, cycles: int) -> None:
    """LMDB and staging recovery is idempotent: crash, start, write, crash again."""
    s3 = s3_client(daemon)
    s3.create_bucket(Bucket=BUCKET)
    written = {}
    for c in range(cycles):
        body = os.urandom(2 * MiB + c)
        s3.put_object(Bucket=BUCKET, Key=f"cycle-{c}", Body=body)
        written[f"cycle-{c}"] = body
        daemon.restart(crash=True)
        s3 = s3_client(daemon)
        for key, data in written.items():
            assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == data, (
                f"{key} wrong after crash {c + 1}"
            )
