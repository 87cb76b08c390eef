"""S3 XML of the object-level operations: versioning, version listing, batch
delete, object tagging, upload listing, part copy.

Theory of operation
-------------------
Pure, like ``titans3.s3.xml`` whose builder and strict parser it reuses (same
invariants: UTF-8, declaration, S3 namespace on the root, escaped text,
ISO-8601 milliseconds, quoted ETags; request bodies with a DTD, a foreign
namespace or an unexpected element are ``MalformedXML``).  Element order is the
one AWS sends.  With ``encoding-type=url`` the names AWS encodes -- keys,
prefixes, markers and the delimiter -- are percent-encoded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from titans3.core.errors import MalformedXML
from titans3.s3.xml import (
    Owner,
    _children,
    _Doc,
    _leaf_text,
    iso8601,
    parse_document,
    quote_etag,
    url_encode,
)

MAX_DELETE_OBJECTS = 1000


def _encoder(encoding_type: str | None) -> Callable[[str], str]:
    return url_encode if encoding_type == "url" else (lambda s: s)


# ---------------------------------------------------------------- versioning
def parse_versioning_configuration(data: bytes) -> tuple[str | None, str | None]:
    """``(Status, MfaDelete)`` of a PutBucketVersioning body (None when absent).

    Status must be ``Enabled`` or ``Suspended`` and MfaDelete ``Enabled`` or
    ``Disabled`` (case-sensitive, as AWS checks); anything else is MalformedXML.
    """
    root = parse_document(data)
    if root.tag != "VersioningConfiguration":
        raise MalformedXML()
    values: dict[str, str] = {}
    for kid in _children(root, {"Status", "MfaDelete"}):
        if kid.tag in values:
            raise MalformedXML()
        values[kid.tag] = _leaf_text(kid).strip()
    status, mfa = values.get("Status"), values.get("MfaDelete")
    if status is not None and status not in ("Enabled", "Suspended"):
        raise MalformedXML()
    if mfa is not None and mfa not in ("Enabled", "Disabled"):
        raise MalformedXML()
    return status, mfa


def versioning_configuration(status: str) -> bytes:
    """GetBucketVersioning: no Status element for a never-versioned bucket."""
    doc = _Doc("VersioningConfiguration")
    if status:
        doc.leaf("Status", status)
    return doc.finish("VersioningConfiguration")


# ----------------------------------------------------------- version listing
@dataclass(frozen=True, slots=True)
class VersionEntry:
    key: str
    version_id: str
    is_latest: bool
    mtime_ns: int
    delete_marker: bool = False
    etag: str = ""
    size: int = 0
    checksum_algorithms: tuple[str, ...] = ()
    storage_class: str = "STANDARD"


@dataclass(slots=True)
class VersionsListing:
    bucket: str
    prefix: str
    key_marker: str
    version_id_marker: str
    max_keys: int
    is_truncated: bool
    owner: Owner
    entries: list[VersionEntry] = field(default_factory=list)
    prefixes: list[str] = field(default_factory=list)
    delimiter: str = ""
    next_key_marker: str | None = None
    next_version_id_marker: str | None = None
    encoding_type: str | None = None


def list_versions_result(page: VersionsListing) -> bytes:
    enc = _encoder(page.encoding_type)
    doc = _Doc("ListVersionsResult")
    doc.leaf("Name", page.bucket)
    doc.leaf("Prefix", enc(page.prefix))
    doc.leaf("KeyMarker", enc(page.key_marker))
    doc.leaf("VersionIdMarker", page.version_id_marker)
    if page.next_key_marker is not None:
        doc.leaf("NextKeyMarker", enc(page.next_key_marker))
    if page.next_version_id_marker is not None:
        doc.leaf("NextVersionIdMarker", page.next_version_id_marker)
    doc.leaf("MaxKeys", page.max_keys)
    if page.delimiter:
        doc.leaf("Delimiter", enc(page.delimiter))
    if page.encoding_type:
        doc.leaf("EncodingType", page.encoding_type)
    doc.leaf("IsTruncated", page.is_truncated)
    for e in page.entries:
        name = "DeleteMarker" if e.delete_marker else "Version"
        doc.open(name)
        doc.leaf("Key", enc(e.key))
        doc.leaf("VersionId", e.version_id)
        doc.leaf("IsLatest", e.is_latest)
        doc.leaf("LastModified", iso8601(e.mtime_ns))
        if not e.delete_marker:
            doc.leaf("ETag", quote_etag(e.etag))
            doc.leaf("Size", e.size)
            doc.leaf("StorageClass", e.storage_class)
            for algo in e.checksum_algorithms:
                doc.leaf("ChecksumAlgorithm", algo)
        doc.owner("Owner", page.owner)
        doc.close(name)
    for prefix in page.prefixes:
        doc.open("CommonPrefixes")
        doc.leaf("Prefix", enc(prefix))
        doc.close("CommonPrefixes")
    return doc.finish("ListVersionsResult")


# -------------------------------------------------------------- batch delete
@dataclass(frozen=True, slots=True)
class ObjectToDelete:
    key: str
    version_id: str | None = None
    conditions: tuple[str, ...] = ()  # ETag / LastModifiedTime / Size given (not supported)


def parse_delete(data: bytes) -> tuple[list[ObjectToDelete], bool]:
    """``(objects, quiet)`` of a DeleteObjects body; MalformedXML for a bad
    shape, no objects, or more than 1,000 of them (AWS's answers)."""
    root = parse_document(data)
    if root.tag != "Delete":
        raise MalformedXML()
    objects: list[ObjectToDelete] = []
    quiet: bool | None = None
    for kid in _children(root, {"Object", "Quiet"}):
        if kid.tag == "Quiet":
            text = _leaf_text(kid).strip().lower()
            if quiet is not None or text not in ("true", "false"):
                raise MalformedXML()
            quiet = text == "true"
            continue
        fields: dict[str, str] = {}
        for f in _children(kid, {"Key", "VersionId", "ETag", "LastModifiedTime", "Size"}):
            if f.tag in fields:
                raise MalformedXML()
            fields[f.tag] = _leaf_text(f)
        if "Key" not in fields:
            raise MalformedXML()
        conditions = tuple(n for n in ("ETag", "LastModifiedTime", "Size") if n in fields)
        objects.append(ObjectToDelete(fields["Key"], fields.get("VersionId"), conditions))
        if len(objects) > MAX_DELETE_OBJECTS:
            raise MalformedXML()
    if not objects:
        raise MalformedXML()
    return objects, bool(quiet)


@dataclass(frozen=True, slots=True)
class Deleted:
    key: str
    version_id: str | None = None
    delete_marker: bool = False
    delete_marker_version_id: str | None = None


@dataclass(frozen=True, slots=True)
class DeleteError:
    key: str
    code: str
    message: str
    version_id: str | None = None


def delete_result(results: Iterable[Deleted | DeleteError], *, quiet: bool) -> bytes:
    """Quiet mode lists only the errors."""
    doc = _Doc("DeleteResult")
    for r in results:
        if isinstance(r, DeleteError):
            doc.open("Error")
            doc.leaf("Key", r.key)
            doc.leaf("VersionId", r.version_id)
            doc.leaf("Code", r.code)
            doc.leaf("Message", r.message)
            doc.close("Error")
        elif not quiet:
            doc.open("Deleted")
            doc.leaf("Key", r.key)
            doc.leaf("VersionId", r.version_id)
            if r.delete_marker:
                doc.leaf("DeleteMarker", True)
                doc.leaf("DeleteMarkerVersionId", r.delete_marker_version_id)
            doc.close("Deleted")
    return doc.finish("DeleteResult")


# ------------------------------------------------------------------- tagging
def parse_tagging(data: bytes) -> list[tuple[str, str]]:
    """The tags of a ``<Tagging><TagSet><Tag>…`` body, in document order.

    Limits and duplicates are judged by ``titans3.objects.tagging``; only the
    shape is checked here (each Tag has exactly one Key and one Value, which
    may be empty).
    """
    root = parse_document(data)
    if root.tag != "Tagging":
        raise MalformedXML()
    sets = _children(root, {"TagSet"})
    if len(sets) != 1:
        raise MalformedXML()
    tags: list[tuple[str, str]] = []
    for tag in _children(sets[0], {"Tag"}):
        fields: dict[str, str] = {}
        for f in _children(tag, {"Key", "Value"}):
            if f.tag in fields:
                raise MalformedXML()
            fields[f.tag] = _leaf_text(f)
        if "Key" not in fields or "Value" not in fields:
            raise MalformedXML()
        tags.append((fields["Key"], fields["Value"]))
    return tags


def tagging(tags: Mapping[str, str]) -> bytes:
    doc = _Doc("Tagging")
    doc.open("TagSet")
    for key, value in tags.items():
        doc.open("Tag")
        doc.leaf("Key", key)
        doc.leaf("Value", value)
        doc.close("Tag")
    doc.close("TagSet")
    return doc.finish("Tagging")


# ------------------------------------------------------------ upload listing
@dataclass(frozen=True, slots=True)
class UploadEntry:
    key: str
    upload_id: str
    initiated_ns: int
    storage_class: str = "STANDARD"


@dataclass(slots=True)
class UploadsListing:
    bucket: str
    key_marker: str
    upload_id_marker: str
    max_uploads: int
    is_truncated: bool
    owner: Owner
    uploads: list[UploadEntry] = field(default_factory=list)
    prefixes: list[str] = field(default_factory=list)
    prefix: str = ""
    delimiter: str = ""
    next_key_marker: str | None = None
    next_upload_id_marker: str | None = None
    encoding_type: str | None = None


def list_multipart_uploads_result(page: UploadsListing) -> bytes:
    enc = _encoder(page.encoding_type)
    doc = _Doc("ListMultipartUploadsResult")
    doc.leaf("Bucket", page.bucket)
    doc.leaf("KeyMarker", enc(page.key_marker))
    doc.leaf("UploadIdMarker", page.upload_id_marker)
    doc.leaf("NextKeyMarker", enc(page.next_key_marker or ""))
    doc.leaf("NextUploadIdMarker", page.next_upload_id_marker or "")
    if page.delimiter:
        doc.leaf("Delimiter", enc(page.delimiter))
    doc.leaf("Prefix", enc(page.prefix))
    if page.encoding_type:
        doc.leaf("EncodingType", page.encoding_type)
    doc.leaf("MaxUploads", page.max_uploads)
    doc.leaf("IsTruncated", page.is_truncated)
    for u in page.uploads:
        doc.open("Upload")
        doc.leaf("Key", enc(u.key))
        doc.leaf("UploadId", u.upload_id)
        doc.owner("Initiator", page.owner)
        doc.owner("Owner", page.owner)
        doc.leaf("StorageClass", u.storage_class)
        doc.leaf("Initiated", iso8601(u.initiated_ns))
        doc.close("Upload")
    for prefix in page.prefixes:
        doc.open("CommonPrefixes")
        doc.leaf("Prefix", enc(prefix))
        doc.close("CommonPrefixes")
    return doc.finish("ListMultipartUploadsResult")


# ------------------------------------------------------------------ part copy
def copy_part_result(*, etag: str, mtime_ns: int, checksums: Mapping[str, str]) -> bytes:
    doc = _Doc("CopyPartResult")
    doc.leaf("LastModified", iso8601(mtime_ns))
    doc.leaf("ETag", quote_etag(etag))
    doc.checksums(checksums)
    return doc.finish("CopyPartResult")
