"""What each S3 operation asks of the access rules: IAM action, resource, conditions (pure).

Theory of operation
-------------------
:data:`OPS` maps every S3 operation name (``titans3.s3.routing``) to the IAM
action AWS checks for it, the action used instead when the request names a
version (``versionId``), and the kind of resource (the account, a bucket, an
object).  :func:`condition_context` builds the request's condition keys --
the global ``aws:*`` keys and the S3 keys AWS documents for the operation --
as the lower-case ``key -> [values]`` mapping that ``titans3.iam`` evaluates.

Keys filled in (docs/security.md lists them with their operators):
``aws:SourceIp``, ``aws:SecureTransport``, ``aws:CurrentTime``,
``aws:EpochTime``, ``aws:UserAgent``, ``aws:Referer``, ``aws:userid``,
``aws:username``, ``aws:PrincipalArn``, ``aws:PrincipalAccount``,
``aws:PrincipalType``; ``s3:prefix``, ``s3:delimiter``, ``s3:max-keys``
(listings), ``s3:x-amz-acl``, ``s3:x-amz-grant-*``,
``s3:x-amz-server-side-encryption*``, ``s3:x-amz-copy-source``,
``s3:x-amz-metadata-directive``, ``s3:x-amz-storage-class``,
``s3:x-amz-content-sha256``, ``s3:VersionId``, ``s3:RequestObjectTag/<k>``
and ``s3:RequestObjectTagKeys`` (from ``x-amz-tagging``),
``s3:ExistingObjectTag/<k>`` (added by the caller when a policy needs it),
``s3:signatureversion``, ``s3:authType``, ``s3:signatureAge``,
``s3:x-amz-object-ownership``, ``s3:if-match``, ``s3:if-none-match``,
``s3:ResourceAccount``.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl, unquote

from titans3.iam.actions import ResourceKind
from titans3.iam.evaluate import Identity

__all__ = ["OPS", "OpRule", "RequestKeys", "condition_context", "resource_arn"]

A, B, OBJ = ResourceKind.ACCOUNT, ResourceKind.BUCKET, ResourceKind.OBJECT
OpRule = tuple[str, str | None, ResourceKind]

OPS: dict[str, OpRule] = {
    "ListBuckets": ("s3:ListAllMyBuckets", None, A),
    "CreateBucket": ("s3:CreateBucket", None, B),
    "DeleteBucket": ("s3:DeleteBucket", None, B),
    "HeadBucket": ("s3:ListBucket", None, B),
    "ListObjects": ("s3:ListBucket", None, B),
    "ListObjectsV2": ("s3:ListBucket", None, B),
    "ListObjectVersions": ("s3:ListBucketVersions", None, B),
    "ListMultipartUploads": ("s3:ListBucketMultipartUploads", None, B),
    "GetBucketLocation": ("s3:GetBucketLocation", None, B),
    "GetBucketVersioning": ("s3:GetBucketVersioning", None, B),
    "PutBucketVersioning": ("s3:PutBucketVersioning", None, B),
    "GetBucketTagging": ("s3:GetBucketTagging", None, B),
    "PutBucketTagging": ("s3:PutBucketTagging", None, B),
    "DeleteBucketTagging": ("s3:PutBucketTagging", None, B),
    "GetBucketAcl": ("s3:GetBucketAcl", None, B),
    "PutBucketAcl": ("s3:PutBucketAcl", None, B),
    "GetBucketOwnershipControls": ("s3:GetBucketOwnershipControls", None, B),
    "PutBucketOwnershipControls": ("s3:PutBucketOwnershipControls", None, B),
    "DeleteBucketOwnershipControls": ("s3:PutBucketOwnershipControls", None, B),
    "GetBucketCors": ("s3:GetBucketCORS", None, B),
    "PutBucketCors": ("s3:PutBucketCORS", None, B),
    "DeleteBucketCors": ("s3:PutBucketCORS", None, B),
    "GetBucketPolicy": ("s3:GetBucketPolicy", None, B),
    "PutBucketPolicy": ("s3:PutBucketPolicy", None, B),
    "DeleteBucketPolicy": ("s3:DeleteBucketPolicy", None, B),
    "GetBucketPolicyStatus": ("s3:GetBucketPolicyStatus", None, B),
    "GetPublicAccessBlock": ("s3:GetBucketPublicAccessBlock", None, B),
    "PutPublicAccessBlock": ("s3:PutBucketPublicAccessBlock", None, B),
    "DeletePublicAccessBlock": ("s3:PutBucketPublicAccessBlock", None, B),
    "GetBucketLifecycleConfiguration": ("s3:GetLifecycleConfiguration", None, B),
    "PutBucketLifecycleConfiguration": ("s3:PutLifecycleConfiguration", None, B),
    "DeleteBucketLifecycle": ("s3:PutLifecycleConfiguration", None, B),
    "GetBucketEncryption": ("s3:GetEncryptionConfiguration", None, B),
    "PutBucketEncryption": ("s3:PutEncryptionConfiguration", None, B),
    "DeleteBucketEncryption": ("s3:PutEncryptionConfiguration", None, B),
    "GetBucketLogging": ("s3:GetBucketLogging", None, B),
    "PutBucketLogging": ("s3:PutBucketLogging", None, B),
    "GetBucketNotificationConfiguration": ("s3:GetBucketNotification", None, B),
    "PutBucketNotificationConfiguration": ("s3:PutBucketNotification", None, B),
    "GetObjectLockConfiguration": ("s3:GetBucketObjectLockConfiguration", None, B),
    "PutObjectLockConfiguration": ("s3:PutBucketObjectLockConfiguration", None, B),
    "GetBucketReplication": ("s3:GetReplicationConfiguration", None, B),
    "PutBucketReplication": ("s3:PutReplicationConfiguration", None, B),
    "DeleteBucketReplication": ("s3:PutReplicationConfiguration", None, B),
    "GetBucketRequestPayment": ("s3:GetBucketRequestPayment", None, B),
    "PutBucketRequestPayment": ("s3:PutBucketRequestPayment", None, B),
    "GetBucketWebsite": ("s3:GetBucketWebsite", None, B),
    "PutBucketWebsite": ("s3:PutBucketWebsite", None, B),
    "DeleteBucketWebsite": ("s3:DeleteBucketWebsite", None, B),
    "GetBucketAccelerateConfiguration": ("s3:GetAccelerateConfiguration", None, B),
    "PutBucketAccelerateConfiguration": ("s3:PutAccelerateConfiguration", None, B),
    "DeleteObjects": ("s3:DeleteObject", None, B),  # and each key again (handlers_delete)
    "PostObject": ("s3:PutObject", None, OBJ),  # authorized by its form (handlers_post)
    "GetObject": ("s3:GetObject", "s3:GetObjectVersion", OBJ),
    "HeadObject": ("s3:GetObject", "s3:GetObjectVersion", OBJ),
    "GetObjectAttributes": ("s3:GetObjectAttributes", "s3:GetObjectVersionAttributes", OBJ),
    "PutObject": ("s3:PutObject", None, OBJ),
    "CopyObject": ("s3:PutObject", None, OBJ),
    "DeleteObject": ("s3:DeleteObject", "s3:DeleteObjectVersion", OBJ),
    "GetObjectTagging": ("s3:GetObjectTagging", "s3:GetObjectVersionTagging", OBJ),
    "PutObjectTagging": ("s3:PutObjectTagging", "s3:PutObjectVersionTagging", OBJ),
    "DeleteObjectTagging": ("s3:DeleteObjectTagging", "s3:DeleteObjectVersionTagging", OBJ),
    "GetObjectAcl": ("s3:GetObjectAcl", "s3:GetObjectVersionAcl", OBJ),
    "PutObjectAcl": ("s3:PutObjectAcl", "s3:PutObjectVersionAcl", OBJ),
    "CreateMultipartUpload": ("s3:PutObject", None, OBJ),
    "UploadPart": ("s3:PutObject", None, OBJ),
    "UploadPartCopy": ("s3:PutObject", None, OBJ),
    "CompleteMultipartUpload": ("s3:PutObject", None, OBJ),
    "AbortMultipartUpload": ("s3:AbortMultipartUpload", None, OBJ),
    "ListParts": ("s3:ListMultipartUploadParts", None, OBJ),
    "GetObjectRetention": ("s3:GetObjectRetention", None, OBJ),
    "PutObjectRetention": ("s3:PutObjectRetention", None, OBJ),
    "GetObjectLegalHold": ("s3:GetObjectLegalHold", None, OBJ),
    "PutObjectLegalHold": ("s3:PutObjectLegalHold", None, OBJ),
    "RestoreObject": ("s3:RestoreObject", None, OBJ),
    "SelectObjectContent": ("s3:GetObject", None, OBJ),
    "GetObjectTorrent": ("s3:GetObjectTorrent", "s3:GetObjectVersionTorrent", OBJ),
    "RenameObject": ("s3:RenameObject", None, OBJ),
}
# Configurations addressed by id and their listings share the configuration's actions.
for _name, _action in (("Analytics", "AnalyticsConfiguration"), ("Inventory", "InventoryConfiguration"),
                       ("Metrics", "MetricsConfiguration"),
                       ("IntelligentTiering", "IntelligentTieringConfiguration")):  # fmt: skip
    OPS[f"GetBucket{_name}Configuration"] = (f"s3:Get{_action}", None, B)
    OPS[f"ListBucket{_name}Configurations"] = (f"s3:Get{_action}", None, B)
    OPS[f"PutBucket{_name}Configuration"] = (f"s3:Put{_action}", None, B)
    OPS[f"DeleteBucket{_name}Configuration"] = (f"s3:Put{_action}", None, B)
for _verb in ("Get", "Create", "Delete"):
    OPS[f"{_verb}BucketMetadataTableConfiguration"] = (f"s3:{_verb}BucketMetadataTableConfiguration", None, B)

_LISTINGS = frozenset({"ListObjects", "ListObjectsV2", "ListObjectVersions"})
_PASSED_HEADERS = (
    "x-amz-acl", "x-amz-grant-read", "x-amz-grant-write", "x-amz-grant-read-acp",
    "x-amz-grant-write-acp", "x-amz-grant-full-control", "x-amz-server-side-encryption",
    "x-amz-server-side-encryption-aws-kms-key-id",
    "x-amz-server-side-encryption-customer-algorithm", "x-amz-server-side-encryption-context",
    "x-amz-metadata-directive", "x-amz-storage-class", "x-amz-content-sha256",
    "x-amz-object-ownership", "x-amz-website-redirect-location", "x-amz-checksum-algorithm",
)  # fmt: skip


def resource_arn(bucket: str | None, key: str | None) -> str:
    if bucket is None:
        return "arn:aws:s3:::*"
    return f"arn:aws:s3:::{bucket}" + (f"/{key}" if key is not None else "")


def principal_type(who: Identity) -> str:
    return {"root": "Account", "user": "User"}.get(who.kind, "Anonymous")


_SIGNED_OPS_WITH_TAGS = frozenset({"PutObject", "CopyObject", "CreateMultipartUpload"})
_HEADER_KEYS = {"aws:useragent": "user-agent", "aws:referer": "referer", "s3:if-match": "if-match",
                "s3:if-none-match": "if-none-match", **{"s3:" + h: h for h in _PASSED_HEADERS}}  # fmt: skip


class RequestKeys(Mapping[str, Sequence[str]]):
    """The condition keys of one request (module doc), each computed the first
    time a condition asks for it: most requests test none or a few, so building
    them all (clock formatting, tag parsing) would be paid for nothing."""

    def __init__(
        self, *, op: str, who: Identity, headers: Mapping[str, str], query: Mapping[str, str],
        source_ip: str | None, secure: bool, account: str, signature_version: str | None,
        auth_type: str | None, amz_date: str = "",
    ) -> None:  # fmt: skip
        self._op, self._who, self._headers, self._query = op, who, headers, query
        self._source_ip, self._secure, self._account = source_ip, secure, account
        self._sigver, self._authtype, self._amz_date = signature_version, auth_type, amz_date
        self._values: dict[str, list[str] | None] = {}
        self._now: float | None = None

    def update(self, extra: Mapping[str, list[str]]) -> None:
        self._values.update(extra)

    def _time(self) -> float:
        if self._now is None:
            self._now = time.time()
        return self._now

    def _compute(self, key: str) -> list[str] | None:
        who, headers, query = self._who, self._headers, self._query
        if key == "aws:securetransport":
            return ["true" if self._secure else "false"]
        if key == "aws:currenttime":
            return [time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self._time()))]
        if key == "aws:epochtime":
            return [str(int(self._time()))]
        if key == "aws:userid":
            return [who.user_id or "anonymous"]
        if key == "aws:principaltype":
            return [principal_type(who)]
        if key == "s3:resourceaccount":
            return [self._account]
        if key == "aws:sourceip":
            return [self._source_ip] if self._source_ip else None
        if key == "aws:username":
            return [who.name] if who.name else None
        if key == "aws:principalarn":
            return [who.arn] if who.arn else None
        if key == "aws:principalaccount":
            return [who.account] if who.arn else None
        if key in _HEADER_KEYS:
            value = headers.get(_HEADER_KEYS[key])
            return None if value is None else [value.strip() if key.startswith("s3:x-amz") else value]
        if key == "s3:x-amz-copy-source":
            src = headers.get("x-amz-copy-source")
            return None if src is None else [unquote(src.split("?", 1)[0]).lstrip("/")]
        if key == "s3:signatureversion":
            return [self._sigver] if self._sigver else None
        if key == "s3:authtype":
            return [self._authtype] if self._authtype else None
        if key == "s3:signatureage":
            return self._signature_age()
        if key == "s3:versionid":
            return [query["versionId"]] if "versionId" in query else None
        if key in ("s3:prefix", "s3:delimiter", "s3:max-keys"):
            q = key[3:]
            return [query[q]] if self._op in _LISTINGS and q in query else None
        if key.startswith("s3:requestobjecttag/") or key == "s3:requestobjecttagkeys":
            tagging = headers.get("x-amz-tagging")
            if tagging is None or self._op not in _SIGNED_OPS_WITH_TAGS:
                return None
            pairs = parse_qsl(tagging, keep_blank_values=True)
            if key == "s3:requestobjecttagkeys":
                return [k for k, _ in pairs]
            wanted = key[len("s3:requestobjecttag/"):]
            return [v for k, v in pairs if k.lower() == wanted] or None
        return None

    def _signature_age(self) -> list[str] | None:
        a = self._amz_date  # YYYYMMDDTHHMMSSZ, checked by sigv4
        if len(a) != 16:
            return None
        try:
            signed = dt.datetime(int(a[:4]), int(a[4:6]), int(a[6:8]), int(a[9:11]), int(a[11:13]),
                                 int(a[13:15]), tzinfo=dt.UTC).timestamp()  # fmt: skip
        except ValueError:
            return None
        return [str(max(0, int((self._time() - signed) * 1000)))]

    # -- Mapping
    def get(self, key: str, default: Any = None) -> Any:
        if key not in self._values:
            self._values[key] = self._compute(key)
        value = self._values[key]
        return default if value is None else value

    def __getitem__(self, key: str) -> Sequence[str]:
        value = self.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def _all(self) -> dict[str, list[str]]:
        names = ["aws:securetransport", "aws:currenttime", "aws:epochtime", "aws:userid", "aws:principaltype",
                 "s3:resourceaccount", "aws:sourceip", "aws:username", "aws:principalarn",
                 "aws:principalaccount", *_HEADER_KEYS, "s3:x-amz-copy-source", "s3:signatureversion",
                 "s3:authtype", "s3:signatureage", "s3:versionid", "s3:prefix", "s3:delimiter", "s3:max-keys",
                 "s3:requestobjecttagkeys"]  # fmt: skip
        tagging = self._headers.get("x-amz-tagging")
        if tagging is not None:
            names += [f"s3:requestobjecttag/{k.lower()}" for k, _ in parse_qsl(tagging, keep_blank_values=True)]
        out = {n: v for n in names if (v := self.get(n)) is not None}
        out.update({k: v for k, v in self._values.items() if v is not None})
        return out

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())


def condition_context(**kw: Any) -> RequestKeys:
    """The condition keys of one request (``RequestKeys``' arguments)."""
    return RequestKeys(**kw)
