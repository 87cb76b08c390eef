"""A read-only export: a volume's snapshot (``VOLUME@SNAPSHOT``).

A snapshot is a version cut: its view (:func:`~titans3.nbd.attach.open_view`)
maps every extent to the newest version at or below the cut, so reading it
needs no lease and any number of hosts may attach it at once.  The protocol
refuses writes to it (the export is flagged read-only).
"""

from __future__ import annotations

from dataclasses import dataclass

from titans3.nbd.catalog import Snapshot, VolumeRecord
from titans3.nbd.extents import ExtentView
from titans3.nbd.volume import merge_pieces, slice_extent
from titans3.nbd.wire import State


@dataclass
class SnapshotExport:
    record: VolumeRecord
    snapshot: Snapshot
    view: ExtentView
    reads: int = 0
    read_bytes: int = 0

    @property
    def size(self) -> int:
        return self.record.size

    @property
    def name(self) -> str:
        return f"{self.record.name}@{self.snapshot.name}"

    async def read(self, offset: int, length: int) -> list[bytes | memoryview | int]:
        self.reads += 1
        self.read_bytes += length
        es = self.record.extent_size
        out: list[bytes | memoryview | int] = []
        pos, end = offset, offset + length
        while pos < end:
            ext = pos // es
            hi = min(end, (ext + 1) * es)
            base = await self.view.read(ext)
            out += slice_extent(base, pos - ext * es, hi - ext * es)
            pos = hi
        return merge_pieces(out)

    def read_now(self, offset: int, length: int) -> list[bytes | memoryview | int] | None:
        es = self.record.extent_size
        out: list[bytes | memoryview | int] = []
        pos, end = offset, offset + length
        while pos < end:
            ext = pos // es
            hi = min(end, (ext + 1) * es)
            base = self.view.cached_bytes(ext) if self.view.allocated(ext) else None
            if base is None and self.view.allocated(ext):
                return None
            out += slice_extent(base, pos - ext * es, hi - ext * es)
            pos = hi
        self.reads += 1
        self.read_bytes += length
        return merge_pieces(out)

    async def prefetch(self, offset: int, length: int) -> None:
        es = self.record.extent_size
        for ext in range(offset // es, -(-(offset + length) // es)):
            await self.view.read(ext)

    def block_status(self, offset: int, length: int) -> list[tuple[int, int]]:
        es = self.record.extent_size
        out: list[tuple[int, int]] = []
        pos = offset
        while pos < offset + length:
            ext = pos // es
            hi = min(self.size, (ext + 1) * es)
            flags = 0 if self.view.allocated(ext) else int(State.HOLE | State.ZERO)
            if out and out[-1][1] == flags and out[-1][0] + (hi - pos) < 1 << 31:
                out[-1] = (out[-1][0] + hi - pos, flags)
            else:
                out.append((hi - pos, flags))
            pos = hi
        return out
