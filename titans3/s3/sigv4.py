"""AWS Signature Version 4 for the S3 front: verify requests, sign them for our clients.

Theory of operation
-------------------
A SigV4 signature is ``HMAC(signing_key, string_to_sign)`` where

* ``signing_key = HMAC(HMAC(HMAC(HMAC("AWS4"+secret, date), region), "s3"), "aws4_request")``
* ``string_to_sign = "AWS4-HMAC-SHA256\\n" + amz_date + "\\n" + scope + "\\n" + hex(sha256(canonical_request))``
* ``canonical_request = method \\n canonical_uri \\n canonical_query \\n canonical_headers \\n
  signed_headers \\n payload_hash``.

The secret is needed in the clear, which is why keys are stored encrypted, not
hashed.  :func:`verify_request` takes the request exactly as it came off the wire
(percent-encoded path, raw query, lower-case header names) and either returns an
:class:`AuthResult` or raises the typed S3 error AWS would return.  The result
carries what the aws-chunked decoder needs to continue the signature chain
(signing key, seed signature, date, scope) and the payload mode announced by
``x-amz-content-sha256``; the body itself is never seen here.

Canonical form.  S3 signs the URI path without double encoding and without
normalising ``.``/``..`` or ``//``.  Clients disagree on spelling, not meaning:
botocore signs the path and the query exactly as it sends them (query pairs
sorted), the AWS documentation and awscrt re-encode every byte outside the
RFC 3986 unreserved set (``%XX`` upper case, space as ``%20``).  We therefore
try at most four canonical requests: the path as sent / re-encoded segment by
segment (so ``%2F`` inside a key survives), times the query re-encoded (``+``
read as a space, as Go and ``parse_qsl`` do) / as sent and sorted.  Every
candidate decodes to the same resource and parameters, so accepting any of them
never lets a signature cover a different request; a mismatch costs at most four
HMACs.  Header values are trimmed and inner whitespace runs collapsed (botocore's
``Trimall``); values must be the wire bytes decoded as latin-1 (what ASGI servers
do).  ``x-amz-*`` headers that are present but not signed, and an unsigned
``host``, are refused like AWS does ("There were headers present in the request
which were not signed"); ``x-amz-content-sha256`` may go unsigned because its
value is the last line of the canonical request anyway.

Time.  Header auth must be within ``max_skew`` (15 minutes) of ``now``
(RequestTimeTooSkewed, which botocore uses to correct its clock).  Presigned URLs
are valid from ``X-Amz-Date`` (with the same skew tolerance for clocks that run
ahead) for ``X-Amz-Expires`` seconds, at most a week.

Errors and messages follow AWS as observed by projects that test against it
(OpenStack Swift's s3api, MinIO, versitygw); each is raised from
``titans3.core.errors``.  Signatures are compared with ``hmac.compare_digest``.
"""

from __future__ import annotations

import datetime as _dt
import enum
import hashlib
import hmac
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime

from titans3.core.errors import (
    AccessDenied,
    AuthorizationHeaderMalformed,
    AuthorizationQueryParametersError,
    InvalidAccessKeyId,
    InvalidArgument,
    InvalidRequest,
    NotImplementedS3,
    RequestTimeTooSkewed,
    S3Error,
    SignatureDoesNotMatch,
)
from titans3.s3.sigv4_canonical import (  # the primitives, re-exported for callers of this module
    _KEYS_MAX,
    ALGORITHM,
    SERVICE,
    TERMINAL,
    _raw_sorted_query,
    canonical_headers,
    canonical_query,
    canonical_request,
    derive_signing_key,
    normalize_uri,
    parse_query,
    scope_of,
    sign,
    string_to_sign,
    uri_encode,
)

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
MAX_PRESIGN_EXPIRES = 604800
DEFAULT_MAX_SKEW = _dt.timedelta(minutes=15)
AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"

SIGV2_NOT_SUPPORTED = (
    "The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256."
)
_ONE_MECHANISM = (
    "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature "
    "query string parameter or the Authorization header should be specified"
)
_BAD_PAYLOAD_HASH = (
    "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-UNSIGNED-PAYLOAD-TRAILER, "
    "STREAMING-AWS4-HMAC-SHA256-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER, "
    "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD, STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD-TRAILER "
    "or a valid sha256 value."
)
_NO_DATE = "AWS authentication requires a valid Date or x-amz-date header"
_NOT_SIGNED = "There were headers present in the request which were not signed"
_QUERY_REQUIRED = (
    "Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, "
    "X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters."
)
_QUERY_PARAMS = ("X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Signature", "X-Amz-Date",
                 "X-Amz-SignedHeaders", "X-Amz-Expires")  # fmt: skip
# Headers a signer must not sign: hop-by-hop or rewritten by proxies (botocore's list).
_UNSIGNABLE = frozenset(
    {
        "authorization", "connection", "expect", "keep-alive", "proxy-authenticate",
        "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade",
        "user-agent", "x-amzn-trace-id", "traceparent", "tracestate", "baggage",
    }
)  # fmt: skip
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_AMZ_DATE = re.compile(r"\d{8}T\d{6}Z")
_DATE8 = re.compile(r"\d{8}")


class PayloadMode(enum.Enum):
    """What ``x-amz-content-sha256`` says about the body."""

    UNSIGNED = "UNSIGNED-PAYLOAD"
    SHA256 = "SHA256"  # the header is the hex sha256 of the whole body
    STREAMING_SIGNED = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
    STREAMING_SIGNED_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
    STREAMING_UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"

    @property
    def streaming(self) -> bool:
        """The body is aws-chunked and goes through ``ChunkedDecoder``."""
        return self.value.startswith("STREAMING-")

    @property
    def signed_chunks(self) -> bool:
        return self in (PayloadMode.STREAMING_SIGNED, PayloadMode.STREAMING_SIGNED_TRAILER)

    @property
    def has_trailer(self) -> bool:
        return self.value.endswith("-TRAILER")


@dataclass(frozen=True)
class AuthResult:
    """An authenticated request.  ``signing_key`` is secret: kept out of ``repr``."""

    access_key: str
    region: str
    service: str
    date: str  # YYYYMMDD
    amz_date: str  # YYYYMMDDTHHMMSSZ
    signing_key: bytes = field(repr=False)
    seed_signature: str
    payload_mode: PayloadMode
    payload_sha256: str | None  # lower-case hex when payload_mode is SHA256
    presigned: bool
    scope: str  # date/region/s3/aws4_request


# ------------------------------------------------------------------ verifying
def is_anonymous(raw_query: str, headers: Mapping[str, str]) -> bool:
    """True when the request carries no authentication at all (public-bucket access)."""
    if "authorization" in headers:
        return False
    names = {n for n, _ in parse_query(raw_query)}
    return not names & {b"X-Amz-Algorithm", b"X-Amz-Credential", b"X-Amz-Signature",
                        b"AWSAccessKeyId", b"Signature"}  # fmt: skip


def verify_request(
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Mapping[str, str],
    *,
    get_secret: Callable[[str], str | None],
    now: _dt.datetime,
    max_skew: _dt.timedelta = DEFAULT_MAX_SKEW,
    region: str | None = None,
    service: str = SERVICE,
    payload_sha256: str | None = None,
) -> AuthResult:
    """Authenticate one request (header or presigned-query SigV4) or raise an S3Error.

    ``region``, when given, is the only region accepted in the credential scope
    (AuthorizationHeaderMalformed / AuthorizationQueryParametersError otherwise,
    with a ``Region`` element as AWS sends); None accepts any region.
    ``service``/``payload_sha256``: for other services signed the same way
    (the IAM query API: ``iam``, whose clients send no ``x-amz-content-sha256``
    -- the caller hashes the body it read).
    """
    pairs = parse_query(raw_query)
    names = {n for n, _ in pairs}
    query_v4 = bool(names & {b"X-Amz-Algorithm", b"X-Amz-Credential", b"X-Amz-Signature"})
    query_v2 = b"AWSAccessKeyId" in names and b"Signature" in names
    authorization = headers.get("authorization")
    now = _utc(now)
    wire = _Wire(method, raw_path, raw_query, pairs, headers, service, payload_sha256)
    if authorization is not None:
        if query_v4 or query_v2:
            raise InvalidArgument(_ONE_MECHANISM, ArgumentName="Authorization")
        return _verify_header_auth(wire, authorization, get_secret, now, max_skew, region)
    if query_v4:
        return _verify_query_auth(wire, get_secret, now, max_skew, region)
    if query_v2:
        raise InvalidRequest(SIGV2_NOT_SUPPORTED)
    raise AccessDenied()


@dataclass(frozen=True)
class _Credential:
    access_key: str
    date: str
    region: str
    service: str
    terminal: str


def _parse_credential(
    value: str, error: type[S3Error], prefix: str, region: str | None, service: str = SERVICE
) -> _Credential:
    # A client sends the same Credential all day: valid ones are remembered
    # (an invalid one raises before it is stored, so errors are always rebuilt).
    cache_key = (value, region, service)
    cred = _CREDENTIALS.get(cache_key)
    if cred is None:
        cred = _check_credential(value, error, prefix, region, service)
        if len(_CREDENTIALS) >= _KEYS_MAX:
            _CREDENTIALS.clear()
        _CREDENTIALS[cache_key] = cred
    return cred


_CREDENTIALS: dict[tuple[str, str | None, str], _Credential] = {}


def _check_credential(
    value: str, error: type[S3Error], prefix: str, region: str | None, service: str
) -> _Credential:
    parts = value.strip().split("/")
    if len(parts) != 5 or not parts[0] or not _DATE8.fullmatch(parts[1]) or not parts[2]:
        raise error(
            f'{prefix}the Credential is mal-formed; expecting "<YOUR-AKID>/YYYYMMDD/REGION/'
            'SERVICE/aws4_request".'
        )
    cred = _Credential(*parts)
    if region is not None and cred.region != region:
        raise error(f"{prefix}the region '{cred.region}' is wrong; expecting '{region}'",
                    Region=region)  # fmt: skip
    if cred.service != service:
        raise error(
            f'{prefix}incorrect service "{cred.service}". This endpoint belongs to "{service}".'
        )
    if cred.terminal != TERMINAL:
        raise error(
            f'{prefix}incorrect terminal "{cred.terminal}". This endpoint uses "{TERMINAL}".'
        )
    return cred


def _parse_authorization(authorization: str) -> dict[str, str]:
    scheme, _, rest = authorization.strip().partition(" ")
    if scheme == "AWS":
        raise InvalidRequest(SIGV2_NOT_SUPPORTED)
    if scheme == "AWS4-ECDSA-P256-SHA256":
        raise NotImplementedS3("Signature Version 4A (AWS4-ECDSA-P256-SHA256) is not implemented.")
    if scheme != ALGORITHM:
        raise InvalidArgument("Unsupported Authorization Type", ArgumentName="Authorization",
                              ArgumentValue=authorization)  # fmt: skip
    fields: dict[str, str] = {}
    for component in rest.split(","):
        key, sep, value = component.strip().partition("=")
        if sep:
            fields[key.strip()] = value.strip()
    if not all(fields.get(k) for k in ("Credential", "SignedHeaders", "Signature")):
        raise AuthorizationHeaderMalformed(
            "The authorization header is malformed; the authorization header requires three "
            "components: Credential, SignedHeaders, and Signature."
        )
    return fields


def _request_time(headers: Mapping[str, str]) -> tuple[str, _dt.datetime, str]:
    """(ISO-basic timestamp to sign, the instant, the header value as sent)."""
    amz = headers.get("x-amz-date")
    if amz is not None:
        when = _parse_amz_date(amz.strip())
        if when is None:
            raise AccessDenied(_NO_DATE)
        return amz.strip(), when, amz
    date = headers.get("date")
    if date is None:
        raise AccessDenied(_NO_DATE)
    when = _parse_amz_date(date.strip())
    if when is None:
        try:
            when = _utc(parsedate_to_datetime(date))
        except (TypeError, ValueError, IndexError):
            raise AccessDenied(_NO_DATE) from None
    return when.strftime(AMZ_DATE_FORMAT), when, date


def _parse_amz_date(value: str) -> _dt.datetime | None:
    global _last_date
    last = _last_date
    if value == last[0]:  # concurrent clients sign with the same second
        return last[1]
    if not _AMZ_DATE.fullmatch(value):
        return None
    try:  # the regex fixed the layout: slicing is ~10x cheaper than strptime
        when = _dt.datetime(int(value[0:4]), int(value[4:6]), int(value[6:8]), int(value[9:11]),
                            int(value[11:13]), int(value[13:15]), tzinfo=_dt.UTC)  # fmt: skip
    except ValueError:
        return None
    _last_date = (value, when)
    return when


_last_date: tuple[str, _dt.datetime | None] = ("", None)  # the last X-Amz-Date parsed, its instant


def _utc(when: _dt.datetime) -> _dt.datetime:
    return when.replace(tzinfo=_dt.UTC) if when.tzinfo is None else when.astimezone(_dt.UTC)


def _iso(when: _dt.datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _payload_mode(value: str) -> tuple[PayloadMode, str | None]:
    value = value.strip()
    if _HEX64.fullmatch(value):
        return PayloadMode.SHA256, value.lower()
    for mode in PayloadMode:
        if mode is not PayloadMode.SHA256 and value == mode.value:
            return mode, None
    if value.startswith("STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD"):
        raise NotImplementedS3(f"{value} (Signature Version 4A) is not implemented.")
    raise InvalidArgument(_BAD_PAYLOAD_HASH, ArgumentName="x-amz-content-sha256",
                          ArgumentValue=value)  # fmt: skip


def _check_all_signed(headers: Mapping[str, str], signed: Sequence[str]) -> None:
    signed_set = set(signed)
    missing = sorted(
        name
        for name in headers
        if (name.startswith("x-amz-") or name == "host")
        and name != "x-amz-content-sha256"
        and name not in signed_set
    )
    if missing:
        raise AccessDenied(_NOT_SIGNED, HeadersNotSigned=", ".join(missing))


class _Wire:
    """The request as received, parsed once."""

    __slots__ = ("method", "raw_path", "raw_query", "pairs", "headers", "service", "payload_sha256")

    def __init__(
        self, method: str, raw_path: str, raw_query: str, pairs: list[tuple[bytes, bytes]],
        headers: Mapping[str, str], service: str = SERVICE, payload_sha256: str | None = None,
    ) -> None:  # fmt: skip
        self.method = method
        self.raw_path = raw_path
        self.raw_query = raw_query
        self.pairs = pairs
        self.headers = headers
        self.service = service
        self.payload_sha256 = payload_sha256  # the body's hash, for clients that send no header


def _check_signature(
    wire: _Wire, signed: Sequence[str], payload_hash: str, amz_date: str, scope: str,
    key: bytes, provided: str, access_key: str, exclude: tuple[bytes, ...],
) -> None:  # fmt: skip
    header_block = canonical_headers(signed, wire.headers)
    encodings = ("utf-8",)
    if not header_block.isascii():
        # Go and curl send UTF-8 header bytes and sign them; botocore sends latin-1
        # and signs UTF-8.  With latin-1-decoded values, "latin-1" rebuilds the wire bytes.
        encodings = ("utf-8", "latin-1")
    wanted = provided.encode("utf-8", "replace")
    signed_list = ";".join(signed)
    first: tuple[str, str] | None = None
    for query, uri in _candidates(wire, exclude):
        text = "\n".join((wire.method, uri, query, header_block, signed_list, payload_hash))
        for encoding in encodings:
            try:
                raw = text.encode(encoding)
            except UnicodeEncodeError:
                continue
            sts = string_to_sign(amz_date, scope, raw)
            if first is None:
                first = (text, sts)
            if hmac.compare_digest(sign(key, sts).encode("ascii"), wanted):
                return
    assert first is not None
    raise SignatureDoesNotMatch(AWSAccessKeyId=access_key, StringToSign=first[1],
                                SignatureProvided=provided, CanonicalRequest=first[0])  # fmt: skip


def _candidates(wire: _Wire, exclude: tuple[bytes, ...]) -> Iterator[tuple[str, str]]:
    """(canonical query, canonical URI) spellings in the order of the module doc,
    each distinct one once; built lazily: a request signed the common way (the
    first spelling) never pays for the others."""
    uri = wire.raw_path or "/"
    query = canonical_query(wire.pairs, exclude) if wire.raw_query else ""
    yield query, uri
    normalized = normalize_uri(wire.raw_path)
    if normalized != uri:
        yield query, normalized
    raw_query = _raw_sorted_query(wire.raw_query, exclude)
    if raw_query != query:
        yield raw_query, uri
        if normalized != uri:
            yield raw_query, normalized


def _authenticate(
    wire: _Wire, cred: _Credential, signed: list[str], amz_date: str, payload_hash: str,
    provided: str, get_secret: Callable[[str], str | None], *, presigned: bool,
) -> AuthResult:  # fmt: skip
    """The checks both forms share once their parameters are parsed."""
    mode, payload_sha = _payload_mode(payload_hash)
    secret = get_secret(cred.access_key)
    if secret is None:
        raise InvalidAccessKeyId(AWSAccessKeyId=cred.access_key)
    _check_all_signed(wire.headers, signed)
    key = derive_signing_key(secret, cred.date, cred.region, wire.service)
    scope = scope_of(cred.date, cred.region, wire.service)
    exclude = (b"X-Amz-Signature",) if presigned else ()
    _check_signature(wire, signed, payload_hash, amz_date, scope, key, provided,
                     cred.access_key, exclude)  # fmt: skip
    return AuthResult(
        access_key=cred.access_key, region=cred.region, service=wire.service, date=cred.date,
        amz_date=amz_date, signing_key=key, seed_signature=provided, payload_mode=mode,
        payload_sha256=payload_sha, presigned=presigned, scope=scope,
    )  # fmt: skip


def _credential_date(cred: _Credential, amz_date: str, error: type[S3Error], prefix: str) -> None:
    if cred.date != amz_date[:8]:
        raise error(f'{prefix}Invalid credential date "{cred.date}". This date is not the same '
                    f'as X-Amz-Date: "{amz_date[:8]}".')  # fmt: skip


def _verify_header_auth(
    wire: _Wire, authorization: str, get_secret: Callable[[str], str | None],
    now: _dt.datetime, max_skew: _dt.timedelta, region: str | None,
) -> AuthResult:  # fmt: skip
    fields = _parse_authorization(authorization)
    prefix = "The authorization header is malformed; "
    cred = _parse_credential(fields["Credential"], AuthorizationHeaderMalformed, prefix, region, wire.service)
    amz_date, when, sent = _request_time(wire.headers)
    _credential_date(cred, amz_date, AuthorizationHeaderMalformed, prefix)
    if abs(now - when) > max_skew:
        raise RequestTimeTooSkewed(RequestTime=sent, ServerTime=_iso(now),
                                   MaxAllowedSkewMilliseconds=str(max_skew // _MS))  # fmt: skip
    content_sha = wire.headers.get("x-amz-content-sha256") or wire.payload_sha256
    if content_sha is None:
        raise InvalidRequest("Missing required header for this request: x-amz-content-sha256")
    return _authenticate(wire, cred, fields["SignedHeaders"].split(";"), amz_date, content_sha,
                         fields["Signature"], get_secret, presigned=False)  # fmt: skip


_MS = _dt.timedelta(milliseconds=1)


def _verify_query_auth(
    wire: _Wire, get_secret: Callable[[str], str | None], now: _dt.datetime,
    max_skew: _dt.timedelta, region: str | None,
) -> AuthResult:  # fmt: skip
    params: dict[str, str] = {}
    for name, value in wire.pairs:
        params.setdefault(name.decode("utf-8", "replace"), value.decode("utf-8", "replace"))
    if not all(params.get(name) for name in _QUERY_PARAMS):
        raise AuthorizationQueryParametersError(_QUERY_REQUIRED)
    if params["X-Amz-Algorithm"] != ALGORITHM:
        raise AuthorizationQueryParametersError('X-Amz-Algorithm only supports "AWS4-HMAC-SHA256"')
    prefix = "Error parsing the X-Amz-Credential parameter; "
    error = AuthorizationQueryParametersError
    cred = _parse_credential(params["X-Amz-Credential"], error, prefix, region, wire.service)
    amz_date = params["X-Amz-Date"]
    when = _parse_amz_date(amz_date)
    if when is None:
        raise error("X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"")
    _credential_date(cred, amz_date, error, "")
    expires = _parse_expires(params["X-Amz-Expires"])
    if when - now > max_skew:
        raise AccessDenied("Request is not yet valid", **{"X-Amz-Date": amz_date},
                           ServerTime=_iso(now))  # fmt: skip
    deadline = when + _dt.timedelta(seconds=expires)
    if now > deadline:
        raise AccessDenied("Request has expired", **{"X-Amz-Expires": str(expires)},
                           Expires=_iso(deadline), ServerTime=_iso(now))  # fmt: skip
    signed = params["X-Amz-SignedHeaders"].split(";")
    if "x-amz-content-sha256" in signed:
        payload_hash = wire.headers.get("x-amz-content-sha256", "")
    else:
        payload_hash = params.get("X-Amz-Content-Sha256") or UNSIGNED_PAYLOAD
    return _authenticate(wire, cred, signed, amz_date, payload_hash, params["X-Amz-Signature"],
                         get_secret, presigned=True)  # fmt: skip


def _parse_expires(value: str) -> int:
    try:
        expires = int(value)
    except ValueError:
        raise AuthorizationQueryParametersError("X-Amz-Expires should be a number") from None
    if expires < 0:
        raise AuthorizationQueryParametersError("X-Amz-Expires must be non-negative")
    if expires > MAX_PRESIGN_EXPIRES:
        raise AuthorizationQueryParametersError(
            "X-Amz-Expires must be less than a week (in seconds) that is 604800"
        )
    return expires


__all__ = [
    "ALGORITHM", "DEFAULT_MAX_SKEW", "EMPTY_SHA256", "MAX_PRESIGN_EXPIRES", "UNSIGNED_PAYLOAD",
    "AuthResult", "PayloadMode", "canonical_headers", "canonical_query", "canonical_request",
    "derive_signing_key", "is_anonymous", "normalize_uri", "parse_query", "scope_of", "sign",
    "string_to_sign", "uri_encode", "verify_request",
]  # fmt: skip
