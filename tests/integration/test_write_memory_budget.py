"""Many concurrent large PUTs stay inside the host's write memory budget (issue 16).

The daemon runs with a small ``write_memory_mb``; 16 clients each stream a
distinct 32 MiB object at once.  Every PUT must succeed and read back
byte-exact, and the daemon's RSS (sampled from /proc) must stay under a bound
derived from the budget.  Without admission every stream holds its full
working set (~20 MiB each at 4+2, most of it hypercorn's read-ahead and the
drives' write buffers), which overshoots the bound by hundreds of MiB.
A daemon left with admitted or waiting streams must still stop cleanly.
"""

from __future__ import annotations

import concurrent.futures
import time

import pytest

from .cluster import Daemon, MiB, s3_client
from .rawhttp import pattern_chunks, sha256_of, stream_get, stream_put
from .test_memory import RssSampler

BUDGET_MB = 40
CLIENTS = 16
SIZE = 32 * MiB
# The budget, plus per waiting connection a few narrow (64 KiB) reads
# (core/recvgate.py), plus the drives' pooled write buffers and allocator
# slack: what the daemon may add to its idle RSS.  Unbounded, the same load
# adds ~300 MiB.
ALLOWANCE = 2 * BUDGET_MB * MiB + CLIENTS * MiB


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_concurrent_large_puts_hold_the_write_budget_and_read_back(daemon_factory) -> None:
    d: Daemon = daemon_factory(drives=6, env={"TITANS3_WRITE_MEMORY_MB": str(BUDGET_MB)})
    s3_client(d).create_bucket(Bucket="budget")
    # warm up: one PUT and GET, so the idle baseline has the pools and code paths in it
    r = stream_put(d, "budget", "warm", pattern_chunks(SIZE, seed=99), SIZE)
    assert r.status == 200, r.body[:300]
    assert stream_get(d, "budget", "warm")[0] == 200
    baseline = d.rss_bytes()
    want = {i: sha256_of(pattern_chunks(SIZE, seed=i)) for i in range(CLIENTS)}

    def put(i: int) -> tuple[int, bytes, float]:
        t0 = time.monotonic()
        resp = stream_put(d, "budget", f"obj/{i}", pattern_chunks(SIZE, seed=i), SIZE,
                          payload_sha256=want[i])
        return resp.status, resp.body[:300], time.monotonic() - t0

    with RssSampler(d.pid) as rss, concurrent.futures.ThreadPoolExecutor(CLIENTS) as pool:
        results = list(pool.map(put, range(CLIENTS)))
    for i, (status, body, _) in enumerate(results):
        assert status == 200, f"PUT obj/{i}: {status} {body!r}"
    for i in range(CLIENTS):
        status, got, n = stream_get(d, "budget", f"obj/{i}")
        assert (status, n) == (200, SIZE), f"GET obj/{i}: {status}, {n} bytes"
        assert got == want[i], f"obj/{i} reads back different bytes"

    grown = rss.max_rss - baseline
    report = (f"baseline {baseline / MiB:.0f} MiB, peak {rss.max_rss / MiB:.0f} MiB "
              f"(+{grown / MiB:.0f}, allowed +{ALLOWANCE / MiB:.0f}), {rss.samples} samples; "
              f"PUT seconds {sorted(round(s, 1) for _, _, s in results)}")
    print(report)
    assert rss.samples > 5, report
    assert grown < ALLOWANCE, f"daemon RSS outgrew the write budget: {report}"
    assert d.stop() == 0, f"daemon did not stop cleanly after the load:\n{d.log_tail(40)}"
