"""Status page (``/``), its JSON (``/api/status``) and Prometheus ``/metrics``.

Theory of operation
-------------------
Everything shown is read at request time from the host's own objects
(drive ``stat()``, store counters, worker ``statistics()``), so the page can
never disagree with the daemon.  Metrics use a custom prometheus-client
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
    return {
        "host": store.host,
        "version": __version__,
        "uptime_s": round((time.time_ns() - host.started_ns) / 1e9, 1),
        "ec": {"k": store.scheme.k, "m": store.scheme.m},
        "drives": drives,
        "workers": workers,
        "store": {"degraded_reads": store.degraded_reads,
                  "partial_writes": store.partial_writes},
    }


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
