"""Lifecycle rule arithmetic (titans3/core/lifecycle.py): AWS's dates, filters, the header."""

from __future__ import annotations

import datetime as dt

from titans3.core import lifecycle as lc

NS = 10**9


def _ns(*a: int) -> int:
    return int(dt.datetime(*a, tzinfo=dt.UTC).timestamp()) * NS


def test_days_round_up_to_the_next_midnight_utc() -> None:
    created = _ns(2026, 1, 1, 15, 30)
    assert lc.due_ns(created, 1) == _ns(2026, 1, 3)
    assert lc.due_ns(_ns(2026, 1, 1), 1) == _ns(2026, 1, 2)  # exactly midnight stays


def test_a_short_debug_day_is_not_rounded() -> None:
    assert lc.due_ns(100 * NS, 3, day_seconds=2) == 106 * NS


def test_filters_prefix_tags_and_strict_sizes() -> None:
    r = lc.Rule("r", prefix="logs/", tags={"t": "1"}, size_gt=10, size_lt=100, expiration_days=1)
    assert r.matches("logs/a", {"t": "1", "x": "y"}, 50)
    assert not r.matches("data/a", {"t": "1"}, 50)
    assert not r.matches("logs/a", {"t": "2"}, 50)
    assert not r.matches("logs/a", {"t": "1"}, 10)
    assert not r.matches("logs/a", {"t": "1"}, 100)
    assert not lc.Rule("d", enabled=False, expiration_days=1).matches("x")


def test_expiration_takes_the_earliest_rule_and_renders_aws_header() -> None:
    rules = [lc.Rule("late", expiration_days=10), lc.Rule("soon", prefix="a", expiration_days=2),
             lc.Rule("other", prefix="b", expiration_days=1)]
    at, rid = lc.expiration(rules, "abc", {}, 5, _ns(2026, 3, 1, 12))
    assert rid == "soon" and at == _ns(2026, 3, 4)
    assert lc.header_value(at, 'q"x') == 'expiry-date="Wed, 04 Mar 2026 00:00:00 GMT", rule-id="q\\"x"'
    assert lc.expiration(rules, "zzz", {}, 5, _ns(2026, 3, 1)) [1] == "late"
    assert lc.expiration([lc.Rule("nc", noncurrent_days=1)], "k", {}, 1, 0) is None


def test_rules_round_trip_through_the_stored_form() -> None:
    rules = [lc.Rule("a", tags={"k": "v"}, noncurrent_days=3, newer_noncurrent=2),
             lc.Rule("b", enabled=False, abort_days=7)]
    assert lc.load(lc.dump(rules)) == rules
    assert lc.load(None) == []
