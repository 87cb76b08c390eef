"""The built-in KMS: the keyring of ``core/kms.py`` kept as a cluster system record.

Theory of operation
-------------------
One system record (``KMS_KEYRING``, a majority-quorum register over every
drive, ``objects/sysrecord.py``) holds the keyring document; key material in
it is sealed under the cluster sealing key, so the drives never hold a usable
key.  Every host reads the same record, so a key created, rotated or disabled
on one host is seen by all.

Reads are cached for ``ttl`` seconds (default 2): an encrypted GET does not
pay a quorum read, and a disable or enable takes effect everywhere within
that time.  Changes are read-modify-write of the whole document under a
local lock; two hosts changing keys in the same instant may lose one change
(last writer wins) -- key administration is rare and ``titanctl kms list``
shows the result.  Unsealed material lives only in memory.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import msgpack
import trio

from titans3.core import crypto
from titans3.core.kms import DEFAULT_KMS_KEY, INTERNAL_KEYS, KeyInfo, KeyNotFound, Keyring
from titans3.objects.sysrecord import SystemRecords

KMS_KEYRING = "kms/keyring"


class BuiltinKMS:
    """A :class:`titans3.core.kms.KeyManager` over the cluster's system records."""

    def __init__(self, records: SystemRecords, sealing_key: Callable[[], bytes], *,
                 region: str = "us-east-1", ttl: float = 2.0) -> None:
        self._records = records
        self._sealing_key = sealing_key
        self.region = region
        self.ttl = ttl
        self._cached: Keyring | None = None
        self._cached_at = -1e9
        self._lock = trio.Lock()

    def _ring(self, doc: Mapping[str, Any] | None) -> Keyring:
        return Keyring(doc, region=self.region,
                       seal=lambda b, p: crypto.seal(self._sealing_key(), b, p),
                       unseal=lambda s, p: crypto.unseal(self._sealing_key(), s, p))

    async def _load(self, *, fresh: bool = False) -> Keyring:
        now = trio.current_time()
        if fresh or self._cached is None or now - self._cached_at > self.ttl:
            raw = await self._records.get(KMS_KEYRING)
            self._cached = self._ring(msgpack.unpackb(raw, raw=False) if raw else None)
            self._cached_at = now
        return self._cached

    async def _change(self, fn: Callable[[Keyring], Any]) -> Any:
        async with self._lock:
            ring = await self._load(fresh=True)
            out = fn(ring)
            await self._records.put(KMS_KEYRING, msgpack.packb(ring.doc, use_bin_type=True))
            self._cached, self._cached_at = ring, trio.current_time()
            return out

    # ---------------------------------------------------------------- KeyManager
    async def wrap(self, key_id: str, data_key: bytes, context: Mapping[str, str]) -> tuple[str, str]:
        ring = await self._load()
        internal = DEFAULT_KMS_KEY if key_id in ("aws/s3", "alias/aws/s3") else key_id
        if internal in INTERNAL_KEYS and internal not in ring.doc["keys"]:
            ring = await self._load(fresh=True)  # perhaps another host created it
            if internal not in ring.doc["keys"]:
                alias, desc = INTERNAL_KEYS[internal]

                def create(r: Keyring) -> None:
                    if internal not in r.doc["keys"]:
                        r.create(key_id=internal, alias=alias, description=desc)

                await self._change(create)
                ring = await self._load()
        return ring.wrap(internal, data_key, context)

    async def unwrap(self, blob: str, context: Mapping[str, str]) -> bytes:
        ring = await self._load()
        if Keyring.key_of(blob) not in ring.doc["keys"]:
            ring = await self._load(fresh=True)  # created on another host a moment ago
        return ring.unwrap(blob, context)

    async def describe(self, key_id: str) -> KeyInfo:
        ring = await self._load()
        try:
            return ring.info(ring.resolve(key_id))
        except KeyNotFound:
            ring = await self._load(fresh=True)
            return ring.info(ring.resolve(key_id))

    # ---------------------------------------------------------------- admin (titanctl kms)
    async def create_key(self, *, description: str = "", alias: str = "") -> KeyInfo:
        kid = await self._change(lambda r: r.create(description=description, alias=alias))
        return (await self._load()).info(kid)

    async def list_keys(self) -> list[KeyInfo]:
        return (await self._load(fresh=True)).list()

    async def rotate_key(self, key_id: str) -> KeyInfo:
        kid = await self._change(lambda r: (r.rotate(key_id), r.resolve(key_id))[1])
        return (await self._load()).info(kid)

    async def set_key_enabled(self, key_id: str, enabled: bool) -> KeyInfo:
        kid = await self._change(lambda r: r.set_enabled(key_id, enabled))
        return (await self._load()).info(kid)
