"""Server-side encryption headers: parsing requests, rendering responses (pure).

Theory of operation
-------------------
AWS spreads SSE over three header families; this module turns them into the
object layer's :class:`~titans3.objects.api.Encryption` (writes) or a
customer key (reads), with AWS's errors, and renders what S3 answers:

* SSE-S3 / SSE-KMS: ``x-amz-server-side-encryption`` (``AES256`` |
  ``aws:kms``), ``-aws-kms-key-id`` (only with ``aws:kms``), ``-context``
  (base64 JSON object of strings), ``-bucket-key-enabled``;
* SSE-C: ``x-amz-server-side-encryption-customer-{algorithm,key,key-MD5}``,
  all three, algorithm ``AES256``, the key base64 of 32 bytes, the MD5 that
  of the key; the copy source's key comes in the same three headers with the
  ``x-amz-copy-source-`` prefix;
* SSE-C and ``x-amz-server-side-encryption`` together: ``InvalidArgument``.

The customer key never leaves the request: it is not logged (the access log
records no request headers) and only its MD5 is echoed back.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Mapping

from titans3.core.errors import InvalidArgument, NotImplementedS3, S3Error
from titans3.objects.api import Encryption, ObjectInfo

SSE = "x-amz-server-side-encryption"
SSE_KMS_KEY = "x-amz-server-side-encryption-aws-kms-key-id"
SSE_CONTEXT = "x-amz-server-side-encryption-context"
SSE_BUCKET_KEY = "x-amz-server-side-encryption-bucket-key-enabled"
SSE_C_ALGO = "x-amz-server-side-encryption-customer-algorithm"
SSE_C_KEY = "x-amz-server-side-encryption-customer-key"
SSE_C_MD5 = "x-amz-server-side-encryption-customer-key-md5"
COPY_PREFIX = "x-amz-copy-source-"

InvalidEncryptionAlgorithmError = type(
    "InvalidEncryptionAlgorithmError", (S3Error,),
    {"code": "InvalidEncryptionAlgorithmError", "status": 400,
     "default_message": "The encryption request you specified is not valid. The valid value is AES256."})


def customer_key(headers: Mapping[str, str], *, prefix: str = "") -> bytes | None:
    """The SSE-C key of a request (``prefix``: the copy source's), or None."""
    def name(h: str) -> str:
        return prefix + h.removeprefix("x-amz-") if prefix else h

    algo = headers.get(name(SSE_C_ALGO))
    key = headers.get(name(SSE_C_KEY))
    md5 = headers.get(name(SSE_C_MD5))
    if algo is None and key is None and md5 is None:
        return None
    if algo is None:
        raise InvalidArgument(
            "Requests specifying Server Side Encryption with Customer provided keys must provide "
            "a valid encryption algorithm.", ArgumentName=name(SSE_C_ALGO))
    if algo != "AES256":
        raise InvalidEncryptionAlgorithmError(ArgumentName=name(SSE_C_ALGO), ArgumentValue=algo)
    if key is None:
        raise InvalidArgument(
            "Requests specifying Server Side Encryption with Customer provided keys must provide "
            "an appropriate secret key.", ArgumentName=name(SSE_C_KEY))
    try:
        raw = base64.b64decode(key.strip(), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise InvalidArgument("The secret key was invalid for the specified algorithm.",
                              ArgumentName=name(SSE_C_KEY))
    if md5 is None:
        raise InvalidArgument(
            "Requests specifying Server Side Encryption with Customer provided keys must provide "
            "the client calculated MD5 of the secret key.", ArgumentName=name(SSE_C_MD5))
    want = base64.b64encode(hashlib.md5(raw).digest()).decode()
    if not hmac.compare_digest(want, md5.strip()):
        raise InvalidArgument(
            "The calculated MD5 hash of the key did not match the hash that was provided.",
            ArgumentName=name(SSE_C_MD5))
    return raw


def _context(value: str | None) -> dict[str, str] | None:
    if value is None:
        return None
    try:
        doc = json.loads(base64.b64decode(value, validate=True))
    except (binascii.Error, ValueError):
        doc = None
    if not isinstance(doc, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in doc.items()):
        raise InvalidArgument("The encryption context is not valid base64-encoded JSON.",
                              ArgumentName=SSE_CONTEXT)
    return doc


def write_encryption(headers: Mapping[str, str]) -> Encryption | None:
    """What a PUT / CreateMultipartUpload / CopyObject asks for (None: the bucket default)."""
    ck = customer_key(headers)
    mode = headers.get(SSE)
    if ck is not None:
        if mode is not None:
            raise InvalidArgument(
                "Server Side Encryption with Customer provided key is incompatible with the "
                "encryption method specified", ArgumentName=SSE, ArgumentValue=mode)
        return Encryption("SSE-C", customer_key=ck)
    if mode is None:
        for name in (SSE_KMS_KEY, SSE_CONTEXT):
            if name in headers:
                raise InvalidArgument(
                    "Server Side Encryption with AWS KMS managed key requires HTTP header "
                    "x-amz-server-side-encryption : aws:kms", ArgumentName=name)
        return None
    if mode == "aws:kms:dsse":
        raise NotImplementedS3("Dual-layer SSE-KMS is not implemented.", Header=SSE)
    if mode not in ("AES256", "aws:kms"):
        raise InvalidArgument("Server Side Encryption with unknown algorithm",
                              ArgumentName=SSE, ArgumentValue=mode)
    if mode == "AES256":
        if SSE_KMS_KEY in headers or SSE_CONTEXT in headers:
            raise InvalidArgument(
                "Server Side Encryption with AWS KMS managed key requires HTTP header "
                "x-amz-server-side-encryption : aws:kms", ArgumentName=SSE_KMS_KEY)
        return Encryption("AES256")
    bucket_key = headers.get(SSE_BUCKET_KEY, "false").strip().lower()
    if bucket_key not in ("true", "false"):
        raise InvalidArgument("Bucket key enabled must be true or false", ArgumentName=SSE_BUCKET_KEY)
    kid = headers.get(SSE_KMS_KEY)
    if kid is not None and not kid.strip():
        raise InvalidArgument("KMS key id must not be empty", ArgumentName=SSE_KMS_KEY)
    return Encryption("aws:kms", kms_key_id=kid.strip() if kid else None,
                      context=_context(headers.get(SSE_CONTEXT)), bucket_key=bucket_key == "true")


def read_key(headers: Mapping[str, str]) -> bytes | None:
    """GET / HEAD: the SSE-C key, if sent."""
    return customer_key(headers)


def response_headers(reply: object, info: ObjectInfo | None) -> None:
    """The SSE headers of a version (``reply``: anything with ``header(name, value)``)."""
    if info is None:
        return
    add = reply.header  # type: ignore[attr-defined]
    if info.sse_customer_md5:
        add(SSE_C_ALGO, "AES256")
        add("x-amz-server-side-encryption-customer-key-MD5", info.sse_customer_md5)
    elif info.sse:
        add(SSE, info.sse)
        if info.sse == "aws:kms":
            add(SSE_KMS_KEY, info.kms_key_id)
            if info.bucket_key:
                add(SSE_BUCKET_KEY, "true")
            if info.kms_context:
                add(SSE_CONTEXT, base64.b64encode(json.dumps(
                    info.kms_context, separators=(",", ":")).encode()).decode())


def echo_customer_key(reply: object, key: bytes | None) -> None:
    """UploadPart with SSE-C: AWS echoes the algorithm and the key's MD5."""
    if key is not None:
        add = reply.header  # type: ignore[attr-defined]
        add(SSE_C_ALGO, "AES256")
        add("x-amz-server-side-encryption-customer-key-MD5",
            base64.b64encode(hashlib.md5(key).digest()).decode())
