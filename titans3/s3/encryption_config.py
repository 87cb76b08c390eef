"""Bucket default encryption: the ``ServerSideEncryptionConfiguration`` document (pure).

Theory of operation
-------------------
:func:`parse` validates a PutBucketEncryption body as S3 does and returns the
compact JSON the object layer applies to every write that names no
encryption (``objects/sse.py``, ``bucket_default``): ``{"alg": "AES256" |
"aws:kms", "kid": key id or absent, "bk": bucket key}``.  :func:`render`
writes the GetBucketEncryption answer from it.

Rules: exactly one ``Rule`` with one ``ApplyServerSideEncryptionByDefault``
holding ``SSEAlgorithm`` (``AES256`` or ``aws:kms``; anything else
``MalformedXML`` as AWS answers for an unknown enum) and, for ``aws:kms``
only, ``KMSMasterKeyID`` (``InvalidArgument`` otherwise); ``BucketKeyEnabled``
``true``/``false``.  ``aws:kms:dsse`` is not implemented (501).
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from typing import Any

from titans3.core.errors import InvalidArgument, MalformedXML, NotImplementedS3, S3Error
from titans3.s3.xml import S3_NS, escape, parse_document

NAME = "encryption"  # the bucket configuration document (objects/sse.py: ENCRYPTION_CONFIG)
MAX_BODY = 16 * 1024

NotFound = type("ServerSideEncryptionConfigurationNotFoundError", (S3Error,), {
    "code": "ServerSideEncryptionConfigurationNotFoundError", "status": 404,
    "default_message": "The server side encryption configuration was not found"})


def children(el: ET.Element, allowed: set[str]) -> dict[str, ET.Element]:
    """An element's children by name; unknown or repeated names are ``MalformedXML``."""
    out: dict[str, ET.Element] = {}
    for kid in el:
        if kid.tag not in allowed or kid.tag in out:
            raise MalformedXML()
        out[kid.tag] = kid
    return out


def text(el: ET.Element | None) -> str | None:
    return None if el is None else (el.text or "").strip()


def parse(data: bytes) -> bytes:
    root = parse_document(data)
    if root.tag != "ServerSideEncryptionConfiguration":
        raise MalformedXML()
    rules = list(root)
    if len(rules) != 1 or rules[0].tag != "Rule":
        raise MalformedXML()
    rule = children(rules[0], {"ApplyServerSideEncryptionByDefault", "BucketKeyEnabled"})
    apply = rule.get("ApplyServerSideEncryptionByDefault")
    if apply is None:
        raise MalformedXML()
    fields = children(apply, {"SSEAlgorithm", "KMSMasterKeyID"})
    alg = text(fields.get("SSEAlgorithm"))
    if alg == "aws:kms:dsse":
        raise NotImplementedS3("Dual-layer SSE-KMS is not implemented.")
    if alg not in ("AES256", "aws:kms"):
        raise MalformedXML()
    kid = text(fields.get("KMSMasterKeyID"))
    if kid is not None and alg != "aws:kms":
        raise InvalidArgument("a KMSMasterKeyID is not applicable if the default sse algorithm is "
                              "not aws:kms or aws:kms:dsse", ArgumentName="ApplyServerSideEncryptionByDefault")
    bk = text(rule.get("BucketKeyEnabled")) or "false"
    if bk not in ("true", "false"):
        raise MalformedXML()
    doc: dict[str, Any] = {"alg": alg, "bk": bk == "true"}
    if kid:
        doc["kid"] = kid
    return json.dumps(doc, separators=(",", ":")).encode()


def render(raw: bytes) -> bytes:
    doc = json.loads(raw)
    kid = f"<KMSMasterKeyID>{escape(doc['kid'])}</KMSMasterKeyID>" if doc.get("kid") else ""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<ServerSideEncryptionConfiguration xmlns="{S3_NS}"><Rule>'
        f"<ApplyServerSideEncryptionByDefault><SSEAlgorithm>{doc['alg']}</SSEAlgorithm>{kid}"
        "</ApplyServerSideEncryptionByDefault>"
        f"<BucketKeyEnabled>{'true' if doc.get('bk') else 'false'}</BucketKeyEnabled>"
        "</Rule></ServerSideEncryptionConfiguration>"
    ).encode()
