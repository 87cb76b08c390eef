"""Bucket records: a cluster-wide quorum register on every drive (DESIGN §4).

Theory of operation
-------------------
Each bucket is one record in every drive's ``buckets`` table, keyed by name and
carrying a version id.  A write goes to all drives and succeeds on a majority;
a read asks all drives, needs a majority of answers, and takes the record with
the newest version id -- so every read sees every acknowledged write.  Deleting
a bucket writes a newer record marked deleted, so a drive that missed the
delete cannot bring the bucket back.

Every bucket gets a fresh random 8-byte *bucket id*; objects are keyed by it,
never by name, so a bucket deleted and created again starts empty even if GC
has not yet purged the old one's records.

Records are cached in memory after the first read; this process is the only
writer on a single host.  In a cluster other hosts write too, so the table is
built with ``cache=False``: every ``get`` is a quorum read of that one record
(the newest of a majority of drives), and list/update re-read the table --
correct without any invalidation protocol, at one small read per drive.  An
*existing* bucket's record is then reused for ``RECENT_TTL`` seconds: object
requests need it every time, and a quorum read per request dominated small
GETs.  AWS documents bucket configuration as eventually consistent, so a
versioning or CORS change made through another host showing up a second later
is within S3's contract; "no such bucket" is never cached, and this host's own
writes replace the entry at once.

**Creating is conditional in a cluster.**  Two hosts creating one name at the
same moment must not both succeed (two bucket ids: objects written through
the loser would vanish behind the winner's record).  A create is a
compare-and-set of each drive's entry against what was read from it
(``Drive.swap_meta``) and needs a majority of takers; see
:meth:`BucketTable._create_everywhere`.  Later updates (configuration, delete)
stay last-writer-wins by version id, as S3's bucket configuration is.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import msgpack
import trio

from titans3.core.errors import (
    BucketAlreadyOwnedByYou,
    DriveError,
    InvalidBucketName,
    NoSuchBucket,
    OperationAborted,
    QuorumError,
)
from titans3.drive.protocol import Drive
from titans3.objects.versionid import HybridClock

TABLE = "buckets"
RECENT_TTL = 1.0  # s: how long a cluster host reuses an existing bucket's record

_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
# System buckets (the NBD gateway's volumes) start with a character no S3 bucket
# name may hold, so the S3 front (which validates every name) cannot address
# them, and ListBuckets leaves them out.
SYSTEM_PREFIX = "_titans3-"


def is_system_bucket(name: str) -> bool:
    return name.startswith(SYSTEM_PREFIX)
_IP = re.compile(r"^\d+\.\d+\.\d+\.\d+$")


def validate_bucket_name(name: str) -> None:
    """AWS general-purpose bucket naming rules."""
    if (
        not _NAME.match(name)
        or ".." in name
        or _IP.match(name)
        or name.startswith(("xn--", "sthree-", "amzn-s3-demo-"))
        or name.endswith(("-s3alias", "--ol-s3", ".mrap", "--x-s3"))
        or ".-" in name
        or "-." in name
    ):
        raise InvalidBucketName(BucketName=name)


@dataclass(frozen=True, slots=True)
class BucketRecord:
    name: str
    bucket_id: bytes
    created_ns: int
    vid: str
    versioning: str = ""  # "", "Enabled", "Suspended"
    deleted: bool = False
    ec: tuple[int, int] | None = None
    # Bucket sub-configurations (CORS, tagging, ...) as opaque bytes keyed by
    # name: the front owns their format, the record only keeps them in quorum.
    config: Mapping[str, bytes] = field(default_factory=dict)

    def pack(self) -> bytes:
        doc = {
            "name": self.name,
            "id": self.bucket_id,
            "t": self.created_ns,
            "vid": self.vid,
            "ver": self.versioning,
            "del": self.deleted,
            "ec": list(self.ec) if self.ec else None,
        }
        if self.config:  # absent when empty: older records and readers stay identical
            doc["cfg"] = dict(self.config)
        return msgpack.packb(doc, use_bin_type=True)

    @classmethod
    def unpack(cls, raw: bytes) -> BucketRecord:
        d = msgpack.unpackb(raw, raw=False)
        return cls(
            d["name"], d["id"], d["t"], d["vid"], d.get("ver", ""), d.get("del", False),
            tuple(d["ec"]) if d.get("ec") else None,  # type: ignore[arg-type]
            dict(d.get("cfg") or {}),
        )


def _newest(raws: Iterable[bytes | None]) -> BucketRecord | None:
    best: BucketRecord | None = None
    for raw in raws:
        if raw is not None:
            rec = BucketRecord.unpack(raw)
            if best is None or rec.vid > best.vid:
                best = rec
    return best


class BucketTable:
    def __init__(self, drives: Sequence[Drive], clock: HybridClock, *, cache: bool = True) -> None:
        self._drives = list(drives)
        self._clock = clock
        self._cache_enabled = cache
        self._cache: dict[str, BucketRecord] = {}
        self._recent: dict[str, tuple[float, BucketRecord]] = {}  # cluster mode, see module doc
        self._loaded = False
        self._lock = trio.Lock()

    @property
    def majority(self) -> int:
        return len(self._drives) // 2 + 1

    def replace_drive(self, pos: int, drive: Drive) -> None:
        """A replaced disk (ObjectStore.replace_drive): the next read reloads the
        table, which writes every record to the blank drive (see :meth:`_load`)."""
        self._drives[pos] = drive
        self._loaded = False

    async def _load(self) -> None:
        """Read every drive's table once and keep the newest record per name.

        Drives that answered without the newest record (a blank replacement
        disk, a drive that was away) get it written back -- compare-and-set
        against what they answered, so a concurrent newer write is never
        overwritten.  Without this, replacing every disk of a host one by one
        (each refilled with objects) lost the bucket table: found by the crash
        torture after eight blank-drive replacements and a restart."""
        answers: list[tuple[Drive, dict[bytes, bytes]]] = []

        async def one(d: Drive) -> None:
            try:
                rows: dict[bytes, bytes] = {}
                start: bytes | None = None
                while True:
                    page = await d.list_meta(TABLE, start_after=start, limit=1000)
                    rows.update(page)
                    if len(page) < 1000:
                        break
                    start = page[-1][0]
                answers.append((d, rows))
            except DriveError:
                pass

        async with trio.open_nursery() as nursery:
            for d in self._drives:
                nursery.start_soon(one, d)
        if len(answers) < self.majority:
            raise QuorumError("too few drives answered to read the bucket table")
        table: dict[str, BucketRecord] = {}
        for _, rows in answers:
            for raw in rows.values():
                rec = BucketRecord.unpack(raw)
                cur = table.get(rec.name)
                if cur is None or rec.vid > cur.vid:
                    table[rec.name] = rec
                self._clock.observe(rec.vid)
        await self._repair(answers, table)
        if self._cache_enabled:
            self._cache.update(table)
        else:
            self._cache = table
        self._loaded = self._cache_enabled  # uncached: the next call reads again

    async def _repair(self, answers: list[tuple[Drive, dict[bytes, bytes]]],
                      table: dict[str, BucketRecord]) -> None:
        async def fix(d: Drive, key: bytes, packed: bytes, seen: bytes | None) -> None:
            with contextlib.suppress(DriveError):
                await d.swap_meta(TABLE, key, packed, seen)

        async with trio.open_nursery() as nursery:
            for d, rows in answers:
                for name, rec in table.items():
                    key = name.encode()
                    seen = rows.get(key)
                    if seen is None or BucketRecord.unpack(seen).vid < rec.vid:
                        nursery.start_soon(fix, d, key, rec.pack(), seen)

    async def _read_one(self, name: str) -> BucketRecord | None:
        """The newest record for ``name`` among the first majority of drives to answer."""
        found: list[BucketRecord | None] = []

        async def one(d: Drive, done: trio.CancelScope) -> None:
            try:
                raw = await d.get_meta(TABLE, name.encode())
            except DriveError:
                return
            found.append(BucketRecord.unpack(raw) if raw is not None else None)
            if len(found) >= self.majority:
                done.cancel()

        async with trio.open_nursery() as nursery:
            for d in self._drives:
                nursery.start_soon(one, d, nursery.cancel_scope)
        if len(found) < self.majority:
            raise QuorumError("too few drives answered to read the bucket record")
        best: BucketRecord | None = None
        for rec in found:
            if rec is not None:
                self._clock.observe(rec.vid)
                if best is None or rec.vid > best.vid:
                    best = rec
        return best

    async def _write(self, rec: BucketRecord) -> None:
        ok = 0

        async def one(d: Drive) -> None:
            nonlocal ok
            try:
                await d.put_meta(TABLE, rec.name.encode(), rec.pack())
                ok += 1
            except DriveError:
                pass

        async with trio.open_nursery() as nursery:
            for d in self._drives:
                nursery.start_soon(one, d)
        if ok < self.majority:
            raise QuorumError("too few drives took the bucket record")
        self._cache[rec.name] = rec
        self._recent.pop(rec.name, None)

    async def get(self, name: str) -> BucketRecord:
        if not self._cache_enabled:
            hit = self._recent.get(name)
            now = trio.current_time()
            if hit is not None and now - hit[0] < RECENT_TTL:
                return hit[1]
            rec = await self._read_one(name)
            if rec is None or rec.deleted:
                self._recent.pop(name, None)
                raise NoSuchBucket(BucketName=name)
            self._recent[name] = (now, rec)
            return rec
        if not self._loaded:
            async with self._lock:
                if not self._loaded:
                    await self._load()
        rec = self._cache.get(name)
        if rec is None or rec.deleted:
            raise NoSuchBucket(BucketName=name)
        return rec

    async def list(self) -> list[BucketRecord]:
        if not self._loaded:
            async with self._lock:
                if not self._loaded:
                    await self._load()
        return sorted((r for r in self._cache.values() if not r.deleted), key=lambda r: r.name)

    async def create(
        self, name: str, *, ec: tuple[int, int] | None = None, versioning: str = "",
        config: Mapping[str, bytes] | None = None, system: bool = False,
    ) -> BucketRecord:
        """``config``: the sub-configurations the bucket starts with (owner, ACL,
        object lock, ...); ``versioning``: its initial state (object lock: Enabled);
        ``system``: a bucket of the daemon's own (S3 can neither name nor list it)."""
        if not system:
            validate_bucket_name(name)
        elif not is_system_bucket(name):
            raise InvalidBucketName(BucketName=name)
        async with self._lock:
            if not self._loaded:
                await self._load()
            cur = self._cache.get(name)
            if cur is not None and not cur.deleted:
                raise BucketAlreadyOwnedByYou(BucketName=name)
            rec = BucketRecord(name, secrets.token_bytes(8), time.time_ns(), self._clock.new_id(), ec=ec,
                               versioning=versioning, config=dict(config or {}))
            if self._cache_enabled:  # one host: the table lock is the whole story
                await self._write(rec)
            else:
                await self._create_everywhere(rec)
            return rec

    async def _create_everywhere(self, rec: BucketRecord) -> None:
        """Cluster mode: create ``rec`` by compare-and-set on a majority.

        Two hosts creating the same name at once would otherwise both succeed
        with different bucket ids, and the objects written through the loser
        would vanish when the winner's newer record is read.  Each drive takes
        our record only if it still holds what we read from it
        (``swap_meta``); a majority of takers means no competitor can have
        one.  Short of a majority we put back what we read where ours landed
        (or may have landed), and answer as S3 does: the bucket exists if a
        competitor won, else ``OperationAborted`` (try again)."""
        key, packed = rec.name.encode(), rec.pack()
        seen: dict[int, bytes | None] = {}

        async def read(i: int) -> None:
            with contextlib.suppress(DriveError):
                seen[i] = await self._drives[i].get_meta(TABLE, key)

        async with trio.open_nursery() as nursery:
            for i in range(len(self._drives)):
                nursery.start_soon(read, i)
        if len(seen) < self.majority:
            raise QuorumError("too few drives answered to create the bucket")
        current = _newest(seen.values())
        if current is not None and not current.deleted:
            raise BucketAlreadyOwnedByYou(BucketName=rec.name)
        won: list[int] = []
        unsure: list[int] = []

        async def swap(i: int) -> None:
            try:
                if await self._drives[i].swap_meta(TABLE, key, packed, seen[i]):
                    won.append(i)
            except DriveError:
                unsure.append(i)

        async with trio.open_nursery() as nursery:
            for i in seen:
                nursery.start_soon(swap, i)
        if len(won) >= self.majority:
            async def settle(i: int) -> None:  # the rest converge on the winner: us
                with contextlib.suppress(DriveError):
                    await self._drives[i].put_meta(TABLE, key, packed)

            async with trio.open_nursery() as nursery:
                for i in range(len(self._drives)):
                    if i not in won:
                        nursery.start_soon(settle, i)
            self._cache[rec.name] = rec
            self._recent.pop(rec.name, None)
            return

        async def undo(i: int) -> None:
            with contextlib.suppress(DriveError):
                await self._drives[i].swap_meta(TABLE, key, seen[i], packed)

        with trio.CancelScope(shield=True):
            async with trio.open_nursery() as nursery:
                for i in won + unsure:
                    nursery.start_soon(undo, i)
        winner = await self._read_one(rec.name)
        if winner is not None and not winner.deleted:
            raise BucketAlreadyOwnedByYou(BucketName=rec.name)
        raise OperationAborted(BucketName=rec.name)

    async def update(self, name: str, **changes: object) -> BucketRecord:
        async with self._lock:
            if not self._loaded:
                await self._load()
            cur = self._cache.get(name)
            if cur is None or cur.deleted:
                raise NoSuchBucket(BucketName=name)
            rec = replace(cur, vid=self._clock.new_id(), **changes)  # type: ignore[arg-type]
            await self._write(rec)
            return rec

    async def set_config(self, name: str, item: str, value: bytes | None) -> BucketRecord:
        """Replace (or with None remove) one sub-configuration, under the table
        lock so concurrent updates of different items do not lose each other."""
        async with self._lock:
            if not self._loaded:
                await self._load()
            cur = self._cache.get(name)
            if cur is None or cur.deleted:
                raise NoSuchBucket(BucketName=name)
            config = {k: v for k, v in cur.config.items() if k != item}
            if value is not None:
                config[item] = value
            rec = replace(cur, vid=self._clock.new_id(), config=config)
            await self._write(rec)
            return rec

    async def delete(self, name: str) -> None:
        await self.update(name, deleted=True)
