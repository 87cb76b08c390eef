"""The graphs' data: per-interval rates, latency percentiles, SVG with gaps."""

from __future__ import annotations

import re

from titans3.core.metrics import LATENCY_BUCKETS, Totals
from titans3.web.charts import Series, line_chart, nice_ceiling
from titans3.web.history import History, quantile


def test_quantiles_interpolate_within_the_bucket() -> None:
    counts = [0] * (len(LATENCY_BUCKETS) + 1)
    assert quantile(0.5, counts) is None
    counts[LATENCY_BUCKETS.index(0.01)] = 100  # all between 5 ms and 10 ms
    assert abs(quantile(0.5, counts) - 0.0075) < 1e-9
    assert abs(quantile(0.99, counts) - 0.00995) < 1e-9
    counts[-1] = 1000  # most beyond the last bound: reported as the bound
    assert quantile(0.99, counts) == LATENCY_BUCKETS[-1]


def test_a_sample_is_the_difference_to_the_previous_one() -> None:
    t = [100.0]
    totals = Totals()
    hist = History(10.0, totals=totals, clock=lambda: t[0])
    for _ in range(50):
        totals.observe(200, 0.004, 1000, 10)
    totals.observe(503, 2.0, 0, 100)
    t[0] = 110.0
    s = hist.sample()
    assert s.requests == 5.1 and s.errors == 0.1 and s.server_errors == 0.1
    assert s.bytes_in == 5000 and s.bytes_out == 60
    assert 0.0025 < s.p50 <= 0.005 and s.p99 > 1.0
    t[0] = 120.0
    quiet = hist.sample()
    assert quiet.requests == 0 and quiet.p50 is None
    assert len(hist.samples) == 2 and hist.samples.maxlen == 360


def test_a_chart_breaks_its_line_at_gaps_and_scales_to_a_nice_top() -> None:
    assert [nice_ceiling(v) for v in (0, 0.7, 3, 7, 12, 999)] == [1.0, 1.0, 5.0, 10.0, 20.0, 1000.0]
    pts = [(1000.0 + i, float(i)) for i in range(5)] + [(1100.0 + i, 4.0) for i in range(3)]
    svg = line_chart("c", "T <x>", [Series("s", "#000", pts)], now=1103.0, window=3600.0,
                     interval=1.0, fmt=str)
    assert svg.startswith('<svg id="c"') and "T &lt;x&gt;" in svg
    assert len(re.findall(r"<polyline ", svg)) == 2  # the 95 s without samples is not a slope
