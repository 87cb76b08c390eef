"""Rendering the status page: Jinja2 templates (autoescaped) fed plain values.

Theory of operation
-------------------
One renderer for the first view and the live updates: the server renders the
whole page (readable before any script runs), and the page's small script
fetches ``/fragment`` -- the same ``live.html`` template -- every two seconds
and swaps it in.  No JSON-to-DOM code in the browser, so the two can never
disagree; the graphs are inline SVG from :mod:`titans3.web.charts`.

Everything here is pure: values in, HTML out.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from titans3.web.charts import Series, line_chart
from titans3.web.history import WINDOW, Sample

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def h(n: float | int | None) -> str:
    """Bytes in IEC units: ``1536`` -> ``1.5 KiB``."""
    if n is None:
        return "-"
    v, i = float(n), 0
    while abs(v) >= 1024 and i < len(_UNITS) - 1:
        v /= 1024
        i += 1
    return f"{v:.1f} {_UNITS[i]}" if i else f"{int(v)} B"


def dur(s: float | None) -> str:
    if s is None:
        return ""
    s = round(s)
    if s < 120:
        return f"{s} s"
    if s < 7200:
        return f"{round(s / 60)} min"
    return f"{s / 3600:.1f} h"


def _when(v: float) -> str:
    d = v - time.time()
    return f"in {dur(d)}" if d >= 0 else f"{dur(-d)} ago"


def counter_value(k: str, v: Any) -> str:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return str(v)
    if 1e9 < v < 1e10 and any(w in k for w in ("due", "last", "finished", "started")) or k.endswith("_at"):
        return _when(float(v))
    if "rate" in k:
        return h(v) + "/s"
    return h(v) if "bytes" in k else str(v)


def counters(c: Mapping[str, Any] | None) -> str:
    return " ".join(f"{k}={counter_value(k, v)}" for k, v in (c or {}).items()
                    if v not in (0, "", False))


def worker_rows(s: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    c = s.get("cluster")
    if c:
        return [(x["host_id"], w) for x in c["hosts"] for w in x["workers"]]
    return [(s["host"], w) for w in s["summaries"]]


def _rate(v: float) -> str:
    return f"{v:.3g}/s" if v < 1000 else f"{v / 1000:.3g}k/s"


def _secs(v: float) -> str:
    return f"{v * 1000:.3g} ms" if v < 1 else f"{v:.3g} s"


def charts(samples: Sequence[Sample], *, now: float, interval: float) -> list[str]:
    """The four graphs of the last hour: requests, throughput, latency, errors."""
    def pts(attr: str) -> list[tuple[float, float | None]]:
        return [(x.t, getattr(x, attr)) for x in samples]

    kw = {"now": now, "window": WINDOW, "interval": interval}
    return [
        line_chart("graph-requests", "S3 requests per second",
                   [Series("requests", "#2a6fb0", pts("requests"))], fmt=_rate, **kw),
        line_chart("graph-throughput", "S3 throughput",
                   [Series("in", "#2a8f4a", pts("bytes_in")), Series("out", "#2a6fb0", pts("bytes_out"))],
                   fmt=lambda v: h(v) + "/s", **kw),
        line_chart("graph-latency", "S3 latency",
                   [Series("p50", "#2a6fb0", pts("p50")), Series("p99", "#c05020", pts("p99"))],
                   fmt=_secs, **kw),
        line_chart("graph-errors", "S3 errors per second",
                   [Series("4xx+5xx", "#c08020", pts("errors")), Series("5xx", "#b00000", pts("server_errors"))],
                   fmt=_rate, **kw),
    ]


_env = Environment(loader=PackageLoader("titans3.web", "templates"),
                   autoescape=select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True)
_env.globals.update(h=h, dur=dur, counters=counters)


def render(template: str, **values: Any) -> str:
    return _env.get_template(template).render(**values)
