"""POST policies of browser uploads: parse the policy, check the form against it (pure).

Theory of operation
-------------------
A POST policy is base64 of a JSON document ``{"expiration": ISO-8601,
"conditions": [...]}``; its signature covers the base64 text exactly as the
form carried it (verified before anything is decoded).  Conditions:

* ``{"field": "value"}`` and ``["eq", "$field", "value"]`` -- exact match;
* ``["starts-with", "$field", "prefix"]`` -- for ``Content-Type`` a
  comma-separated value is a list and every item must match;
* ``["content-length-range", min, max]`` -- the file size, bounds inclusive.

Field names are compared case-insensitively, values case-sensitively; a
condition on a field the form does not carry fails (``bucket`` is the
bucket the form was posted to).  Every form field must be named by some
condition except ``x-amz-signature``, ``file``, ``policy``, ``x-ignore-*``
and, for SigV2, ``awsaccesskeyid`` and ``signature``.

Errors, as S3 was observed to answer: a policy that is not valid is 400
``InvalidPolicyDocument`` ("Invalid Policy: ..."); an expired one, a failed
condition or an uncovered field is 403 ``AccessDenied`` ("Invalid according
to Policy: Policy expired." / "Policy Condition failed: [...]" / "Extra input
fields: <name>").
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from titans3.core.errors import AccessDenied, InvalidPolicyDocument

__all__ = ["PostPolicy", "Rule", "check_fields", "parse_post_policy"]

_EXPIRATION = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?Z")
EXEMPT = frozenset({"x-amz-signature", "file", "policy"})
EXEMPT_V2 = frozenset({"awsaccesskeyid", "signature"})


@dataclass(frozen=True, slots=True)
class Rule:
    op: str  # "eq" | "starts-with" | "content-length-range"
    field: str  # lower case, without "$" ("" for content-length-range)
    value: str = ""
    low: int = 0
    high: int = 0
    shown: str = ""  # the condition as AWS prints it in errors
    has_dollar: bool = True


@dataclass(frozen=True, slots=True)
class PostPolicy:
    expiration: dt.datetime
    rules: tuple[Rule, ...]

    @property
    def length_range(self) -> tuple[int, int] | None:
        ranges = [(r.low, r.high) for r in self.rules if r.op == "content-length-range"]
        if not ranges:
            return None
        return max(lo for lo, _ in ranges), min(hi for _, hi in ranges)


def _bad(message: str) -> InvalidPolicyDocument:
    return InvalidPolicyDocument(f"Invalid Policy: {message}")


def _shown(parts: Sequence[object]) -> str:
    return json.dumps(list(parts))


def _int(value: object) -> int:
    if isinstance(value, bool):
        raise _bad("Invalid JSON.")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        return int(value)
    raise _bad("Invalid JSON.")


def parse_post_policy(b64: str) -> PostPolicy:
    try:
        raw = base64.b64decode(b64.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise _bad("invalid Base64 encoding.") from None
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise _bad("Invalid JSON.") from None
    if not isinstance(doc, dict):
        raise _bad("Invalid JSON.")
    for name in doc:
        if name not in ("expiration", "conditions"):
            raise _bad(f"Unexpected: '{str(name).lower()}'")
    if "expiration" not in doc:
        raise _bad("Policy missing expiration.")
    if "conditions" not in doc:
        raise _bad("Policy missing conditions.")
    expiration = doc["expiration"]
    m = _EXPIRATION.fullmatch(expiration) if isinstance(expiration, str) else None
    if m is None:
        raise _bad(f"Invalid 'expiration' value: '{expiration}'")
    try:
        when = dt.datetime(*(int(g) for g in m.groups()[:6]), tzinfo=dt.UTC)
    except ValueError:
        raise _bad(f"Invalid 'expiration' value: '{expiration}'") from None
    if not isinstance(doc["conditions"], list):
        raise _bad("Invalid 'conditions' value: must be a List.")
    return PostPolicy(when, tuple(_rule(c) for c in doc["conditions"]))


def _rule(c: object) -> Rule:
    if isinstance(c, dict):
        if len(c) != 1:
            raise _bad("Invalid Simple-Condition: Simple-Conditions must have exactly one property specified.")
        ((name, value),) = c.items()
        if not isinstance(value, str):
            raise _bad("Invalid Simple-Condition: value must be a string.")
        return Rule("eq", str(name).lower(), value, shown=_shown(["eq", f"${name}", value]))
    if not isinstance(c, list):
        raise _bad("Invalid condition test: must be a List or Object.")
    if not c or not isinstance(c[0], str):
        raise _bad("Invalid Condition: missing operation identifier.")
    op = c[0].lower()
    if op in ("eq", "starts-with"):
        if len(c) != 3:
            raise _bad(f"Invalid {c[0]}: wrong number of arguments.")
        if not isinstance(c[1], str) or not isinstance(c[2], str):
            raise _bad("Invalid JSON.")
        name = c[1]
        dollar = name.startswith("$")
        return Rule(op, name[1:].lower() if dollar else name.lower(), c[2], shown=_shown(c),
                    has_dollar=dollar)  # fmt: skip
    if op == "content-length-range":
        if len(c) != 3:
            raise _bad(f"Invalid {c[0]}: wrong number of arguments.")
        try:
            low, high = _int(c[1]), _int(c[2])
        except InvalidPolicyDocument:
            raise AccessDenied(f"Invalid according to Policy: Policy Condition failed: {_shown(c)}") from None
        if low < 0 or high < 0:
            raise _bad("Invalid content-length-range: negative values are not allowed.")
        return Rule(op, "", low=low, high=high, shown=_shown(c))
    raise _bad(f"Invalid Condition: unknown operation '{c[0]}'.")


def _holds(rule: Rule, value: str | None) -> bool:
    if value is None or not rule.has_dollar:
        return False
    if rule.op == "eq":
        return value == rule.value
    if rule.field == "content-type" and "," in value:
        return all(v.strip().startswith(rule.value) for v in value.split(","))
    return value.startswith(rule.value)


def check_fields(
    policy: PostPolicy, fields: Mapping[str, str], *, bucket: str, now: dt.datetime, sigv2: bool = False,
    names: Mapping[str, str] | None = None,
) -> None:  # fmt: skip
    """Expiration, every condition, and the coverage rule (module doc).

    ``fields``: lower-case name -> value (``${filename}`` already expanded);
    ``names``: lower-case name -> the name as sent (for the error message).
    """
    if now >= policy.expiration:
        raise AccessDenied("Invalid according to Policy: Policy expired.")
    values = {**fields, "bucket": bucket}
    covered: set[str] = set()
    for rule in policy.rules:
        if rule.op == "content-length-range":
            continue
        if not _holds(rule, values.get(rule.field)):
            raise AccessDenied(f"Invalid according to Policy: Policy Condition failed: {rule.shown}")
        covered.add(rule.field)
    exempt = EXEMPT | (EXEMPT_V2 if sigv2 else frozenset())
    for name in fields:
        if name in exempt or name.startswith("x-ignore-") or name in covered:
            continue
        shown = (names or {}).get(name, name)
        raise AccessDenied(f"Invalid according to Policy: Extra input fields: {shown}")
