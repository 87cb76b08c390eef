"""Crash consistency: SIGKILL the daemon at random moments while a client writes and flushes.

Twenty rounds.  In each, a libnbd client writes random 4 KiB blocks (each
with a unique tag), sends a FLUSH every 1-32 writes and now and then a FUA
write, logging what it sent and what was acknowledged; after a random delay
the daemon is SIGKILLed (its whole process group) and restarted.  Then every
block ever written must hold the value of its last write covered by an
acknowledged FLUSH or FUA -- or of a write issued after that one (which may
or may not have landed) -- and nothing else.  What survived is the start of
the next round.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import time
from pathlib import Path

from . import cluster
from .nbdtools import SYSTEM_PYTHON, NbdDaemon, libnbd

BLOCKS = 4096  # a 16 MiB volume: writes hit the same extents and blocks often
ROUNDS = int(os.environ.get("NBD_CRASH_ROUNDS", "20"))  # scripts/nbd-torture.sh runs many more


def allowed_after(log: list[str], base: dict[int, int]) -> dict[int, set[int]]:
    """Block -> the tags it may hold after a crash, given the writer's log."""
    durable = dict(base)
    since: dict[int, list[int]] = {}  # block -> tags written after its durable one
    unflushed: list[tuple[int, int]] = []

    def durable_now(b: int, tag: int) -> None:  # tags grow in the order writes were sent
        if tag > durable.get(b, 0):
            durable[b] = tag
            since[b] = [t for t in since.get(b, []) if t > tag]

    for line in log:
        kind, *rest = line.split()
        if kind == "W":
            b, tag = int(rest[0]), int(rest[1])
            since.setdefault(b, []).append(tag)
            unflushed.append((b, tag))
        elif kind == "U":  # this write is durable by itself
            durable_now(int(rest[0]), int(rest[1]))
        elif kind == "F":  # every write sent before it is durable
            for b, tag in unflushed:
                durable_now(b, tag)
            unflushed.clear()
    blocks = set(durable) | set(since)
    return {b: {durable.get(b, 0), *since.get(b, [])} for b in blocks}


def test_every_acknowledged_write_survives_twenty_random_sigkills(tmp_path: Path) -> None:
    rng = random.Random(20)
    d = NbdDaemon(tmp_path / "data", tmp_path / "titans3.log", drives=6, name="titans3-crash")
    cluster.LIVE.append(d)
    base: dict[int, int] = {}
    checked = flushes = 0
    try:
        d.start()
        d.create_volume("crash", str(BLOCKS * 4096))
        for r in range(ROUNDS):
            log_path = tmp_path / f"round{r}.log"
            writer = subprocess.Popen([SYSTEM_PYTHON, str(Path(__file__).parent / "nbdclients" / "crashwriter.py"),
                                       d.uri("crash"), str(log_path), str(r), str((r + 1) * 10**7), str(BLOCKS)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            time.sleep(rng.uniform(0.3, 1.5))
            d.kill()
            try:
                writer.wait(30)
            finally:
                if writer.poll() is None:
                    writer.kill()
            log = log_path.read_text().splitlines()
            flushes += log.count("F")
            allowed = allowed_after(log, base)
            d.start()
            res = libnbd("readtags.py", d.uri("crash"), input=json.dumps(sorted(allowed)))
            got = {int(b): t for b, t in json.loads(res.stdout).items()}
            bad = {b: (got[b], sorted(allowed[b])) for b in allowed if got[b] not in allowed[b]}
            assert not bad, f"round {r}: blocks lost acknowledged writes: {dict(list(bad.items())[:5])}"
            checked += len(allowed)
            base = {b: t for b, t in got.items() if t}
        assert flushes >= ROUNDS, "the rounds were too short to flush anything"
    finally:
        d.stop()
        cluster.LIVE.remove(d)
    print(f"{ROUNDS} rounds, {flushes} acknowledged flushes, {checked} block checks")


def test_a_sigkill_after_flush_keeps_every_flushed_block_despite_unflushed_writes_after_it(tmp_path: Path) -> None:
    """Flushed data (three blocks of every four: it goes to the log), then un-flushed overwrites (single blocks and whole extents
    the cleaner folds before the kill): after SIGKILL each block holds its
    flushed value or one written after it -- a block phase two never touched
    holds exactly the flushed one.  Killed at once, mid-fold and after the
    idle fold (2 s), a round each."""
    blocks, base = 8192, 10**6  # a 32 MiB volume, 8 extents
    d = NbdDaemon(tmp_path / "data", tmp_path / "titans3.log", drives=6, name="titans3-flushkill")
    cluster.LIVE.append(d)
    try:
        d.start()
        for r, delay in enumerate((0.0, 0.7, 3.0)):
            name = f"fk{r}"
            d.create_volume(name, str(blocks * 4096))
            writer = subprocess.Popen(
                [SYSTEM_PYTHON, str(Path(__file__).parent / "nbdclients" / "flushthenwrite.py"), d.uri(name),
                 str(blocks), str(base), str(r)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            try:
                assert writer.stdout is not None
                assert writer.stdout.readline().strip() == "flushed", writer.stderr.read() if writer.stderr else ""
                assert writer.stdout.readline().strip() == "written"
                later = {int(b): tags for b, tags in json.loads(writer.stdout.readline()).items()}
                time.sleep(delay)
                d.kill()
            finally:
                writer.kill()
                writer.wait(30)
            d.start()
            res = libnbd("readtags.py", d.uri(name), input=json.dumps(list(range(blocks))))
            got = {int(b): t for b, t in json.loads(res.stdout).items()}
            flushed = {b: 0 if b % 4 == 3 else base + b for b in range(blocks)}
            bad = {b: (got[b], flushed[b], later.get(b, [])) for b in range(blocks)
                   if got[b] != flushed[b] and got[b] not in later.get(b, [])}
            assert not bad, f"kill {delay} s after the writes: flushed blocks lost: {dict(list(bad.items())[:5])}"
            assert len(later) > blocks // 4, "phase two overwrote too little to test anything"
    finally:
        d.stop()
        cluster.LIVE.remove(d)
