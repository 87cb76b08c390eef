"""Token bucket and rate meter: pure arithmetic on clock readings."""

from __future__ import annotations

import pytest

from titans3.workers.throttle import RateMeter, TokenBucket


def test_unthrottled_bucket_never_waits():
    b = TokenBucket(0)
    assert b.reserve(10**12, now=0.0) == 0.0


def test_bucket_allows_one_second_burst_then_waits_for_debt():
    b = TokenBucket(100, now=0.0)
    assert b.reserve(100, now=0.0) == 0.0
    assert b.reserve(50, now=0.0) == pytest.approx(0.5)
    # Half a second later the debt is paid; the next 50 bytes wait another 0.5 s.
    assert b.reserve(50, now=0.5) == pytest.approx(0.5)


def test_bucket_refills_at_rate_up_to_the_burst():
    b = TokenBucket(1000, now=0.0)
    b.reserve(1000, now=0.0)
    assert b.reserve(1000, now=10.0) == 0.0  # refilled, but only one second's worth
    assert b.reserve(1, now=10.0) > 0


def test_lowering_the_rate_keeps_debt_and_applies_at_once():
    b = TokenBucket(1000, now=0.0)
    b.reserve(3000, now=0.0)  # 2000 bytes of debt
    b.set_rate(100, now=0.0)
    assert b.reserve(100, now=0.0) == pytest.approx(21.0)


def test_rate_meter_converges_and_estimates_eta():
    m = RateMeter(half_life=1.0)
    for t in range(0, 30):
        m.update(t * 200.0, float(t))
    assert m.rate == pytest.approx(200.0, rel=0.01)
    assert m.eta(1000) == pytest.approx(5.0, rel=0.01)
    assert m.eta(0) == 0.0
    assert RateMeter().eta(10) is None
