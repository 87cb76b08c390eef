"""Object lock documents and headers (pure): configuration, retention, legal hold.

Theory of operation
-------------------
The object layer enforces locks (``titans3.objects.lockrules``); this module
is the S3 syntax around them, with AWS's errors:

* ``ObjectLockConfiguration``: ``ObjectLockEnabled`` must be ``Enabled``; an
  optional ``Rule/DefaultRetention`` with ``Mode`` and exactly one of
  ``Days``/``Years`` (positive integers; both or neither: ``MalformedXML``);
* ``Retention``: ``Mode`` (``GOVERNANCE``/``COMPLIANCE``) and
  ``RetainUntilDate`` (ISO 8601) together, or neither (removes retention --
  allowed only where the lock may be weakened);
* ``LegalHold``: ``Status`` ``ON``/``OFF``;
* PutObject/CreateMultipartUpload/CopyObject headers
  ``x-amz-object-lock-mode`` + ``-retain-until-date`` (both or neither) and
  ``-legal-hold``; GET/HEAD answer with the same three.

Bypassing GOVERNANCE needs ``x-amz-bypass-governance-retention: true`` *and*
the permission (``s3:BypassGovernanceRetention``): until per-key policies
exist every key is the root key, which holds it (:func:`may_bypass`).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

from titans3.core.errors import InvalidArgument, InvalidRequest, MalformedXML, S3Error
from titans3.objects.api import ObjectInfo, ObjectLock
from titans3.s3.encryption_config import children, text
from titans3.s3.xml import S3_NS, parse_document

NAME = "object-lock"  # the bucket configuration document (objects/lockrules.py: LOCK_CONFIG)
MAX_BODY = 16 * 1024
MODE, UNTIL, HOLD = ("x-amz-object-lock-mode", "x-amz-object-lock-retain-until-date",
                     "x-amz-object-lock-legal-hold")
BYPASS = "x-amz-bypass-governance-retention"

ConfigNotFound = type("ObjectLockConfigurationNotFoundError", (S3Error,), {
    "code": "ObjectLockConfigurationNotFoundError", "status": 404,
    "default_message": "Object Lock configuration does not exist for this bucket"})
NoSuchObjectLockConfiguration = type("NoSuchObjectLockConfiguration", (S3Error,), {
    "code": "NoSuchObjectLockConfiguration", "status": 404,
    "default_message": "The specified object does not have a ObjectLock configuration"})


def parse_date(value: str, name: str) -> int:
    try:
        when = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InvalidArgument("The retain until date is not a valid ISO 8601 date",
                              ArgumentName=name, ArgumentValue=value) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return int(when.timestamp() * 1e9)


def render_date(ns: int) -> str:
    when = dt.datetime.fromtimestamp(ns / 1e9, dt.UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def _mode(value: str | None, name: str) -> str:
    """A retention mode; in a document (``Mode``) a bad one is MalformedXML, in a header InvalidArgument."""
    if value in ("GOVERNANCE", "COMPLIANCE"):
        return value
    if name == "Mode":
        raise MalformedXML()
    raise InvalidArgument("Unknown wormMode directive.", ArgumentName=name, ArgumentValue=str(value))


# ------------------------------------------------------------ configuration
def parse_config(data: bytes) -> dict[str, Any]:
    root = parse_document(data)
    if root.tag != "ObjectLockConfiguration":
        raise MalformedXML()
    fields = children(root, {"ObjectLockEnabled", "Rule"})
    if text(fields.get("ObjectLockEnabled")) != "Enabled":
        raise MalformedXML()
    doc: dict[str, Any] = {"enabled": True}
    rule = fields.get("Rule")
    if rule is not None:
        retention = children(rule, {"DefaultRetention"}).get("DefaultRetention")
        if retention is None:
            raise MalformedXML()
        r = children(retention, {"Mode", "Days", "Years"})
        doc["mode"] = _mode(text(r.get("Mode")), "Mode")
        if ("Days" in r) == ("Years" in r):
            raise MalformedXML()
        name = "Days" if "Days" in r else "Years"
        raw = text(r[name]) or ""
        if not raw.isdigit() or int(raw) <= 0:
            raise InvalidArgument("Default retention period must be a positive integer value.",
                                  ArgumentName=name, ArgumentValue=raw)
        doc[name.lower()] = int(raw)
    return doc


def render_config(raw: bytes) -> bytes:
    doc = json.loads(raw)
    rule = ""
    if doc.get("mode"):
        period = f"<Days>{doc['days']}</Days>" if doc.get("days") else f"<Years>{doc['years']}</Years>"
        rule = f"<Rule><DefaultRetention><Mode>{doc['mode']}</Mode>{period}</DefaultRetention></Rule>"
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<ObjectLockConfiguration xmlns="{S3_NS}">'
            f"<ObjectLockEnabled>Enabled</ObjectLockEnabled>{rule}</ObjectLockConfiguration>").encode()


# ------------------------------------------------------------ retention / legal hold
def parse_retention(data: bytes) -> tuple[str | None, int | None]:
    root = parse_document(data)
    if root.tag != "Retention":
        raise MalformedXML()
    fields = children(root, {"Mode", "RetainUntilDate"})
    if ("Mode" in fields) != ("RetainUntilDate" in fields):
        raise MalformedXML()
    if "Mode" not in fields:
        return None, None
    return _mode(text(fields["Mode"]), "Mode"), parse_date(text(fields["RetainUntilDate"]) or "",
                                                            "RetainUntilDate")


def render_retention(lock: ObjectLock) -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<Retention xmlns="{S3_NS}">'
            f"<Mode>{lock.mode}</Mode><RetainUntilDate>{render_date(lock.until_ns or 0)}"
            "</RetainUntilDate></Retention>").encode()


def parse_legal_hold(data: bytes) -> bool:
    root = parse_document(data)
    if root.tag != "LegalHold":
        raise MalformedXML()
    status = text(children(root, {"Status"}).get("Status"))
    if status not in ("ON", "OFF"):
        raise MalformedXML()
    return status == "ON"


def render_legal_hold(on: bool) -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<LegalHold xmlns="{S3_NS}">'
            f"<Status>{'ON' if on else 'OFF'}</Status></LegalHold>").encode()


# ------------------------------------------------------------ headers
def write_lock(headers: Mapping[str, str]) -> ObjectLock | None:
    """The lock a write asks for in its headers (None: none; the bucket default applies)."""
    mode, until, hold = headers.get(MODE), headers.get(UNTIL), headers.get(HOLD)
    if mode is None and until is None and hold is None:
        return None
    if (mode is None) != (until is None):
        raise InvalidArgument("x-amz-object-lock-retain-until-date and x-amz-object-lock-mode "
                              "must both be supplied", ArgumentName=MODE if mode is None else UNTIL)
    if hold is not None and hold not in ("ON", "OFF"):
        raise InvalidArgument("Legal Hold must be either of 'ON' or 'OFF'", ArgumentName=HOLD,
                              ArgumentValue=hold)
    return ObjectLock(mode=_mode(mode, MODE) if mode else None,
                      until_ns=parse_date(until, UNTIL) if until else None,
                      legal_hold=hold == "ON")


def may_bypass(headers: Mapping[str, str]) -> bool:
    """The request asks to bypass GOVERNANCE (and, every key being root for now, may)."""
    value = headers.get(BYPASS, "").strip().lower()
    if value not in ("", "true", "false"):
        raise InvalidRequest("x-amz-bypass-governance-retention must be true or false")
    return value == "true"


def response_headers(reply: object, info: ObjectInfo) -> None:
    lock = info.lock
    if lock is None:
        return
    add = reply.header  # type: ignore[attr-defined]
    if lock.mode:
        add(MODE, lock.mode)
        add(UNTIL, render_date(lock.until_ns or 0))
    if lock.legal_hold_set:
        add(HOLD, "ON" if lock.legal_hold else "OFF")
