"""The built-in KMS: the keyring of ``core/kms.py`` kept as a cluster system record.

Theory of operation
-------------------
One system record (``KMS_KEYRING``, a majority-quorum register over every
drive, ``accounts/register.py``'s ``system`` table) holds the keyring document; key material in
it is sealed under the cluster sealing key, so the drives never hold a usable
key.  Every host reads the same record, so a key created, rotated or disabled
on one host is seen by all.

*Sealing keys change once*: a lone host seals under a key derived from its
master key; when it creates a cluster the cluster secret's key takes over.
``sealing_keys()`` lists the current key first and older ones after it; a
keyring found sealed under an older key is opened with it and re-sealed under
the current one at once (written back), so the keys made while the host was
alone stay usable on every host of its new cluster.

Reads are cached for ``ttl`` seconds (default 2): an encrypted GET does not
pay a quorum read, and a disable or enable takes effect everywhere within
that time.  Changes (create, rotate, disable, enable, re-seal) are one
compare-and-set update of the register (``SystemTable.update``: a Paxos
round over the drives), so two hosts changing keys at the same instant both
land -- neither overwrites the other's keyring; a change that keeps losing
rounds is 409 ``OperationAborted`` (retry).  ``mutate`` may run more than
once (a retried round) and has no effects of its own.  The internal keys the
store creates by itself take their first material from the cluster sealing
key, identical on every host, so two hosts creating one at once make the
same key.  Unsealed material lives only in memory.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import msgpack
import trio
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from titans3.accounts.register import SystemTable
from titans3.core import crypto
from titans3.core.errors import ConfigError
from titans3.core.kms import DEFAULT_KMS_KEY, INTERNAL_KEYS, KeyInfo, KeyNotFound, Keyring

KMS_KEYRING = b"kms/keyring"  # in the register's ``system`` table (accounts/register.py)
log = logging.getLogger(__name__)


class KeyringStore(Protocol):
    """Where the keyring document lives: one cluster-wide record.

    ``update`` applies ``mutate`` (old document or None -> new document),
    atomically against other updaters, and returns what it stored."""

    async def load(self) -> dict[str, Any] | None: ...

    async def update(self, mutate: Callable[[dict[str, Any] | None], dict[str, Any]]
                     ) -> dict[str, Any]: ...


def _unpack(raw: Any) -> dict[str, Any] | None:
    return msgpack.unpackb(raw, raw=False) if raw else None


class TableKeyringStore:
    """The keyring as one record of the register's ``system`` table, changed
    only by ``SystemTable.update`` (never a plain write: a plain write does not
    respect the rounds' promises).  The document is kept msgpack-packed, as the
    first register kept it, so a keyring written before this still reads."""

    def __init__(self, table: SystemTable) -> None:
        self._table = table

    async def load(self) -> dict[str, Any] | None:
        return _unpack(await self._table.get(KMS_KEYRING))

    async def update(self, mutate: Callable[[dict[str, Any] | None], dict[str, Any]]
                     ) -> dict[str, Any]:
        def step(raw: Any) -> bytes:
            return msgpack.packb(mutate(_unpack(raw)), use_bin_type=True)

        env = await self._table.update(KMS_KEYRING, step)
        doc = _unpack(env.doc)
        assert doc is not None  # step never deletes
        return doc


class BuiltinKMS:
    """A :class:`titans3.core.kms.KeyManager` over the cluster's system records."""

    def __init__(self, store: KeyringStore | SystemTable, sealing_keys: Callable[[], list[bytes]],
                 *, region: str = "us-east-1", ttl: float = 2.0) -> None:
        self._store: KeyringStore = TableKeyringStore(store) if isinstance(store, SystemTable) \
            else store
        self._sealing_keys = sealing_keys
        self.region = region
        self.ttl = ttl
        self._cached: Keyring | None = None
        self._cached_at = -1e9
        self._lock = trio.Lock()

    def _seal(self, plain: bytes, purpose: str) -> str:
        return crypto.seal(self._sealing_keys()[0], plain, purpose)

    def _unseal(self, sealed: str, purpose: str) -> bytes:
        keys = self._sealing_keys()
        for key in keys[:-1]:
            with contextlib.suppress(ConfigError):
                return crypto.unseal(key, sealed, purpose)
        return crypto.unseal(keys[-1], sealed, purpose)

    def _ring(self, doc: Mapping[str, Any] | None) -> Keyring:
        return Keyring(doc, region=self.region, seal=self._seal, unseal=self._unseal)

    def _stale(self, ring: Keyring) -> bool:
        """Material sealed under an older sealing key (see module doc)."""
        current = self._sealing_keys()[0]
        for kid, k in ring.doc["keys"].items():
            for version, sealed in enumerate(k["v"]):
                try:
                    crypto.unseal(current, sealed, f"kms-key/{kid}/{version}")
                except ConfigError:
                    return True
        return False

    def _reseal(self, ring: Keyring) -> None:
        for kid, k in ring.doc["keys"].items():
            k["v"] = [self._seal(self._unseal(s, f"kms-key/{kid}/{v}"), f"kms-key/{kid}/{v}")
                      for v, s in enumerate(k["v"])]

    async def _load(self, *, fresh: bool = False) -> Keyring:
        now = trio.current_time()
        if fresh or self._cached is None or now - self._cached_at > self.ttl:
            ring = self._ring(await self._store.load())
            if len(self._sealing_keys()) > 1 and self._stale(ring):
                try:
                    def reseal(doc: dict[str, Any] | None) -> dict[str, Any]:
                        fresh = self._ring(doc)
                        self._reseal(fresh)
                        return fresh.doc

                    ring = self._ring(await self._store.update(reseal))
                    log.info("KMS keyring re-sealed under the cluster sealing key")
                except ConfigError:
                    log.warning("KMS keyring holds keys this host cannot open (sealed elsewhere)")
            self._cached, self._cached_at = ring, now
        return self._cached

    async def _change(self, fn: Callable[[Keyring], Any]) -> Any:
        async with self._lock:
            await self._load(fresh=True)  # re-seals a stale keyring first
            out: list[Any] = []

            def mutate(doc: dict[str, Any] | None) -> dict[str, Any]:
                ring = self._ring(doc)
                out[:] = [fn(ring)]  # a retried round runs again: keep the last answer
                return ring.doc

            self._cached = self._ring(await self._store.update(mutate))
            self._cached_at = trio.current_time()
            return out[0]

    # ---------------------------------------------------------------- KeyManager
    async def wrap(self, key_id: str, data_key: bytes, context: Mapping[str, str]) -> tuple[str, str]:
        ring = await self._load()
        internal = DEFAULT_KMS_KEY if key_id in ("aws/s3", "alias/aws/s3") else key_id
        if internal in INTERNAL_KEYS and internal not in ring.doc["keys"]:
            ring = await self._load(fresh=True)  # perhaps another host created it
            if internal not in ring.doc["keys"]:
                alias, desc = INTERNAL_KEYS[internal]

                # Two hosts may create an internal key at the same instant (the first
                # SSE-S3 PUTs of a new cluster): its first material is derived from the
                # cluster sealing key, the same on every host, so whichever round
                # creates it, both hosts' objects open with it.
                material = HKDF(hashes.SHA256(), 32, None,
                                f"titans3 internal kms key {internal}".encode()).derive(
                                    self._sealing_keys()[0])

                def create(r: Keyring) -> None:
                    if internal not in r.doc["keys"]:
                        r.create(key_id=internal, alias=alias, description=desc, material=material)

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
        # The id is drawn once, not in each round's mutation: the register may
        # settle on an earlier round's document (accounts/register.py), and the
        # answer must name the key that document holds.
        kid = str(uuid.uuid4())
        await self._change(lambda r: r.create(description=description, alias=alias, key_id=kid))
        return (await self._load()).info(kid)

    async def list_keys(self) -> list[KeyInfo]:
        return (await self._load(fresh=True)).list()

    async def rotate_key(self, key_id: str) -> KeyInfo:
        kid = await self._change(lambda r: (r.rotate(key_id), r.resolve(key_id))[1])
        return (await self._load()).info(kid)

    async def set_key_enabled(self, key_id: str, enabled: bool) -> KeyInfo:
        kid = await self._change(lambda r: r.set_enabled(key_id, enabled))
        return (await self._load()).info(kid)
