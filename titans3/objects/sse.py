"""Server-side encryption in the object layer: data keys, and streams through the format.

Theory of operation
-------------------
An encrypted version carries ``extra["sse"]`` (:data:`SSE`), a small map:

==========  ================================================================
``m``       mode: ``"S3"`` (SSE-S3), ``"KMS"`` (SSE-KMS), ``"C"`` (SSE-C)
``dk``      the data key, wrapped: by the KMS (S3, KMS) or under the
            customer's key (C) -- never in the clear
``s``       hex salt of the single data stream; ``ps``: one per part
``kid``     SSE-KMS: the key's ARN; ``ctx``: the encryption context;
            ``bk``: bucket key enabled (recorded, reported)
``cmd5``    SSE-C: base64 MD5 of the customer key (what S3 echoes back)
==========  ================================================================

The record's ``size`` (and each part's) stays the *plaintext* size, so
listings, HEAD and part arithmetic are unchanged; the bytes on the drives
are :func:`titans3.core.sse.stored_size` of it per stream, which is what
every data-plane user (reads, repair, scrub, moves) passes to the layout
(:func:`stored_size_of`).  Data is encrypted *before* erasure coding, so
fragments, parity and inline records hold only ciphertext.

The wrapped data key is bound to the bucket id and key it was written for
(associated data / encryption context), so a record copied to another key
does not open.  A rename keeps working because a renamed object reads its
anchor's record under the anchor's key (``objects/anchors.py``).

ETags: SSE-S3 keeps the plaintext MD5 (as AWS); SSE-C and SSE-KMS get
``md5(plaintext md5 ‖ salt)``, which, like AWS's, is not the MD5 of the data
and reveals nothing about it.  Customer keys are held only for the request
and never logged: :class:`~titans3.objects.types.Encryption` hides them from
``repr``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import trio

from titans3.core import kms as kmsmod
from titans3.core import sse
from titans3.core.errors import (
    AccessDenied,
    InternalError,
    InvalidArgument,
    InvalidRequest,
    S3Error,
)
from titans3.drive.records import VersionRecord
from titans3.objects.types import Encryption, ObjectInfo

SSE = "sse"
SSE_S3, SSE_KMS, SSE_C = "AES256", "aws:kms", "SSE-C"
_MODES = {SSE_S3: "S3", SSE_KMS: "KMS", SSE_C: "C"}
DEFAULT_KMS_KEY = "aws/s3"  # what SSE-KMS without a key id uses (AWS's managed key, core/kms.py)
_THREAD_MIN = 256 << 10  # chunks at least this big are encrypted off the event loop

KMSNotFound = type("KMS.NotFoundException", (S3Error,),
                   {"code": "KMS.NotFoundException", "status": 400,
                    "default_message": "Invalid keyId"})


def stored_size_of(rec: VersionRecord, size: int) -> int:
    """Bytes on the drives for a stream of ``size`` plaintext bytes of ``rec``."""
    return sse.stored_size(size) if SSE in rec.extra else size


def _binding(bucket_id: bytes, key: bytes) -> dict[str, str]:
    return {"titans3:bucket": bucket_id.hex(), "titans3:key": key.hex()}


@dataclass(slots=True)
class Opened:
    """A version's data key, open for this request only."""

    doc: Mapping[str, Any]
    data_key: bytes = field(repr=False)

    def stream_key(self, salt_hex: str) -> bytes:
        return sse.stream_key(self.data_key, bytes.fromhex(salt_hex))


@dataclass(slots=True)
class Sealed:
    """A new version's encryption, before its data is written."""

    doc: dict[str, Any]
    data_key: bytes = field(repr=False)

    def etag(self, md5: bytes, salt_hex: str) -> str:
        if self.doc["m"] == "S3":
            return md5.hex()
        return hashlib.md5(md5 + bytes.fromhex(salt_hex)).hexdigest()


class Keys:
    """Seals new data keys and opens stored ones, through the KMS (``ctx.kms``)."""

    def __init__(self, get_kms: Callable[[], kmsmod.KeyManager | None]) -> None:
        self._get_kms = get_kms

    def _kms(self) -> kmsmod.KeyManager:
        kms = self._get_kms()
        if kms is None:
            raise InternalError("server-side encryption needs the key manager, which is not running")
        return kms

    async def seal_new(self, bucket_id: bytes, key: bytes, enc: Encryption) -> Sealed:
        dk = sse.new_data_key()
        bind = _binding(bucket_id, key)
        mode = _MODES.get(enc.mode)
        if mode is None:
            raise InvalidArgument("The encryption method specified is not supported",
                                  ArgumentName="x-amz-server-side-encryption", ArgumentValue=enc.mode)
        doc: dict[str, Any] = {"m": mode}
        if mode == "C":
            assert enc.customer_key is not None
            doc["dk"] = sse.wrap_key(enc.customer_key, dk, kmsmod.context_text(bind))
            doc["cmd5"] = sse.customer_key_md5(enc.customer_key)
        elif mode == "S3":
            doc["dk"], _ = await self._wrap(kmsmod.SSE_S3_KEY, dk, bind)
        else:
            ctx = dict(enc.context or {})
            doc["dk"], doc["kid"] = await self._wrap(enc.kms_key_id or DEFAULT_KMS_KEY, dk,
                                                     {**ctx, **bind})
            if ctx:
                doc["ctx"] = ctx
            if enc.bucket_key:
                doc["bk"] = True
        return Sealed(doc, dk)

    async def _wrap(self, key_id: str, dk: bytes, context: Mapping[str, str]) -> tuple[str, str]:
        try:
            return await self._kms().wrap(key_id, dk, context)
        except kmsmod.KeyNotFound:
            raise KMSNotFound(f"Invalid keyId {key_id}") from None
        except kmsmod.KeyDisabled:
            raise AccessDenied(f"The KMS key {key_id} is disabled.") from None

    async def open(self, bucket_id: bytes, key: bytes, doc: Mapping[str, Any],
                   customer_key: bytes | None) -> Opened:
        """The data key of a stored version, or the S3 error AWS answers."""
        bind = _binding(bucket_id, key)
        if doc["m"] == "C":
            if customer_key is None:
                raise InvalidRequest(
                    "The object was stored using a form of Server Side Encryption. The correct "
                    "parameters must be provided to retrieve the object.")
            if not hmac.compare_digest(sse.customer_key_md5(customer_key), str(doc.get("cmd5"))):
                raise AccessDenied()
            try:
                return Opened(doc, sse.unwrap_key(customer_key, doc["dk"], kmsmod.context_text(bind)))
            except sse.KeyUnwrapError:
                raise AccessDenied() from None
        if customer_key is not None:
            raise InvalidRequest("The encryption parameters are not applicable to this object.")
        context = bind if doc["m"] == "S3" else {**dict(doc.get("ctx", {})), **bind}
        try:
            return Opened(doc, await self._kms().unwrap(doc["dk"], context))
        except kmsmod.KeyDisabled:
            raise AccessDenied(f"The KMS key {doc.get('kid', '')} is disabled.") from None
        except kmsmod.KMSError:
            raise AccessDenied("The object's data key cannot be opened.") from None

    async def check(self, bucket_id: bytes, key: bytes, rec: VersionRecord,
                    customer_key: bytes | None) -> Opened | None:
        """None for an unencrypted version (SSE-C headers then are an error)."""
        doc = rec.extra.get(SSE)
        if doc is None:
            if customer_key is not None:
                raise InvalidRequest("The encryption parameters are not applicable to this object.")
            return None
        return await self.open(bucket_id, key, doc, customer_key)


# ------------------------------------------------------------------ streams
@dataclass(slots=True)
class EncryptState:
    size: int = 0
    md5: bytes = b""


def _step(enc: sse.Encryptor, md5: Any, mv: memoryview) -> bytes:
    md5.update(mv)
    return enc.feed(mv)


async def encrypt_body(body: AsyncIterator[bytes], stream_key: bytes,
                       on_data: Callable[[memoryview], None] | None,
                       state: EncryptState) -> AsyncIterator[bytes]:
    """``body`` sealed into packages; ``on_data`` and the MD5 see the plaintext."""
    enc = sse.Encryptor(stream_key)
    md5 = hashlib.md5()
    async for chunk in body:
        mv = memoryview(chunk).cast("B")
        if not len(mv):
            continue
        if on_data is not None:
            on_data(mv)
        state.size += len(mv)
        if len(mv) >= _THREAD_MIN:  # AES-GCM and MD5 release the GIL
            out = await trio.to_thread.run_sync(_step, enc, md5, mv)
        else:
            out = _step(enc, md5, mv)
        if out:
            yield out
    state.md5 = md5.digest()
    yield enc.finish()


def decryptor(opened: Opened, salt_hex: str, size: int, first: int, last: int
              ) -> tuple[sse.Decryptor, int, int]:
    """``(decryptor, stored first, stored last)`` for plaintext ``[first, last]`` of a stream."""
    a, b, p0 = sse.stored_range(first, last, size)
    dec = sse.Decryptor(opened.stream_key(salt_hex), size, first_package=p0,
                        skip=first - p0 * sse.PACKAGE, take=last - first + 1)
    return dec, a, b


async def feed(dec: sse.Decryptor, chunk: bytes) -> bytes:
    try:
        if len(chunk) >= _THREAD_MIN:
            return await trio.to_thread.run_sync(dec.feed, chunk)
        return dec.feed(chunk)
    except sse.PackageError as e:
        raise InternalError(f"encrypted data failed authentication: {e}") from None


def finish(dec: sse.Decryptor) -> None:
    try:
        dec.finish()
    except sse.PackageError as e:
        raise InternalError(f"encrypted data failed authentication: {e}") from None


ENCRYPTION_CONFIG = "encryption"  # bucket config document: JSON {"alg", "kid", "bk"}


def bucket_default(config: Mapping[str, bytes]) -> Encryption | None:
    """The bucket's default encryption (PutBucketEncryption), if any."""
    raw = config.get(ENCRYPTION_CONFIG)
    if not raw:
        return None
    doc = json.loads(raw)
    return Encryption(doc["alg"], kms_key_id=doc.get("kid") or None, bucket_key=bool(doc.get("bk")))


def encryption_info(bucket: str, key: str, doc: Mapping[str, Any] | None) -> ObjectInfo | None:
    """An ``ObjectInfo`` carrying only a new version's encryption (PutResult.info)."""
    if not doc:
        return None
    return ObjectInfo(bucket, key, "", 0, "", 0, **describe(doc))


def describe(doc: Mapping[str, Any] | None) -> dict[str, Any]:
    """What ``ObjectInfo`` reports of a version's encryption."""
    if not doc:
        return {}
    m = doc["m"]
    if m == "C":
        return {"sse": "", "sse_customer_md5": doc.get("cmd5", "")}
    if m == "KMS":
        return {"sse": SSE_KMS, "kms_key_id": doc.get("kid", ""), "bucket_key": bool(doc.get("bk")),
                "kms_context": dict(doc.get("ctx", {}))}
    return {"sse": SSE_S3}
