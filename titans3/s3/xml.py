"""S3 XML bodies: rendering responses and parsing the few request bodies S3 has.

Theory of operation
-------------------
Pure functions: values in, ``bytes`` out (or bytes in, values out).  No I/O.

Rendering writes the XML text directly instead of building an element tree:
the documents are flat, the element order is fixed by the AWS API reference,
and a string builder is both faster and easier to check against the published
examples than a tree serialiser.  Invariants every renderer keeps:

* UTF-8, an ``<?xml ...?>`` declaration, and the S3 namespace
  ``http://s3.amazonaws.com/doc/2006-03-01/`` on the root element -- except
  ``<Error>``, which AWS sends without a namespace.
* Text is escaped (``& < > "``), ``\\r`` and characters XML 1.0 cannot carry
  literally are written as character references, as AWS does (a client that
  needs such keys should ask for ``encoding-type=url``; boto3 always does).
* Timestamps are ISO 8601 UTC with milliseconds and ``Z``
  (``2009-10-12T17:50:30.000Z``); ETags are quoted (``"abc..."``).
* Checksum elements are named ``Checksum`` + the algorithm as
  ``titans3.s3.checksums`` names it (``CRC32`` -> ``ChecksumCRC32``).

Parsing is strict and safe: documents carrying a DTD or entity declarations
are refused before any expansion can happen (no entity bombs, no external
entities), the size is bounded by the caller, the root element and every child
must be what the schema allows (in the S3 namespace or in none), and anything
else raises ``MalformedXML`` -- the one error AWS returns for all of this.
"""

from __future__ import annotations

import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import quote
from xml.parsers import expat

from titans3.core.errors import MalformedXML

S3_NS = "http://s3.amazonaws.com/doc/2006-03-01/"
_DECL = '<?xml version="1.0" encoding="UTF-8"?>\n'

# Characters XML 1.0 allows literally, besides \t \n (\r is escaped so that
# parsers do not normalise it away).
_NEEDS_ESCAPE = re.compile("[&<>\"\r\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}


def _escape_char(match: re.Match[str]) -> str:
    ch = match.group(0)
    return _ESCAPES.get(ch) or f"&#x{ord(ch):X};"


def escape(text: str) -> str:
    """Escape ``text`` for an XML text node."""
    return _NEEDS_ESCAPE.sub(_escape_char, text)


def iso8601(ns: int) -> str:
    """``2009-10-12T17:50:30.000Z`` for a time in nanoseconds since the epoch."""
    secs, rem = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{rem // 1_000_000:03d}Z"


def quote_etag(etag: str) -> str:
    """ETags travel quoted in headers and XML; the store keeps them bare."""
    return etag if etag.startswith('"') else f'"{etag}"'


def url_encode(value: str) -> str:
    """``encoding-type=url`` form: percent-encoding that ``unquote_plus`` reverses.

    ``/`` stays literal (as AWS leaves it); ``+`` and space are encoded so a
    client decoding with either ``unquote`` or ``unquote_plus`` gets the key back.
    """
    return quote(value, safe="/")


def checksum_element(algo: str) -> str:
    return "Checksum" + algo.upper()


@dataclass(frozen=True, slots=True)
class Owner:
    id: str
    display_name: str


class _Doc:
    """Append-only XML text builder for one response document."""

    __slots__ = ("_parts",)

    def __init__(self, root: str, *, namespace: bool = True) -> None:
        ns = f' xmlns="{S3_NS}"' if namespace else ""
        self._parts: list[str] = [_DECL, f"<{root}{ns}>"]

    def leaf(self, name: str, value: str | int | bool | None) -> None:
        if value is None:
            return
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, int):
            text = str(value)
        else:
            text = escape(value)
        self._parts.append(f"<{name}>{text}</{name}>" if text else f"<{name}></{name}>")

    def open(self, name: str) -> None:
        self._parts.append(f"<{name}>")

    def close(self, name: str) -> None:
        self._parts.append(f"</{name}>")

    def owner(self, name: str, owner: Owner) -> None:
        self.open(name)
        self.leaf("ID", owner.id)
        self.leaf("DisplayName", owner.display_name)
        self.close(name)

    def checksums(self, checksums: Mapping[str, str]) -> None:
        for algo in sorted(checksums):
            self.leaf(checksum_element(algo), checksums[algo])

    def finish(self, root: str) -> bytes:
        self._parts.append(f"</{root}>")
        return "".join(self._parts).encode("utf-8")


# ------------------------------------------------------------------ rendering
def error(
    code: str,
    message: str,
    *,
    resource: str | None,
    request_id: str,
    host_id: str | None = None,
    extra: Mapping[str, str] | None = None,
) -> bytes:
    """The ``<Error>`` body (no namespace, as AWS sends it)."""
    doc = _Doc("Error", namespace=False)
    doc.leaf("Code", code)
    doc.leaf("Message", message)
    for name, value in (extra or {}).items():
        doc.leaf(name, value)
    doc.leaf("Resource", resource)
    doc.leaf("RequestId", request_id)
    doc.leaf("HostId", host_id)
    return doc.finish("Error")


@dataclass(frozen=True, slots=True)
class BucketEntry:
    name: str
    created_ns: int


def list_all_my_buckets(
    owner: Owner,
    buckets: Iterable[BucketEntry],
    *,
    region: str | None = None,
    continuation_token: str | None = None,
    prefix: str | None = None,
) -> bytes:
    """ListBuckets; ``region`` adds each bucket's BucketRegion, the token and
    prefix appear only when a page follows / a prefix was asked for."""
    doc = _Doc("ListAllMyBucketsResult")
    doc.owner("Owner", owner)
    doc.open("Buckets")
    for bucket in buckets:
        doc.open("Bucket")
        doc.leaf("Name", bucket.name)
        doc.leaf("CreationDate", iso8601(bucket.created_ns))
        doc.leaf("BucketRegion", region)
        doc.close("Bucket")
    doc.close("Buckets")
    doc.leaf("ContinuationToken", continuation_token)
    doc.leaf("Prefix", prefix)
    return doc.finish("ListAllMyBucketsResult")


def location_constraint(region: str) -> bytes:
    """GetBucketLocation: empty for us-east-1, as AWS answers."""
    doc = _Doc("LocationConstraint")
    # The root element itself carries the value.
    doc._parts.append(escape("" if region == "us-east-1" else region))
    return doc.finish("LocationConstraint")


@dataclass(frozen=True, slots=True)
class ObjectEntry:
    key: str
    mtime_ns: int
    etag: str
    size: int
    storage_class: str = "STANDARD"


@dataclass(slots=True)
class ListingPage:
    """Everything a ListObjects (v1 or v2) response shows.

    ``v2`` picks the dialect: v2 has KeyCount/StartAfter/ContinuationToken and
    shows owners only when asked (``fetch-owner``); v1 has Marker/NextMarker
    and always shows owners.
    """

    bucket: str
    prefix: str
    delimiter: str
    max_keys: int
    is_truncated: bool
    objects: list[ObjectEntry] = field(default_factory=list)
    prefixes: list[str] = field(default_factory=list)
    encoding_type: str | None = None  # "url" or None
    owner: Owner | None = None  # rendered per object when set
    v2: bool = True
    # v2
    start_after: str | None = None
    continuation_token: str | None = None
    next_continuation_token: str | None = None
    # v1
    marker: str = ""
    next_marker: str | None = None


def list_bucket_result(page: ListingPage) -> bytes:
    enc = url_encode if page.encoding_type == "url" else (lambda s: s)
    doc = _Doc("ListBucketResult")
    doc.leaf("Name", page.bucket)
    # ListObjects v1 leaves the top-level Prefix unencoded (AWS; botocore decodes
    # every other field it asked to be encoded, but not this one).
    doc.leaf("Prefix", enc(page.prefix) if page.v2 else page.prefix)
    if page.v2:
        if page.start_after:
            doc.leaf("StartAfter", enc(page.start_after))
        if page.continuation_token is not None:
            doc.leaf("ContinuationToken", page.continuation_token)
        if page.next_continuation_token is not None:
            doc.leaf("NextContinuationToken", page.next_continuation_token)
        doc.leaf("KeyCount", len(page.objects) + len(page.prefixes))
    else:
        doc.leaf("Marker", enc(page.marker))
        if page.next_marker is not None:
            doc.leaf("NextMarker", enc(page.next_marker))
    doc.leaf("MaxKeys", page.max_keys)
    if page.delimiter:
        doc.leaf("Delimiter", enc(page.delimiter))
    if page.encoding_type:
        doc.leaf("EncodingType", page.encoding_type)
    doc.leaf("IsTruncated", page.is_truncated)
    for obj in page.objects:
        doc.open("Contents")
        doc.leaf("Key", enc(obj.key))
        doc.leaf("LastModified", iso8601(obj.mtime_ns))
        doc.leaf("ETag", quote_etag(obj.etag))
        doc.leaf("Size", obj.size)
        if page.owner is not None:
            doc.owner("Owner", page.owner)
        doc.leaf("StorageClass", obj.storage_class)
        doc.close("Contents")
    for prefix in page.prefixes:
        doc.open("CommonPrefixes")
        doc.leaf("Prefix", enc(prefix))
        doc.close("CommonPrefixes")
    return doc.finish("ListBucketResult")


def initiate_multipart_upload_result(bucket: str, key: str, upload_id: str) -> bytes:
    doc = _Doc("InitiateMultipartUploadResult")
    doc.leaf("Bucket", bucket)
    doc.leaf("Key", key)
    doc.leaf("UploadId", upload_id)
    return doc.finish("InitiateMultipartUploadResult")


def complete_multipart_upload_result(
    *, location: str, bucket: str, key: str, etag: str, checksums: Mapping[str, str],
    checksum_type: str | None = None,
) -> bytes:
    doc = _Doc("CompleteMultipartUploadResult")
    doc.leaf("Location", location)
    doc.leaf("Bucket", bucket)
    doc.leaf("Key", key)
    doc.leaf("ETag", quote_etag(etag))
    doc.checksums(checksums)
    doc.leaf("ChecksumType", checksum_type)
    return doc.finish("CompleteMultipartUploadResult")


@dataclass(frozen=True, slots=True)
class PartEntry:
    number: int
    mtime_ns: int
    etag: str
    size: int
    checksums: Mapping[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class PartsPage:
    bucket: str
    key: str
    upload_id: str
    part_number_marker: int
    next_part_number_marker: int | None
    max_parts: int
    is_truncated: bool
    parts: list[PartEntry]
    owner: Owner
    storage_class: str = "STANDARD"


def list_parts_result(page: PartsPage) -> bytes:
    doc = _Doc("ListPartsResult")
    doc.leaf("Bucket", page.bucket)
    doc.leaf("Key", page.key)
    doc.leaf("UploadId", page.upload_id)
    doc.leaf("PartNumberMarker", page.part_number_marker)
    if page.next_part_number_marker is not None:
        doc.leaf("NextPartNumberMarker", page.next_part_number_marker)
    doc.leaf("MaxParts", page.max_parts)
    doc.leaf("IsTruncated", page.is_truncated)
    for part in page.parts:
        doc.open("Part")
        doc.leaf("PartNumber", part.number)
        doc.leaf("LastModified", iso8601(part.mtime_ns))
        doc.leaf("ETag", quote_etag(part.etag))
        doc.leaf("Size", part.size)
        doc.checksums(part.checksums)
        doc.close("Part")
    doc.owner("Initiator", page.owner)
    doc.owner("Owner", page.owner)
    doc.leaf("StorageClass", page.storage_class)
    return doc.finish("ListPartsResult")


def copy_object_result(*, etag: str, mtime_ns: int, checksums: Mapping[str, str]) -> bytes:
    """CopyObject / UploadPartCopy answer (``CopyPartResult`` shares the shape)."""
    doc = _Doc("CopyObjectResult")
    doc.leaf("LastModified", iso8601(mtime_ns))
    doc.leaf("ETag", quote_etag(etag))
    doc.checksums(checksums)
    return doc.finish("CopyObjectResult")


# -------------------------------------------------------------------- parsing
class _Refused(Exception):
    pass


def _refuse(*_args: object) -> None:
    raise _Refused("DTDs and entity declarations are not accepted")


def parse_document(data: bytes) -> ET.Element:
    """Parse ``data`` into an element tree with namespaces stripped.

    Raises ``MalformedXML`` for anything not well-formed, any DTD or entity
    declaration, and any element outside the S3 namespace (or no namespace).
    """
    builder = ET.TreeBuilder()
    parser = expat.ParserCreate(namespace_separator="}")
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartDoctypeDeclHandler = _refuse
    parser.EntityDeclHandler = _refuse
    parser.UnparsedEntityDeclHandler = _refuse
    parser.ExternalEntityRefHandler = _refuse  # type: ignore[assignment]
    parser.buffer_text = True

    def start(name: str, attrs: dict[str, str]) -> None:
        ns, sep, local = name.rpartition("}")
        if sep and ns != S3_NS:
            raise _Refused(f"element {local!r} is in namespace {ns!r}")
        builder.start(local, {})

    def end(name: str) -> None:
        builder.end(name.rpartition("}")[2])

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = builder.data
    try:
        parser.Parse(data, True)
        return builder.close()
    except (expat.ExpatError, _Refused, ValueError, AssertionError) as exc:
        raise MalformedXML() from exc


def _children(elem: ET.Element, allowed: set[str]) -> list[ET.Element]:
    """Child elements of a container, all named in ``allowed``; stray text is refused."""
    kids = list(elem)
    if (elem.text or "").strip():
        raise MalformedXML()
    for kid in kids:
        if kid.tag not in allowed or (kid.tail or "").strip():
            raise MalformedXML()
    return kids


def _leaf_text(elem: ET.Element) -> str:
    if len(elem):
        raise MalformedXML()
    return elem.text or ""


@dataclass(frozen=True, slots=True)
class CompletedPart:
    number: int
    etag: str  # without quotes
    checksums: dict[str, str] = field(default_factory=dict)  # "CRC32" -> b64


_PART_CHECKSUMS = {
    checksum_element(algo): algo
    for algo in ("CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256", "SHA512", "MD5",
                 "XXHASH64", "XXHASH3", "XXHASH128")
}
_PART_FIELDS = {"PartNumber", "ETag", *_PART_CHECKSUMS}
_DIGITS = re.compile(r"[0-9]{1,9}")


def parse_complete_multipart_upload(data: bytes) -> list[CompletedPart]:
    """Parts listed in a CompleteMultipartUpload body, in document order.

    Order and existence are the store's to judge (``InvalidPartOrder`` /
    ``InvalidPart``); this only checks the shape: at least one ``Part``, each
    with exactly one integer ``PartNumber`` and one ``ETag``.
    """
    root = parse_document(data)
    if root.tag != "CompleteMultipartUpload":
        raise MalformedXML()
    parts: list[CompletedPart] = []
    for part in _children(root, {"Part"}):
        fields: dict[str, str] = {}
        for kid in _children(part, _PART_FIELDS):
            if kid.tag in fields:
                raise MalformedXML()
            fields[kid.tag] = _leaf_text(kid).strip()
        number = fields.get("PartNumber", "")
        etag = fields.get("ETag", "").strip('"')
        if not _DIGITS.fullmatch(number) or not etag:
            raise MalformedXML()
        checksums = {_PART_CHECKSUMS[k]: v for k, v in fields.items() if k in _PART_CHECKSUMS}
        parts.append(CompletedPart(int(number), etag, checksums))
    if not parts:
        raise MalformedXML()
    return parts


def parse_create_bucket_configuration(data: bytes) -> str | None:
    """The LocationConstraint of a CreateBucket body (``None`` if absent or empty body)."""
    if not data.strip():
        return None
    root = parse_document(data)
    if root.tag != "CreateBucketConfiguration":
        raise MalformedXML()
    location: str | None = None
    for kid in _children(root, {"LocationConstraint", "Location", "Bucket", "Tags"}):
        if kid.tag == "LocationConstraint":
            if location is not None:
                raise MalformedXML()
            location = _leaf_text(kid).strip()
    return location or None
