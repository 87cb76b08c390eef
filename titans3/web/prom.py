"""The host-state part of ``/metrics``: a collector read at scrape time.

Request and drive-latency metrics are recorded as they happen
(:data:`titans3.core.metrics.REGISTRY`); drive, worker and page state is read
from the same snapshot the page shows, so no gauge is mirrored by hand.
"""

from __future__ import annotations

from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily


class StatusCollector:
    def __init__(self, snapshot: dict[str, Any], web: Any = None) -> None:
        self.s = snapshot
        self.web = web

    def collect(self):  # type: ignore[no-untyped-def]
        yield from self._drives()
        deg = GaugeMetricFamily("titans3_degraded_reads", "reads that needed parity")
        deg.add_metric([], self.s["store"]["degraded_reads"])
        yield deg
        part = CounterMetricFamily(
            "titans3_partial_writes", "writes acknowledged on fewer than all of their drives")
        part.add_metric([], self.s["store"]["partial_writes"])
        yield part
        mem = self.s["store"].get("write_memory")
        if mem is not None:  # objects/admission.py
            for name, help_, value in (
                ("titans3_write_memory_capacity_bytes", "write memory budget (0 = unlimited)",
                 mem["capacity"]),
                ("titans3_write_memory_in_use_bytes", "write buffer bytes granted to streams now",
                 mem["in_use"]),
                ("titans3_write_memory_peak_bytes", "most write buffer bytes granted at once",
                 mem["peak"]),
                ("titans3_write_streams_waiting", "write streams waiting for the budget now",
                 mem["waiting"]),
            ):
                g = GaugeMetricFamily(name, help_)
                g.add_metric([], value)
                yield g
            waited = CounterMetricFamily("titans3_write_streams_waited",
                                         "write streams that had to wait for the budget")
            waited.add_metric([], mem["waited"])
            yield waited
        procs = self.s.get("s3_processes") or []
        if len(procs) > 1:  # S3 front processes (titans3/front/): who served how much
            served = CounterMetricFamily("titans3_s3_process_requests",
                                         "S3 requests served by each S3 process of this host", labels=["index", "pid"])
            up = GaugeMetricFamily("titans3_s3_process_up", "1 while the S3 process serves", labels=["index", "pid"])
            for p in procs:
                served.add_metric([str(p["index"]), str(p["pid"] or "")], p["requests"])
                up.add_metric([str(p["index"]), str(p["pid"] or "")], 1 if p["state"] in ("owner", "running") else 0)
            yield served
            yield up
        yield from self._workers()
        if self.web is not None:
            fails = GaugeMetricFamily("titans3_web_login_failures_in_a_row",
                                      "wrong status page passwords since the last success")
            fails.add_metric([], self.web.limiter.failures)
            sessions = GaugeMetricFamily("titans3_web_sessions", "logged-in status page sessions")
            sessions.add_metric([], self.web.sessions.logged_in)
            yield from (fails, sessions)

    def _drives(self):  # type: ignore[no-untyped-def]
        up = GaugeMetricFamily("titans3_drive_online", "1 if the drive is online", labels=["drive"])
        cap = GaugeMetricFamily("titans3_drive_capacity_bytes", "capacity of the drive's filesystem",
                                labels=["drive"])
        used = GaugeMetricFamily("titans3_drive_used_bytes", "bytes used on the drive's filesystem "
                                 "(by anything; see titans3_drive_stored_bytes)", labels=["drive"])
        stored = GaugeMetricFamily("titans3_drive_stored_bytes",
                                   "bytes TitanS3 stores on the drive (fragments, inline blobs, index)",
                                   labels=["drive"])
        shared = GaugeMetricFamily("titans3_drive_filesystem_shared",
                                   "drives of this host on the same filesystem", labels=["drive"])
        err = GaugeMetricFamily("titans3_drive_errors", "I/O and checksum errors", labels=["drive"])
        commits = CounterMetricFamily("titans3_drive_commits", "write requests applied to the "
                                      "drive's index", labels=["drive"])
        batches = CounterMetricFamily("titans3_drive_commit_batches", "durable index commits "
                                      "(group commit: commits / batches requests per flush)",
                                      labels=["drive"])
        for d in self.s["drives"]:
            label = [d["drive_id"]]
            up.add_metric(label, 1.0 if d["state"] in ("online", "healing", "full") else 0.0)
            cap.add_metric(label, d["capacity"])
            used.add_metric(label, d["used"])
            stored.add_metric(label, d["stored"])
            shared.add_metric(label, d["fs_shared"])
            err.add_metric(label, d["errors"])
            io = d.get("io") or {}
            if "commits" in io:
                commits.add_metric(label, io["commits"])
                batches.add_metric(label, io["commit_batches"])
        yield from (up, cap, used, stored, shared, err, commits, batches)

    def _workers(self):  # type: ignore[no-untyped-def]
        state = GaugeMetricFamily("titans3_worker_busy", "1 if the worker is not idle",
                                  labels=["worker", "state"])
        progress = GaugeMetricFamily("titans3_worker_progress", "0..1 of the current run",
                                     labels=["worker"])
        eta = GaugeMetricFamily("titans3_worker_eta_seconds", "estimated seconds left",
                                labels=["worker"])
        rate = GaugeMetricFamily("titans3_worker_rate_bytes", "bytes/s the worker moves",
                                 labels=["worker"])
        for w in self.s["summaries"]:
            state.add_metric([w["name"], w["state"]], 0.0 if w["state"] in ("idle", "") else 1.0)
            if w["progress"] is not None:
                progress.add_metric([w["name"]], w["progress"])
            if w["eta_s"] is not None:
                eta.add_metric([w["name"]], w["eta_s"])
            if w["rate"] is not None:
                rate.add_metric([w["name"]], w["rate"])
        yield from (state, progress, eta, rate)
