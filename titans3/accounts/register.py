"""A quorum register of small documents on every drive (DESIGN §4 system records).

Theory of operation
-------------------
A :class:`SystemTable` is one named meta table present on every drive of the
cluster.  Each entry is an envelope ``{vid, doc, del}``: the version id is
drawn from the hybrid clock, so "newest" is well defined across hosts.

* **Reads** ask every drive and need a majority of answers; the newest
  envelope wins, so every acknowledged write is seen (any two majorities
  overlap).
* **Plain writes** (:meth:`SystemTable.write`, for keys only one host ever
  writes, like its own audit blocks) go to every drive and succeed on a
  majority.
* **Updates** (:meth:`SystemTable.update`, for records several hosts may
  change at once: users, keys, the account) are read-modify-write made safe
  by compare-and-set: each drive takes the new envelope only if it still
  holds what was read from it (``Drive.swap_meta``).  A majority of takers
  means no concurrent updater can also have one; short of that the takers are
  put back and the update is retried with a fresh read, a few times, before
  it fails with ``OperationAborted`` (409, retry).

The drives come from a callable because a cluster's drive list grows when
hosts join (``ObjectStore.add_drives``) or is replaced when the store is
rebuilt: the table always works on the current one.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgpack
import trio

from titans3.core.errors import DriveError, OperationAborted, QuorumError

if TYPE_CHECKING:  # types only: the clock and the drives are handed in by the host wiring
    from titans3.drive.protocol import Drive
    from titans3.objects.versionid import HybridClock

__all__ = ["Envelope", "SystemTable"]

UPDATE_ATTEMPTS = 6
REPAIR_MAX = 1000  # records written back per listing
PAGE = 1000


@dataclass(frozen=True, slots=True)
class Envelope:
    vid: str
    doc: Any
    deleted: bool = False

    def pack(self) -> bytes:
        return msgpack.packb({"vid": self.vid, "doc": self.doc, "del": self.deleted}, use_bin_type=True)

    @classmethod
    def unpack(cls, raw: bytes) -> Envelope:
        d = msgpack.unpackb(raw, raw=False)
        return cls(d["vid"], d.get("doc"), bool(d.get("del")))


def _newest(raws: Sequence[bytes | None]) -> Envelope | None:
    best: Envelope | None = None
    for raw in raws:
        if raw is None:
            continue
        try:
            env = Envelope.unpack(raw)
        except (ValueError, KeyError, TypeError, msgpack.UnpackException):
            continue  # a damaged copy on one drive: the others decide
        if best is None or env.vid > best.vid:
            best = env
    return best


class SystemTable:
    def __init__(self, drives: Callable[[], Sequence[Drive]], clock: HybridClock, table: str) -> None:
        self._drives = drives
        self.clock = clock
        self.table = table

    @property
    def drives(self) -> list[Drive]:
        return list(self._drives())

    @staticmethod
    def majority(n: int) -> int:
        return n // 2 + 1

    # ------------------------------------------------------------ reads
    async def _read_all(self, key: bytes, drives: Sequence[Drive]) -> dict[int, bytes | None]:
        seen: dict[int, bytes | None] = {}

        async def one(i: int) -> None:
            with contextlib.suppress(DriveError):
                seen[i] = await drives[i].get_meta(self.table, key)

        async with trio.open_nursery() as nursery:
            for i in range(len(drives)):
                nursery.start_soon(one, i)
        if len(seen) < self.majority(len(drives)):
            raise QuorumError(f"too few drives answered to read {self.table} record")
        return seen

    async def read(self, key: bytes) -> Envelope | None:
        """The newest envelope of ``key`` on a majority (deleted ones included)."""
        drives = self.drives
        env = _newest(list((await self._read_all(key, drives)).values()))
        if env is not None:
            self.clock.observe(env.vid)
        return env

    async def read_versions(self, key: bytes) -> list[Envelope]:
        """Every distinct envelope of ``key`` that any answering drive holds."""
        drives = self.drives
        seen = await self._read_all(key, drives)
        out: dict[str, Envelope] = {}
        for raw in seen.values():
            if raw is None:
                continue
            with contextlib.suppress(ValueError, KeyError, TypeError, msgpack.UnpackException):
                env = Envelope.unpack(raw)
                out.setdefault(env.vid, env)
        return list(out.values())

    async def scan_drive(self, drive: Drive, prefix: bytes = b"") -> list[tuple[bytes, bytes]]:
        """Every raw entry under ``prefix`` of one drive's table (for audits and repair)."""
        rows: list[tuple[bytes, bytes]] = []
        start: bytes | None = None
        while True:
            page = await drive.list_meta(self.table, prefix=prefix, start_after=start, limit=PAGE)
            rows.extend(page)
            if len(page) < PAGE:
                return rows
            start = page[-1][0]

    async def list(
        self, prefix: bytes = b"", *, repair: bool = False, keep: frozenset[bytes] = frozenset()
    ) -> dict[bytes, Envelope]:
        """Newest envelope per key under ``prefix``, from a majority of drives.

        ``repair``: drives that answered without the newest copy get it written
        back (read repair) -- drives a cluster join added start empty, and a
        record must stay on a majority when its first holders leave.  Keys in
        ``keep`` are not repaired (their owner reconciles them otherwise)."""
        drives = self.drives
        answers: dict[int, dict[bytes, bytes]] = {}

        async def one(i: int) -> None:
            with contextlib.suppress(DriveError):
                answers[i] = dict(await self.scan_drive(drives[i], prefix))

        async with trio.open_nursery() as nursery:
            for i in range(len(drives)):
                nursery.start_soon(one, i)
        if len(answers) < self.majority(len(drives)):
            raise QuorumError(f"too few drives answered to list {self.table}")
        merged: dict[bytes, list[bytes | None]] = {}
        for rows in answers.values():
            for k, raw in rows.items():
                merged.setdefault(k, []).append(raw)
        out: dict[bytes, Envelope] = {}
        stale: list[tuple[int, bytes, bytes]] = []
        for k, raws in merged.items():
            env = _newest(raws)
            if env is None:
                continue
            out[k] = env
            self.clock.observe(env.vid)
            if repair and k not in keep:
                packed = env.pack()
                stale += [(i, k, packed) for i, rows in answers.items()
                          if k not in rows or _newest([rows[k]]) != env]  # fmt: skip
        if stale:
            await self._repair(drives, stale[:REPAIR_MAX])
        return out

    async def _repair(self, drives: Sequence[Drive], stale: Sequence[tuple[int, bytes, bytes]]) -> None:
        async def one(i: int, key: bytes, raw: bytes) -> None:
            with contextlib.suppress(DriveError):
                # Only if the drive still holds what it answered: never over a newer write.
                current = await drives[i].get_meta(self.table, key)
                if current is None or (_newest([current]) or Envelope("", None)).vid < Envelope.unpack(raw).vid:
                    await drives[i].swap_meta(self.table, key, raw, current)

        async with trio.open_nursery() as nursery:
            for i, key, raw in stale:
                nursery.start_soon(one, i, key, raw)

    # ------------------------------------------------------------ writes
    async def write(self, key: bytes, doc: Any, *, deleted: bool = False) -> Envelope:
        """Last-writer-wins put to every drive; a majority must take it."""
        env = Envelope(self.clock.new_id(), doc, deleted)
        await self.put_raw(key, env.pack())
        return env

    async def put_raw(self, key: bytes, raw: bytes) -> None:
        drives = self.drives
        ok = 0

        async def one(d: Drive) -> None:
            nonlocal ok
            with contextlib.suppress(DriveError):
                await d.put_meta(self.table, key, raw)
                ok += 1

        async with trio.open_nursery() as nursery:
            for d in drives:
                nursery.start_soon(one, d)
        if ok < self.majority(len(drives)):
            raise QuorumError(f"too few drives took the {self.table} record")

    async def update(self, key: bytes, mutate: Callable[[Any], Any]) -> Envelope:
        """Compare-and-set ``key`` to ``mutate(current doc or None)`` (module doc).

        ``mutate`` may raise to refuse (the error propagates, nothing is
        written) and returns the new document, or None to delete.
        """
        for attempt in range(UPDATE_ATTEMPTS):
            env = await self._try_update(key, mutate)
            if env is not None:
                return env
            await trio.sleep(random.uniform(0.005, 0.02) * (attempt + 1))
        raise OperationAborted("Another update of this record is in progress; please try again.")

    async def _try_update(self, key: bytes, mutate: Callable[[Any], Any]) -> Envelope | None:
        """One compare-and-set round: the new envelope, or None when it lost a race."""
        drives = self.drives
        seen = await self._read_all(key, drives)
        current = _newest(list(seen.values()))
        if current is not None:
            self.clock.observe(current.vid)
        doc = mutate(None if current is None or current.deleted else current.doc)
        env = Envelope(self.clock.new_id(), doc, doc is None)
        packed = env.pack()
        won: list[int] = []
        unsure: list[int] = []

        async def swap(i: int) -> None:
            try:
                if await drives[i].swap_meta(self.table, key, packed, seen[i]):
                    won.append(i)
            except DriveError:
                unsure.append(i)

        async with trio.open_nursery() as nursery:
            for i in seen:
                nursery.start_soon(swap, i)
        if len(won) >= self.majority(len(drives)):
            async def settle(i: int) -> None:  # the rest converge on the winner: us
                with contextlib.suppress(DriveError):
                    await drives[i].put_meta(self.table, key, packed)

            async with trio.open_nursery() as nursery:
                for i in range(len(drives)):
                    if i not in won:
                        nursery.start_soon(settle, i)
            return env

        async def undo(i: int) -> None:
            with contextlib.suppress(DriveError):
                await drives[i].swap_meta(self.table, key, seen[i], packed)

        with trio.CancelScope(shield=True):
            async with trio.open_nursery() as nursery:
                for i in won + unsure:
                    nursery.start_soon(undo, i)
        return None
