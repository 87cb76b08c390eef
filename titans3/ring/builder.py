"""Deterministic partition ring (DESIGN §3).

Theory of operation
-------------------
``2**P`` partitions; an object's partition is the top ``P`` bits of
``blake3(bucket_id ‖ key)``.  The ring table maps every partition to an ordered
tuple of ``n = k + m`` drives: position ``i`` holds fragment ``i``.

The table is built by weighted rendezvous hashing (highest random weight): for
each partition every drive gets a score from ``blake3(partition ‖ drive_id)``
scaled by its weight, and drives are taken best-score first *one per host per
round* -- so a stripe lands on as many distinct hosts as exist, and no host
holds more than ``ceil(n / hosts)`` of its fragments.  Rendezvous hashing moves
the minimum: adding or removing a drive only changes the partitions whose top
choices involve that drive.  The result depends only on the member list, never
on insertion order, so every host computes the same table.

The table is a plain value (``Ring``) with a version; later work replicates it
as a system record and keeps the old one live during a rebalance.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import blake3

DEFAULT_PARTITION_POWER = 10


@dataclass(frozen=True, slots=True)
class Member:
    drive_id: str
    host: str
    weight: float = 1.0


@dataclass(frozen=True, slots=True)
class Ring:
    version: int
    partition_power: int
    n: int
    members: tuple[Member, ...]
    table: tuple[tuple[int, ...], ...]  # partition -> member indexes, fragment order

    def partition_of(self, bucket_id: bytes, key: bytes) -> int:
        h = blake3.blake3(bucket_id + key).digest(8)
        return int.from_bytes(h, "big") >> (64 - self.partition_power)

    def drives_for(self, bucket_id: bytes, key: bytes) -> list[str]:
        """Drive ids of the object's fragments, fragment index order."""
        row = self.table[self.partition_of(bucket_id, key)]
        return [self.members[i].drive_id for i in row]

    def handoffs_for(self, bucket_id: bytes, key: bytes) -> list[str]:
        """Drive ids that take a fragment while its primary is down, in order.

        Deterministic (a pure function of the ring and the name), so writers
        and readers agree: the drives outside the stripe, best rendezvous
        score first, then the stripe's own drives in fragment order -- a ring
        with no spare drives (6 drives, 4+2) doubles a fragment up on a live
        primary rather than refusing a write the scheme can still make
        durable (see titans3.objects.handoff).
        """
        p = self.partition_of(bucket_id, key)
        row = self.table[p]
        inrow = set(row)
        spare = sorted((i for i in range(len(self.members)) if i not in inrow),
                       key=lambda i: _score(p, self.members[i]), reverse=True)
        return [self.members[i].drive_id for i in (*spare, *row)]

    def partitions_of(self, drive_id: str) -> list[int]:
        idx = next(i for i, m in enumerate(self.members) if m.drive_id == drive_id)
        return [p for p, row in enumerate(self.table) if idx in row]


def _score(partition: int, member: Member) -> float:
    h = blake3.blake3(partition.to_bytes(4, "big") + member.drive_id.encode()).digest(8)
    u = (int.from_bytes(h, "big") + 1) / float(1 << 64)  # (0, 1]
    # Weighted rendezvous: -w / ln(u) keeps each drive's share proportional to w.
    return -member.weight / math.log(u) if u < 1.0 else math.inf


def build_ring(
    members: Sequence[Member], n: int, *, partition_power: int = DEFAULT_PARTITION_POWER, version: int = 1
) -> Ring:
    if not members:
        raise ValueError("a ring needs at least one drive")
    if n > len(members):
        raise ValueError(f"a stripe of {n} fragments needs at least {n} drives, have {len(members)}")
    ordered = tuple(sorted(members, key=lambda m: m.drive_id))
    table: list[tuple[int, ...]] = []
    for p in range(1 << partition_power):
        ranked = sorted(range(len(ordered)), key=lambda i: _score(p, ordered[i]), reverse=True)
        chosen: list[int] = []
        taken: set[int] = set()
        while len(chosen) < n:
            hosts_this_round: set[str] = set()
            for i in ranked:
                if i in taken or ordered[i].host in hosts_this_round:
                    continue
                hosts_this_round.add(ordered[i].host)
                chosen.append(i)
                taken.add(i)
                if len(chosen) == n:
                    break
        table.append(tuple(chosen))
    return Ring(version, partition_power, n, ordered, tuple(table))
