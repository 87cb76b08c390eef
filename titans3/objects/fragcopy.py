"""Copying one fragment stream between drives, a piece at a time.

Used by hint replay (``objects/handoff.py``) and the rebalancer
(``objects/move.py``): the caller commits the record that promotes the copy.
"""

from __future__ import annotations

import trio

from titans3.core.errors import DriveError
from titans3.drive.protocol import Drive
from titans3.drive.records import VersionRecord

COPY_PIECE = 4 << 20


async def copy_fragment(src: Drive, dst: Drive, rec: VersionRecord, data_id: str) -> int:
    """Copy stream ``data_id`` of ``rec``'s fragment from ``src`` to a staging
    writer (or inline blob) on ``dst``, ``COPY_PIECE`` at a time; the caller
    commits.  Also hint replay's copy (objects/handoff.py)."""
    if rec.inline:
        data = await src.read_fragment(data_id, 0, 1 << 62)
        await dst.put_inline(data_id, data)
        return len(data)
    size = await src.fragment_size(data_id)
    w = await dst.create_fragment(data_id, rec.frag_index)
    try:
        off = 0
        while off < size:
            piece = await src.read_fragment(data_id, off, min(COPY_PIECE, size - off))
            if not piece:
                raise DriveError(src.drive_id, f"{data_id} ended at {off} of {size}")
            await w.write(piece)
            off += len(piece)
        await w.finish()
    except BaseException:
        with trio.CancelScope(shield=True):
            await w.abort()
        raise
    return size
