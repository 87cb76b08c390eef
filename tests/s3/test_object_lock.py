"""Object lock documents and headers (titans3/s3/object_lock.py)."""

from __future__ import annotations

import json

import pytest

from titans3.core.errors import InvalidArgument, MalformedXML
from titans3.s3 import object_lock as ol

NS = 'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'


def test_configuration_round_trip() -> None:
    doc = ol.parse_config(f"<ObjectLockConfiguration {NS}><ObjectLockEnabled>Enabled</ObjectLockEnabled>"
                          "<Rule><DefaultRetention><Mode>COMPLIANCE</Mode><Years>2</Years>"
                          "</DefaultRetention></Rule></ObjectLockConfiguration>".encode())
    assert doc == {"enabled": True, "mode": "COMPLIANCE", "years": 2}
    assert ol.parse_config(ol.render_config(json.dumps(doc).encode())) == doc


@pytest.mark.parametrize(("body", "error"), [
    ("<ObjectLockEnabled>Disabled</ObjectLockEnabled>", MalformedXML),
    ("<ObjectLockEnabled>Enabled</ObjectLockEnabled><Rule><DefaultRetention><Mode>X</Mode>"
     "<Days>1</Days></DefaultRetention></Rule>", MalformedXML),
    ("<ObjectLockEnabled>Enabled</ObjectLockEnabled><Rule><DefaultRetention><Mode>GOVERNANCE</Mode>"
     "</DefaultRetention></Rule>", MalformedXML),
    ("<ObjectLockEnabled>Enabled</ObjectLockEnabled><Rule><DefaultRetention><Mode>GOVERNANCE</Mode>"
     "<Days>-1</Days></DefaultRetention></Rule>", InvalidArgument),
])
def test_bad_configurations(body: str, error: type) -> None:
    with pytest.raises(error):
        ol.parse_config(f"<ObjectLockConfiguration {NS}>{body}</ObjectLockConfiguration>".encode())


def test_retention_legal_hold_and_dates() -> None:
    mode, until = ol.parse_retention(f"<Retention {NS}><Mode>GOVERNANCE</Mode>"
                                     "<RetainUntilDate>2030-01-02T03:04:05.678Z</RetainUntilDate>"
                                     "</Retention>".encode())
    assert mode == "GOVERNANCE" and ol.render_date(until) == "2030-01-02T03:04:05.678Z"
    assert ol.parse_retention(f"<Retention {NS}/>".encode()) == (None, None)
    assert ol.parse_legal_hold(f"<LegalHold {NS}><Status>ON</Status></LegalHold>".encode()) is True
    with pytest.raises(MalformedXML):
        ol.parse_legal_hold(f"<LegalHold {NS}><Status>on</Status></LegalHold>".encode())


def test_write_headers() -> None:
    assert ol.write_lock({}) is None
    lock = ol.write_lock({ol.MODE: "COMPLIANCE", ol.UNTIL: "2030-01-01T00:00:00Z", ol.HOLD: "ON"})
    assert lock.mode == "COMPLIANCE" and lock.legal_hold
    for bad in ({ol.MODE: "COMPLIANCE"}, {ol.MODE: "NOPE", ol.UNTIL: "2030-01-01T00:00:00Z"},
                {ol.HOLD: "maybe"}, {ol.MODE: "GOVERNANCE", ol.UNTIL: "yesterday"}):
        with pytest.raises(InvalidArgument):
            ol.write_lock(bad)
    assert ol.may_bypass({ol.BYPASS: "true"}) and not ol.may_bypass({})
