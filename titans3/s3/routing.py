"""Which S3 operation a request is.

Theory of operation
-------------------
S3 routes on the *resource* (service / bucket / object), the HTTP method and
the *subresource* named in the query string (``?uploads``, ``?tagging``,
``?list-type=2`` ...), plus a few headers (``x-amz-copy-source`` turns a PUT
into a copy).  :func:`classify` is a pure function from those inputs to a
:class:`Route` carrying the AWS operation name, so the app dispatches with one
dictionary lookup and an unimplemented operation is simply a name without a
handler (501 ``NotImplemented``), never a 404/405 from a web framework.

The tables below list the whole S3 REST API, implemented or not, so a later
operation is added by writing its handler -- nothing here changes.  For each
(resource, method) the first subresource present, in table order, wins.

Addressing: path style (``/bucket/key``) always; virtual-host style
(``bucket.<domain>/key``) when a domain is configured and the Host header is a
subdomain of it.  The path is the *raw* (percent-encoded) path; it is decoded
here exactly once (``+`` stays ``+`` in paths).  Keys are never normalised:
``a//b`` and ``a/../b`` are keys like any other.

The admin API lives under ``/titans3/admin/`` on the service endpoint (path
style only); the bucket name ``titans3`` is therefore reserved.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote_to_bytes

from titans3.core.errors import (
    InvalidArgument,
    InvalidBucketName,
    InvalidURI,
    KeyTooLongError,
    MethodNotAllowed,
)

MAX_KEY_BYTES = 1024
ADMIN_PREFIX = "/titans3/admin/"
RESERVED_BUCKETS = frozenset({"titans3"})


@dataclass(frozen=True, slots=True)
class Route:
    op: str  # AWS operation name ("PutObject"), or "Admin"
    bucket: str | None = None
    key: str | None = None
    query: Mapping[str, str] = field(default_factory=dict)
    virtual_host: bool = False

    @property
    def resource(self) -> str:
        """``/bucket/key`` as error bodies show it."""
        if self.bucket is None:
            return "/" if self.key is None else ADMIN_PREFIX + self.key
        return f"/{self.bucket}" + (f"/{self.key}" if self.key is not None else "")


# ------------------------------------------------------------------- tables
# (subresource, operation), first match wins.
_BUCKET_OPS: dict[str, tuple[tuple[str, str], ...]] = {
    "GET": (
        ("uploads", "ListMultipartUploads"),
        ("versions", "ListObjectVersions"),
        ("location", "GetBucketLocation"),
        ("acl", "GetBucketAcl"),
        ("cors", "GetBucketCors"),
        ("encryption", "GetBucketEncryption"),
        ("lifecycle", "GetBucketLifecycleConfiguration"),
        ("logging", "GetBucketLogging"),
        ("notification", "GetBucketNotificationConfiguration"),
        ("object-lock", "GetObjectLockConfiguration"),
        ("ownershipControls", "GetBucketOwnershipControls"),
        ("policy", "GetBucketPolicy"),
        ("policyStatus", "GetBucketPolicyStatus"),
        ("publicAccessBlock", "GetPublicAccessBlock"),
        ("replication", "GetBucketReplication"),
        ("requestPayment", "GetBucketRequestPayment"),
        ("tagging", "GetBucketTagging"),
        ("versioning", "GetBucketVersioning"),
        ("website", "GetBucketWebsite"),
        ("accelerate", "GetBucketAccelerateConfiguration"),
        ("analytics", "GetBucketAnalyticsConfiguration"),
        ("inventory", "GetBucketInventoryConfiguration"),
        ("metrics", "GetBucketMetricsConfiguration"),
        ("intelligent-tiering", "GetBucketIntelligentTieringConfiguration"),
        ("metadataTable", "GetBucketMetadataTableConfiguration"),
    ),
    "PUT": (
        ("acl", "PutBucketAcl"),
        ("cors", "PutBucketCors"),
        ("encryption", "PutBucketEncryption"),
        ("lifecycle", "PutBucketLifecycleConfiguration"),
        ("logging", "PutBucketLogging"),
        ("notification", "PutBucketNotificationConfiguration"),
        ("object-lock", "PutObjectLockConfiguration"),
        ("ownershipControls", "PutBucketOwnershipControls"),
        ("policy", "PutBucketPolicy"),
        ("publicAccessBlock", "PutPublicAccessBlock"),
        ("replication", "PutBucketReplication"),
        ("requestPayment", "PutBucketRequestPayment"),
        ("tagging", "PutBucketTagging"),
        ("versioning", "PutBucketVersioning"),
        ("website", "PutBucketWebsite"),
        ("accelerate", "PutBucketAccelerateConfiguration"),
        ("analytics", "PutBucketAnalyticsConfiguration"),
        ("inventory", "PutBucketInventoryConfiguration"),
        ("metrics", "PutBucketMetricsConfiguration"),
        ("intelligent-tiering", "PutBucketIntelligentTieringConfiguration"),
    ),
    "DELETE": (
        ("cors", "DeleteBucketCors"),
        ("encryption", "DeleteBucketEncryption"),
        ("lifecycle", "DeleteBucketLifecycle"),
        ("ownershipControls", "DeleteBucketOwnershipControls"),
        ("policy", "DeleteBucketPolicy"),
        ("publicAccessBlock", "DeletePublicAccessBlock"),
        ("replication", "DeleteBucketReplication"),
        ("tagging", "DeleteBucketTagging"),
        ("website", "DeleteBucketWebsite"),
        ("analytics", "DeleteBucketAnalyticsConfiguration"),
        ("inventory", "DeleteBucketInventoryConfiguration"),
        ("metrics", "DeleteBucketMetricsConfiguration"),
        ("intelligent-tiering", "DeleteBucketIntelligentTieringConfiguration"),
        ("metadataTable", "DeleteBucketMetadataTableConfiguration"),
    ),
    "POST": (("delete", "DeleteObjects"), ("metadataTable", "CreateBucketMetadataTableConfiguration")),
    "HEAD": (),
    "OPTIONS": (),
}
_BUCKET_DEFAULT = {
    "GET": "ListObjects",
    "PUT": "CreateBucket",
    "DELETE": "DeleteBucket",
    "POST": "PostObject",
    "HEAD": "HeadBucket",
    "OPTIONS": "PreflightRequest",
}
# Configurations addressed by ``id``: without it, GET lists them.
_LISTED_BY_ID = {
    "analytics": "ListBucketAnalyticsConfigurations",
    "inventory": "ListBucketInventoryConfigurations",
    "metrics": "ListBucketMetricsConfigurations",
    "intelligent-tiering": "ListBucketIntelligentTieringConfigurations",
}

_OBJECT_OPS: dict[str, tuple[tuple[str, str], ...]] = {
    "GET": (
        ("uploadId", "ListParts"),
        ("acl", "GetObjectAcl"),
        ("tagging", "GetObjectTagging"),
        ("retention", "GetObjectRetention"),
        ("legal-hold", "GetObjectLegalHold"),
        ("attributes", "GetObjectAttributes"),
        ("torrent", "GetObjectTorrent"),
    ),
    "PUT": (
        ("uploadId", "UploadPart"),  # UploadPartCopy with x-amz-copy-source
        ("acl", "PutObjectAcl"),
        ("tagging", "PutObjectTagging"),
        ("retention", "PutObjectRetention"),
        ("legal-hold", "PutObjectLegalHold"),
    ),
    "POST": (
        ("uploads", "CreateMultipartUpload"),
        ("uploadId", "CompleteMultipartUpload"),
        ("restore", "RestoreObject"),
        ("select", "SelectObjectContent"),
        ("renameObject", "RenameObject"),
    ),
    "DELETE": (
        ("uploadId", "AbortMultipartUpload"),
        ("tagging", "DeleteObjectTagging"),
    ),
    "HEAD": (),
    "OPTIONS": (),
}
_OBJECT_DEFAULT = {
    "GET": "GetObject",
    "PUT": "PutObject",  # CopyObject with x-amz-copy-source
    "DELETE": "DeleteObject",
    "HEAD": "HeadObject",
    "OPTIONS": "PreflightRequest",
}
_COPY_OPS = {"PutObject": "CopyObject", "UploadPart": "UploadPartCopy"}


# ---------------------------------------------------------------- validation
_BUCKET_CHARS = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_BAD_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_BAD_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")


def validate_bucket_name(name: str) -> None:
    """AWS general-purpose bucket naming rules; ``InvalidBucketName`` otherwise."""
    if (
        not _BUCKET_CHARS.fullmatch(name)
        or ".." in name
        or ".-" in name
        or "-." in name
        or name.startswith(_BAD_PREFIXES)
        or name.endswith(_BAD_SUFFIXES)
        or name in RESERVED_BUCKETS
        or _is_ipv4(name)
    ):
        raise InvalidBucketName(BucketName=name)


def _is_ipv4(name: str) -> bool:
    try:
        ipaddress.IPv4Address(name)
    except ValueError:
        return False
    return True


def validate_key(key: str) -> None:
    """Keys are at most 1,024 bytes of UTF-8; ``KeyTooLongError`` otherwise."""
    size = len(key.encode("utf-8"))
    if size > MAX_KEY_BYTES:
        raise KeyTooLongError(Size=str(size), MaxSizeAllowed=str(MAX_KEY_BYTES))


# ------------------------------------------------------------------- parsing
_C1_CONTROLS = re.compile("[\u0080-\u009f]")


def _decode(raw: str) -> str:
    """A path segment as text; ``InvalidURI`` (400) when AWS cannot parse it either:
    bytes that are not UTF-8, or C1 control characters (U+0080-U+009F, what
    latin-1 text mis-sent as UTF-8 turns into; AWS answers 400 for those too)."""
    try:
        text = unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidURI(URI=raw) from exc
    if _C1_CONTROLS.search(text):
        raise InvalidURI(URI=raw)
    return text


def parse_query(raw_query: str) -> dict[str, str]:
    """Query parameters, decoded (first occurrence wins; blank values kept)."""
    if not raw_query:
        return {}
    try:
        pairs = parse_qsl(raw_query, keep_blank_values=True, encoding="utf-8", errors="strict")
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidArgument("Couldn't parse the query string.") from exc
    query: dict[str, str] = {}
    for name, value in pairs:
        query.setdefault(name, value)
    return query


def _split_host(host: str) -> str:
    host = host.strip().lower()
    if host.startswith("["):  # IPv6 literal
        return host.partition("]")[0] + "]"
    return host.rpartition(":")[0] if ":" in host else host


def _vhost_bucket(host: str | None, domain: str | None) -> str | None:
    if not host or not domain:
        return None
    name = _split_host(host)
    suffix = "." + domain.lower().strip(".")
    if name.endswith(suffix) and len(name) > len(suffix):
        return name[: -len(suffix)]
    return None


def classify(
    method: str,
    raw_path: str,
    query: Mapping[str, str],
    headers: Mapping[str, str],
    domain: str | None = None,
) -> Route:
    """The S3 operation for a request.

    ``raw_path`` is the percent-encoded path (no query); ``headers`` have
    lower-case names.  Raises ``InvalidBucketName``, ``KeyTooLongError``,
    ``InvalidURI`` (undecodable path) or ``MethodNotAllowed``.
    """
    method = method.upper()
    if not raw_path.startswith("/"):
        raw_path = "/" + raw_path
    vhost_bucket = _vhost_bucket(headers.get("host"), domain)
    if vhost_bucket is not None:
        bucket: str | None = vhost_bucket
        raw_key = raw_path[1:]
    else:
        if raw_path.startswith(ADMIN_PREFIX):
            return Route("Admin", None, _decode(raw_path[len(ADMIN_PREFIX) :]), query)
        raw_bucket, _, raw_key = raw_path[1:].partition("/")
        bucket = _decode(raw_bucket) if raw_bucket else None

    if bucket is None:
        if method in ("GET", "HEAD"):
            return Route("ListBuckets", None, None, query)
        raise MethodNotAllowed(Method=method, ResourceType="SERVICE")

    validate_bucket_name(bucket)
    key = _decode(raw_key) if raw_key else None
    if key is None:
        op = _bucket_op(method, query)
    else:
        validate_key(key)
        op = _object_op(method, query, headers)
    return Route(op, bucket, key, query, vhost_bucket is not None)


def _first(table: tuple[tuple[str, str], ...], query: Mapping[str, str]) -> tuple[str, str] | None:
    for sub, op in table:
        if sub in query:
            return sub, op
    return None


def _bucket_op(method: str, query: Mapping[str, str]) -> str:
    table = _BUCKET_OPS.get(method)
    if table is None:
        raise MethodNotAllowed(Method=method, ResourceType="BUCKET")
    hit = _first(table, query)
    if hit is None:
        if method == "GET" and query.get("list-type") == "2":
            return "ListObjectsV2"
        return _BUCKET_DEFAULT[method]
    sub, op = hit
    if method == "GET" and sub in _LISTED_BY_ID and "id" not in query:
        return _LISTED_BY_ID[sub]
    return op


def _object_op(method: str, query: Mapping[str, str], headers: Mapping[str, str]) -> str:
    table = _OBJECT_OPS.get(method)
    if table is None:
        raise MethodNotAllowed(Method=method, ResourceType="OBJECT")
    hit = _first(table, query)
    op = _OBJECT_DEFAULT.get(method) if hit is None else hit[1]
    if op is None:  # POST to an object without a subresource
        raise MethodNotAllowed(Method=method, ResourceType="OBJECT")
    if op in _COPY_OPS and "x-amz-copy-source" in headers:
        return _COPY_OPS[op]
    return op
