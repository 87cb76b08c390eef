"""Values the object layer hands to the fronts (S3, FUSE, NBD, admin).

These are plain frozen records: the fronts render them, they never reach back
into drives.  ``ObjectStore`` (``titans3.objects.store``) is the only producer.

ObjectStore contract (all methods async; errors are ``titans3.core.errors``):

* ``create_bucket(name)`` -> ``BucketInfo``; ``BucketAlreadyOwnedByYou``,
  ``InvalidBucketName``.
* ``head_bucket(name)`` -> ``BucketInfo``; ``NoSuchBucket``.
* ``delete_bucket(name)``; ``NoSuchBucket``, ``BucketNotEmpty``.
* ``list_buckets()`` -> ``list[BucketInfo]`` sorted by name.
* ``put_object(bucket, key, body, *, size=None, meta={}, content_md5=None,
  checksums=None)`` -> ``PutResult``.  ``body`` is an async iterator of bytes;
  ``size`` (if known) is checked (``IncompleteBody``); ``content_md5`` is the
  base64 Content-MD5 (``BadDigest``).  ``checksums`` is an optional callable
  invoked after the body is consumed (returns ``{algo: b64}`` to store; may raise
  to abort the PUT: nothing becomes visible).
* ``get_object(bucket, key, *, version_id=None, byte_range=None)`` ->
  ``GetResult`` whose ``body`` streams only the requested range.
  ``byte_range`` is ``(first, last)`` with ``last`` possibly ``None`` (open
  ended) or ``(None, n)`` for a suffix; ``InvalidRange`` when unsatisfiable.
* ``head_object(bucket, key, *, version_id=None)`` -> ``ObjectInfo``;
  ``NoSuchKey`` (``NoSuchVersion`` for a bad version id).
* ``delete_object(bucket, key, *, version_id=None)`` -> ``DeleteResult``.
* ``list_objects(bucket, *, prefix="", delimiter="", start_after="",
  max_keys=1000)`` -> ``ListPage``.
* ``create_multipart(bucket, key, *, meta={})`` -> upload id (str);
  ``upload_part(bucket, key, upload_id, part_number, body, *, size=None,
  content_md5=None, checksums=None)`` -> ``PartInfo``;
  ``complete_multipart(bucket, key, upload_id, parts=[(number, etag)])`` ->
  ``PutResult``; ``abort_multipart(bucket, key, upload_id)``;
  ``list_parts(bucket, key, upload_id)`` -> ``list[PartInfo]``.
* ``info()`` -> ``HostInfo`` (drives, EC scheme) for the admin API.

Object-level S3 features (each in its own mixin module, see its docstring):

* writes take ``tags=`` (object tags) and ``condition=`` (a
  ``conditional.WriteCondition``: If-None-Match / If-Match, 412/404/409);
  ``get_object(..., part_number=N)`` serves one part (``InvalidPartNumber``).
* versioning (``versions.py``): ``put_bucket_versioning(bucket, status)``,
  ``get_bucket_versioning(bucket)``, ``list_object_versions(bucket, *, prefix,
  delimiter, key_marker, version_id_marker, max_keys)`` -> ``VersionsPage``;
  reads of a delete marker raise ``NoSuchKey`` / ``MethodNotAllowed`` carrying
  the marker headers in ``err.headers``.
* copy (``copy.py``): ``copy_object(src_bucket, src_key, dst_bucket, dst_key,
  *, src_version_id, meta, tags, check_source, condition)`` and
  ``upload_part_copy(bucket, key, upload_id, n, src_bucket, src_key, *,
  src_version_id, byte_range, check_source)`` -> ``CopyResult``.
* tagging (``tagging.py``): ``get_object_tagging`` -> ``(version id, tags)``,
  ``put_object_tagging(bucket, key, tags, *, version_id)`` and
  ``delete_object_tagging`` -> version id.
* ``list_multipart_uploads(bucket, *, prefix, delimiter, key_marker,
  upload_id_marker, max_uploads)`` -> ``UploadsPage`` (``uploads.py``).

Bucket configuration and multipart checksums:

* ``get_bucket_config(bucket, name)`` -> ``bytes | None`` and
  ``put_bucket_config(bucket, name, value | None)`` (``bucket_config.py``):
  opaque per-bucket documents (the S3 front stores CORS and tagging there),
  kept in the bucket record's quorum register; ``NoSuchBucket``.
* ``create_multipart(..., checksum_algorithm=None, checksum_type=None)`` binds
  the upload: every ``upload_part`` must then carry that algorithm's checksum
  (``InvalidRequest`` otherwise); ``complete_multipart(..., checksums=hook)``
  calls ``hook(algorithm, type, chosen parts as PartInfo)`` before committing
  and stores the ``{algo: b64}`` it returns (raising refuses the Complete).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field


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


@dataclass(frozen=True, slots=True)
class PutResult:
    etag: str
    version_id: str
    size: int
    checksums: dict[str, str] = field(default_factory=dict)
    mtime_ns: int = 0  # Last-Modified of the new version


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
