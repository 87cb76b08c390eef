"""Ring changes: the next ring from the current one, and the ring document (pure).

Theory of operation
-------------------
``build_ring`` is the *ideal* table for a member list.  A running cluster does
not jump to it: :func:`next_ring` keeps every fragment position of the current
ring whose drive is still in the partition's ideal set, and replaces the others
with the ideal newcomers -- at most ``max_moves`` positions per partition per
epoch (DESIGN §3: at most ``m``, so the ``k`` untouched positions always hold a
readable copy of every object while the move runs).  A member that is leaving
stays in the new ring's member tuple while some partition still names it; the
next epoch (``next_ring`` of the result) moves the rest.  ``converged`` says
when no epoch is left.

Positions are kept stable because a fragment's index is its position: moving
drive X from position 2 to position 0 would move a fragment that need not move.

The ring travels between hosts as a JSON document (:func:`ring_to_doc`) with its
version; a host adopts a document whose version is newer than its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from titans3.ring.builder import Member, Ring, build_ring


def ring_to_doc(ring: Ring) -> dict[str, Any]:
    return {
        "version": ring.version,
        "partition_power": ring.partition_power,
        "n": ring.n,
        "members": [[m.drive_id, m.host, m.weight] for m in ring.members],
        "table": [list(row) for row in ring.table],
    }


def ring_from_doc(doc: dict[str, Any]) -> Ring:
    members = tuple(Member(str(d), str(h), float(w)) for d, h, w in doc["members"])
    table = tuple(tuple(int(i) for i in row) for row in doc["table"])
    n = int(doc["n"])
    if any(len(row) != n or any(not 0 <= i < len(members) for i in row) for row in table):
        raise ValueError("ring document: a table row does not match n/members")
    return Ring(int(doc["version"]), int(doc["partition_power"]), n, members, table)


def next_ring(current: Ring, members: Sequence[Member], *, max_moves: int, n: int | None = None) -> Ring:
    """The next epoch's ring toward ``build_ring(members, n)``; version + 1.

    ``n`` wider than the current ring's (the cluster's scheme widened when
    hosts joined, titans3.cluster.scheme) keeps the current positions' rules
    -- objects already written use only the first ``current.n`` positions, so
    those move toward the ideal row's first ``current.n`` drives (which spreads
    them onto the new hosts) -- and appends the ideal row's other drives as the
    new positions, which hold nothing yet.  Narrowing is refused: objects
    written with the wider stripe would lose their last positions."""
    if max_moves < 1:
        raise ValueError("max_moves must be at least 1")
    n = current.n if n is None else n
    if n < current.n:
        raise ValueError(f"a ring of {current.n} positions cannot narrow to {n}")
    ideal = build_ring(members, n, partition_power=current.partition_power)
    wanted = {m.drive_id: m for m in ideal.members}
    rows: list[list[Member]] = []
    for p in range(1 << current.partition_power):
        row = [current.members[i] for i in current.table[p]]
        # A row's first current.n ideal drives == build_ring(members, current.n)'s
        # row (the builder fills positions in order), so with n unchanged this is
        # the whole ideal row.
        ideal_ids = [ideal.members[i].drive_id for i in ideal.table[p]][: current.n]
        have = {m.drive_id for m in row}
        incoming = [wanted[d] for d in ideal_ids if d not in have]
        # Outgoing positions: a departed member first (it must go), then any
        # drive the ideal set no longer names.
        out = [j for j, m in enumerate(row) if m.drive_id not in wanted]
        out += [j for j, m in enumerate(row) if m.drive_id in wanted and m.drive_id not in ideal_ids]
        for j in out[:max_moves]:
            if not incoming:
                break
            # Prefer a newcomer on the outgoing drive's host (keeps the spread).
            pick = next((x for x in incoming if x.host == row[j].host), incoming[0])
            incoming.remove(pick)
            row[j] = wanted[pick.drive_id]
        have = {m.drive_id for m in row}
        for i in ideal.table[p]:  # new positions (n > current.n): the ideal's other drives
            if len(row) == n:
                break
            if ideal.members[i].drive_id not in have:
                row.append(ideal.members[i])
                have.add(ideal.members[i].drive_id)
        rows.append(row)
    used = {m.drive_id: m for row in rows for m in row}
    for m in ideal.members:
        used.setdefault(m.drive_id, m)
    ordered = tuple(sorted(used.values(), key=lambda m: m.drive_id))
    index = {m.drive_id: i for i, m in enumerate(ordered)}
    table = tuple(tuple(index[m.drive_id] for m in row) for row in rows)
    return Ring(current.version + 1, current.partition_power, n, ordered, table)


def same_placement(a: Ring, b: Ring) -> bool:
    """Both rings put every partition's fragments on the same drives."""
    if a.partition_power != b.partition_power or a.n != b.n:
        return False
    return all(
        [a.members[i].drive_id for i in ra] == [b.members[i].drive_id for i in rb]
        for ra, rb in zip(a.table, b.table, strict=True)
    )


def converged(current: Ring, members: Sequence[Member], *, max_moves: int) -> bool:
    return same_placement(current, next_ring(current, members, max_moves=max_moves))


def moved_positions(old: Ring, new: Ring, partition: int) -> list[int]:
    """Fragment positions of ``partition`` whose drive differs between the rings."""
    a = [old.members[i].drive_id for i in old.table[partition]]
    b = [new.members[i].drive_id for i in new.table[partition]]
    return [j for j in range(len(a)) if a[j] != b[j]]
