"""POST Object: browser uploads with an HTML form (``multipart/form-data``).

Theory of operation
-------------------
The body is parsed as it streams (``werkzeug.sansio.multipart``, h11-style):
the fields before the part named ``file`` (at most 20 KiB of them, as AWS
allows) are collected; the file part's bytes go straight to the store while
they arrive; whatever follows it is read and ignored, as AWS ignores it.
Everything that decides whether the upload may happen is settled *before*
the first byte of the file is stored:

1. the form's credentials: SigV4 (``x-amz-algorithm``, ``-credential``,
   ``-date``, ``-signature``: the hex HMAC of the policy text under the SigV4
   signing key) or SigV2 (``AWSAccessKeyId``, ``signature``: base64 HMAC-SHA1);
   a form without a ``policy`` is anonymous;
2. the POST policy (``titans3.s3.postpolicy``): expiration, conditions,
   every field covered;
3. the caller's ``s3:PutObject`` on the key, exactly as for a PUT
   (``titans3.s3.authorize.authorize_post``), with the form's ``acl`` field
   as the object's ACL.

``content-length-range`` is enforced on the stream: past the maximum the
upload is refused (``EntityTooLarge``; the rest of the body is read so the
browser sees the answer), and below the minimum the end of the stream is
refused before the store can commit (``EntityTooSmall``).  ``${filename}``
in any field is the file part's file name (its last path segment); a file
part without a ``filename`` leaves it as written, as S3 does.

Answers: ``success_action_redirect`` (or the older ``redirect``) with an
http(s) URL is a 303 to it with ``bucket``, ``key`` and ``etag`` added;
otherwise ``success_action_status`` 200 or 201 (a ``PostResponse`` document),
anything else 204.  ETag, Location and ``x-amz-version-id`` are sent on all.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
from collections.abc import AsyncIterable, AsyncIterator
from urllib.parse import quote, urlencode, urlsplit

from werkzeug.http import parse_options_header
from werkzeug.sansio.multipart import Data, Epilogue, Field, File, MultipartDecoder, NeedData

from titans3.core.errors import (
    EntityTooLarge,
    EntityTooSmall,
    InvalidAccessKeyId,
    InvalidArgument,
    InvalidRequest,
    MalformedPOSTRequest,
    MaxPostPreDataLengthExceeded,
    PreconditionFailed,
    S3Error,
    SignatureDoesNotMatch,
)
from titans3.s3 import object_options as opts
from titans3.s3 import postpolicy, sigv4, tagging
from titans3.s3.authorize import ANONYMOUS_CALLER, authorize_post
from titans3.s3.body import MAX_PUT_SIZE
from titans3.s3.context import Handler, Reply, S3Context
from titans3.s3.handlers_object import content_md5, extract_meta, reject_unsupported_write
from titans3.s3.xml import escape, quote_etag

MAX_PRE_DATA = 20480  # bytes of form fields before the file (AWS)
_MUST = "Bucket POST must contain a field named '{}'.  If it is specified, please check the order of the fields."


def _missing(name: str) -> InvalidArgument:
    return InvalidArgument(_MUST.format(name), ArgumentName=name, ArgumentValue="")


class _Form:
    """The fields before the file, and the file part's stream."""

    def __init__(self, raw: AsyncIterable[bytes], boundary: bytes) -> None:
        self._raw = raw.__aiter__()
        self._decoder = MultipartDecoder(boundary)
        self.fields: dict[str, str] = {}  # lower-case name -> value (repeats joined by ",")
        self.names: dict[str, str] = {}  # lower-case name -> as sent
        self.filename: str | None = None
        self.has_file = False
        self._ended = False

    async def _event(self) -> object:
        while True:
            try:
                event = self._decoder.next_event()
            except ValueError as e:
                raise MalformedPOSTRequest() from e
            if not isinstance(event, NeedData):
                return event
            if self._ended:
                raise MalformedPOSTRequest()
            try:
                chunk = await self._raw.__anext__()
            except StopAsyncIteration:
                self._ended = True
                self._decoder.receive_data(None)
                continue
            self._decoder.receive_data(chunk)

    async def read_fields(self) -> None:
        size = 0
        current: str | None = None
        value = bytearray()
        while True:
            event = await self._event()
            if isinstance(event, (Field, File)):
                if event.name.lower() == "file":
                    self.has_file = True
                    self.filename = event.filename if isinstance(event, File) else None
                    return
                current, value = event.name, bytearray()
            elif isinstance(event, Data):
                value += event.data
                size += len(event.data)
                if size > MAX_PRE_DATA:
                    raise MaxPostPreDataLengthExceeded(MaxPostPreDataLengthBytes=str(MAX_PRE_DATA))
                if not event.more_data and current is not None:
                    try:
                        text = value.decode("utf-8")
                    except UnicodeDecodeError:
                        raise MalformedPOSTRequest() from None
                    low = current.lower()
                    self.fields[low] = f"{self.fields[low]},{text}" if low in self.fields else text
                    self.names.setdefault(low, current)
                    current = None
            elif isinstance(event, Epilogue):
                return

    async def file_data(self) -> AsyncIterator[bytes]:
        while True:
            event = await self._event()
            if isinstance(event, Data):
                if event.data:
                    yield event.data
                if not event.more_data:
                    return
            else:
                return

    async def drain(self) -> None:
        """Read (and ignore) the rest of the body: fields after the file."""
        while not self._ended:
            try:
                await self._raw.__anext__()
            except StopAsyncIteration:
                self._ended = True


def _base_name(filename: str) -> str:
    return filename.replace("\\", "/").rsplit("/", 1)[-1]


def _expand(fields: dict[str, str], filename: str | None) -> dict[str, str]:
    if filename is None:
        return dict(fields)
    name = _base_name(filename)
    return {k: v.replace("${filename}", name) for k, v in fields.items()}


def _caller(ctx: S3Context, fields: dict[str, str]) -> tuple[object, bool]:
    """(caller, sigv2) from the form's credentials (module doc, step 1)."""
    control = ctx.access.control
    if "policy" not in fields:
        return ANONYMOUS_CALLER, False
    policy = fields["policy"]
    v4_names = ("x-amz-algorithm", "x-amz-credential", "x-amz-date", "x-amz-signature")
    if "awsaccesskeyid" in fields and not any(n in fields for n in v4_names):
        if not ctx.settings.sigv2:  # the same switch as for requests (sigv2 = false)
            raise InvalidRequest(sigv4.SIGV2_NOT_SUPPORTED)
        for name, shown in (("awsaccesskeyid", "AWSAccessKeyId"), ("signature", "Signature")):
            if not fields.get(name):
                raise _missing(shown)
        key = fields["awsaccesskeyid"]
        secret = control.directory.get_secret(key)
        if secret is None:
            raise InvalidAccessKeyId(AWSAccessKeyId=key)
        expected = base64.b64encode(hmac.new(secret.encode(), policy.encode(), hashlib.sha1).digest()).decode()
        if not hmac.compare_digest(expected.encode(), fields["signature"].encode()):
            raise SignatureDoesNotMatch(AWSAccessKeyId=key, StringToSign=policy,
                                        SignatureProvided=fields["signature"])  # fmt: skip
        return control.caller(key), True
    for name in v4_names:
        if not fields.get(name):
            raise _missing("-".join(p.capitalize() if i else "X" for i, p in enumerate(name.split("-"))))
    if fields["x-amz-algorithm"] != sigv4.ALGORITHM:
        raise InvalidArgument('X-Amz-Algorithm only supports "AWS4-HMAC-SHA256"', ArgumentName="X-Amz-Algorithm",
                              ArgumentValue=fields["x-amz-algorithm"])  # fmt: skip
    parts = fields["x-amz-credential"].split("/")
    if len(parts) != 5 or not parts[0] or parts[3] != "s3" or parts[4] != sigv4.TERMINAL:
        raise InvalidArgument('the Credential is mal-formed; expecting "<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request".',
                              ArgumentName="X-Amz-Credential", ArgumentValue=fields["x-amz-credential"])  # fmt: skip
    key, date, region = parts[0], parts[1], parts[2]
    if region != ctx.settings.region:
        raise InvalidArgument(f"the region '{region}' is wrong; expecting '{ctx.settings.region}'",
                              ArgumentName="X-Amz-Credential", ArgumentValue=fields["x-amz-credential"],
                              Region=ctx.settings.region)  # fmt: skip
    secret = control.directory.get_secret(key)
    if secret is None:
        raise InvalidAccessKeyId(AWSAccessKeyId=key)
    signature = sigv4.sign(sigv4.derive_signing_key(secret, date, region), policy)
    if not hmac.compare_digest(signature.encode(), fields["x-amz-signature"].encode("utf-8", "replace")):
        raise SignatureDoesNotMatch(AWSAccessKeyId=key, StringToSign=policy,
                                    SignatureProvided=fields["x-amz-signature"],
                                    StringToSignBytes=" ".join(f"{b:02x}" for b in policy.encode()))  # fmt: skip
    return control.caller(key), False


async def _limited(data: AsyncIterator[bytes], form: _Form, length_range: tuple[int, int] | None,
                   counted: list[int]) -> AsyncIterator[bytes]:  # fmt: skip
    """The file's bytes, refused past the maximum, and refused at the end when short."""
    low, high = length_range or (0, MAX_PUT_SIZE)
    high = min(high, MAX_PUT_SIZE)
    held: bytes | None = None
    total = 0
    async for chunk in data:
        total += len(chunk)
        counted[0] = total
        if total > high:
            async for rest in data:
                total += len(rest)
            await form.drain()
            raise EntityTooLarge("Your proposed upload exceeds the maximum allowed size",
                                 ProposedSize=str(total), MaxSizeAllowed=str(high))  # fmt: skip
        if held is not None:
            yield held
        held = chunk
    if total < low:
        await form.drain()
        raise EntityTooSmall("Your proposed upload is smaller than the minimum allowed size",
                             ProposedSize=str(total), MinSizeAllowed=str(low))  # fmt: skip
    if held is not None:
        yield held


def _as_headers(fields: dict[str, str]) -> dict[str, str]:
    """The form fields that stand for request headers, under header names."""
    headers = {k: v for k, v in fields.items()
               if k.startswith("x-amz-") or k in ("content-type", "cache-control", "content-disposition",
                                                  "content-encoding", "expires", "content-md5")}  # fmt: skip
    for sig in ("x-amz-signature", "x-amz-credential", "x-amz-algorithm", "x-amz-date", "x-amz-security-token"):
        headers.pop(sig, None)
    if "acl" in fields:
        headers["x-amz-acl"] = fields["acl"]
    return headers


async def post_object(ctx: S3Context) -> Reply:
    mime, params = parse_options_header(ctx.headers.get("content-type", ""))
    if mime.lower() != "multipart/form-data":
        raise PreconditionFailed(Condition="Bucket POST must be of the enclosure-type multipart/form-data")
    boundary = params.get("boundary")
    if not boundary:
        raise MalformedPOSTRequest()
    form = _Form(ctx.raw_body, boundary.encode("latin-1"))
    await form.read_fields()
    if not form.has_file:
        raise InvalidArgument("POST requires exactly one file upload per request.", ArgumentName="file",
                              ArgumentValue="0")  # fmt: skip
    fields = _expand(form.fields, form.filename)
    if not fields.get("key"):
        raise _missing("key")
    caller, v2 = _caller(ctx, form.fields)  # the signature covers the policy as sent
    length_range = None
    if "policy" in fields:
        policy = postpolicy.parse_post_policy(form.fields["policy"])
        postpolicy.check_fields(policy, fields, bucket=ctx.bucket, now=dt.datetime.now(dt.UTC), sigv2=v2,
                                names=form.names)  # fmt: skip
        length_range = policy.length_range
    key = fields["key"]
    headers = _as_headers(fields)
    reject_unsupported_write(headers)
    meta = extract_meta(headers)
    md5 = content_md5(headers)
    tags = None
    if "tagging" in fields:
        tags = dict(tagging.parse_tagging(fields["tagging"].encode(), limit=tagging.OBJECT_TAG_LIMIT,
                                          what="Object"))  # fmt: skip
    elif "x-amz-tagging" in headers:
        tags = opts.tagging_header(headers)
    asked = {**headers, **({"x-amz-tagging": fields["tagging"]} if "tagging" in fields else {})}
    access = await authorize_post(ctx.access.control, ctx, caller, key, asked)  # type: ignore[arg-type]
    if access.bucket is None:
        await form.drain()
        await ctx.store.head_bucket(ctx.bucket)  # NoSuchBucket
    counted = [0]
    try:
        result = await ctx.store.put_object(
            ctx.bucket, key, _limited(form.file_data(), form, length_range, counted), meta=meta,
            content_md5=md5, tags=tags, acl=access.new_acl,
        )  # fmt: skip
    except S3Error:
        await form.drain()
        raise
    await form.drain()
    return await _answer(ctx, fields, key, result)


async def _answer(ctx: S3Context, fields: dict[str, str], key: str, result: object) -> Reply:
    etag = quote_etag(result.etag)  # type: ignore[attr-defined]
    location = (f"{ctx.base_url()}/{quote(key, safe='')}" if ctx.route.virtual_host
                else f"{ctx.base_url()}/{ctx.bucket}/{quote(key, safe='')}")  # fmt: skip
    redirect = fields.get("success_action_redirect") or fields.get("redirect")
    if redirect and urlsplit(redirect).scheme in ("http", "https") and urlsplit(redirect).netloc:
        query = urlencode({"bucket": ctx.bucket, "key": key, "etag": etag})
        reply = Reply(303).header("Location", redirect + ("&" if "?" in redirect else "?") + query)
    else:
        status = fields.get("success_action_status", "")
        if status == "201":
            body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<PostResponse><Location>{escape(location)}'
                    f"</Location><Bucket>{escape(ctx.bucket)}</Bucket><Key>{escape(key)}</Key>"
                    f"<ETag>{escape(etag)}</ETag></PostResponse>").encode()  # fmt: skip
            reply = Reply(201, [("Content-Type", "application/xml")], body)
        else:
            reply = Reply(200 if status == "200" else 204)
        reply.header("Location", location)
    reply.header("ETag", etag)
    await opts.add_version_header(reply, ctx, result.version_id)  # type: ignore[attr-defined]
    return reply


HANDLERS: dict[str, Handler] = {"PostObject": post_object}
