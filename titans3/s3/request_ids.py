"""Request ids for S3 answers: ``x-amz-request-id`` and ``x-amz-id-2``, cheaply.

Every answer carries both (``titans3.s3.app``); the access log, the audit log
and error bodies repeat them, so an operator can find one request from what a
client reports.  They must be unique, not secret: nothing is authorised by
them.  Drawing 32 random bytes per request (``secrets``: a ``getrandom``
call each, and base64) cost more than building the rest of a small GET's
answer, so a process draws a random prefix once and counts: the request id
is 8 random hex digits and an 8-digit counter (16 upper-case hex digits, the
form AWS uses), the host id the base64 of 16 random bytes and the counter.
Several S3 processes per host each draw their own prefix; a forked child
re-draws it (``os.register_at_fork``), so two processes never share a sequence.  The counter
wraps after 2**32 requests of one process, and the prefix is redrawn then.
"""

from __future__ import annotations

import base64
import os

__all__ = ["next_ids"]

_prefix = ""
_host_prefix = b""
_count = 0


def _redraw() -> None:
    global _prefix, _host_prefix, _count
    _prefix = os.urandom(4).hex().upper()
    _host_prefix = os.urandom(16)
    _count = 0


def next_ids() -> tuple[str, str]:
    """``(request_id, host_id)`` for a new request."""
    global _count
    if _count >= 0xFFFFFFFF:
        _redraw()
    _count += 1
    n = _count
    return f"{_prefix}{n:08X}", base64.b64encode(_host_prefix + n.to_bytes(8, "big")).decode("ascii")


_redraw()
os.register_at_fork(after_in_child=_redraw)
