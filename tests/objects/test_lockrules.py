"""Object lock rules (titans3/objects/lockrules.py): who may delete or weaken what, when."""

from __future__ import annotations

import json

import pytest

from titans3.core.errors import AccessDenied, InvalidArgument, InvalidRequest
from titans3.drive.records import VersionRecord
from titans3.objects.api import ObjectLock
from titans3.objects.lockrules import (
    DAY_NS,
    LOCK_CONFIG,
    check_delete,
    check_retention_change,
    initial_lock,
    set_legal_hold,
    set_retention,
)

NOW = 1_800_000_000 * 10**9
LATER = NOW + 3600 * 10**9


def rec(mode: str | None = None, until: int | None = None, hold: bool = False) -> VersionRecord:
    r = VersionRecord(vid="0" * 32)
    if mode:
        set_retention(r, mode, until)
    if hold:
        set_legal_hold(r, True)
    return r


def test_compliance_refuses_everyone_until_the_date() -> None:
    r = rec("COMPLIANCE", LATER)
    for bypass in (False, True):
        with pytest.raises(AccessDenied):
            check_delete(r, bypass=bypass, now_ns=NOW)
    check_delete(r, bypass=False, now_ns=LATER + 1)


def test_governance_gives_way_to_bypass_and_legal_hold_to_nothing() -> None:
    with pytest.raises(AccessDenied):
        check_delete(rec("GOVERNANCE", LATER), bypass=False, now_ns=NOW)
    check_delete(rec("GOVERNANCE", LATER), bypass=True, now_ns=NOW)
    with pytest.raises(AccessDenied):
        check_delete(rec(hold=True), bypass=True, now_ns=NOW)
    r = rec(hold=True)
    set_legal_hold(r, False)
    check_delete(r, bypass=False, now_ns=NOW)


@pytest.mark.parametrize(("old", "new", "bypass", "ok"), [
    (("COMPLIANCE", LATER), ("COMPLIANCE", LATER + 1), False, True),   # extend
    (("COMPLIANCE", LATER), ("COMPLIANCE", LATER - 1), True, False),   # shorten
    (("COMPLIANCE", LATER), ("GOVERNANCE", LATER + 1), True, False),   # weaker mode
    (("COMPLIANCE", LATER), (None, None), True, False),                # remove
    (("GOVERNANCE", LATER), ("GOVERNANCE", LATER - 1), False, False),
    (("GOVERNANCE", LATER), ("GOVERNANCE", LATER - 1), True, True),
    (("GOVERNANCE", LATER), ("COMPLIANCE", LATER), False, True),       # stronger
    (("GOVERNANCE", LATER), (None, None), True, True),
])
def test_retention_changes(old, new, bypass, ok) -> None:
    r = rec(*old)
    if ok:
        check_retention_change(r, *new, bypass=bypass, now_ns=NOW)
    else:
        with pytest.raises(AccessDenied):
            check_retention_change(r, *new, bypass=bypass, now_ns=NOW)


def test_new_versions_get_the_request_or_the_default() -> None:
    cfg = {LOCK_CONFIG: json.dumps({"enabled": True, "mode": "GOVERNANCE", "days": 2}).encode()}
    assert initial_lock(cfg, None, NOW) == {"ret": ["GOVERNANCE", NOW + 2 * DAY_NS]}
    assert initial_lock(cfg, ObjectLock("COMPLIANCE", LATER, True), NOW) == \
        {"ret": ["COMPLIANCE", LATER], "lh": True}
    with pytest.raises(InvalidArgument):
        initial_lock(cfg, ObjectLock("COMPLIANCE", NOW - 1), NOW)
    with pytest.raises(InvalidRequest):
        initial_lock({}, ObjectLock(legal_hold=True), NOW)
    assert initial_lock({}, None, NOW) == {}
