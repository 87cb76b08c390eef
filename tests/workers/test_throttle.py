"""Token bucket and rate meter: pure arithmetic on clock readings."""

from __future__ import annotations

import pytest

from titans3.workers.throttle import PacedMeter, RateMeter, TokenBucket


def test_unthrottled_bucket_never_waits():
    b = TokenBucket(0)
    assert b.reserve(10**12, now=0.0) == 0.0


def test_a_new_bucket_has_no_credit_and_paces_from_the_first_byte():
    b = TokenBucket(100, now=0.0)
    assert b.reserve(50, now=0.0) == pytest.approx(0.5)
    # Half a second later the debt is paid; the next 50 bytes wait another 0.5 s.
    assert b.reserve(50, now=0.5) == pytest.approx(0.5)


def test_idle_time_earns_at_most_one_second_of_credit():
    b = TokenBucket(100, now=0.0)
    assert b.reserve(100, now=5.0) == 0.0
    assert b.reserve(50, now=5.0) == pytest.approx(0.5)


def test_bucket_refills_at_rate_up_to_the_burst():
    b = TokenBucket(1000, now=0.0)
    b.reserve(1000, now=1.0)
    assert b.reserve(1000, now=10.0) == 0.0  # refilled, but only one second's worth
    assert b.reserve(1, now=10.0) > 0


def test_lowering_the_rate_keeps_debt_and_applies_at_once():
    b = TokenBucket(1000, now=0.0)
    b.reserve(3000, now=0.0)  # 3000 bytes of debt
    b.set_rate(100, now=0.0)
    assert b.reserve(100, now=0.0) == pytest.approx(31.0)


def test_rate_meter_converges_and_estimates_eta():
    m = RateMeter(half_life=1.0)
    for t in range(0, 30):
        m.update(t * 200.0, float(t))
    assert m.rate == pytest.approx(200.0, rel=0.01)
    assert m.eta(1000) == pytest.approx(5.0, rel=0.01)
    assert m.eta(0) == 0.0
    assert RateMeter().eta(10) is None


@pytest.mark.parametrize("rate", [1000.0, 32 << 20])
def test_bytes_admitted_in_an_epoch_never_exceed_rate_times_time(rate):
    """Readers in parallel, reads of mixed sizes, idle gaps, a restart and a
    rate change: a meter of admitted bytes never reports more than the limit."""
    import random

    rng = random.Random(7)
    b = TokenBucket(rate, now=100.0)
    meter = PacedMeter(b)
    readers = [100.0] * 6  # when each reader is next free
    now = 100.0
    worst = 0.0
    for step in range(3000):
        if step == 1000:
            b.restart(now)
        if step == 2000:
            b.set_rate(rate / 2, now)
        i = min(range(len(readers)), key=readers.__getitem__)
        now = max(now, readers[i])
        n = rng.choice([1, int(rate / 8), int(rate / 3), int(rate * 2)])
        start = now + b.reserve(n, now)
        epoch = b.epoch
        done = start + rng.random() * 0.01 + (rng.random() < 0.05) * 3.0  # sometimes idle
        meter.admitted(epoch, n)
        readers[i] = done
        if done - b.since >= 0.5:
            worst = max(worst, meter.rate(done) / b.rate)
    assert 0.5 < worst <= 1.0 + 1e-9
