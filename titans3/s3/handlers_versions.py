"""Versioning operations: Put/GetBucketVersioning and ListObjectVersions.

Theory of operation
-------------------
The store owns the versioning state machine and the version listing
(``titans3.objects.versions``); these handlers own the request syntax and the
XML.  MFA Delete is not implemented: a configuration that enables it (or any
request carrying ``x-amz-mfa``) is 501 ``NotImplemented`` rather than accepted
and silently not enforced.  A configuration without ``Status`` changes nothing
(200).  ``max-keys`` above 1,000 is served as 1,000 (AWS's cap).
"""

from __future__ import annotations

from titans3.core.errors import InvalidArgument, NotImplementedS3
from titans3.s3 import object_options as opts
from titans3.s3 import xml_objects as xo
from titans3.s3.context import Handler, Reply, S3Context, xml_reply
from titans3.s3.numbers import decimal

MAX_KEYS = 1000


def max_keys_param(ctx: S3Context, name: str = "max-keys") -> int:
    raw = ctx.query.get(name)
    if raw is None or raw == "":
        return MAX_KEYS
    if not (raw.isascii() and raw.isdigit()) or decimal(raw) > 2**31 - 1:
        raise InvalidArgument(f"Provided {name} not an integer or within integer range",
                              ArgumentName=name, ArgumentValue=raw)  # fmt: skip
    return min(decimal(raw), MAX_KEYS)


def encoding_type_param(ctx: S3Context) -> str | None:
    value = ctx.query.get("encoding-type")
    if value is None:
        return None
    if value.lower() != "url":
        raise InvalidArgument("Invalid Encoding Method specified in Request",
                              ArgumentName="encoding-type", ArgumentValue=value)  # fmt: skip
    return "url"


async def put_bucket_versioning(ctx: S3Context) -> Reply:
    body = await opts.read_xml(ctx)
    status, mfa = xo.parse_versioning_configuration(body)
    if mfa == "Enabled" or "x-amz-mfa" in ctx.headers:
        raise NotImplementedS3("MFA Delete is not implemented.", Header="x-amz-mfa")
    if status is None:
        await ctx.store.head_bucket(ctx.bucket)
    else:
        await ctx.store.put_bucket_versioning(ctx.bucket, status)
    return Reply(200)


async def get_bucket_versioning(ctx: S3Context) -> Reply:
    status = await ctx.store.get_bucket_versioning(ctx.bucket)
    return xml_reply(xo.versioning_configuration(status))


async def list_object_versions(ctx: S3Context) -> Reply:
    q = ctx.query
    max_keys = max_keys_param(ctx)
    encoding = encoding_type_param(ctx)
    prefix, delimiter = q.get("prefix", ""), q.get("delimiter", "")
    key_marker, vid_marker = q.get("key-marker", ""), q.get("version-id-marker", "")
    page = await ctx.store.list_object_versions(
        ctx.bucket, prefix=prefix, delimiter=delimiter, key_marker=key_marker,
        version_id_marker=vid_marker, max_keys=max_keys,
    )  # fmt: skip
    entries = [
        xo.VersionEntry(
            key=v.key, version_id=v.version_id, is_latest=v.is_latest, mtime_ns=v.mtime_ns,
            delete_marker=v.delete_marker, etag=v.etag, size=v.size,
            checksum_algorithms=tuple(sorted(a.upper() for a in v.checksums)),
            storage_class=v.storage_class,
        )
        for v in page.versions
    ]
    listing = xo.VersionsListing(
        bucket=ctx.bucket, prefix=prefix, key_marker=key_marker, version_id_marker=vid_marker,
        max_keys=max_keys, is_truncated=page.is_truncated, owner=ctx.settings.owner,
        entries=entries, prefixes=list(page.prefixes), delimiter=delimiter,
        next_key_marker=page.next_key_marker, next_version_id_marker=page.next_version_id_marker,
        encoding_type=encoding,
    )  # fmt: skip
    return xml_reply(xo.list_versions_result(listing))


HANDLERS: dict[str, Handler] = {
    "PutBucketVersioning": put_bucket_versioning,
    "GetBucketVersioning": get_bucket_versioning,
    "ListObjectVersions": list_object_versions,
}
