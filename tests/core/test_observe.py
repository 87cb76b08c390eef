"""Worker summaries (titans3/core/observe.py): one shape for every worker."""

from __future__ import annotations

from dataclasses import dataclass

from titans3.core.observe import summarise, worker_summaries


@dataclass(frozen=True)
class _Moving:
    state: str
    progress: float
    eta_seconds: float | None
    bytes_moved: int
    drives: tuple[int, ...] = (1, 2)


@dataclass(frozen=True)
class _Repair:
    state: str
    rate: float
    eta_s: float | None
    queue_depth: int
    last_error: str


class _Worker:
    def __init__(self, stats: object) -> None:
        self._stats = stats

    def statistics(self) -> object:
        return self._stats


def test_the_common_fields_are_pulled_out_and_only_scalars_stay_as_counters():
    s = summarise("rebalance", {"state": "moving", "progress": 0.25, "eta_seconds": 40.0,
                                "bytes_moved": 10, "drives": (1, 2), "from_version": None})
    assert s == {"name": "rebalance", "state": "moving", "progress": 0.25, "eta_s": 40.0,
                 "rate": None, "counters": {"bytes_moved": 10}}


def test_every_worker_of_a_host_in_name_order_without_the_cluster_object():
    workers = {
        "repair": _Worker(_Repair("idle", 0.0, None, 3, "")),
        "rebalance": _Worker(_Moving("moving", 0.5, 12.0, 99)),
        "cluster": _Worker({"hosts": 3}),
        "no-stats": object(),
    }
    out = worker_summaries(workers)
    assert [w["name"] for w in out] == ["rebalance", "repair"]
    assert out[0]["eta_s"] == 12.0 and out[0]["progress"] == 0.5
    assert out[1]["rate"] == 0.0 and out[1]["counters"] == {"queue_depth": 3, "last_error": ""}
