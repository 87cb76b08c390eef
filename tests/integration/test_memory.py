"""A 2 GiB object goes in and out with the daemon's memory bounded (streaming, backpressure).

The client streams the PUT from a generator and hashes the GET as it arrives,
so neither side holds the object; a sampler thread reads the daemon's RSS every
50 ms.  The bound (300 MiB) is far below the object size: a daemon that
buffers a whole object, or reads faster than it writes, cannot pass.
"""

from __future__ import annotations

import contextlib
import threading
import time

import psutil
import pytest

from .cluster import Daemon, GiB, MiB, s3_client
from .rawhttp import pattern_chunks, sha256_of, stream_get, stream_put

RSS_LIMIT = 300 * MiB
SIZE = 2 * GiB


class RssSampler:
    """Samples the RSS of a process (and, separately, its children) every ``interval`` s."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.proc = psutil.Process(pid)
        self.interval = interval
        self.max_rss = 0
        self.max_children_rss = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.max_rss = max(self.max_rss, self.proc.memory_info().rss)
                kids = 0
                for c in self.proc.children(recursive=True):
                    with contextlib.suppress(psutil.NoSuchProcess):
                        kids += c.memory_info().rss
                self.max_children_rss = max(self.max_children_rss, kids)
                self.samples += 1
            except psutil.NoSuchProcess:
                return
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_two_gib_put_and_get_stay_under_300_mib_rss(daemon: Daemon) -> None:
    s3_client(daemon).create_bucket(Bucket="mem")
    want = sha256_of(pattern_chunks(SIZE, seed=7))
    baseline = daemon.rss_bytes()

    with RssSampler(daemon.pid) as put_rss:
        t0 = time.monotonic()
        r = stream_put(daemon, "mem", "two-gib", pattern_chunks(SIZE, seed=7), SIZE,
                       payload_sha256=want)  # fmt: skip
        put_s = time.monotonic() - t0
    assert r.status == 200, f"PUT {r.status}: {r.body[:500]!r}"

    with RssSampler(daemon.pid) as get_rss:
        t0 = time.monotonic()
        status, got, n = stream_get(daemon, "mem", "two-gib")
        get_s = time.monotonic() - t0
    assert status == 200
    assert n == SIZE, f"GET returned {n} bytes"
    assert got == want, "GET content differs from what was PUT"

    report = (
        f"baseline RSS {baseline / MiB:.0f} MiB; "
        f"PUT {SIZE / MiB / put_s:.0f} MiB/s max RSS {put_rss.max_rss / MiB:.0f} MiB "
        f"(children {put_rss.max_children_rss / MiB:.0f} MiB, {put_rss.samples} samples); "
        f"GET {SIZE / MiB / get_s:.0f} MiB/s max RSS {get_rss.max_rss / MiB:.0f} MiB "
        f"(children {get_rss.max_children_rss / MiB:.0f} MiB, {get_rss.samples} samples)"
    )
    print(report)
    assert put_rss.samples > 5 and get_rss.samples > 5, f"too few RSS samples: {report}"
    assert put_rss.max_rss < RSS_LIMIT, f"PUT: daemon RSS over 300 MiB: {report}"
    assert get_rss.max_rss < RSS_LIMIT, f"GET: daemon RSS over 300 MiB: {report}"
    # Forked helpers count too (their RSS double-counts shared pages, so this is loose).
    assert put_rss.max_rss + put_rss.max_children_rss < 2 * RSS_LIMIT, report
    assert get_rss.max_rss + get_rss.max_children_rss < 2 * RSS_LIMIT, report
