"""The fault schedule: SIGKILLs (also mid-commit), pulled drives, flipped bytes.

Theory of operation
-------------------
Each round draws one fault kind from the topology's weights
(:data:`SINGLE` / :data:`CLUSTER`) with the run's seeded RNG; the runner
performs it while (or after) the workload runs:

``kill``           SIGKILL a node at a random moment of the round
``kill_commit``    a PUT's last body byte is sent, then SIGKILL 0-15 ms later:
                   the node is erasure-coding / staging / committing
``kill_complete``  SIGKILL 0-15 ms after CompleteMultipartUpload is sent
``pull``           rename a drive directory away mid-round (it is returned in
                   a later round, or before a GC check)
``replace``        SIGKILL, swap a drive for a blank directory, restart: the
                   daemon formats it, marks it healing and refills it; the
                   round waits for the refill to finish
``flip``           after the round, flip one byte in 1-3 fragment files (a
                   payload byte, or a header byte) of objects that had all
                   their fragments

A node is never restarted with one of its drives pulled (the daemon would
take the empty slot for a replacement disk): the drive goes back first.

One *unit* at most is unavailable at a time (a node down or a drive pulled),
and a data id is flipped at most once per run and only while all its
fragments exist, so no object ever has more than ``m = 2`` fragments out --
anything unreadable is then the daemon's fault, not the schedule's.
"""

from __future__ import annotations

import os
import random
import shutil
from collections import Counter
from pathlib import Path

from tests.torture.hosts import DriveRef, Node, Topology
from titans3.drive import fragment as fmt

SINGLE = {"none": 2, "kill": 4, "kill_commit": 3, "kill_complete": 1, "pull": 2,
          "replace": 1, "flip": 2}
CLUSTER = {"none": 1, "kill": 4, "kill_commit": 3, "kill_complete": 1, "pull": 2, "flip": 2}


class Faults:
    def __init__(self, topo: Topology, rng: random.Random) -> None:
        self.topo = topo
        self.rng = rng
        self.weights = SINGLE if topo.name == "single" else CLUSTER
        self.done: Counter[str] = Counter()
        self.flipped: set[str] = set()
        self.pulled: DriveRef | None = None

    def draw(self) -> str:
        kinds, weights = zip(*self.weights.items(), strict=True)
        kind = self.rng.choices(kinds, weights)[0]
        if kind in ("pull", "replace") and self.pulled is not None:
            kind = "flip"  # one unit out at a time
        if kind.startswith("kill") and self.pulled is not None and self.topo.name != "single":
            kind = "none" if self.rng.random() < 0.5 else "flip"
        return kind

    def note(self, kind: str) -> None:
        self.done[kind] += 1

    # ----------------------------------------------------------- units
    def victim_node(self) -> Node:
        live = self.topo.live()
        return self.rng.choice(live)

    def pull(self, ref: DriveRef | None = None) -> DriveRef:
        assert self.pulled is None, "one drive out at a time"
        ref = ref or self.rng.choice(self.topo.drives)
        ref.path.rename(ref.pulled_path)
        self.pulled = ref
        return ref

    def replace(self, ref: DriveRef, n: int) -> None:
        """Swap ``ref``'s directory (its node is down) for nothing: the node formats a blank one."""
        assert not ref.node.up and self.pulled is None
        gone = ref.path.with_name(f"{ref.path.name}.replaced-{n}")
        ref.path.rename(gone)
        shutil.rmtree(gone)

    def put_back(self) -> DriveRef | None:
        ref, self.pulled = self.pulled, None
        if ref is not None:
            ref.pulled_path.rename(ref.path)
        return ref

    # ------------------------------------------------------------ flips
    def flip(self, max_files: int = 3) -> list[str]:
        """Flip one byte in up to ``max_files`` fragment files; returns what was done."""
        by_id: dict[str, list[Path]] = {}
        for p in self.topo.fragment_files():
            by_id.setdefault(p.name, []).append(p)
        n = self.topo.k + self.topo.m
        eligible = sorted(i for i, ps in by_id.items() if len(ps) == n and i not in self.flipped)
        done = []
        for data_id in self.rng.sample(eligible, min(max_files, len(eligible))):
            path = self.rng.choice(sorted(by_id[data_id]))
            where = flip_one_byte(path, self.rng, header=self.rng.random() < 0.2)
            if where is not None:
                self.flipped.add(data_id)
                done.append(f"{drive_of(path)}:{data_id[:8]}@{where}")
        return done


def drive_of(path: Path) -> str:
    """``host2/drive-0`` for ``.../host2/drive-0/chunks/xx/yy/<id>``."""
    drive = path.parents[3]
    return f"{drive.parent.name}/{drive.name}"


def flip_one_byte(path: Path, rng: random.Random, *, header: bool = False) -> int | None:
    """XOR one bit of ``path``: in the header's checked fields, or in a block's logical
    payload (never the last block's padding, which no checksum covers)."""
    with open(path, "r+b") as f:
        head = f.read(fmt.HEADER_SIZE)
        try:
            hdr = fmt.unpack_header(head)
        except fmt.FragmentFormatError:
            return None
        if header:
            offset = rng.randrange(8, 100)  # version .. data id: all under the header check
        elif hdr.logical_len == 0:
            return None
        else:
            pos = rng.randrange(hdr.logical_len)
            block, within = divmod(pos, fmt.PAYLOAD)
            offset = fmt.HEADER_SIZE + block * fmt.BLOCK + fmt.DIGEST_SIZE + within
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ (1 << rng.randrange(8))]))
        f.flush()
        os.fsync(f.fileno())
    return offset
