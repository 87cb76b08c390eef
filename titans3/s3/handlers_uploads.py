"""ListMultipartUploads (``GET /bucket?uploads``).

The store lists and orders the uploads (``titans3.objects.uploads``); this
handler owns the parameters: ``max-uploads`` (0..2^31-1, served up to 1,000),
``key-marker`` / ``upload-id-marker`` (the latter ignored without the former,
as AWS documents), ``prefix``, ``delimiter`` and ``encoding-type=url``.
"""

from __future__ import annotations

from titans3.core.errors import InvalidArgument
from titans3.s3 import xml_objects as xo
from titans3.s3.context import Handler, Reply, S3Context, xml_reply
from titans3.s3.handlers_versions import encoding_type_param
from titans3.s3.numbers import decimal

MAX_UPLOADS = 1000


async def list_multipart_uploads(ctx: S3Context) -> Reply:
    q = ctx.query
    raw = q.get("max-uploads") or ""
    if raw and (not (raw.isascii() and raw.isdigit()) or decimal(raw) > 2**31 - 1):
        raise InvalidArgument("Argument max-uploads must be an integer between 0 and 2147483647",
                              ArgumentName="max-uploads", ArgumentValue=raw)  # fmt: skip
    max_uploads = min(decimal(raw), MAX_UPLOADS) if raw else MAX_UPLOADS
    encoding = encoding_type_param(ctx)
    prefix, delimiter = q.get("prefix", ""), q.get("delimiter", "")
    key_marker = q.get("key-marker", "")
    upload_id_marker = q.get("upload-id-marker", "") if key_marker else ""
    page = await ctx.store.list_multipart_uploads(
        ctx.bucket, prefix=prefix, delimiter=delimiter, key_marker=key_marker,
        upload_id_marker=upload_id_marker, max_uploads=max_uploads,
    )  # fmt: skip
    listing = xo.UploadsListing(
        bucket=ctx.bucket, key_marker=key_marker, upload_id_marker=upload_id_marker,
        max_uploads=max_uploads, is_truncated=page.is_truncated, owner=ctx.settings.owner,
        uploads=[xo.UploadEntry(u.key, u.upload_id, u.initiated_ns) for u in page.uploads],
        prefixes=list(page.prefixes), prefix=prefix, delimiter=delimiter,
        next_key_marker=page.next_key_marker, next_upload_id_marker=page.next_upload_id_marker,
        encoding_type=encoding,
    )  # fmt: skip
    return xml_reply(xo.list_multipart_uploads_result(listing))


HANDLERS: dict[str, Handler] = {"ListMultipartUploads": list_multipart_uploads}
