"""GetObjectAttributes (``GET /bucket/key?attributes``).

Theory of operation
-------------------
One HEAD-like lookup of the version (current, or ``?versionId=``), answered
with the attributes the client names in ``x-amz-object-attributes`` (any of
``ETag``, ``Checksum``, ``ObjectParts``, ``StorageClass``, ``ObjectSize``;
another name is ``InvalidArgument``, none at all ``InvalidRequest``) and only
those, in AWS's ``GetObjectAttributesResponse`` shape:

* ``ETag`` without quotes; ``ObjectSize`` in bytes; ``StorageClass`` the version's
  ``STANDARD`` (there are no other classes);
* ``Checksum``: the stored checksum with its ``ChecksumType``.  A COMPOSITE
  multipart checksum is given without its ``-N`` part-count suffix, as AWS
  does here (GET/HEAD keep the suffix);
* ``ObjectParts`` (multipart objects only): ``PartsCount`` and a page of parts
  -- ``PartNumber``, ``Size`` and each part's checksums -- paged with
  ``x-amz-max-parts`` (default and ceiling 1,000) and
  ``x-amz-part-number-marker``, exactly like ListParts.  Tools read part
  checksums here to validate a multipart download part by part.

Headers: ``Last-Modified`` and ``x-amz-version-id`` (shown by the rules of
``titans3.s3.object_options``).  A delete marker answers like HEAD: 404 (or
405 by version id) with ``x-amz-delete-marker``.
"""

from __future__ import annotations

from titans3.core.errors import InvalidArgument, InvalidRequest
from titans3.objects import ObjectInfo
from titans3.s3 import object_options as opts
from titans3.s3.context import Handler, Reply, S3Context, xml_reply
from titans3.s3.handlers_object import http_date
from titans3.s3.xml import _Doc

ATTRIBUTES = ("ETag", "Checksum", "ObjectParts", "StorageClass", "ObjectSize")
MAX_PARTS = 1000


def requested_attributes(header: str | None) -> list[str]:
    """The attribute names of ``x-amz-object-attributes``, validated, in AWS's order."""
    names = [n.strip() for n in (header or "").split(",") if n.strip()]
    if not names:
        raise InvalidRequest("The x-amz-object-attributes header specifying the attributes "
                             "to be retrieved is either missing or empty")  # fmt: skip
    by_lower = {a.lower(): a for a in ATTRIBUTES}
    chosen = set()
    for name in names:
        attr = by_lower.get(name.lower())
        if attr is None:
            raise InvalidArgument("Invalid attribute name specified.",
                                  ArgumentName="x-amz-object-attributes", ArgumentValue=name)  # fmt: skip
        chosen.add(attr)
    return [a for a in ATTRIBUTES if a in chosen]


def _int_header(ctx: S3Context, name: str, default: int) -> int:
    raw = ctx.headers.get(name)
    if raw is None or raw.strip() == "":
        return default
    raw = raw.strip()
    if not (raw.isascii() and raw.isdigit()) or int(raw) > 2**31 - 1:
        raise InvalidArgument(f"Provided {name} not an integer or within integer range",
                              ArgumentName=name, ArgumentValue=raw)  # fmt: skip
    return int(raw)


def render(info: ObjectInfo, attributes: list[str], *, max_parts: int, marker: int) -> bytes:
    doc = _Doc("GetObjectAttributesResponse")
    for attr in attributes:
        if attr == "ETag":
            doc.leaf("ETag", info.etag)
        elif attr == "Checksum" and info.checksums:
            doc.open("Checksum")
            kind = "FULL_OBJECT"
            for algo in sorted(info.checksums):
                value, dash, _ = info.checksums[algo].partition("-")
                kind = "COMPOSITE" if dash else kind
                doc.leaf("Checksum" + algo.upper(), value)
            doc.leaf("ChecksumType", kind)
            doc.close("Checksum")
        elif attr == "ObjectParts" and info.parts:
            after = [p for p in info.parts if p.number > marker]
            page = after[:max_parts]
            doc.open("ObjectParts")
            doc.leaf("PartsCount", len(info.parts))
            doc.leaf("PartNumberMarker", marker)
            doc.leaf("NextPartNumberMarker", page[-1].number if page else marker)
            doc.leaf("MaxParts", max_parts)
            doc.leaf("IsTruncated", len(after) > max_parts)
            for part in page:
                doc.open("Part")
                doc.leaf("PartNumber", part.number)
                doc.leaf("Size", part.size)
                doc.checksums(part.checksums)
                doc.close("Part")
            doc.close("ObjectParts")
        elif attr == "StorageClass":
            doc.leaf("StorageClass", info.storage_class)
        elif attr == "ObjectSize":
            doc.leaf("ObjectSize", info.size)
    return doc.finish("GetObjectAttributesResponse")


async def get_object_attributes(ctx: S3Context) -> Reply:
    attributes = requested_attributes(ctx.headers.get("x-amz-object-attributes"))
    max_parts = min(_int_header(ctx, "x-amz-max-parts", MAX_PARTS), MAX_PARTS)
    marker = _int_header(ctx, "x-amz-part-number-marker", 0)
    info = await ctx.store.head_object(ctx.bucket, ctx.key, version_id=opts.version_id_param(ctx.query))
    reply = xml_reply(render(info, attributes, max_parts=max_parts, marker=marker))
    reply.header("Last-Modified", http_date(info.mtime_ns))
    await opts.add_version_header(reply, ctx, info.version_id)
    return reply


HANDLERS: dict[str, Handler] = {"GetObjectAttributes": get_object_attributes}
