"""Values the object layer hands to the fronts (S3, FUSE, NBD, admin, web).

Plain records: the fronts render them and never reach back into drives
through them.  The operations that produce them, and what each promises, are
:mod:`titans3.objects.api`; fronts import these names from there.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from titans3.core.errors import NoSuchKey, PreconditionFailed


@dataclass(frozen=True, slots=True)
class BucketInfo:
    name: str
    created_ns: int
    versioning: str = ""  # "", "Enabled", "Suspended"


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    bucket: str
    key: str
    version_id: str  # S3 form: "null" for the null version
    size: int
    etag: str  # without quotes
    mtime_ns: int
    meta: dict[str, str] = field(default_factory=dict)  # content-type, x-amz-meta-*, ...
    checksums: dict[str, str] = field(default_factory=dict)
    delete_marker: bool = False
    is_latest: bool = True
    parts_count: int = 0
    tags: dict[str, str] = field(default_factory=dict)  # object tags (S3 tagging)
    part_sizes: tuple[int, ...] = ()  # sizes of a multipart object's parts, in order
    parts: tuple[PartInfo, ...] = ()  # a multipart object's parts (number, size, etag, checksums)
    # Server-side encryption (objects/sse.py): "AES256" / "aws:kms" / "" (none or SSE-C)
    sse: str = ""
    sse_customer_md5: str = ""  # SSE-C: base64 MD5 of the customer's key
    kms_key_id: str = ""  # SSE-KMS: the key's ARN
    bucket_key: bool = False
    kms_context: dict[str, str] = field(default_factory=dict)  # SSE-KMS encryption context
    lock: ObjectLock | None = None  # object lock of the version (None: none set)
    storage_class: str = "STANDARD"  # its class (core/storageclass.py), its EC scheme


@dataclass(frozen=True, slots=True)
class ObjectLock:
    """A version's object lock (``objects/objectlock.py``): retention mode
    (``GOVERNANCE`` / ``COMPLIANCE`` / None), its end (ns since the epoch)
    and the legal hold."""

    mode: str | None = None
    until_ns: int | None = None
    legal_hold: bool = False
    legal_hold_set: bool = False  # a legal hold was ever put on the version (ON or OFF)


@dataclass(frozen=True, slots=True)
class Encryption:
    """How a write is to be encrypted (``objects/sse.py``).

    ``mode``: ``"AES256"`` (SSE-S3), ``"aws:kms"`` (SSE-KMS, ``kms_key_id``
    None: the default key) or ``"SSE-C"`` (``customer_key``: the client's
    32 bytes, held for this request only and never shown by ``repr``)."""

    mode: str
    customer_key: bytes | None = field(default=None, repr=False)
    kms_key_id: str | None = None
    context: Mapping[str, str] | None = None
    bucket_key: bool = False


@dataclass(frozen=True, slots=True)
class PutResult:
    etag: str
    version_id: str
    size: int
    checksums: dict[str, str] = field(default_factory=dict)
    mtime_ns: int = 0  # Last-Modified of the new version
    info: ObjectInfo | None = None  # encryption of the new version, for the response headers


@dataclass(slots=True)
class GetResult:
    info: ObjectInfo
    body: AsyncIterator[bytes]
    first: int  # inclusive byte offset served
    last: int  # inclusive; first > last for an empty object
    partial: bool  # a Range was applied (-> 206)


@dataclass(frozen=True, slots=True)
class DeleteResult:
    version_id: str | None
    delete_marker: bool


@dataclass(frozen=True, slots=True)
class ListPage:
    objects: list[ObjectInfo]
    prefixes: list[str]
    is_truncated: bool
    next_start_after: str | None  # key or prefix to resume after


@dataclass(frozen=True, slots=True)
class PartInfo:
    number: int
    size: int
    etag: str
    mtime_ns: int
    checksums: dict[str, str] = field(default_factory=dict)
    info: ObjectInfo | None = None  # UploadPart: the upload's encryption, for the response headers


@dataclass(frozen=True, slots=True)
class DriveInfo:
    drive_id: str
    path: str
    state: str
    capacity: int
    used: int
    free: int
    errors: int


@dataclass(frozen=True, slots=True)
class HostInfo:
    host: str
    drives: list[DriveInfo]
    ec_k: int
    ec_m: int
    version: str


@dataclass(frozen=True, slots=True)
class WriteCondition:
    """What the key must hold for a write to land (``objects/conditional.py``).

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


@dataclass(frozen=True, slots=True)
class CopyResult:
    source: ObjectInfo  # the source version that was copied
    put: PutResult | None = None  # CopyObject
    part: PartInfo | None = None  # UploadPartCopy


@dataclass(frozen=True, slots=True)
class VersionsPage:
    versions: list[ObjectInfo]  # versions and delete markers, in listing order
    prefixes: list[str]
    is_truncated: bool
    next_key_marker: str | None
    next_version_id_marker: str | None


@dataclass(frozen=True, slots=True)
class UploadInfo:
    key: str
    upload_id: str
    initiated_ns: int


@dataclass(frozen=True, slots=True)
class UploadsPage:
    uploads: list[UploadInfo]
    prefixes: list[str]
    is_truncated: bool
    next_key_marker: str | None
    next_upload_id_marker: str | None


@dataclass(frozen=True, slots=True)
class StatFs:
    """Cluster capacity as a filesystem reports it (``statfs``).

    ``raw_*`` sum the drives (online ones for free/used); ``usable_*`` are
    what objects can still take: raw bytes times ``k / (k + m)`` of the
    default scheme.  ``objects`` is not counted (it would need a full
    listing): fronts report it as unknown.
    """

    raw_capacity: int
    raw_used: int
    raw_free: int
    usable_capacity: int
    usable_free: int
    drives: int
    drives_online: int
    ec_k: int
    ec_m: int


@dataclass(frozen=True, slots=True)
class StoreStatistics:
    """Counters of the object layer for the status page and metrics."""

    host: str
    ec_k: int
    ec_m: int
    ring_version: int
    drives: int
    healing: tuple[int, ...]  # positions of drives being refilled
    degraded_reads: int
    partial_writes: int


# (upload's checksum algorithm, its type) -> a running checksum to compute, or None
ComputeChecksum = Callable[[str, str | None], Any]
# (upload's checksum algorithm, its type, the chosen parts) -> the object's checksums
CompleteChecksums = Callable[[str | None, str | None, Sequence[PartInfo]], Mapping[str, str]]


@dataclass(frozen=True, slots=True)
class RenameResult:
    source: ObjectInfo  # the source version as it was before the rename
    info: ObjectInfo  # the destination's current version after it
    source_version_id: str | None = None  # the delete marker left at the source (versioned)
