"""The object layer's public API: the one surface every front calls.

The S3 endpoint, the admin API, the status page, the CLI, and the FUSE mount
and NBD gateway all talk to the object layer through :class:`ObjectAPI` and
the records of :mod:`titans3.objects.types` re-exported here -- nothing else
of ``titans3.objects`` (an import-linter contract in ``pyproject.toml`` holds
them to it).  The daemon builds the implementation
(:class:`titans3.objects.store.ObjectStore`) and hands it to the fronts.

Contract
--------
*Names.*  Buckets are S3 bucket names; keys are ``str`` of at most 1,024
UTF-8 bytes (``KeyTooLongError``; empty: ``InvalidArgument``).  Version ids
are S3's: 32 hex characters, or ``"null"`` for the null version of an
unversioned or suspended bucket.  Every operation is ``async``.

*Errors.*  Every failure is a :class:`titans3.core.errors.S3Error` subclass,
one per S3 error code, carrying the code, HTTP status and extra fields the S3
front renders (``err.headers``: extra response headers, e.g. delete-marker
headers).  The ones every front must map: ``NoSuchBucket``, ``NoSuchKey``,
``NoSuchVersion``, ``NoSuchUpload``, ``PreconditionFailed``,
``ConditionalRequestConflict``, ``InvalidRange``, ``InvalidArgument``,
``QuorumError`` (503: too few drives answered or took the write -- retry
later; never a partial result) and ``MethodNotAllowed`` (a delete marker named
by version id).  FUSE maps them to errno (``ENOENT``, ``EEXIST``, ``EIO``,
``EAGAIN`` ...), NBD to its protocol errors.

*Consistency.*  Strong, as S3's: an acknowledged write (``put_object``,
``complete_multipart``, ``copy_object``, ``rename_object``, a delete, a tag
update) is seen by every later read, head and listing from any host;
concurrent writers of one key resolve last-writer-wins by version id (a
hybrid-logical-clock id drawn at commit); two writers never mix bytes.  A
write that raises left nothing visible (except ``QuorumError`` after a
commit started: the write may or may not have landed, as with any S3 503 --
readers see either the old or the new version, never a mix).  Conditional
writes (``condition=``) are checked at commit under a per-key lock; across
hosts the guarantee needs key leases (not yet: two hosts may both pass).
Bucket configuration read through another host may lag ~1 s (S3 documents
it as eventually consistent).

*Streaming.*  Bodies are async iterators of ``bytes`` both ways and are never
held whole: ``put_object``/``upload_part`` consume ``body`` as it arrives (a
few MiB in flight whatever the size); ``get_object`` returns at once with
``GetResult.body`` streaming only the requested range, decoded segment by
segment -- close it (``aclose``) if you stop early.  ``size=`` on a write is
checked (``IncompleteBody``).  Listings are pages (``list_objects``) or an
async iterator over all pages (``walk_objects``: a 100,000-entry directory is
one pass over the drives, a page of 1,000 in memory at a time).

Operations
----------
========================  ==================================================
buckets                   ``create_bucket``, ``head_bucket``, ``list_buckets``,
                          ``delete_bucket``
objects                   ``put_object``, ``get_object`` (range, part),
                          ``head_object``, ``head_objects`` (many keys),
                          ``has_objects`` (a prefix with a current object),
                          ``delete_object``, ``copy_object``,
                          ``rename_object`` (metadata only, for FUSE),
                          ``replace_metadata`` (a self-copy moving no data)
listing                   ``list_objects`` (a page), ``walk_objects`` (all pages)
versions                  ``put_bucket_versioning``, ``get_bucket_versioning``,
                          ``list_object_versions``
multipart                 ``create_multipart``, ``upload_part``,
                          ``upload_part_copy``, ``complete_multipart``,
                          ``abort_multipart``, ``list_parts``,
                          ``list_multipart_uploads``
tags                      ``get_object_tagging``, ``put_object_tagging``,
                          ``delete_object_tagging``
bucket configuration      ``get_bucket_config``, ``put_bucket_config``
capacity and health       ``statfs``, ``info``, ``statistics``,
                          ``inspect_object``
block fronts              ``create_system_bucket``, ``put_extent``,
                          ``get_extent``, ``new_version_id``
========================  ==================================================

For the NBD gateway a volume is a set of fixed-size extent objects (DESIGN
§9) in a *system bucket* (``create_system_bucket``: S3 can neither name nor
list it).  The block operations take and return buffers, not streams: an
extent write is ``put_extent`` of the whole extent (the gateway merges
partial writes in memory first; no MD5 ETag), a read is ``get_extent`` of a
range (a missing extent is ``None``: zeroes), TRIM is ``delete_object``,
and ``new_version_id`` is the cut a snapshot records.  Snapshots and clones
read older versions (``version_id=``; ``list_object_versions``).  A FLUSH
needs nothing extra: every acknowledged ``put_extent`` is durable at
quorum.

Pure helpers the fronts share (validation rules that are AWS's, not a
front's): :func:`validate_tags`, :func:`check_tags`, :func:`valid_tag_text`,
:func:`part_span`.  Small cluster-wide records that are not objects (the
status page's admin password, users and keys, volume records) are kept on the
system-record register, :mod:`titans3.accounts.register`, not here.

*Access state.*  The object layer stores but never interprets who may do
what: a bucket's owner, policy, ACL, Object Ownership and Block Public Access
are front-owned documents in its configuration (``create_bucket(config=)``
writes them with the bucket; :meth:`ObjectAPI.bucket_settings` reads them all
at once with the record's version id), and an object version's ACL is opaque
bytes kept beside its tags (``acl=`` on writes, :attr:`ObjectInfo.acl`,
``put_object_acl``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any, Protocol

from titans3.objects.parts import part_span
from titans3.objects.tagging import (
    MAX_TAG_KEY,
    MAX_TAG_VALUE,
    MAX_TAGS,
    check_tags,
    valid_tag_text,
    validate_tags,
)
from titans3.objects.types import (
    BucketInfo,
    BucketSettings,
    CompleteChecksums,
    ComputeChecksum,
    CopyResult,
    DeleteResult,
    DriveInfo,
    Encryption,
    GetResult,
    HostInfo,
    ListPage,
    ObjectInfo,
    ObjectLock,
    PartInfo,
    PutResult,
    RenameResult,
    StatFs,
    StoreStatistics,
    UploadInfo,
    UploadsPage,
    VersionsPage,
    WriteCondition,
)

ByteRange = tuple[int | None, int | None]  # inclusive (first, last); (None, n): last n bytes


class ObjectAPI(Protocol):
    """What a front may ask of the object layer (see the module doc for the
    errors, consistency and streaming rules every operation follows)."""

    # Storage classes other than STANDARD the operator mapped -> (k, m) (core/storageclass.py).
    storage_classes: dict[str, tuple[int, int]]

    # ------------------------------------------------------------ buckets
    async def create_bucket(self, name: str, *, config: Mapping[str, bytes] | None = None,
                            object_lock: bool = False) -> BucketInfo:
        """``BucketAlreadyOwnedByYou``, ``InvalidBucketName``, ``OperationAborted``
        (a concurrent create on another host: retry).  ``config``: documents the
        bucket starts with (owner, ACL, ...; as ``put_bucket_config`` names them).
        ``object_lock``: a versioned bucket with object lock enabled (its
        versioning can never be suspended: ``InvalidBucketState``)."""
        ...

    async def head_bucket(self, name: str) -> BucketInfo:
        """``NoSuchBucket``."""
        ...

    async def list_buckets(self) -> list[BucketInfo]:
        """Every bucket, sorted by name."""
        ...

    async def delete_bucket(self, name: str) -> None:
        """``NoSuchBucket``; ``BucketNotEmpty`` while any object is visible."""
        ...

    # ------------------------------------------------------------ objects
    async def put_object(
        self, bucket: str, key: str, body: AsyncIterator[bytes], *, size: int | None = None,
        meta: Mapping[str, str] | None = None, content_md5: str | None = None,
        checksums: Callable[[], Mapping[str, str]] | None = None,
        on_data: Callable[[memoryview], None] | None = None,
        tags: Mapping[str, str] | None = None, condition: WriteCondition | None = None,
        acl: bytes | None = None,
        encryption: Encryption | None = None, lock: ObjectLock | None = None,
        storage_class: str | None = None,
    ) -> PutResult:
        """Store a new version (the null version unless versioning is Enabled).

        ``size``: the exact length if known (``IncompleteBody`` otherwise);
        ``content_md5``: base64 Content-MD5 (``BadDigest``); ``on_data`` sees
        every byte (the front's checksums); ``checksums()`` runs after the
        body and returns ``{algo: b64}`` to store, or raises to abort with
        nothing visible; ``tags``: validated object tags; ``condition``:
        If-Match / If-None-Match at commit; ``acl``: the version's ACL (opaque);
        ``encryption``: SSE-S3 / SSE-KMS /
        SSE-C (None: the bucket's default encryption, if any) -- refusals are
        ``KMS.NotFoundException``, ``AccessDenied`` (disabled key); ``lock``:
        retention / legal hold of the new version (None: the bucket's default
        retention; ``InvalidRequest`` in a bucket without object lock);
        ``storage_class``: write with that class's EC scheme (``InvalidStorageClass``
        unless mapped; None / ``STANDARD``: the bucket's)."""
        ...

    async def get_object(
        self, bucket: str, key: str, *, version_id: str | None = None,
        byte_range: ByteRange | None = None, part_number: int | None = None,
        customer_key: bytes | None = None,
    ) -> GetResult:
        """The version's info and a body streaming ``[first, last]``.

        ``byte_range`` as HTTP Range (clamped to the size; ``InvalidRange``
        when unsatisfiable); ``part_number`` serves one part
        (``InvalidPartNumber``).  ``NoSuchKey`` / ``NoSuchVersion``; a delete
        marker is ``NoSuchKey`` (current) or ``MethodNotAllowed`` (by id),
        with the marker headers in ``err.headers``.  An SSE-C version needs
        ``customer_key`` (``InvalidRequest`` without, ``AccessDenied`` when
        wrong); a KMS version whose key is disabled: ``AccessDenied``.  A
        package that fails authentication ends the body with ``InternalError``
        -- never wrong bytes."""
        ...

    async def head_object(self, bucket: str, key: str, *, version_id: str | None = None,
                          customer_key: bytes | None = None) -> ObjectInfo:
        """As ``get_object`` without the body (SSE-C keys are checked)."""
        ...

    async def has_objects(self, bucket: str, prefix: str) -> bool:
        """Whether some key below ``prefix`` has a current object.  A listing's
        common prefixes are what the drives group, current or not (keys renamed
        away, delete markers): a front that shows them as directories checks
        each with this (FUSE readdir).  Usually one round: the first key below."""
        ...

    async def head_objects(
        self, bucket: str, keys: Sequence[str], *, concurrency: int = 16
    ) -> list[ObjectInfo | None]:
        """The current version of each key, in order; ``None`` where there is
        none (missing, or a delete marker).  Up to ``concurrency`` keys are
        resolved at once; ``NoSuchBucket``; a key that cannot be resolved
        raises (``QuorumError``) for the whole call."""
        ...

    async def delete_object(self, bucket: str, key: str, *, version_id: str | None = None,
                            bypass_governance: bool = False) -> DeleteResult:
        """Delete the current object (a delete marker in a versioned bucket) or
        one version.  Deleting what does not exist succeeds (S3).  A version
        under a legal hold or unexpired retention: ``AccessDenied`` (GOVERNANCE
        gives way to ``bypass_governance``, COMPLIANCE to nobody)."""
        ...

    async def copy_object(
        self, src_bucket: str, src_key: str, dst_bucket: str, dst_key: str, *,
        src_version_id: str | None = None, meta: Mapping[str, str] | None = None,
        tags: Mapping[str, str] | None = None,
        check_source: Callable[[ObjectInfo], None] | None = None,
        condition: WriteCondition | None = None,
        on_data: Callable[[memoryview], None] | None = None,
        checksums: Callable[[], Mapping[str, str]] | None = None,
        acl: bytes | None = None,
        src_customer_key: bytes | None = None, encryption: Encryption | None = None,
        lock: ObjectLock | None = None, storage_class: str | None = None,
    ) -> CopyResult:
        """Copy one version by streaming it into a new write (data re-encoded,
        in ``storage_class``'s scheme -- None: STANDARD, as AWS --
        re-encrypted as ``encryption`` says; ``src_customer_key`` opens an SSE-C source).
        ``meta``/``tags`` None keep the source's; ``acl`` is the copy's own (never
        the source's, as in S3); ``check_source`` may raise to
        refuse (copy-source conditions); sources over 5 GiB: ``InvalidRequest``."""
        ...

    async def rename_object(
        self, bucket: str, src_key: str, dst_key: str, *,
        condition: WriteCondition | None = None, source_condition: WriteCondition | None = None,
    ) -> RenameResult:
        """Give the current object at ``src_key`` the name ``dst_key``, moving
        no data (a few metadata commits, whatever the size).

        Atomic for readers: every read sees the object under the source or the
        destination name, never neither; for a moment (between two commits)
        it may see both.  The destination's previous object, if any, is
        replaced (POSIX ``rename``); ``condition`` guards the destination
        (``WriteCondition(if_none_match=True)`` = ``RENAME_NOREPLACE``: 412
        when it exists), ``source_condition`` the source (If-Match on its
        ETag).  The destination keeps the source's size, ETag, metadata,
        tags, checksums and last-modified time.  ``NoSuchKey`` when the source
        has no current object; ``OperationAborted`` (409, retry) while another
        host renames the same source.  In a versioned bucket the destination
        gets a new version and the source a delete marker (its old version
        stays listed).  Crash states: ``docs/architecture.md``, "Rename"."""
        ...

    async def replace_metadata(
        self, bucket: str, key: str, meta: Mapping[str, str], *,
        check_source: Callable[[ObjectInfo], None] | None = None, acl: bytes | None = None,
    ) -> CopyResult:
        """What ``copy_object`` of ``key`` onto itself with ``meta`` (REPLACE)
        and the source's tags gives -- a new current version with the same
        bytes, size, ETag and checksums and last-modified now -- without
        moving the bytes: the new version references the old one (a few
        metadata commits whatever the size; objects/metaupdate.py).  Durable
        at the write quorum when it returns, visible all at once.  Versions a
        reference cannot carry (encrypted, another storage class, retention,
        a bucket with object lock) are copied instead.  ``NoSuchKey``;
        ``check_source`` may raise (If-Match); ``acl`` as for ``copy_object``."""
        ...

    # ------------------------------------------------------------ listing
    async def list_objects(
        self, bucket: str, *, prefix: str = "", delimiter: str = "", start_after: str = "",
        max_keys: int = 1000,
    ) -> ListPage:
        """One page of current objects and common prefixes in UTF-8 binary
        order after ``start_after``; resume with ``next_start_after``."""
        ...

    def walk_objects(
        self, bucket: str, *, prefix: str = "", delimiter: str = "", start_after: str = "",
    ) -> AsyncIterator[ObjectInfo | str]:
        """Every current object (``ObjectInfo``) and common prefix (``str``)
        after ``start_after``, in order, as one stream over all pages: what a
        directory listing of any size needs.  Same visibility as
        ``list_objects``; entries written while the walk runs may or may not
        appear (they appear if they sort after the walk's position)."""
        ...

    # ------------------------------------------------------------ versions
    async def put_bucket_versioning(self, bucket: str, status: str) -> None:
        """``Enabled`` or ``Suspended`` (never back to unversioned)."""
        ...

    async def get_bucket_versioning(self, bucket: str) -> str:
        """``""`` (never configured), ``Enabled`` or ``Suspended``."""
        ...

    async def list_object_versions(
        self, bucket: str, *, prefix: str = "", delimiter: str = "", key_marker: str = "",
        version_id_marker: str = "", max_keys: int = 1000,
    ) -> VersionsPage:
        """Every visible version and delete marker, newest first per key."""
        ...

    # ------------------------------------------------------------ multipart
    async def create_multipart(
        self, bucket: str, key: str, *, meta: Mapping[str, str] | None = None,
        checksum_algorithm: str | None = None, checksum_type: str | None = None,
        tags: Mapping[str, str] | None = None, acl: bytes | None = None,
        encryption: Encryption | None = None, lock: ObjectLock | None = None,
        storage_class: str | None = None,
    ) -> str:
        """A new upload id (ordered by initiation); ``tags``/``acl`` apply at
        Complete; every part is encrypted as ``encryption`` (None: the bucket's
        default)."""
        ...

    async def upload_part(
        self, bucket: str, key: str, upload_id: str, part_number: int,
        body: AsyncIterator[bytes], *, size: int | None = None, content_md5: str | None = None,
        checksums: Callable[[], Mapping[str, str]] | None = None,
        on_data: Callable[[memoryview], None] | None = None,
        compute_checksum: ComputeChecksum | None = None, customer_key: bytes | None = None,
    ) -> PartInfo:
        """Store one part (1..10,000), replacing an earlier one of that number;
        ``NoSuchUpload``.  An SSE-C upload needs its ``customer_key`` on every part."""
        ...

    async def upload_part_copy(
        self, bucket: str, key: str, upload_id: str, part_number: int, src_bucket: str,
        src_key: str, *, src_version_id: str | None = None,
        byte_range: tuple[int, int] | None = None,
        check_source: Callable[[ObjectInfo], None] | None = None,
        compute_checksum: ComputeChecksum | None = None,
        src_customer_key: bytes | None = None, customer_key: bytes | None = None,
    ) -> CopyResult:
        """A part copied from (a byte range of) another object."""
        ...

    async def complete_multipart(
        self, bucket: str, key: str, upload_id: str, parts: Sequence[tuple[int, str]], *,
        checksums: CompleteChecksums | None = None, condition: WriteCondition | None = None,
        meta: Mapping[str, str] | None = None,
    ) -> PutResult:
        """Commit the listed ``(number, etag)`` parts as one version; no data
        moves.  ``meta``: the version's user metadata instead of the one given
        at creation (the FUSE mount's write-behind knows a file's final mtime
        only at the end).  ``InvalidPart``, ``InvalidPartOrder``,
        ``EntityTooSmall``."""
        ...

    async def abort_multipart(self, bucket: str, key: str, upload_id: str) -> None:
        """Drop the upload and its parts; ``NoSuchUpload``."""
        ...

    async def list_parts(self, bucket: str, key: str, upload_id: str) -> list[PartInfo]:
        """The upload's parts by number; ``NoSuchUpload``."""
        ...

    async def list_multipart_uploads(
        self, bucket: str, *, prefix: str = "", delimiter: str = "", key_marker: str = "",
        upload_id_marker: str = "", max_uploads: int = 1000,
    ) -> UploadsPage:
        """In-progress uploads by key, then initiation."""
        ...

    # ------------------------------------------------------------ tags
    async def get_object_tagging(
        self, bucket: str, key: str, *, version_id: str | None = None
    ) -> tuple[str, dict[str, str]]:
        """``(S3 version id, tags)``."""
        ...

    async def put_object_tagging(
        self, bucket: str, key: str, tags: Mapping[str, str], *, version_id: str | None = None
    ) -> str:
        """Replace the version's tags (``InvalidTag``, ``BadRequest``); its version id."""
        ...

    async def delete_object_tagging(
        self, bucket: str, key: str, *, version_id: str | None = None
    ) -> str:
        """Remove the version's tags; its version id."""
        ...

    async def put_object_acl(
        self, bucket: str, key: str, acl: bytes, *, version_id: str | None = None
    ) -> str:
        """Replace the version's ACL (opaque bytes); its version id."""
        ...

    async def transition_object(self, bucket: str, key: str, storage_class: str, *,
                                version_id: str | None = None) -> bool:
        """Re-encode the version into ``storage_class``'s EC scheme, keeping its
        version id, ETag and SSE state (ciphertext is moved, never decrypted);
        True if anything changed.  ``InvalidStorageClass`` for a class the
        operator did not map; ``InvalidRequest`` for a delete marker or a renamed
        object.  Crash-safe: readers see the old or the new encoding."""
        ...

    # ------------------------------------------------------------ object lock
    async def get_object_lock(self, bucket: str, key: str, *, version_id: str | None = None
                              ) -> ObjectLock:
        """The version's retention and legal hold; ``InvalidRequest`` in a bucket
        without object lock."""
        ...

    async def put_object_retention(
        self, bucket: str, key: str, mode: str | None, until_ns: int | None, *,
        version_id: str | None = None, bypass_governance: bool = False,
    ) -> None:
        """Set (``mode`` None: remove) retention; weakening COMPLIANCE, or
        GOVERNANCE without ``bypass_governance``: ``AccessDenied``."""
        ...

    async def put_object_legal_hold(self, bucket: str, key: str, on: bool, *,
                                    version_id: str | None = None) -> None:
        ...

    async def put_object_lock_config(self, bucket: str, doc: Mapping[str, Any]) -> None:
        """``{"enabled": True, "mode"?, "days"?, "years"?}``: enable object lock
        (versioning must be Enabled: ``InvalidBucketState``) with a default
        retention.  Read it back with ``get_bucket_config(bucket, "object-lock")``."""
        ...

    # ------------------------------------------------------------ bucket configuration
    async def get_bucket_config(self, bucket: str, name: str) -> bytes | None:
        """The front-owned document ``name`` (``"cors"``, ``"tagging"``, ...) or None."""
        ...

    async def put_bucket_config(self, bucket: str, name: str, value: bytes | None) -> None:
        """Store (None: remove) one document in the bucket's quorum register."""
        ...

    async def bucket_settings(self, bucket: str) -> BucketSettings:
        """Every document of the bucket at once, with the record's version id
        (changes with every configuration change: a cache key); ``NoSuchBucket``."""
        ...

    # ------------------------------------------------------------ capacity and health
    async def statfs(self) -> StatFs:
        """Capacity, used and free bytes of the cluster's drives (FUSE statfs)."""
        ...

    async def info(self) -> HostInfo:
        """This host's drives and default EC scheme (admin ``info``)."""
        ...

    def statistics(self) -> StoreStatistics:
        """Counters for the status page and metrics (no I/O)."""
        ...

    async def inspect_object(
        self, bucket: str, key: str, *, deep: bool = False,
        on_damage: Callable[[bytes, bytes], None] | None = None,
    ) -> dict[str, Any]:
        """The operator's view of one key: every visible version with the
        health of each fragment (JSON-ready).  ``deep`` reads every block and
        calls ``on_damage(bucket_id, key)`` when it found damage."""
        ...

    # ------------------------------------------------------------ block fronts (objects/extents.py)
    async def create_system_bucket(self, name: str) -> BucketInfo:
        """A bucket of the daemon's own, for data that is not S3's (NBD volumes):
        its name starts with ``_titans3-``, so S3 can neither address it nor see
        it in ListBuckets.  ``InvalidBucketName`` for any other name;
        ``BucketAlreadyOwnedByYou`` if it exists; ``OperationAborted`` as
        ``create_bucket``."""
        ...

    async def put_extent(self, bucket: str, key: str, data: bytes | memoryview, *,
                         meta: Mapping[str, str] | None = None) -> str:
        """Store the buffer ``data`` whole as the newest version of ``key`` and
        return its version id.  Durable at the write quorum when it returns,
        as ``put_object``; no MD5 ETag is computed (the version's ETag is
        ``""``).  Errors as ``put_object``."""
        ...

    async def get_extent(self, bucket: str, key: str, *, version_id: str | None = None, first: int = 0,
                         last: int | None = None) -> bytes | None:
        """Bytes ``[first, last]`` (inclusive; ``last=None``: to the end) of the
        current version of ``key`` or of ``version_id``, in one buffer.
        ``None`` -- not an error -- when there is no such key or version or it
        is a delete marker (a block front reads that as zeroes); ``b""`` when
        ``first`` is past the end.  ``QuorumError`` when too few drives answer."""
        ...

    def new_version_id(self) -> str:
        """A version id newer than every version this host wrote or saw: a cut
        in version order (a volume snapshot), no I/O."""
        ...


__all__ = [
    "MAX_TAGS", "MAX_TAG_KEY", "MAX_TAG_VALUE", "BucketInfo", "BucketSettings", "ByteRange", "CompleteChecksums",
    "ComputeChecksum", "CopyResult", "DeleteResult", "DriveInfo", "Encryption", "GetResult", "HostInfo",
    "ListPage", "ObjectAPI", "ObjectInfo", "ObjectLock", "PartInfo", "PutResult", "RenameResult", "StatFs", "StoreStatistics",
    "UploadInfo", "UploadsPage", "VersionsPage", "WriteCondition", "check_tags", "part_span",
    "valid_tag_text", "validate_tags",
]
