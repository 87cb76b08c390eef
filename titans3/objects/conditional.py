"""Conditional writes: ``If-None-Match`` and ``If-Match`` on PUT and Complete.

Theory of operation
-------------------
A conditional write names the state the key must be in *when the write lands*:
absent (``If-None-Match: *``), not holding one of the given ETags
(``If-None-Match: "etag"``), holding any object (``If-Match: *``) or one with
one of the given ETags (``If-Match: "etag"``).  AWS evaluates the condition at completion, answers 412
``PreconditionFailed`` when it does not hold, 404 ``NoSuchKey`` for If-Match on
a key with no object, and 409 ``ConditionalRequestConflict`` when a delete
removed the object while the write was in flight.

The store checks twice:

1. before the body is read (cheap early answer: nothing is uploaded for a write
   that cannot succeed);
2. after the data is staged, **under a per-key lock, right before the commit**:
   the key's current version is resolved again and the condition re-evaluated;
   the version id is drawn only after that, so it is newer than the state that
   was checked.  Two conditional writers of one key on this host therefore
   serialise: of two ``If-None-Match: *`` PUTs exactly one succeeds and the
   other gets 412 -- the property applications use conditional writes for.

When the second check fails the staged data is discarded (nothing becomes
visible).  If the first check saw an object and the second sees none, a
delete won the race: 409, as AWS answers.  Unconditional writes never take the
lock: they are last-writer-wins by version id, exactly as before.  The lock is
per process; across hosts the guarantee needs the cluster's key leases
(issue 4) -- until then two hosts could both pass the check concurrently.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import trio

from titans3.core.errors import ConditionalRequestConflict, NoSuchKey, PreconditionFailed
from titans3.objects.types import ObjectInfo

if TYPE_CHECKING:
    from titans3.objects.buckets import BucketRecord
    from titans3.objects.store import ObjectStore


@dataclass(frozen=True, slots=True)
class WriteCondition:
    """What the key must hold for a write to land.

    ``if_match``: ETags (without quotes) one of which the current object must
    have (``"*"`` matches any existing object); ``if_none_match``: the key must
    have no current object (a delete marker counts as none);
    ``if_none_match_etags``: the current object, if any, must have none of these.
    """

    if_match: tuple[str, ...] | None = None
    if_none_match: bool = False
    if_none_match_etags: tuple[str, ...] = ()

    def check(self, current: ObjectInfo | None, key: str = "") -> None:
        """Raise ``PreconditionFailed`` / ``NoSuchKey`` unless the condition holds."""
        if current is not None and (
            self.if_none_match or current.etag in self.if_none_match_etags
        ):
            raise PreconditionFailed(Condition="If-None-Match")
        if self.if_match is not None:
            if current is None:
                raise NoSuchKey(Key=key)
            if "*" not in self.if_match and current.etag not in self.if_match:
                raise PreconditionFailed(Condition="If-Match")


class KeyLocks:
    """One ``trio.Lock`` per key while anyone holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[tuple[bytes, bytes], tuple[trio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, key: tuple[bytes, bytes]) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (None, 0))
        if lock is None:
            lock = trio.Lock()
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)


class ConditionalMixin:
    """Condition checks of :class:`~titans3.objects.store.ObjectStore`."""

    async def _latest_info(
        self: ObjectStore, brec: BucketRecord, bucket: str, key: str, kb: bytes
    ) -> ObjectInfo | None:
        """The key's current object, or None (no versions, or a delete marker)."""
        _, _, resolved = await self._resolve(brec, kb)
        if not resolved or resolved[0].record.dm:
            return None
        return self._info(bucket, key, resolved[0])

    async def _precheck(
        self: ObjectStore, brec: BucketRecord, bucket: str, key: str, kb: bytes,
        condition: WriteCondition | None,
    ) -> ObjectInfo | None:
        """Check 1 (see module doc); returns what it saw."""
        if condition is None:
            return None
        current = await self._latest_info(brec, bucket, key, kb)
        condition.check(current, key)
        return current

    @asynccontextmanager
    async def _commit_guard(
        self: ObjectStore, brec: BucketRecord, bucket: str, key: str, kb: bytes,
        condition: WriteCondition | None, seen: ObjectInfo | None,
        discard: Callable[[], Awaitable[None]] | None = None,
    ) -> AsyncIterator[None]:
        """Check 2 (see module doc): the body of the ``async with`` commits."""
        if condition is None:
            yield
            return
        async with self.key_locks.hold((brec.bucket_id, kb)):
            current = await self._latest_info(brec, bucket, key, kb)
            try:
                condition.check(current, key)
            except (PreconditionFailed, NoSuchKey):
                if discard is not None:
                    with trio.CancelScope(shield=True):
                        await discard()
                if seen is not None and current is None:
                    raise ConditionalRequestConflict(Key=key) from None
                raise
            yield
