"""Object lock rules: retention and legal holds that the object layer enforces (WORM).

Pure: records and times in, refusals out (``objects/locks.py`` applies them).

Theory of operation
-------------------
A bucket created with object lock (``create_bucket(object_lock=True)``) is
versioned from birth and carries the bucket configuration document
:data:`LOCK_CONFIG` (JSON ``{"enabled": true, "mode": ..., "days": ...,
"years": ...}``; mode/days/years: the default retention, optional).  Its
versioning can never be suspended (``InvalidBucketState``).

Each version may carry, in its record's ``extra``:

* ``"ret": [mode, until_ns]`` -- retention, ``GOVERNANCE`` or ``COMPLIANCE``;
* ``"lh": true`` -- a legal hold.

What is refused (``AccessDenied``, as AWS answers), checked here in the object
layer so every front -- S3, FUSE, NBD, lifecycle -- is held to it:

* deleting a *version* (by id) under a legal hold, under COMPLIANCE retention
  until its date passes (by anyone: there is no override), or under
  GOVERNANCE retention unless the caller bypasses it
  (``x-amz-bypass-governance-retention`` and the permission for it);
* shortening or removing COMPLIANCE retention, or turning it into
  GOVERNANCE; shortening, removing or changing GOVERNANCE without bypass.
  Extending retention is always allowed.

A delete *without* a version id only adds a delete marker, as on AWS: the
locked version stays and can be read by id.  Because lock buckets are always
versioned, a PUT never overwrites a version in place.

New versions get the requested retention/hold, else the bucket's default
retention computed from the write's time.  Time is the host clock
(``time.time_ns``); a retention date is compared with it when a delete or a
change is asked -- keep the hosts' clocks in sync (NTP), as for SigV4.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from titans3.core.errors import (
    AccessDenied,
    InvalidArgument,
    InvalidRequest,
    S3Error,
)
from titans3.drive.records import VersionRecord
from titans3.objects.types import ObjectLock

LOCK_CONFIG = "object-lock"
RETENTION = "ret"
LEGAL_HOLD = "lh"
MODES = ("GOVERNANCE", "COMPLIANCE")
DAY_NS = 86_400 * 10**9

InvalidBucketState = type("InvalidBucketState", (S3Error,), {
    "code": "InvalidBucketState", "status": 409,
    "default_message": "The request is not valid with the current state of the bucket."})


def lock_config(config: Mapping[str, bytes]) -> dict[str, Any] | None:
    raw = config.get(LOCK_CONFIG)
    return json.loads(raw) if raw else None


def lock_of(rec: VersionRecord) -> ObjectLock:
    ret = rec.extra.get(RETENTION)
    return ObjectLock(mode=ret[0] if ret else None, until_ns=int(ret[1]) if ret else None,
                      legal_hold=bool(rec.extra.get(LEGAL_HOLD)),
                      legal_hold_set=LEGAL_HOLD in rec.extra)


def initial_lock(config: Mapping[str, bytes], requested: ObjectLock | None,
                 now_ns: int) -> dict[str, Any]:
    """The ``extra`` fields of a new version in a bucket with ``config``."""
    cfg = lock_config(config)
    if requested is not None and (requested.mode or requested.legal_hold) and \
            not (cfg and cfg.get("enabled")):
        raise InvalidRequest("Bucket is missing Object Lock Configuration")
    out: dict[str, Any] = {}
    if requested is not None and requested.mode:
        if requested.until_ns is None or requested.until_ns <= now_ns:
            raise InvalidArgument("The retain until date must be in the future!",
                                  ArgumentName="x-amz-object-lock-retain-until-date")
        out[RETENTION] = [requested.mode, requested.until_ns]
    elif cfg and cfg.get("mode"):
        days = int(cfg.get("days") or 0) + 365 * int(cfg.get("years") or 0)
        out[RETENTION] = [cfg["mode"], now_ns + days * DAY_NS]
    if requested is not None and requested.legal_hold:
        out[LEGAL_HOLD] = True
    return out


def needs_integrity_header(config: Mapping[str, bytes], requested: ObjectLock | None) -> bool:
    """AWS wants Content-MD5 (or a checksum) on uploads that get a retention period."""
    cfg = lock_config(config)
    return bool((requested and requested.mode) or (cfg and cfg.get("mode")))


def check_delete(rec: VersionRecord, *, bypass: bool, now_ns: int | None = None) -> None:
    """Refuse deleting version ``rec`` while it is locked (module doc)."""
    lock = lock_of(rec)
    if lock.legal_hold:
        raise AccessDenied("Access Denied because object protected by object lock.")
    now = time.time_ns() if now_ns is None else now_ns
    if lock.mode and lock.until_ns is not None and lock.until_ns > now and \
            (lock.mode == "COMPLIANCE" or not bypass):
        raise AccessDenied("Access Denied because object protected by object lock.")


def is_locked(rec: VersionRecord, now_ns: int) -> bool:
    lock = lock_of(rec)
    return lock.legal_hold or bool(lock.mode and lock.until_ns and lock.until_ns > now_ns)


def check_retention_change(rec: VersionRecord, mode: str | None, until_ns: int | None, *,
                           bypass: bool, now_ns: int | None = None) -> None:
    """Refuse a PutObjectRetention that weakens a lock the caller may not weaken."""
    now = time.time_ns() if now_ns is None else now_ns
    if mode is not None and mode not in MODES:
        raise InvalidArgument("Unknown retention mode", ArgumentName="Mode")
    if mode is not None and (until_ns is None or until_ns <= now):
        raise InvalidArgument("The retain until date must be in the future!",
                              ArgumentName="RetainUntilDate")
    old = lock_of(rec)
    if not old.mode or old.until_ns is None or old.until_ns <= now:
        return  # nothing in force: any new retention is allowed
    weakens = mode is None or until_ns is None or until_ns < old.until_ns or mode != old.mode
    if not weakens:
        return
    if old.mode == "COMPLIANCE":
        raise AccessDenied("Access Denied because object protected by object lock.")
    if mode == "COMPLIANCE" and until_ns is not None and until_ns >= old.until_ns:
        return  # GOVERNANCE -> COMPLIANCE with no shorter date strengthens the lock
    if not bypass:
        raise AccessDenied("Access Denied because object protected by object lock.")


def set_retention(rec: VersionRecord, mode: str | None, until_ns: int | None) -> None:
    if mode is None:
        rec.extra.pop(RETENTION, None)
    else:
        rec.extra[RETENTION] = [mode, until_ns]


def set_legal_hold(rec: VersionRecord, on: bool) -> None:
    rec.extra[LEGAL_HOLD] = on  # OFF stays recorded: GetObjectLegalHold answers OFF, not 404

