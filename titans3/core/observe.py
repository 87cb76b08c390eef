"""Worker observations in one shape, for the status page and the heartbeat.

Theory of operation
-------------------
Every long-running worker has a ``statistics()`` that returns a dataclass
(its own fields: a scrubber counts bytes, the rebalancer keys).  The status
page must show all of them *across the cluster*, so each host summarises its
own workers into one flat shape that travels in its heartbeat answer
(:func:`titans3.peer.app.describe_host`) and is rendered the same way for
every host:

``{"name", "state", "progress" (0..1 or None), "eta_s" (or None),
"rate" (bytes/s or None), "counters" {scalar fields}}``

Only scalar fields go into ``counters`` (per-drive tuples stay on the host's
own ``/api/status``), which keeps a heartbeat small.  Nothing here knows any
particular worker: the field names ``state``, ``progress``, ``eta_s`` /
``eta_seconds`` and ``rate`` are the convention the workers follow.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, is_dataclass
from typing import Any

SKIP = frozenset({"cluster"})  # host objects with statistics() that are not workers
_PULLED = ("state", "progress", "eta_s", "eta_seconds", "rate")


def stats_dict(stats: Any) -> dict[str, Any]:
    return asdict(stats) if is_dataclass(stats) else dict(stats)


def summarise(name: str, stats: Mapping[str, Any]) -> dict[str, Any]:
    """One worker's statistics in the common shape."""
    eta = stats.get("eta_s", stats.get("eta_seconds"))
    progress = stats.get("progress")
    rate = stats.get("rate")
    counters = {
        k: v for k, v in stats.items()
        if k not in _PULLED and isinstance(v, (int, float, str, bool)) and v is not None
    }
    return {
        "name": name,
        "state": str(stats.get("state", "")),
        "progress": float(progress) if isinstance(progress, (int, float)) else None,
        "eta_s": float(eta) if isinstance(eta, (int, float)) else None,
        "rate": float(rate) if isinstance(rate, (int, float)) else None,
        "counters": counters,
    }


def worker_summaries(workers: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every worker of a host (``host.workers``), summarised, in name order."""
    out = []
    for name in sorted(workers):
        if name in SKIP:
            continue
        stats = getattr(workers[name], "statistics", None)
        if stats is None:
            continue
        out.append(summarise(name, stats_dict(stats())))
    return out
