"""IAM condition operators, compiled at parse time and evaluated per request.

Theory of operation
-------------------
A ``Condition`` block is ``{operator: {key: value | [values]}}``.  Every
operator/key pair is compiled once, when the policy is parsed, into a
:class:`Condition` whose policy values are already numbers, instants or
networks, so a request only pays for comparisons.  The rules are AWS's
(IAM User Guide, "Condition operators" and "Single-valued vs. multivalued
context keys"):

* several values for one key are ORed; for a negated operator
  (``StringNotEquals``, ``NotIpAddress``, ...) the key must match *none* of
  them (NOR);
* a key missing from the request makes a condition false, a negated one true;
  ``...IfExists`` makes it true either way; ``Null`` tests presence itself;
* ``ForAnyValue:`` is true when some request value matches (false when the key
  is missing), ``ForAllValues:`` when every request value matches (true when
  the key is missing or empty);
* key names are case-insensitive; string comparisons are case-sensitive except
  for the ``...IgnoreCase`` operators; ``StringLike``/``ArnLike`` take ``*``
  and ``?``;
* policy variables (``${aws:username}``, ``${*}``, ``${?}``, ``${$}``, a
  default as ``${key, 'value'}``) are replaced in string values under policy
  version 2012-10-17 only; a variable with no value makes that policy value
  match nothing.

The request side is a :data:`Context`: lower-case key -> list of string
values (a single-valued key is a one-element list; absent keys are absent).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import ipaddress
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from titans3.iam import wildcard

__all__ = [
    "KNOWN_KEYS", "Condition", "ConditionError", "Context", "compile_condition", "is_known_key",
    "substitute",
]  # fmt: skip

Context = Mapping[str, Sequence[str]]


class ConditionError(ValueError):
    """A condition the policy language refuses; the message is AWS's."""


# ------------------------------------------------------------------ keys
# Condition keys a policy may name (lower case).  Keys we do not fill in for a
# request are still accepted: they evaluate as absent, as AWS's do when a
# request carries no such value.
_KEY_TEXT = """
aws:CurrentTime aws:EpochTime aws:SourceIp aws:SecureTransport aws:UserAgent aws:Referer
aws:userid aws:username aws:PrincipalArn aws:PrincipalAccount aws:PrincipalType
aws:RequestedRegion aws:SourceVpc aws:SourceVpce aws:SourceArn aws:SourceAccount
aws:SourceOwner aws:PrincipalOrgID aws:PrincipalOrgPaths aws:SourceOrgID aws:SourceOrgPaths
aws:MultiFactorAuthPresent aws:MultiFactorAuthAge aws:TokenIssueTime aws:ViaAWSService
aws:CalledVia aws:CalledViaFirst aws:CalledViaLast aws:TagKeys aws:PrincipalIsAWSService
aws:PrincipalServiceName aws:PrincipalServiceNamesList aws:ResourceAccount aws:ResourceOrgID
aws:ResourceOrgPaths aws:VpcSourceIp aws:FederatedProvider aws:SourceIdentity
s3:prefix s3:delimiter s3:max-keys s3:x-amz-acl s3:x-amz-server-side-encryption
s3:x-amz-server-side-encryption-aws-kms-key-id s3:x-amz-server-side-encryption-customer-algorithm
s3:x-amz-server-side-encryption-context s3:RequestObjectTagKeys s3:VersionId
s3:x-amz-copy-source s3:x-amz-metadata-directive s3:x-amz-grant-read s3:x-amz-grant-write
s3:x-amz-grant-read-acp s3:x-amz-grant-write-acp s3:x-amz-grant-full-control
s3:x-amz-storage-class s3:x-amz-content-sha256 s3:signatureversion s3:authType
s3:signatureAge s3:TlsVersion s3:LocationConstraint s3:ResourceAccount s3:if-match
s3:if-none-match s3:ObjectCreationOperation s3:DataAccessPointArn s3:DataAccessPointAccount
s3:AccessPointNetworkOrigin s3:x-amz-website-redirect-location s3:object-lock-mode
s3:object-lock-retain-until-date s3:object-lock-remaining-retention-days
s3:object-lock-legal-hold s3:x-amz-object-ownership s3:x-amz-checksum-algorithm
"""
KNOWN_KEYS = frozenset(k.lower() for k in _KEY_TEXT.split())
_KEY_PREFIXES = ("aws:principaltag/", "aws:requesttag/", "aws:resourcetag/",
                 "s3:existingobjecttag/", "s3:requestobjecttag/")  # fmt: skip


def is_known_key(key: str) -> bool:
    k = key.lower()
    return k in KNOWN_KEYS or any(k.startswith(p) and len(k) > len(p) for p in _KEY_PREFIXES)


# ------------------------------------------------------------- variables
_VAR = re.compile(r"\$\{([^}]*)\}")
_LITERALS = {"*": "*", "?": "?", "$": "$"}


def substitute(text: str, ctx: Context) -> str | None:
    """``text`` with its policy variables replaced; None when one has no value."""
    if "${" not in text:
        return text
    missing = False

    def one(m: re.Match[str]) -> str:
        nonlocal missing
        inner = m.group(1)
        if inner in _LITERALS:
            return _LITERALS[inner]
        name, comma, default = inner.partition(",")
        values = ctx.get(name.strip().lower())
        if values:
            return values[0]
        default = default.strip()
        if comma and len(default) >= 2 and default[0] == default[-1] == "'":
            return default[1:-1]
        missing = True
        return ""

    out = _VAR.sub(one, text)
    return None if missing else out


# ------------------------------------------------------------- operators
def _parse_number(v: str) -> float | None:
    try:
        return float(v)
    except ValueError:
        return None


def parse_date(v: str) -> float | None:
    """Seconds since the epoch of an ISO 8601 date/time or an epoch number."""
    v = v.strip()
    if re.fullmatch(r"-?\d+(\.\d+)?", v):
        return float(v)
    try:
        when = dt.datetime.fromisoformat(v.replace("z", "Z"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()


def _parse_network(v: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        return ipaddress.ip_network(v.strip(), strict=False)
    except ValueError:
        return None


def _arn_like(pattern: str, value: str) -> bool:
    p = pattern.split(":", 5)
    a = value.split(":", 5)
    if len(p) != 6 or len(a) != 6:
        return False
    return all(wildcard.match(x, y) for x, y in zip(p, a, strict=True))


def _binary(v: str) -> bytes | None:
    try:
        return base64.b64decode(v, validate=True)
    except (binascii.Error, ValueError):
        return None


# kind -> (parse policy value or None if invalid, match(request value, parsed policy value))
_KINDS: dict[str, tuple[Callable[[str], Any], Callable[[str, Any], bool]]] = {
    "string": (str, lambda v, p: v == p),
    "string_ci": (str, lambda v, p: v.lower() == p.lower()),
    "string_like": (str, lambda v, p: wildcard.match(p, v)),
    "num_eq": (_parse_number, lambda v, p: _parse_number(v) == p),
    "num_lt": (_parse_number, lambda v, p: (x := _parse_number(v)) is not None and x < p),
    "num_le": (_parse_number, lambda v, p: (x := _parse_number(v)) is not None and x <= p),
    "num_gt": (_parse_number, lambda v, p: (x := _parse_number(v)) is not None and x > p),
    "num_ge": (_parse_number, lambda v, p: (x := _parse_number(v)) is not None and x >= p),
    "date_eq": (parse_date, lambda v, p: parse_date(v) == p),
    "date_lt": (parse_date, lambda v, p: (x := parse_date(v)) is not None and x < p),
    "date_le": (parse_date, lambda v, p: (x := parse_date(v)) is not None and x <= p),
    "date_gt": (parse_date, lambda v, p: (x := parse_date(v)) is not None and x > p),
    "date_ge": (parse_date, lambda v, p: (x := parse_date(v)) is not None and x >= p),
    "bool": (lambda s: s.lower() if s.lower() in ("true", "false") else None,
             lambda v, p: v.lower() == p),
    "binary": (_binary, lambda v, p: _binary(v) == p),
    "ip": (_parse_network, lambda v, p: _ip_in(v, p)),
    "arn": (str, lambda v, p: _arn_like(p, v)),
    "null": (lambda s: s.lower() if s.lower() in ("true", "false") else None, lambda v, p: False),
}


@lru_cache(maxsize=4096)
def _address(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def _ip_in(value: str, network: Any) -> bool:
    addr = _address(value)
    return addr is not None and addr.version == network.version and addr in network


# operator name -> (kind, negated)
OPERATORS: dict[str, tuple[str, bool]] = {
    "StringEquals": ("string", False), "StringNotEquals": ("string", True),
    "StringEqualsIgnoreCase": ("string_ci", False), "StringNotEqualsIgnoreCase": ("string_ci", True),
    "StringLike": ("string_like", False), "StringNotLike": ("string_like", True),
    "NumericEquals": ("num_eq", False), "NumericNotEquals": ("num_eq", True),
    "NumericLessThan": ("num_lt", False), "NumericLessThanEquals": ("num_le", False),
    "NumericGreaterThan": ("num_gt", False), "NumericGreaterThanEquals": ("num_ge", False),
    "DateEquals": ("date_eq", False), "DateNotEquals": ("date_eq", True),
    "DateLessThan": ("date_lt", False), "DateLessThanEquals": ("date_le", False),
    "DateGreaterThan": ("date_gt", False), "DateGreaterThanEquals": ("date_ge", False),
    "Bool": ("bool", False), "BinaryEquals": ("binary", False),
    "IpAddress": ("ip", False), "NotIpAddress": ("ip", True),
    "ArnEquals": ("arn", False), "ArnLike": ("arn", False),
    "ArnNotEquals": ("arn", True), "ArnNotLike": ("arn", True),
    "Null": ("null", False),
}  # fmt: skip
_STRINGY = frozenset({"string", "string_ci", "string_like", "arn"})
_VALUE_ERRORS = {
    "ip": "Invalid IP address in Conditions",
    "bool": "Invalid value for Bool condition: must be true or false",
    "null": "Invalid value for Null condition: must be true or false",
}


@dataclass(frozen=True, slots=True)
class Condition:
    """One compiled operator/key test."""

    operator: str  # as written, e.g. "ForAnyValue:StringLikeIfExists"
    key: str  # lower case
    kind: str
    negated: bool
    if_exists: bool
    qualifier: str  # "", "foranyvalue", "forallvalues"
    raw: tuple[str, ...]  # the policy values as strings
    parsed: tuple[Any, ...]  # pre-parsed (non-string kinds)
    variables: bool  # the string values hold ${...} to substitute

    def holds(self, ctx: Context) -> bool:
        values = ctx.get(self.key)
        if self.kind == "null":
            present = bool(values)
            return any((p == "false") == present for p in self.parsed)
        if not values:
            if self.if_exists or self.qualifier == "forallvalues":
                return True
            if self.qualifier == "foranyvalue":
                return False
            return self.negated
        pvals: Sequence[Any] = self.parsed
        if self.variables:
            subs = [substitute(p, ctx) for p in self.raw]
            pvals = [p for p in subs if p is not None]
        test = _KINDS[self.kind][1]

        def hit(v: str) -> bool:
            return any(test(v, p) for p in pvals)

        if self.qualifier == "forallvalues":
            return all((not hit(v)) if self.negated else hit(v) for v in values)
        if self.qualifier == "foranyvalue":
            return any((not hit(v)) if self.negated else hit(v) for v in values)
        found = any(hit(v) for v in values)
        return not found if self.negated else found


def _as_strings(value: Any) -> list[str]:
    items = value if isinstance(value, list) else [value]
    out = []
    for item in items:
        if isinstance(item, bool):
            out.append("true" if item else "false")
        elif isinstance(item, int | float):
            out.append(repr(item) if isinstance(item, float) else str(item))
        elif isinstance(item, str):
            out.append(item)
        else:
            raise ConditionError("Invalid Condition value: values must be strings, numbers or booleans")
    return out


def compile_condition(operator: str, key: str, value: Any, *, variables: bool) -> Condition:
    """Compile one ``operator: {key: value}`` entry; ``ConditionError`` with AWS's message."""
    qualifier = ""
    base = operator
    prefix, sep, rest = operator.partition(":")
    if sep:
        if prefix not in ("ForAnyValue", "ForAllValues"):
            raise ConditionError(f"Invalid Condition type : {operator}")
        qualifier, base = prefix.lower(), rest
    if_exists = base.endswith("IfExists")
    if if_exists:
        base = base[: -len("IfExists")]
    if base not in OPERATORS or (if_exists and base == "Null"):
        raise ConditionError(f"Invalid Condition type : {operator}")
    kind, negated = OPERATORS[base]
    if not is_known_key(key):
        raise ConditionError("Policy has an invalid condition key")
    raw = _as_strings(value)
    if not raw:
        raise ConditionError(f"Invalid Condition: {operator} needs at least one value")
    parse = _KINDS[kind][0]
    parsed: list[Any] = []
    has_vars = variables and kind in _STRINGY and any("${" in r for r in raw)
    for r in raw:
        p = parse(r) if not (has_vars and "${" in r) else r
        if p is None:
            raise ConditionError(_VALUE_ERRORS.get(kind, f"Invalid value {r!r} for {operator}"))
        parsed.append(p)
    return Condition(operator, key.lower(), kind, negated, if_exists, qualifier, tuple(raw),
                     tuple(parsed), has_vars)  # fmt: skip
