"""The daemon's recent log lines, kept in memory for the support bundle.

The daemon logs to stderr (journald under systemd); a support bundle made
from the status page cannot assume a journal it may read.  This handler keeps
the last ``capacity`` formatted records -- bounded memory, no file -- and
:func:`lines` hands them out.  Secrets are never logged; the bundle redacts
known ones again anyway.
"""

from __future__ import annotations

import logging
from collections import deque

CAPACITY = 5000


class RingHandler(logging.Handler):
    def __init__(self, capacity: int = CAPACITY) -> None:
        super().__init__()
        self.records: deque[str] = deque(maxlen=capacity)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.records.append(self.format(record))
        except Exception:  # noqa: BLE001 -- logging must never raise
            self.handleError(record)


_handler: RingHandler | None = None


def install(fmt: str, capacity: int = CAPACITY) -> RingHandler:
    global _handler
    if _handler is None:
        _handler = RingHandler(capacity)
        _handler.setFormatter(logging.Formatter(fmt))
        logging.getLogger().addHandler(_handler)
    return _handler


def lines() -> list[str]:
    return list(_handler.records) if _handler is not None else []
