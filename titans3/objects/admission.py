"""Admission of write streams to the host's data-path memory budget.

Theory of operation
-------------------
:func:`titans3.objects.writer.write_stream` holds, per stream and whatever
the object's size: two segments (one filling while the previous one is
written), that segment's ``n`` erasure fragments, one aligned write buffer
per fragment writer (``drive.direct.WRITE_BUFFER``), and whatever the HTTP
server has queued of the body (``request_buffer``: its app queue times its
read size).  :meth:`WriteAdmission.cost` adds those up; a body known to be
shorter than a segment is charged for its own size, and one that will be
stored inline has no writer buffers.

:meth:`WriteAdmission.hold` admits the stream for that whole amount before
its body is read and returns it when the stream is staged (committing
holds no data buffers).  The rules of :mod:`titans3.core.membudget` apply:
all-or-nothing per stream, so an admitted stream always finishes; FIFO; a
waiting stream does not read its socket, which is the back-pressure.

Streams that nest -- none does today: a copy reads its source, which holds
no budget, and writes one stream -- must not hold twice, or two of them
could each hold one half and wait for the other.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from titans3.core import recvgate
from titans3.core.config import Config
from titans3.core.membudget import MemoryBudget
from titans3.drive.direct import WRITE_BUFFER
from titans3.erasure.codec import ECScheme


class WriteAdmission:
    """Charges write streams against a shared :class:`MemoryBudget`."""

    def __init__(self, budget: MemoryBudget, *, request_buffer: int = 0) -> None:
        self.budget = budget
        self.request_buffer = request_buffer

    def cost(self, scheme: ECScheme, expected_size: int | None, *, inline_max: int) -> int:
        """Bytes of buffers a stream of ``expected_size`` (None: unknown) holds at once."""
        seg = scheme.segment_size
        size = seg if expected_size is None else min(seg, expected_size)
        segments = size if expected_size is not None and expected_size <= seg else 2 * seg
        fragment = -(-size // scheme.k)
        cost = segments + scheme.n * fragment
        inline = expected_size is not None and inline_max >= 0 and fragment <= inline_max
        if not inline:
            cost += scheme.n * WRITE_BUFFER
        queued = self.request_buffer if expected_size is None else min(self.request_buffer,
                                                                       expected_size)
        return cost + queued

    @asynccontextmanager
    async def hold(self, scheme: ECScheme, expected_size: int | None, *,
                   inline_max: int) -> AsyncIterator[None]:
        async with self.budget.hold(self.cost(scheme, expected_size, inline_max=inline_max)):
            with recvgate.widened():  # admitted: read the body at full size (core/recvgate.py)
                yield


def unlimited() -> WriteAdmission:
    """No bound (tests and tools that build a store without a host)."""
    return WriteAdmission(MemoryBudget(0))


def from_config(cfg: Config) -> WriteAdmission:
    """The host's admission: ``write_memory_mb`` of budget; a request may have
    ``http_body_queue`` messages queued, one in hypercorn's hands and one being
    parsed, each up to ``http_recv_bytes``."""
    return WriteAdmission(MemoryBudget(cfg.write_memory_mb << 20),
                          request_buffer=(cfg.http_body_queue + 2) * cfg.http_recv_bytes)
