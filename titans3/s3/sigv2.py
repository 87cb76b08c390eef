"""AWS Signature Version 2 for the S3 front (header and query authentication).

Theory of operation
-------------------
SigV2 is ``base64(HMAC-SHA1(secret, string_to_sign))`` with::

    string_to_sign = VERB "\\n" Content-MD5 "\\n" Content-Type "\\n" Date "\\n"
                     CanonicalizedAmzHeaders CanonicalizedResource

* ``Date`` is the Date header -- empty when ``x-amz-date`` is sent (which then
  appears among the amz headers) -- or, for a presigned URL, ``Expires``;
* ``CanonicalizedAmzHeaders``: every ``x-amz-*`` header, name lower-cased,
  sorted, values trimmed with inner line folding collapsed, repeats joined by
  ``,``, each as ``name:value\\n``;
* ``CanonicalizedResource``: ``/bucket`` when the bucket came from the Host
  header (virtual-hosted style), then the path as sent, then the
  sub-resources S3 signs (``?acl``, ``?uploadId=...``, the ``response-*``
  overrides; sorted, values decoded) -- everything else in the query is not
  signed.

The payload is never signed (PayloadMode.UNSIGNED); Content-MD5, when sent,
is checked by the handlers as for any request.  Header auth must be within
15 minutes of ``now`` (RequestTimeTooSkewed); a presigned URL is valid until
``Expires`` (epoch seconds).  Clients disagree on path spelling exactly as for
SigV4, so the path is tried as sent and re-encoded (AWS's ``UriEncode`` with
``/`` kept), and a path-style bucket ``/b`` also as ``/b/`` (AWS's canonical
form, which botocore signs); all name the same resource.  Published vectors: the examples of
AWS's "Signing and authenticating REST requests" (``tests/s3/test_sigv2.py``).
"""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import hmac
from collections.abc import Callable, Mapping
from email.utils import parsedate_to_datetime
from urllib.parse import unquote

from titans3.core.errors import (
    AccessDenied,
    InvalidAccessKeyId,
    InvalidArgument,
    RequestTimeTooSkewed,
    SignatureDoesNotMatch,
)
from titans3.s3.sigv4 import DEFAULT_MAX_SKEW, AuthResult, PayloadMode, normalize_uri, parse_query

__all__ = ["ALGORITHM", "SIGNED_SUBRESOURCES", "is_sigv2", "sign", "string_to_sign", "verify_request"]

ALGORITHM = "AWS"  # what s3:signatureversion says for SigV2
SIGNED_SUBRESOURCES = frozenset({
    "accelerate", "acl", "cors", "defaultObjectAcl", "delete", "encryption", "inventory",
    "lifecycle", "location", "logging", "metrics", "notification", "object-lock", "partNumber",
    "policy", "policyStatus", "publicAccessBlock", "ownershipControls", "replication",
    "requestPayment", "response-cache-control", "response-content-disposition",
    "response-content-encoding", "response-content-language", "response-content-type",
    "response-expires", "restore", "retention", "legal-hold", "select", "select-type",
    "storageClass", "tagging", "torrent", "uploadId", "uploads", "versionId", "versioning",
    "versions", "website", "analytics", "intelligent-tiering", "attributes",
})  # fmt: skip


def is_sigv2(raw_query: str, headers: Mapping[str, str]) -> bool:
    """The request carries SigV2 credentials (``AWS`` header or ``AWSAccessKeyId`` query)."""
    auth = headers.get("authorization")
    if auth is not None:
        return auth.lstrip().startswith("AWS ")
    names = {n for n, _ in parse_query(raw_query)}
    return b"AWSAccessKeyId" in names and b"Signature" in names


def sign(secret: str, text: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), text.encode("utf-8"), hashlib.sha1).digest()).decode()


def canonical_amz_headers(headers: Mapping[str, str]) -> str:
    amz = sorted((k.lower(), " ".join(v.split())) for k, v in headers.items()
                 if k.lower().startswith("x-amz-"))  # fmt: skip
    return "".join(f"{k}:{v}\n" for k, v in amz)


def canonical_resource(path: str, raw_query: str, vhost_bucket: str | None) -> str:
    sub = []
    for item in raw_query.split("&"):
        if not item:
            continue
        name, eq, value = item.partition("=")
        name = unquote(name)
        if name in SIGNED_SUBRESOURCES:
            sub.append((name, unquote(value.replace("+", " ")) if eq and value != "" else None))
    sub.sort(key=lambda p: p[0])
    prefix = f"/{vhost_bucket}" if vhost_bucket else ""
    out = prefix + (path or "/")
    if sub:
        out += "?" + "&".join(n if v is None else f"{n}={v}" for n, v in sub)
    return out


def string_to_sign(
    method: str, path: str, raw_query: str, headers: Mapping[str, str], *, date: str,
    vhost_bucket: str | None = None,
) -> str:  # fmt: skip
    return "\n".join((
        method,
        headers.get("content-md5", ""),
        headers.get("content-type", ""),
        date,
        canonical_amz_headers(headers) + canonical_resource(path, raw_query, vhost_bucket),
    ))  # fmt: skip


def _utc(when: _dt.datetime) -> _dt.datetime:
    return when.replace(tzinfo=_dt.UTC) if when.tzinfo is None else when.astimezone(_dt.UTC)


def verify_request(
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Mapping[str, str],
    *,
    get_secret: Callable[[str], str | None],
    now: _dt.datetime,
    region: str,
    vhost_bucket: str | None = None,
    max_skew: _dt.timedelta = DEFAULT_MAX_SKEW,
) -> AuthResult:
    """Authenticate one SigV2 request or raise the S3 error AWS answers with."""
    now = _utc(now)
    authorization = headers.get("authorization")
    params: dict[str, str] = {}
    for n, v in parse_query(raw_query):
        params.setdefault(n.decode("utf-8", "replace"), v.decode("utf-8", "replace"))
    if authorization is not None:
        access_key, sep, provided = authorization.strip()[4:].strip().rpartition(":")
        if not sep or not access_key or not provided:
            raise InvalidArgument("AWS authorization header is invalid.  Expected AwsAccessKeyId:signature",
                                  ArgumentName="Authorization", ArgumentValue=authorization)  # fmt: skip
        presigned = False
        sent = headers.get("x-amz-date") or headers.get("date")
        if sent is None:
            raise AccessDenied("AWS authentication requires a valid Date or x-amz-date header")
        try:
            when = _utc(parsedate_to_datetime(sent))
        except (TypeError, ValueError, IndexError):
            raise AccessDenied("AWS authentication requires a valid Date or x-amz-date header") from None
        if abs(now - when) > max_skew:
            raise RequestTimeTooSkewed(RequestTime=sent, ServerTime=now.strftime("%Y-%m-%dT%H:%M:%SZ"),
                                       MaxAllowedSkewMilliseconds=str(max_skew // _dt.timedelta(milliseconds=1)))  # fmt: skip
        date = "" if "x-amz-date" in headers else headers.get("date", "")
    else:
        access_key, provided = params.get("AWSAccessKeyId", ""), params.get("Signature", "")
        presigned = True
        expires = params.get("Expires", "")
        if not expires.isdigit():
            raise AccessDenied("Query-string authentication requires the Signature, Expires and "
                               "AWSAccessKeyId parameters")  # fmt: skip
        if now.timestamp() > int(expires):
            deadline = _dt.datetime.fromtimestamp(int(expires), _dt.UTC)
            raise AccessDenied("Request has expired", Expires=deadline.strftime("%Y-%m-%dT%H:%M:%SZ"),
                               ServerTime=now.strftime("%Y-%m-%dT%H:%M:%SZ"))  # fmt: skip
        date = expires
    secret = get_secret(access_key)
    if secret is None:
        raise InvalidAccessKeyId(AWSAccessKeyId=access_key)
    first = ""
    paths = [raw_path or "/", normalize_uri(raw_path)]
    if vhost_bucket is None and raw_path.count("/") == 1 and len(raw_path) > 1:
        paths.append(raw_path + "/")  # "/bucket": AWS's canonical form of the bucket is "/bucket/"
    for path in dict.fromkeys(paths):
        text = string_to_sign(method, path, raw_query, headers, date=date, vhost_bucket=vhost_bucket)
        first = first or text
        if hmac.compare_digest(sign(secret, text).encode(), provided.encode("utf-8", "replace")):
            return AuthResult(
                access_key=access_key, region=region, service="s3", date="", amz_date="",
                signing_key=b"", seed_signature="", payload_mode=PayloadMode.UNSIGNED,
                payload_sha256=None, presigned=presigned, scope="",
            )  # fmt: skip
    raise SignatureDoesNotMatch(AWSAccessKeyId=access_key, StringToSign=first, SignatureProvided=provided,
                                StringToSignBytes=" ".join(f"{b:02x}" for b in first.encode()))  # fmt: skip
