"""Small cluster-wide system records: a last-writer-wins quorum register.

Theory of operation
-------------------
DESIGN §4: settings that belong to the cluster rather than to one host are
*system records*, kept on every drive and written and read with a majority.
This module is the generic register for small ones (the status page's admin
password hash is the first): each record is one entry ``name`` in every
drive's ``system`` meta table, ``msgpack {"vid": version id, "v": value}``.

* **write**: a new version id from the store's hybrid clock, put on every
  drive; success when a majority of *all* drives took it (QuorumError else).
  A delete writes ``v = None`` (a tombstone), so a drive that missed it
  cannot bring the value back.
* **read**: ask every drive, wait for a majority of answers, take the newest
  version id -- every read sees every acknowledged write, because two
  majorities overlap.  Drives that answered with an older version (or none)
  get the newest written back in the background (read repair): drives added
  by a cluster join start empty, and repair keeps the record on a majority
  when the original holders leave.

``forget_local`` removes a record from some drives without a tombstone: a host
that joins a cluster drops the record it had alone, so the cluster's own
(older by clock, but the cluster's) is the one its reads find.

The drive list is read through a callable on every call: a cluster join or a
disk replacement changes it in place or swaps the store.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence

import msgpack
import trio

from titans3.core.errors import DriveError, QuorumError
from titans3.drive.protocol import Drive
from titans3.objects.versionid import HybridClock

log = logging.getLogger(__name__)

TABLE = "system"
# The records kept here (name -> owner), so two fronts never disagree on a name.
ADMIN_PASSWORD = "web/admin-password"  # the status page's Argon2id hash (titans3/web/auth.py)


def _unpack(raw: bytes | None) -> tuple[str, bytes | None] | None:
    if raw is None:
        return None
    try:
        doc = msgpack.unpackb(raw, raw=False)
        return str(doc["vid"]), doc.get("v")
    except (ValueError, KeyError, TypeError, msgpack.UnpackException):
        return None


class SystemRecords:
    def __init__(self, drives: Callable[[], Sequence[Drive]], clock: Callable[[], HybridClock]) -> None:
        self._drives = drives
        self._clock = clock

    @staticmethod
    def _majority(n: int) -> int:
        return n // 2 + 1

    async def get(self, name: str, *, partial: bool = False) -> bytes | None:
        """The newest value of ``name`` seen by a majority (None: unset or deleted).

        ``partial``: if fewer than a majority answer but some hold the record,
        the newest of those instead of QuorumError -- for readers that must keep
        working through an outage and accept a possibly older value (the status
        page's login, when most of the cluster is down)."""
        drives = list(self._drives())
        if not drives:
            raise QuorumError(f"system record {name}: no drives")
        key = name.encode()
        answers: dict[int, tuple[str, bytes | None] | None] = {}
        enough = trio.Event()
        need = self._majority(len(drives))

        finished = 0

        async def one(i: int, d: Drive) -> None:
            nonlocal finished
            with contextlib.suppress(DriveError):
                answers[i] = _unpack(await d.get_meta(TABLE, key))
            finished += 1
            if len(answers) >= need or finished == len(drives):
                enough.set()

        async with trio.open_nursery() as nursery:
            for i, d in enumerate(drives):
                nursery.start_soon(one, i, d)
            await enough.wait()
            nursery.cancel_scope.cancel()
        found = [a for a in answers.values() if a is not None]
        # Partial answers may say what a record is, never that it is absent: a
        # minority of drives that never held it (a host that just joined) must
        # not look like "no admin password".
        if len(answers) < need and not (partial and found):
            raise QuorumError(f"system record {name}: {len(answers)} of {len(drives)} drives answered")
        if not found:
            return None
        vid, value = max(found, key=lambda a: a[0])
        stale = [drives[i] for i, a in answers.items() if a is None or a[0] < vid]
        if stale and len(answers) >= need:  # never spread what only a minority said
            await self._repair(name, vid, value, stale)
        return value

    async def _repair(self, name: str, vid: str, value: bytes | None, stale: list[Drive]) -> None:
        raw = msgpack.packb({"vid": vid, "v": value}, use_bin_type=True)
        for d in stale:
            try:
                await d.put_meta(TABLE, name.encode(), raw)
            except DriveError as e:
                log.debug("read repair of %s on %s: %s", name, d.drive_id, e)

    async def put(self, name: str, value: bytes | None) -> None:
        """Write ``value`` (None deletes) on every drive; a majority must take it."""
        drives = list(self._drives())
        raw = msgpack.packb({"vid": self._clock().new_id(), "v": value}, use_bin_type=True)
        took = 0

        async def one(d: Drive) -> None:
            nonlocal took
            try:
                await d.put_meta(TABLE, name.encode(), raw)
                took += 1
            except DriveError as e:
                log.warning("system record %s not written to %s: %s", name, d.drive_id, e)

        async with trio.open_nursery() as nursery:
            for d in drives:
                nursery.start_soon(one, d)
        if took < self._majority(len(drives)):
            raise QuorumError(f"system record {name}: only {took} of {len(drives)} drives took it")


async def forget_local(name: str, drives: Sequence[Drive]) -> None:
    """Remove ``name`` from ``drives`` without a tombstone (see module notes)."""
    for d in drives:
        try:
            await d.put_meta(TABLE, name.encode(), None)
        except DriveError as e:
            log.warning("system record %s not removed from %s: %s", name, d.drive_id, e)
