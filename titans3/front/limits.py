"""How many S3 processes a host runs, and the limits each of them gets.

Pure: read by the daemon (binding, its own listener), the supervisor and the
owner's hello to each front, so every process agrees.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

__all__ = ["process_count", "shared_limits"]


def process_count(value: str) -> int:
    """``s3_processes``: ``auto`` = min(cores, 4), else the number (>= 1)."""
    if value == "auto":
        return max(1, min(len(os.sched_getaffinity(0)), 4))  # the cores this daemon may run on
    return max(1, int(value))


def shared_limits(cfg: Any) -> Any:
    """``cfg`` for one of this host's S3 processes: ``max_connections`` is the
    host's, so each of N processes takes its share (the kernel spreads
    connections evenly, so the host sheds about where one process did)."""
    n = process_count(cfg.s3_processes)
    if n == 1:
        return cfg
    return dataclasses.replace(cfg, max_connections=max(1, -(-cfg.max_connections // n)))
