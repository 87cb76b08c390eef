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
  fewer answers -- but never conclude "absent" from them.  A read may see an
  update still in flight (accepted on a minority so far), as any quorum read
  may see a write in progress.
* **Plain writes** (:meth:`~SystemTable.write`, for keys only one host ever
  writes, like its own audit blocks, or last-writer-wins settings) go to
  every drive and succeed on a majority.
* **Updates** (:meth:`~SystemTable.update`, for records several hosts may
  change at once: users, keys, the account) are single-decree Paxos per
  change, on top of each drive's compare-and-set (``Drive.swap_meta``) --
  the CASPaxos construction, with the drives as acceptors and every updater
  a proposer.  A round draws a ballot from the hybrid clock and (1) asks
  every drive to *promise* it (an entry keeps the highest ballot promised,
  ``p``, beside the accepted envelope, whose version id is the ballot that
  wrote it); a majority of promises gives the newest accepted envelope among
  them, the current document; (2) ``mutate`` makes the new document from it,
  and every drive is asked to *accept* it at the ballot, refused where a
  higher ballot was promised meanwhile.  A majority of accepts is success.
  No round ever puts anything back: a round that lost leaves at most an
  accepted envelope on a minority, which a later round may find as newest
  and build on -- safe, because a value accepted at ballot ``b`` was made
  from the newest value any majority had accepted before ``b``, so it
  contains every change acknowledged before it (the lost update of a plain
  read-modify-write cannot happen: ``tests/accounts/test_register.py``
  races updaters, and ``tests/integration/test_access_cluster.py`` three
  hosts).  A lost round is retried with a higher ballot after a randomized,
  growing back-off, for up to ``UPDATE_BUDGET`` seconds (time, not a count:
  under load rounds are slow, not fewer), before ``OperationAborted`` (409,
  retry).  Each update tags its envelope with a one-off id (``op``), and an
  envelope made from another keeps that one's ids (``ops``, the last
  ``OPS_KEPT``): a lost round's envelope, accepted on a minority, may be
  found and *built on* by another updater, so the change is in although its
  round lost.  A retry that finds its id in the current envelope re-proposes
  that document instead of applying ``mutate`` twice (which would refuse --
  "alias taken" -- a change that landed, or make it twice).
* Keys written with :meth:`~SystemTable.write` (last-writer-wins) must not
  also be updated: a plain write does not respect promises.
* **Repair**: reads and listings asked to (``repair=True``) write the newest
  envelope back, by compare-and-set and only onto drives that have seen no
  higher ballot (a late copy of that round's accept, which Paxos tolerates),
  to drives that answered without it --
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
import secrets
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

UPDATE_BUDGET = 30.0  # s an update keeps retrying lost rounds before OperationAborted
BACKOFF_MIN = 0.002  # s: the smallest unit of the randomized back-off after a lost round
BACKOFF_MAX = 0.5  # s: the back-off's ceiling (the budget, not the ceiling, bounds the wait)
OPS_KEPT = 32  # update ids an envelope remembers (a retried update finds its change in them)
CAS_TRIES = 4  # compare-and-set retries on one drive within a phase (its entry changed under us)
REPAIR_MAX = 1000  # records written back per listing
PAGE = 1000


class Clock(Protocol):
    """The hybrid logical clock (``titans3.objects.versionid.HybridClock``)."""

    def new_id(self) -> str: ...

    def observe(self, version_id: str) -> None: ...


@dataclass(frozen=True, slots=True)
class Envelope:
    """One drive's entry: the accepted document and its version id (the ballot
    that wrote it; ``""``: nothing accepted yet), the highest ballot the drive
    promised (``promise``, ``""``: none beyond ``vid``), the id of the update
    that wrote it (``op``) and of the updates before it that the document
    already holds (``ops``, oldest first, at most OPS_KEPT)."""

    vid: str
    doc: Any
    deleted: bool = False
    promise: str = ""
    op: str = ""
    ops: tuple[str, ...] = ()

    def pack(self) -> bytes:
        d: dict[str, Any] = {"vid": self.vid, "doc": self.doc, "del": self.deleted}
        if self.promise > self.vid:
            d["p"] = self.promise
        if self.op:
            d["op"] = self.op
        if self.ops:
            d["ops"] = list(self.ops)
        return msgpack.packb(d, use_bin_type=True)

    @classmethod
    def unpack(cls, raw: bytes) -> Envelope:
        d = msgpack.unpackb(raw, raw=False)
        if "doc" not in d and "v" in d:  # the first register's format: {vid, v}, None = deleted
            return cls(str(d["vid"]), d["v"], d["v"] is None)
        return cls(str(d["vid"]), d.get("doc"), bool(d.get("del")), str(d.get("p") or ""),
                   str(d.get("op") or ""), tuple(str(o) for o in d.get("ops") or ()))

    def holds(self, op: str) -> bool:
        """The document already contains update ``op``'s change."""
        return bool(op) and (op == self.op or op in self.ops)

    def history(self) -> tuple[str, ...]:
        """``ops`` for a document made from this one."""
        return ((*self.ops, self.op) if self.op else self.ops)[-OPS_KEPT:]

    @property
    def live(self) -> Any:
        """The document, or None if deleted."""
        return None if self.deleted else self.doc

    @property
    def ballot(self) -> str:
        """The highest ballot this entry has seen (promised or accepted)."""
        return max(self.vid, self.promise)


def _parse(raw: bytes | None) -> Envelope | None:
    if raw is None:
        return None
    try:
        return Envelope.unpack(raw)
    except (ValueError, KeyError, TypeError, AttributeError, msgpack.UnpackException):
        return None  # a damaged copy on one drive: the others decide


def _newest(raws: Sequence[bytes | None]) -> Envelope | None:
    """The accepted envelope with the highest version id (promises alone do not count)."""
    best: Envelope | None = None
    for raw in raws:
        env = _parse(raw)
        if env is None or not env.vid:
            continue
        if best is None or env.vid > best.vid:
            best = env
    return best


def _vid_of(raw: bytes | None) -> str:
    env = _parse(raw)
    return env.vid if env is not None else ""


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
                stale = [(i, key, packed) for i, raw in seen.items() if _vid_of(raw) != env.vid]
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
            env = _parse(raw)
            if env is not None and env.vid:
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
                          if _vid_of(rows.get(k)) != env.vid]  # fmt: skip
        if stale:
            await self._repair(drives, stale[:REPAIR_MAX])
        return out

    async def _repair(self, drives: Sequence[Drive], stale: Sequence[tuple[int, bytes, bytes]]) -> None:
        async def one(i: int, key: bytes, raw: bytes) -> None:
            with contextlib.suppress(DriveError):
                # Only onto a drive that has seen no higher ballot -- never over a
                # newer write, never breaking a promise given to an update in flight.
                current = await drives[i].get_meta(self.table, key)
                held = _parse(current)
                if held is None or held.ballot < Envelope.unpack(raw).vid:
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
        """Change ``key`` to ``mutate(current doc or None)``, safely against
        concurrent updaters on any host (module doc: a Paxos round per try).

        ``mutate`` may raise to refuse (the error propagates, nothing more is
        written) and returns the new document, or None to delete.  It is
        applied to the current document of each round, so it may run more than
        once and must not have effects of its own.
        """
        op = secrets.token_hex(8)
        deadline = trio.current_time() + UPDATE_BUDGET
        unit = BACKOFF_MIN
        lost = 0
        while True:
            started = trio.current_time()
            env = await self._round(key, mutate, op)
            if env is not None:
                return env
            # Dueling updaters: back off for a random time ("full jitter") up to
            # a doubling multiple of the slowest round seen here -- drive latency
            # and load, not a constant: one fast round under a loaded CPU must
            # not shrink the wait below what the rival's round takes -- so one of
            # them soon gets a whole round to itself.  The budget is time, not a
            # count of rounds: a loaded host's rounds are slow, not fewer.
            unit = max(unit, trio.current_time() - started)
            lost += 1
            wait = random.uniform(0.0, min(BACKOFF_MAX, unit * 2 ** min(lost, 16)))
            if trio.current_time() + wait > deadline:
                raise OperationAborted("Another update of this record is in progress; please try again.")
            await trio.sleep(wait)

    async def _cas(self, drive: Drive, key: bytes, raw: bytes | None,
                   step: Callable[[Envelope | None], Envelope | None]) -> tuple[bytes, Envelope | None] | None:
        """Compare-and-set one drive's entry to ``step(entry)`` (None: refuse),
        re-reading when the entry changed under us.  Returns (what was written,
        the entry it replaced), or None (refused, contended, or a drive error)."""
        try:
            for tries in range(CAS_TRIES):
                if tries:
                    raw = await drive.get_meta(self.table, key)
                held = _parse(raw)
                if raw is not None and held is None:
                    return None  # a damaged entry: this drive sits the round out
                new = step(held)
                if new is None:
                    return None
                packed = new.pack()
                if await drive.swap_meta(self.table, key, packed, raw):
                    return packed, held
        except DriveError:
            pass
        return None

    async def _round(self, key: bytes, mutate: Callable[[Any], Any], op: str) -> Envelope | None:
        """One Paxos round: the accepted envelope, or None when a higher ballot
        got in the way (the caller retries with a newer one)."""
        drives = self.drives
        need = self.majority(len(drives))
        ballot = self.clock.new_id()
        seen = await self._answers(key, drives)
        if len(seen) < need:
            raise QuorumError(f"{len(seen)} of {len(drives)} drives answered to update a {self.table} record")
        # A dry run on what the read found: a refusal (the user exists, no such
        # key, ...) raises before anything -- not even a promise -- is written.
        looks = _newest(list(seen.values()))
        if looks is None or not looks.holds(op):
            mutate(None if looks is None or looks.deleted else looks.doc)

        # Phase 1: promises (a drive that saw a ballot >= ours refuses).
        promised: dict[int, tuple[bytes, Envelope | None]] = {}
        higher: list[str] = []

        def promise(held: Envelope | None) -> Envelope | None:
            if held is None:
                return Envelope("", None, False, ballot)
            if held.ballot >= ballot:
                higher.append(held.ballot)
                return None
            return Envelope(held.vid, held.doc, held.deleted, ballot, held.op, held.ops)

        async def prepare(i: int) -> None:
            got = await self._cas(drives[i], key, seen[i], promise)
            if got is not None:
                promised[i] = got

        async with trio.open_nursery() as nursery:
            for i in seen:
                nursery.start_soon(prepare, i)
        for b in higher:
            self.clock.observe(b)  # the next ballot must beat what refused this one
        if len(promised) < need:
            return None
        accepted = [held for _, held in promised.values() if held is not None and held.vid]
        current = max(accepted, key=lambda e: e.vid, default=None)
        if current is not None:
            self.clock.observe(current.vid)
        if current is not None and current.holds(op):
            # An earlier round of ours got in -- accepted on a minority, maybe built
            # on by another updater since: do not apply it twice.
            doc, deleted = current.doc, current.deleted
        else:
            doc = mutate(None if current is None or current.deleted else current.doc)
            deleted = doc is None
        ops = tuple(o for o in current.history() if o != op) if current is not None else ()
        new = Envelope(ballot, doc, deleted, "", op, ops)

        # Phase 2: accepts, refused where a higher ballot was promised meanwhile.
        took = 0

        def accept(held: Envelope | None) -> Envelope | None:
            if held is not None and held.ballot > ballot:
                higher.append(held.ballot)
                return None
            return new

        async def propose(i: int) -> None:
            nonlocal took
            got = await self._cas(drives[i], key, promised[i][0], accept)
            if got is not None:
                took += 1

        async with trio.open_nursery() as nursery:
            for i in promised:
                nursery.start_soon(propose, i)
        for b in higher:
            self.clock.observe(b)
        if took < need:
            return None
        # Drives that sat the round out catch up (only where no higher ballot is known).
        behind = [(i, key, new.pack()) for i in range(len(drives)) if i not in promised]
        if behind:
            await self._repair(drives, behind)
        return new


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
