"""Bucket CORS: the configuration document, rule matching and response headers.

Theory of operation
-------------------
Pure functions, no I/O.  Three jobs:

1. :func:`parse_cors_configuration` validates a PutBucketCors body the way S3
   does and returns the rules.  The document's *structure* is checked first,
   for the whole document (``MalformedXML``: no rule or more than 100, a rule
   without ``AllowedOrigin`` or ``AllowedMethod``, unknown or repeated single
   elements, ``MaxAgeSeconds`` that is not a 32-bit non-negative integer, an
   ``ID`` over 255 characters); then each rule's *values*, in rule order, each
   rule checked methods -> origins -> headers -> expose headers
   (``InvalidRequest`` with S3's messages: unsupported method, more than one
   ``*`` in an origin or allowed header, any ``*`` in an expose header).
   Values are kept byte for byte (S3 does not trim them).
2. :func:`render_cors_configuration` writes GetBucketCors's document, elements
   in S3's order (ID, AllowedMethod, AllowedOrigin, AllowedHeader,
   MaxAgeSeconds, ExposeHeader).  ``encode_rules``/``decode_rules`` are the
   compact JSON the bucket record stores (``titans3.objects.bucket_config``).
3. Matching.  A rule matches when one ``AllowedOrigin`` matches the Origin (an
   origin pattern has at most one ``*``, matching any run of characters; the
   rest compares case-sensitively), one ``AllowedMethod`` is the method
   (case-sensitive), and -- for a preflight only -- every header named in
   ``Access-Control-Request-Headers`` matches an ``AllowedHeader``
   (case-insensitively, ``*`` again a wildcard).  The first matching rule
   wins.  :func:`preflight` answers an OPTIONS request (headers, or
   ``BadRequest`` / ``AccessForbidden`` as S3 does); :func:`actual_headers`
   gives the headers added to any other request that carries ``Origin``
   (nothing when no rule matches: the browser then blocks the response, which
   is CORS's whole point; the request itself is unaffected).

Response headers come in S3's order: Allow-Origin, Allow-Methods,
Allow-Headers, Expose-Headers, Max-Age, Allow-Credentials, Vary.  A rule whose
origins include the literal ``*`` answers ``Access-Control-Allow-Origin: *``
and no credentials header; otherwise the request's origin is echoed with
``Access-Control-Allow-Credentials: true``.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

from titans3.core.errors import AccessForbidden, BadRequest, InvalidRequest, MalformedXML
from titans3.s3.numbers import decimal
from titans3.s3.xml import S3_NS, escape, parse_document

MAX_RULES = 100
MAX_ID = 255
MAX_AGE = 2**31 - 1
MAX_CONFIG_BYTES = 64 * 1024  # S3's limit for a CORS configuration
METHODS = ("GET", "PUT", "HEAD", "POST", "DELETE")
VARY = "Origin, Access-Control-Request-Headers, Access-Control-Request-Method"

_NOT_ALLOWED = (
    "CORSResponse: This CORS request is not allowed. This is usually because the evalution "
    "of Origin, request method / Access-Control-Request-Method or Access-Control-Request-Headers "
    "are not whitelisted by the resource's CORS spec."
)
_NOT_ENABLED = "CORSResponse: CORS is not enabled for this bucket."
_NO_ORIGIN = "Insufficient information. Origin request header needed."


@dataclass(frozen=True, slots=True)
class CORSRule:
    allowed_origins: tuple[str, ...]
    allowed_methods: tuple[str, ...]
    allowed_headers: tuple[str, ...] = ()
    expose_headers: tuple[str, ...] = ()
    max_age_seconds: int | None = None
    id: str | None = None


# ------------------------------------------------------------------ parsing
_REPEATED = {
    "AllowedOrigin": "allowed_origins",
    "AllowedMethod": "allowed_methods",
    "AllowedHeader": "allowed_headers",
    "ExposeHeader": "expose_headers",
}
_SINGLE = ("ID", "MaxAgeSeconds")


def parse_cors_configuration(data: bytes) -> list[CORSRule]:
    """The rules of a PutBucketCors body, validated (see module doc)."""
    root = parse_document(data)
    if root.tag != "CORSConfiguration" or (root.text or "").strip():
        raise MalformedXML()
    raw_rules: list[dict[str, list[str]]] = []
    for elem in root:
        if elem.tag != "CORSRule" or (elem.tail or "").strip():
            raise MalformedXML()
        raw_rules.append(_rule_fields(elem))
    if not 1 <= len(raw_rules) <= MAX_RULES:
        raise MalformedXML()
    rules = [_structured(fields) for fields in raw_rules]
    for rule in rules:
        _check_values(rule)
    return rules


def _rule_fields(elem: ET.Element) -> dict[str, list[str]]:
    fields: dict[str, list[str]] = {}
    if (elem.text or "").strip():
        raise MalformedXML()
    for kid in elem:
        if (kid.tag not in _REPEATED and kid.tag not in _SINGLE) or len(kid):
            raise MalformedXML()
        if (kid.tail or "").strip():
            raise MalformedXML()
        fields.setdefault(kid.tag, []).append(kid.text or "")
    return fields


def _structured(fields: Mapping[str, list[str]]) -> CORSRule:
    for name in _SINGLE:
        if len(fields.get(name, ())) > 1:
            raise MalformedXML()
    if not fields.get("AllowedOrigin") or not fields.get("AllowedMethod"):
        raise MalformedXML()
    max_age: int | None = None
    if "MaxAgeSeconds" in fields:
        raw = fields["MaxAgeSeconds"][0]
        if not (raw.isascii() and raw.isdigit()) or decimal(raw) > MAX_AGE:
            raise MalformedXML()
        max_age = decimal(raw)
    rule_id = fields["ID"][0] if "ID" in fields else None
    if rule_id is not None and len(rule_id) > MAX_ID:
        raise MalformedXML()
    return CORSRule(
        allowed_origins=tuple(fields["AllowedOrigin"]),
        allowed_methods=tuple(fields["AllowedMethod"]),
        allowed_headers=tuple(fields.get("AllowedHeader", ())),
        expose_headers=tuple(fields.get("ExposeHeader", ())),
        max_age_seconds=max_age,
        id=rule_id,
    )


def _check_values(rule: CORSRule) -> None:
    for method in rule.allowed_methods:
        if method not in METHODS:
            raise InvalidRequest(
                f"Found unsupported HTTP method in CORS config. Unsupported method is {method}"
            )
    for origin in rule.allowed_origins:
        if origin.count("*") > 1:
            raise InvalidRequest(f'AllowedOrigin "{origin}" can not have more than one wildcard.')
    for header in rule.allowed_headers:
        if header.count("*") > 1:
            raise InvalidRequest(f'AllowedHeader "{header}" can not have more than one wildcard.')
    for header in rule.expose_headers:
        if "*" in header:
            raise InvalidRequest(
                f'ExposeHeader "{header}" contains wildcard. We currently do not support '
                "wildcard for ExposeHeader."
            )


# ---------------------------------------------------------------- rendering
def render_cors_configuration(rules: Sequence[CORSRule]) -> bytes:
    """GetBucketCors's body."""
    parts = ['<?xml version="1.0" encoding="UTF-8"?>\n', f'<CORSConfiguration xmlns="{S3_NS}">']
    for rule in rules:
        parts.append("<CORSRule>")
        if rule.id is not None:
            parts.append(f"<ID>{escape(rule.id)}</ID>")
        parts.extend(f"<AllowedMethod>{escape(m)}</AllowedMethod>" for m in rule.allowed_methods)
        parts.extend(f"<AllowedOrigin>{escape(o)}</AllowedOrigin>" for o in rule.allowed_origins)
        parts.extend(f"<AllowedHeader>{escape(h)}</AllowedHeader>" for h in rule.allowed_headers)
        if rule.max_age_seconds is not None:
            parts.append(f"<MaxAgeSeconds>{rule.max_age_seconds}</MaxAgeSeconds>")
        parts.extend(f"<ExposeHeader>{escape(h)}</ExposeHeader>" for h in rule.expose_headers)
        parts.append("</CORSRule>")
    parts.append("</CORSConfiguration>")
    return "".join(parts).encode("utf-8")


def encode_rules(rules: Sequence[CORSRule]) -> bytes:
    """The compact form kept in the bucket record."""
    doc = [
        {
            "o": list(r.allowed_origins), "m": list(r.allowed_methods),
            "h": list(r.allowed_headers), "e": list(r.expose_headers),
            "a": r.max_age_seconds, "i": r.id,
        }
        for r in rules
    ]  # fmt: skip
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


@lru_cache(maxsize=256)
def decode_rules(raw: bytes) -> tuple[CORSRule, ...]:
    """Inverse of :func:`encode_rules`; cached, since every request with an Origin needs it."""
    return tuple(
        CORSRule(
            tuple(d["o"]), tuple(d["m"]), tuple(d["h"]), tuple(d["e"]), d.get("a"), d.get("i")
        )
        for d in json.loads(raw)
    )


# ----------------------------------------------------------------- matching
def wildcard_match(pattern: str, text: str) -> bool:
    """``pattern`` with at most one ``*`` (any run of characters) against ``text``."""
    head, star, tail = pattern.partition("*")
    if not star:
        return pattern == text
    return len(text) >= len(head) + len(tail) and text.startswith(head) and text.endswith(tail)


def origin_allowed(rule: CORSRule, origin: str) -> bool:
    return any(wildcard_match(p, origin) for p in rule.allowed_origins)


def headers_allowed(rule: CORSRule, requested: Sequence[str]) -> bool:
    allowed = [h.strip().lower() for h in rule.allowed_headers]
    return all(any(wildcard_match(a, h) for a in allowed) for h in requested)


def match_rule(
    rules: Sequence[CORSRule], origin: str, method: str, requested_headers: Sequence[str] = ()
) -> CORSRule | None:
    """The first rule allowing ``origin``, ``method`` and every requested header."""
    for rule in rules:
        if (
            method in rule.allowed_methods
            and origin_allowed(rule, origin)
            and headers_allowed(rule, requested_headers)
        ):
            return rule
    return None


def requested_header_names(value: str | None) -> list[str]:
    """``Access-Control-Request-Headers`` as lower-case names, empty items dropped."""
    if not value:
        return []
    return [name.strip().lower() for name in value.split(",") if name.strip()]


def _headers_for(
    rule: CORSRule, origin: str, requested: Sequence[str] = ()
) -> list[tuple[str, str]]:
    wildcard = "*" in rule.allowed_origins
    out = [
        ("Access-Control-Allow-Origin", "*" if wildcard else origin),
        ("Access-Control-Allow-Methods", ", ".join(rule.allowed_methods)),
    ]
    if requested:
        out.append(("Access-Control-Allow-Headers", ", ".join(requested)))
    if rule.expose_headers:
        out.append(("Access-Control-Expose-Headers", ", ".join(rule.expose_headers)))
    if rule.max_age_seconds is not None:
        out.append(("Access-Control-Max-Age", str(rule.max_age_seconds)))
    if not wildcard:
        out.append(("Access-Control-Allow-Credentials", "true"))
    out.append(("Vary", VARY))
    return out


def preflight(
    rules: Sequence[CORSRule] | None, headers: Mapping[str, str], resource_type: str
) -> list[tuple[str, str]]:
    """The headers answering a preflight (OPTIONS) request, or the S3 error.

    ``rules`` is None when the bucket has no CORS configuration; ``headers``
    has lower-case names; ``resource_type`` is ``"BUCKET"`` or ``"OBJECT"``.
    Checks in S3's order: an Origin (400), a configuration (403, reported
    for the bucket), a valid requested method (400), a matching rule (403).
    """
    origin = check_origin(headers)
    method = headers.get("access-control-request-method")
    if rules is None:
        raise AccessForbidden(_NOT_ENABLED, Method=method or "OPTIONS", ResourceType="BUCKET")
    if method is None or method not in METHODS:
        raise BadRequest(f"Invalid Access-Control-Request-Method: {method}" if method is not None
                         else "Invalid Access-Control-Request-Method: null")  # fmt: skip
    requested = requested_header_names(headers.get("access-control-request-headers"))
    rule = match_rule(rules, origin, method, requested)
    if rule is None:
        raise AccessForbidden(_NOT_ALLOWED, Method=method, ResourceType=resource_type)
    return _headers_for(rule, origin, requested)


def check_origin(headers: Mapping[str, str]) -> str:
    """The preflight's Origin; ``BadRequest`` when absent or empty (S3 checks it first)."""
    origin = headers.get("origin")
    if not origin:
        raise BadRequest(_NO_ORIGIN)
    return origin


def bucket_not_found(headers: Mapping[str, str]) -> AccessForbidden:
    """S3's answer to a preflight naming a bucket that does not exist."""
    method = headers.get("access-control-request-method") or "OPTIONS"
    return AccessForbidden("CORSResponse: Bucket not found", Method=method, ResourceType="BUCKET")


def actual_headers(
    rules: Sequence[CORSRule] | None, headers: Mapping[str, str], method: str
) -> list[tuple[str, str]]:
    """CORS headers for a non-preflight request carrying ``Origin`` (maybe none).

    The method matched is ``Access-Control-Request-Method`` when the request
    carries one (what the browser announced), else the request's own.
    """
    origin = headers.get("origin")
    if not origin or not rules:
        return []
    method = headers.get("access-control-request-method") or method
    rule = match_rule(rules, origin, method)
    return [] if rule is None else _headers_for(rule, origin)


__all__ = [
    "MAX_CONFIG_BYTES", "CORSRule", "actual_headers", "bucket_not_found", "check_origin",
    "decode_rules", "encode_rules", "match_rule", "parse_cors_configuration", "preflight",
    "render_cors_configuration", "requested_header_names", "wildcard_match",
]  # fmt: skip
