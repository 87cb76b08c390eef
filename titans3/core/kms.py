"""Key management for server-side encryption: the interface and the built-in keyring.

Theory of operation
-------------------
The object layer never holds a long-lived key.  For each encrypted object it
draws a random data key and asks a :class:`KeyManager` to *wrap* it under a
named key (``wrap``) with an encryption context, storing only the wrapped
blob; a read asks the manager to ``unwrap`` it.  That is AWS KMS's
GenerateDataKey/Decrypt split, so an external KMS (KMIP, Vault transit) plugs
in behind the same two calls.

The built-in manager keeps a *keyring*: a small document of keys, each with
its versions of 32-byte key material, an enabled flag and a description.
:class:`Keyring` is its pure logic (values in, values out); the object layer
stores the document as a cluster system record (``objects/kms.py``).  Key
material in the document is sealed (``titans3.core.crypto.seal``) under the
cluster's sealing key with the key id and version as purpose, so the record
on the drives holds no usable key.

* **rotation** adds a version; new wraps use the newest, old blobs name their
  version and keep opening (AWS: rotation keeps old objects readable);
* **disable** makes ``unwrap`` (and ``wrap``) refuse with
  :class:`KeyDisabled` until enabled again; nothing is lost;
* a blob is ``T3W1:<key id>:<version>:<wrapped>``, and the encryption
  context is bound in as associated data: a blob moved to another context
  does not open.

SSE-S3 uses the same machinery with an internal key (``SSE_S3_KEY``) that is
created on first use and cannot be disabled from ``titanctl``.
"""

from __future__ import annotations

import json
import secrets
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from titans3.core import sse

SSE_S3_KEY = "titans3-sse-s3"
DEFAULT_KMS_KEY = "titans3-aws-s3"  # SSE-KMS without a key id: AWS's managed key, alias aws/s3
# Keys the store creates on first use: id -> (alias, description).
INTERNAL_KEYS = {
    SSE_S3_KEY: ("", "SSE-S3 (internal)"),
    DEFAULT_KMS_KEY: ("aws/s3", "default key for SSE-KMS"),
}
_BLOB = "T3W1"


class KMSError(Exception):
    """A key manager refused (the object layer maps these to S3 errors)."""


class KeyNotFound(KMSError):
    pass


class KeyDisabled(KMSError):
    pass


class BlobInvalid(KMSError):
    pass


@dataclass(frozen=True, slots=True)
class KeyInfo:
    key_id: str
    arn: str
    enabled: bool
    created_ns: int
    versions: int
    rotated_ns: int
    description: str = ""


class KeyManager(Protocol):
    """What the object layer needs of a KMS (built-in or external)."""

    async def wrap(self, key_id: str, data_key: bytes, context: Mapping[str, str]) -> tuple[str, str]:
        """``(blob, key arn)``: ``data_key`` wrapped under the key's newest version."""
        ...

    async def unwrap(self, blob: str, context: Mapping[str, str]) -> bytes:
        """The data key; ``KeyNotFound``, ``KeyDisabled``, ``BlobInvalid``."""
        ...

    async def describe(self, key_id: str) -> KeyInfo:
        ...


def context_text(context: Mapping[str, str]) -> str:
    """The canonical form of an encryption context (sorted JSON)."""
    return json.dumps(dict(context), sort_keys=True, separators=(",", ":"))


def _purpose(key_id: str, version: int) -> str:
    return f"kms-key/{key_id}/{version}"


class Keyring:
    """The built-in keyring document and its operations (pure).

    ``seal(plain, purpose) -> str`` / ``unseal(sealed, purpose) -> bytes`` are
    the cluster sealing functions; ``doc`` is the stored form (JSON-ready,
    material sealed)."""

    def __init__(self, doc: Mapping[str, Any] | None, *, region: str,
                 seal: Callable[[bytes, str], str], unseal: Callable[[str, str], bytes]) -> None:
        self.doc: dict[str, Any] = {"keys": dict((doc or {}).get("keys", {}))}
        self.region = region
        self._seal = seal
        self._unseal = unseal

    # ---------------------------------------------------------------- admin
    def resolve(self, name: str) -> str:
        """A key id from an id, an ARN or an alias (``alias/NAME``)."""
        keys = self.doc["keys"]
        if name in keys:
            return name
        if name.startswith("arn:") and "/" in name:
            kid = name.rsplit("/", 1)[1]
            if kid in keys:
                return kid
        alias = name.removeprefix("alias/")
        for kid, k in keys.items():
            if k.get("alias") and k["alias"] == alias:
                return kid
        raise KeyNotFound(f"key {name!r} does not exist")

    def create(self, *, description: str = "", alias: str = "", key_id: str | None = None,
               now_ns: int | None = None, material: bytes | None = None) -> str:
        """A new key (``material``: its first version's 32 bytes; default random)."""
        kid = key_id or str(uuid.uuid4())
        if kid in self.doc["keys"]:
            raise KMSError(f"key {kid!r} already exists")
        if alias:
            for k in self.doc["keys"].values():
                if k.get("alias") == alias:
                    raise KMSError(f"alias {alias!r} is taken")
        now = now_ns or time.time_ns()
        self.doc["keys"][kid] = {
            "enabled": True, "created": now, "rotated": now, "desc": description,
            "alias": alias, "v": [self._seal(material or secrets.token_bytes(32), _purpose(kid, 0))],
        }
        return kid

    def rotate(self, name: str, *, now_ns: int | None = None) -> int:
        kid = self.resolve(name)
        k = self.doc["keys"][kid]
        version = len(k["v"])
        k["v"] = [*k["v"], self._seal(secrets.token_bytes(32), _purpose(kid, version))]
        k["rotated"] = now_ns or time.time_ns()
        return version

    def set_enabled(self, name: str, enabled: bool) -> str:
        kid = self.resolve(name)
        self.doc["keys"][kid]["enabled"] = enabled
        return kid

    def info(self, kid: str) -> KeyInfo:
        k = self.doc["keys"][kid]
        return KeyInfo(kid, self.arn(kid), bool(k["enabled"]), int(k["created"]), len(k["v"]),
                       int(k["rotated"]), str(k.get("desc", "")))

    def list(self, *, internal: bool = False) -> list[KeyInfo]:
        return [self.info(kid) for kid in sorted(self.doc["keys"])
                if internal or kid not in INTERNAL_KEYS or kid == DEFAULT_KMS_KEY]

    def arn(self, kid: str) -> str:
        return f"arn:aws:kms:{self.region}:000000000000:key/{kid}"

    # ---------------------------------------------------------------- data keys
    def _material(self, kid: str, version: int) -> bytes:
        k = self.doc["keys"][kid]
        if not k["enabled"]:
            raise KeyDisabled(f"key {kid} is disabled")
        if not 0 <= version < len(k["v"]):
            raise BlobInvalid(f"key {kid} has no version {version}")
        return self._unseal(k["v"][version], _purpose(kid, version))

    def wrap(self, name: str, data_key: bytes, context: Mapping[str, str]) -> tuple[str, str]:
        kid = self.resolve(name)
        version = len(self.doc["keys"][kid]["v"]) - 1
        wrapped = sse.wrap_key(self._material(kid, version), data_key, context_text(context))
        return f"{_BLOB}:{kid}:{version}:{wrapped}", self.arn(kid)

    def unwrap(self, blob: str, context: Mapping[str, str]) -> bytes:
        parts = blob.split(":", 3)
        if len(parts) != 4 or parts[0] != _BLOB or not parts[2].isdigit():
            raise BlobInvalid("not a wrapped data key")
        kid, version, wrapped = parts[1], int(parts[2]), parts[3]
        if kid not in self.doc["keys"]:
            raise KeyNotFound(f"key {kid} does not exist")
        try:
            return sse.unwrap_key(self._material(kid, version), wrapped, context_text(context))
        except sse.KeyUnwrapError as e:
            raise BlobInvalid(str(e)) from None

    @staticmethod
    def key_of(blob: str) -> str:
        parts = blob.split(":", 3)
        return parts[1] if len(parts) == 4 else ""
