"""A quorum register of small documents on every drive (DESIGN §4 system records).

The one register of the cluster's system records: users, keys and the account
(``accounts/directory.py``), the audit chain (``accounts/audit.py``), the
status page's admin password (``web/auth.py``) -- and any front that needs a
small cluster-wide document that must never fork.

Theory of operation
-------------------
A :class:`SystemTable` is one named meta table present on every drive of the
cluster.  Each entry is an envelope ``{vid, doc, del}`` (:class:`Envelope`):
the version id is drawn from the hybrid clock, so "newest" is well defined
across hosts; a delete is a tombstone (``del``), never a removal, so a drive
that missed it cannot bring the document back.

* **Reads** (:meth:`~SystemTable.read`, :meth:`~SystemTable.get`) ask every
  drive and need a majority of answers; the newest envelope wins, so every
  acknowledged write is seen (any two majorities overlap).  ``partial=True``
  lets a reader that must keep working through an outage take the newest of
  fewer answers -- but never conclude "absent" from them.
* **Plain writes** (:meth:`~SystemTable.write`, for keys only one host ever
  writes, like its own audit blocks, or last-writer-wins settings) go to
  every drive and succeed on a majority.
* **Updates** (:meth:`~SystemTable.update`, for records several hosts may
  change at once: users, keys, the account) are read-modify-write made safe
  by compare-and-set: each drive takes the new envelope only if it still
  holds what was read from it (``Drive.swap_meta``).  A majority of takers
  means no concurrent updater can also have one; short of that the takers are
  put back and the update is retried with a fresh read, a few times, before
  it fails with ``OperationAborted`` (409, retry).
* An update builds only on a *settled* read: the newest envelope held by a
  majority of the drives, or one that stays the newest over a few re-reads.
  A newest envelope on a minority may be a racing writer's that is about to
  be put back; building on it would drop the winner's change (the lost update
  ``tests/accounts/test_register.py`` races for).  A loser that crashes
  before putting back leaves its envelope on a minority; once it stays put it
  is adopted, as a quorum register adopts any write it has seen.
* **Repair**: reads and listings asked to (``repair=True``) write the newest
  envelope back, by compare-and-set, to drives that answered without it --
  drives a cluster join added start empty, and a record must stay on a
  majority when its first holders leave.  Only after a majority answered:
  what a minority says is never spread.

The drives and the clock come from callables, read on every call: a cluster's
drive list grows when hosts join (``ObjectStore.add_drives``) and the store
(with its clock) is replaced when the cluster forms.

Interface
---------
``SystemTable(drives, clock, table)``; ``read``/``get``/``read_versions``,
``list``/``scan_drive``, ``write``/``delete``/``put_raw``, ``update``;
:func:`forget_local` drops a key from some drives without a tombstone.
Errors: ``QuorumError`` (503) when too few drives answer or take a write,
``OperationAborted`` (409) when updates keep racing.  Documents are anything
msgpack packs; keep them small (every read fetches every drive's copy).
"""

from __future__ import annotations

import contextlib
import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import msgpack
import trio

from titans3.core.errors import DriveError, OperationAborted, QuorumError

if TYPE_CHECKING:  # types only: the drives are handed in by the host wiring
    from titans3.drive.protocol import Drive

log = logging.getLogger(__name__)

__all__ = ["ADMIN_PASSWORD", "SYSTEM", "Clock", "Envelope", "SystemTable", "forget_local"]

# The generic table of small records, and the names kept in it (name -> owner),
# so two fronts never disagree on a name.  Subsystems with many records of
# their own (users and keys, the audit chain) have tables of their own.
SYSTEM = "system"
ADMIN_PASSWORD = b"web/admin-password"  # the status page's Argon2id hash (titans3/web/auth.py)

UPDATE_ATTEMPTS = 6
REPAIR_MAX = 1000  # records written back per listing
PAGE = 1000
SETTLE_READS = 3  # re-reads of an unsettled newest envelope before it is adopted


class Clock(Protocol):
    """The hybrid logical clock (``titans3.objects.versionid.HybridClock``)."""

    def new_id(self) -> str: ...

    def observe(self, version_id: str) -> None: ...


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
        if "doc" not in d and "v" in d:  # the first register's format: {vid, v}, None = deleted
            return cls(str(d["vid"]), d["v"], d["v"] is None)
        return cls(str(d["vid"]), d.get("doc"), bool(d.get("del")))

    @property
    def live(self) -> Any:
        """The document, or None if deleted."""
        return None if self.deleted else self.doc


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
    def __init__(self, drives: Callable[[], Sequence[Drive]], clock: Callable[[], Clock], table: str) -> None:
        self._drives = drives
        self._clock = clock
        self.table = table

    @property
    def drives(self) -> list[Drive]:
        return list(self._drives())

    @property
    def clock(self) -> Clock:
        return self._clock()

    @staticmethod
    def majority(n: int) -> int:
        return n // 2 + 1

    # ------------------------------------------------------------ reads
    async def _answers(self, key: bytes, drives: Sequence[Drive]) -> dict[int, bytes | None]:
        """Each answering drive's raw entry (None: it has none)."""
        seen: dict[int, bytes | None] = {}

        async def one(i: int) -> None:
            with contextlib.suppress(DriveError):
                seen[i] = await drives[i].get_meta(self.table, key)

        async with trio.open_nursery() as nursery:
            for i in range(len(drives)):
                nursery.start_soon(one, i)
        return seen

    async def _read_all(self, key: bytes, drives: Sequence[Drive]) -> dict[int, bytes | None]:
        seen = await self._answers(key, drives)
        if len(seen) < self.majority(len(drives)):
            raise QuorumError(f"{len(seen)} of {len(drives)} drives answered to read a {self.table} record")
        return seen

    async def read(self, key: bytes, *, partial: bool = False, repair: bool = False) -> Envelope | None:
        """The newest envelope of ``key`` on a majority (deleted ones included).

        ``partial``: when fewer than a majority answer but some hold the key,
        the newest of those instead of ``QuorumError`` -- possibly older than
        the last acknowledged write, never "absent" (a host that just joined
        holds nothing yet).  ``repair``: answering drives without the newest
        get it written back (after a majority answered only)."""
        drives = self.drives
        seen = await self._answers(key, drives)
        env = _newest(list(seen.values()))
        quorum = len(seen) >= self.majority(len(drives))
        if not quorum and not (partial and env is not None):
            raise QuorumError(f"{len(seen)} of {len(drives)} drives answered to read a {self.table} record")
        if env is not None:
            self.clock.observe(env.vid)
            if repair and quorum:
                packed = env.pack()
                stale = [(i, key, packed) for i, raw in seen.items() if raw is None or _newest([raw]) != env]
                if stale:
                    await self._repair(drives, stale)
        return env

    async def get(self, key: bytes, *, partial: bool = False, repair: bool = False) -> Any:
        """The live document of ``key`` (None: never written or deleted); see :meth:`read`."""
        env = await self.read(key, partial=partial, repair=repair)
        return None if env is None else env.live

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
        """Last-writer-wins put to every drive; a majority must take it.

        A write that misses its majority raises ``QuorumError`` and is not
        undone: the drives that took it keep it (as with any quorum register),
        so a later read may or may not see it -- retry to be sure."""
        env = Envelope(self.clock.new_id(), doc, deleted)
        await self.put_raw(key, env.pack())
        return env

    async def delete(self, key: bytes) -> Envelope:
        """A tombstone for ``key`` (last-writer-wins, like :meth:`write`)."""
        return await self.write(key, None, deleted=True)

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
            raise QuorumError(f"{ok} of {len(drives)} drives took the {self.table} record")

    async def update(self, key: bytes, mutate: Callable[[Any], Any]) -> Envelope:
        """Compare-and-set ``key`` to ``mutate(current doc or None)`` (module doc).

        ``mutate`` may raise to refuse (the error propagates, nothing is
        written) and returns the new document, or None to delete.  It may be
        called more than once (once per round), so it must not have effects.
        """
        lost = unsettled = 0
        while True:
            state, env = await self._try_update(key, mutate, adopt=unsettled >= SETTLE_READS)
            if env is not None:
                return env
            if state == "unsettled":  # a racing writer settles or puts back within a round trip
                unsettled += 1
                await trio.sleep(random.uniform(0.002, 0.01) * unsettled)
                continue
            lost += 1
            unsettled = 0
            if lost >= UPDATE_ATTEMPTS:
                raise OperationAborted("Another update of this record is in progress; please try again.")
            await trio.sleep(random.uniform(0.005, 0.02) * lost)

    async def _try_update(self, key: bytes, mutate: Callable[[Any], Any], *,
                          adopt: bool) -> tuple[str, Envelope | None]:
        """One compare-and-set round: ("won", envelope), ("lost", None) when a
        racing updater took a drive first, ("unsettled", None) when the newest
        envelope is on a minority and ``adopt`` is false (module doc)."""
        drives = self.drives
        seen = await self._read_all(key, drives)
        current = _newest(list(seen.values()))
        if current is not None:
            self.clock.observe(current.vid)
            holders = sum(1 for raw in seen.values() if raw is not None and _newest([raw]) == current)
            if holders < self.majority(len(drives)) and not adopt:
                return "unsettled", None
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
            # The drives that refused converge on us -- each only if it still
            # holds what it answered (never over a later update).
            async def settle(i: int) -> None:
                with contextlib.suppress(DriveError):
                    await drives[i].swap_meta(self.table, key, packed, seen[i])

            async with trio.open_nursery() as nursery:
                for i in seen:
                    if i not in won:
                        nursery.start_soon(settle, i)
            return "won", env

        async def undo(i: int) -> None:
            with contextlib.suppress(DriveError):
                await drives[i].swap_meta(self.table, key, seen[i], packed)

        with trio.CancelScope(shield=True):
            async with trio.open_nursery() as nursery:
                for i in won + unsure:
                    nursery.start_soon(undo, i)
        return "lost", None


async def forget_local(table: str, key: bytes, drives: Sequence[Drive]) -> None:
    """Remove ``key`` from ``drives`` without a tombstone.

    For a host joining a cluster: the record it held alone must go without a
    trace, so the cluster's own (older by clock, but the cluster's) is the one
    every read finds.  A drive that does not answer keeps its copy (logged)."""
    for d in drives:
        try:
            await d.put_meta(table, key, None)
        except DriveError as e:
            log.warning("system record %s/%r not removed from %s: %s", table, key, d.drive_id, e)
