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
from titans3.nbd.pieces import allocation, merge_pieces, slice_extent


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
        return allocation(self.size, self.record.extent_size, offset, length,
                          lambda ext: not self.view.allocated(ext))
