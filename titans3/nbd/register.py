"""System records: a compare-and-set register on a majority of the cluster's drives.

Theory of operation
-------------------
A record is a small msgpack document with a version id (``vid``), stored
under one key of one table on *every* drive (``Drive.put_meta`` family).

* **read**: ask every drive; a majority must answer; the answer is the record
  with the newest ``vid`` among them.  Since any two majorities share a drive,
  a read sees every write that landed on a majority.
* **swap** (compare-and-set): given what a read saw, each drive is asked to
  replace *what it held then* with the new record (``Drive.swap_meta``, one
  durable LMDB transaction).  Two writers racing from the same read cannot
  both win on one drive, so at most one of them gets a majority: that one
  succeeds -- as soon as it has the majority.  The swaps still queued on
  slower drives (a drive's commits are grouped behind its data writes) are
  cancelled then: each either landed (the record the majority holds) or not
  (the drive keeps the older one, which a read outvotes and the next swap
  replaces), so a winner never waits for the slowest drives (a writer
  lease's renewal must finish within the lease's slack).  A loser waits
  for every answer (its undo must come after its swap).  A loser puts back what it replaced and reports failure; the
  caller reads again and decides again (:meth:`QuorumRegister.update`).
* deleting writes a *tombstone* (``deleted: True``), never removes the entry,
  so a drive that missed the delete cannot bring the record back.

This is the mechanism the bucket records already use for creation
(``objects/buckets.py``), here for every write: volume records and writer
leases must never fork.  If a loser crashes before it undoes, a minority may
hold its record with a newer ``vid``; a later read that happens to include
that minority would see it.  For leases that costs at most one lease term;
the volume code only ever writes records while holding the volume's lease.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import msgpack
import trio

from titans3.core.errors import DriveError
from titans3.nbd.backend import BackendError


class Clock(Protocol):
    def new_id(self) -> str: ...

    def observe(self, version_id: str) -> None: ...


@dataclass(frozen=True, slots=True)
class Seen:
    """What a read found: the newest record and each answering drive's raw entry."""

    record: dict[str, Any] | None
    raw: dict[int, bytes | None]


def pack(doc: dict[str, Any]) -> bytes:
    return msgpack.packb(doc, use_bin_type=True)


def unpack(raw: bytes) -> dict[str, Any]:
    doc = msgpack.unpackb(raw, raw=False)
    if not isinstance(doc, dict) or not isinstance(doc.get("vid"), str):
        raise ValueError("not a system record")
    return doc


class QuorumRegister:
    def __init__(self, drives_of: Callable[[], Sequence[Any]], table: str, clock: Clock) -> None:
        self._drives_of = drives_of
        self.table = table
        self.clock = clock

    def _majority(self, n: int) -> int:
        return n // 2 + 1

    async def _all(self, drives: Sequence[Any], fn: Callable[[int, Any], Awaitable[None]]) -> None:
        async with trio.open_nursery() as nursery:
            for i, d in enumerate(drives):
                nursery.start_soon(fn, i, d)

    def _newest(self, raws: Sequence[bytes | None]) -> dict[str, Any] | None:
        best: dict[str, Any] | None = None
        for raw in raws:
            if raw is None:
                continue
            try:
                doc = unpack(raw)
            except ValueError:
                continue
            self.clock.observe(doc["vid"])
            if best is None or doc["vid"] > best["vid"]:
                best = doc
        return best

    async def read(self, key: str) -> Seen:
        drives = self._drives_of()
        raw: dict[int, bytes | None] = {}

        async def one(i: int, d: Any) -> None:
            with contextlib.suppress(DriveError):
                raw[i] = await d.get_meta(self.table, key.encode())

        await self._all(drives, one)
        if len(raw) < self._majority(len(drives)):
            raise BackendError(f"only {len(raw)} of {len(drives)} drives answered for {self.table}/{key}")
        return Seen(self._newest(list(raw.values())), raw)

    async def get(self, key: str) -> dict[str, Any] | None:
        rec = (await self.read(key)).record
        return None if rec is None or rec.get("deleted") else rec

    async def list(self) -> dict[str, dict[str, Any]]:
        """Every live record of the table: the newest per key over a majority."""
        drives = self._drives_of()
        answers: list[list[tuple[bytes, bytes]]] = []

        async def one(i: int, d: Any) -> None:
            rows: list[tuple[bytes, bytes]] = []
            start: bytes | None = None
            try:
                while True:
                    page = await d.list_meta(self.table, start_after=start, limit=1000)
                    rows += page
                    if len(page) < 1000:
                        break
                    start = page[-1][0]
            except DriveError:
                return
            answers.append(rows)

        await self._all(drives, one)
        if len(answers) < self._majority(len(drives)):
            raise BackendError(f"only {len(answers)} of {len(drives)} drives answered for {self.table}")
        by_key: dict[bytes, list[bytes | None]] = {}
        for rows in answers:
            for k, v in rows:
                by_key.setdefault(k, []).append(v)
        out = {}
        for k, raws in by_key.items():
            rec = self._newest(raws)
            if rec is not None and not rec.get("deleted"):
                out[k.decode()] = rec
        return out

    async def swap(self, key: str, seen: Seen, doc: dict[str, Any]) -> dict[str, Any] | None:
        """Write ``doc`` (a new ``vid`` is set) if the drives still hold what
        ``seen`` found on a majority; the record written, or None when another
        writer got there first."""
        drives = self._drives_of()
        new = dict(doc, vid=self.clock.new_id())
        packed = pack(new)
        won: list[int] = []
        unsure: list[int] = []

        need = self._majority(len(drives))

        async def one(i: int, d: Any, scope: trio.CancelScope) -> None:
            try:
                if await d.swap_meta(self.table, key.encode(), packed, seen.raw[i]):
                    won.append(i)
                    if len(won) >= need:
                        scope.cancel()  # it won: stragglers must not hold the caller up
            except DriveError:
                unsure.append(i)

        async with trio.open_nursery() as nursery:
            for i, d in enumerate(drives):
                if i in seen.raw:
                    nursery.start_soon(one, i, d, nursery.cancel_scope)
        if len(won) >= need:
            return new

        async def undo(i: int, d: Any) -> None:
            if i in won or i in unsure:
                with contextlib.suppress(DriveError):
                    await d.swap_meta(self.table, key.encode(), seen.raw[i], packed)

        with trio.CancelScope(shield=True):
            await self._all(drives, undo)
        return None

    async def update(self, key: str, change: Callable[[dict[str, Any] | None], dict[str, Any] | None],
                     *, attempts: int = 8) -> dict[str, Any] | None:
        """Read, apply ``change`` (None: leave as is), compare-and-set; retried
        on a lost race.  ``change`` may raise to refuse (nothing is written)."""
        for n in range(attempts):
            seen = await self.read(key)
            current = None if seen.record is None or seen.record.get("deleted") else seen.record
            doc = change(current)
            if doc is None:
                return current
            written = await self.swap(key, seen, doc)
            if written is not None:
                return written
            await trio.sleep(0.01 * (n + 1) * (1 + (hash(key) % 7) / 7))
        raise BackendError(f"{self.table}/{key}: too many concurrent updates")
