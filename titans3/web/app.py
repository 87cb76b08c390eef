"""Status page (``/``), its JSON (``/api/status``) and Prometheus ``/metrics``.

Theory of operation
-------------------
Everything shown is read at request time from the host's own objects
(drive ``stat()``, store counters, worker ``statistics()``), so the page can
never disagree with the daemon.  In a cluster the page also shows every
member and *its* workers: each host summarises its workers into one shape
(:mod:`titans3.core.observe`) that rides on its heartbeat answer, so this host
renders the last summary it heard from each peer (and how long ago that was)
without an extra call per page load.  Metrics use a custom prometheus-client
collector for the same reason: no counters are mirrored by hand.  The page is
static HTML that polls ``/api/status`` every two seconds; it binds to
127.0.0.1 by default because it is unauthenticated.
"""

from __future__ import annotations

import time
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from quart import Response
from quart_trio import QuartTrio

from titans3 import __version__
from titans3.core.asgi import ClosingQuartTrio
from titans3.core.observe import worker_summaries

if TYPE_CHECKING:
    from titans3.daemon import Host

_PAGE = (Path(__file__).parent / "status.html").read_text()


async def host_status(host: Host) -> dict[str, Any]:
    drives = []
    for d in host.drives:
        st = await d.stat()
        row = {
            "drive_id": st.drive_id, "path": st.path, "state": st.state.value,
            "capacity": st.capacity, "used": st.used, "free": st.free, "errors": st.errors,
            "quarantined": st.fragments_quarantined,
        }
        stats = getattr(d, "statistics", None)
        if stats is not None:
            s = stats()
            row["io"] = asdict(s) if is_dataclass(s) else dict(s)
        drives.append(row)
    workers = []
    for name, w in host.workers.items():
        s = w.statistics()
        workers.append({"name": name, **(asdict(s) if is_dataclass(s) else dict(s))})
    store = host.store
    own = worker_summaries(host.workers)
    return {
        "host": store.host,
        "version": __version__,
        "uptime_s": round((time.time_ns() - host.started_ns) / 1e9, 1),
        "ec": {"k": store.scheme.k, "m": store.scheme.m},
        "drives": drives,
        "workers": workers,
        "store": {"degraded_reads": store.degraded_reads,
                  "partial_writes": store.partial_writes},
        "summaries": own,
        "cluster": cluster_status(host, own),
        "volumes": asdict(host.nbd.statistics()) if getattr(host, "nbd", None) is not None else None,
    }


def cluster_status(host: Host, own: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Every member as this host sees it, with its workers (from its last
    heartbeat; this host's own now).  ``None`` on a single host."""
    cluster = host.workers.get("cluster")
    ms = getattr(cluster, "membership", None)
    if cluster is None or ms is None:
        return None
    doc = ms.doc
    leaving = {h["address"] for h in doc.get("leaving", [])}
    now = time.time()
    hosts = []
    for h in sorted(doc["hosts"], key=lambda h: h["address"]):
        me = h["address"] == cluster.self_address
        peer = cluster.peers.get(h["address"])
        info = {} if me or peer is None else peer.info
        if me:
            drives = [d.state.value for d in host.drives]
        else:
            drives = [str(d.get("state", "unknown")) for d in info.get("drives", [])]
        hosts.append({
            "address": h["address"], "host_id": h["host_id"], "self": me,
            "online": True if me else bool(peer is not None and peer.online),
            "leaving": h["address"] in leaving,
            "last_seen_s": 0.0 if me else (round(now - peer.last_seen, 1)
                                           if peer is not None and peer.last_seen else None),
            "ring_version": host.store.ring.version if me else info.get("ring_version"),
            "drives": len(drives) or int(h.get("drives", 0)),
            "drives_online": sum(1 for d in drives if d == "online"),
            "workers": own if me else list(info.get("workers", [])),
        })
    summary = ms.summary()
    return {"self": cluster.self_address, "ring_version": summary["version"],
            "moving": summary["moving"], "coordinator": summary["coordinator"],
            "takeovers": summary["takeovers"], "hosts": hosts}


class _Collector:
    def __init__(self, snapshot: dict[str, Any]) -> None:
        self.s = snapshot

    def collect(self):  # type: ignore[no-untyped-def]
        up = GaugeMetricFamily("titans3_drive_online", "1 if the drive is online", labels=["drive"])
        cap = GaugeMetricFamily("titans3_drive_capacity_bytes", "drive capacity", labels=["drive"])
        used = GaugeMetricFamily("titans3_drive_used_bytes", "drive bytes used", labels=["drive"])
        err = GaugeMetricFamily("titans3_drive_errors", "I/O and checksum errors", labels=["drive"])
        for d in self.s["drives"]:
            up.add_metric([d["drive_id"]], 1.0 if d["state"] == "online" else 0.0)
            cap.add_metric([d["drive_id"]], d["capacity"])
            used.add_metric([d["drive_id"]], d["used"])
            err.add_metric([d["drive_id"]], d["errors"])
        yield from (up, cap, used, err)
        deg = GaugeMetricFamily("titans3_degraded_reads", "reads that needed parity")
        deg.add_metric([], self.s["store"]["degraded_reads"])
        yield deg
        part = CounterMetricFamily(
            "titans3_partial_writes", "writes acknowledged on fewer than all of their drives")
        part.add_metric([], self.s["store"]["partial_writes"])
        yield part
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


def create_web_app(host: Host) -> QuartTrio:
    app = ClosingQuartTrio("titans3-web")

    @app.get("/")
    async def index() -> Response:
        return Response(_PAGE, content_type="text/html; charset=utf-8")

    @app.get("/api/status")
    async def status() -> Any:
        return await host_status(host)

    @app.get("/metrics")
    async def metrics() -> Response:
        reg = CollectorRegistry()
        reg.register(_Collector(await host_status(host)))  # type: ignore[arg-type]
        return Response(generate_latest(reg), content_type="text/plain; version=0.0.4")

    return app
