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
from typing import TYPE_CHECKING

import trio

from titans3.core.errors import ConditionalRequestConflict, NoSuchKey, PreconditionFailed
from titans3.objects.types import ObjectInfo, WriteCondition

if TYPE_CHECKING:
    from titans3.objects.buckets import BucketRecord
    from titans3.objects.lookup import Lookup


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


class Conditions:
    """The two condition checks (see module doc) and the per-key locks."""

    def __init__(self, lookup: Lookup) -> None:
        self.lookup = lookup
        self.key_locks = KeyLocks()

    async def precheck(
        self, brec: BucketRecord, bucket: str, key: str, kb: bytes,
        condition: WriteCondition | None,
    ) -> ObjectInfo | None:
        """Check 1 (see module doc); returns what it saw."""
        if condition is None:
            return None
        current = await self.lookup.latest_info(brec, bucket, key, kb)
        condition.check(current, key)
        return current

    @asynccontextmanager
    async def guard(
        self, brec: BucketRecord, bucket: str, key: str, kb: bytes,
        condition: WriteCondition | None, seen: ObjectInfo | None,
        discard: Callable[[], Awaitable[None]] | None = None,
    ) -> AsyncIterator[None]:
        """Check 2 (see module doc): the body of the ``async with`` commits."""
        if condition is None:
            yield
            return
        async with self.key_locks.hold((brec.bucket_id, kb)):
            current = await self.lookup.latest_info(brec, bucket, key, kb)
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
