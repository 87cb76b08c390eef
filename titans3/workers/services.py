"""What the workers need from the object layer, as protocols (no object-layer imports).

Workers sit below the drive and object layers (DESIGN §2), so they import
neither at run time: types from above appear only under ``TYPE_CHECKING``.

:class:`titans3.objects.maintenance.Maintenance` implements all of them; tests
may hand in doubles.  Values crossing the line are plain: bytes, ints, the
Drive protocol, and records the drive layer already defines.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from titans3.drive.records import VersionRecord


class Outcome(Protocol):
    """A key's repair result (``titans3.objects.repair.RepairOutcome``)."""

    fragments_rebuilt: int
    records_restored: int
    bytes_rebuilt: int
    unreachable: int
    lost: int
    deferred: bool
    errors: list[str]

    @property
    def changed(self) -> bool: ...


class KeyRecordsLike(Protocol):
    key: bytes
    per_drive: dict[int, list[VersionRecord]]
    answered: frozenset[int]


class CheckLike(Protocol):
    checked: bool
    missing: int
    unreachable: int


class Services(Protocol):
    @property
    def drives(self) -> Sequence[Any]: ...  # Drive protocol objects, by position

    @property
    def healing(self) -> set[int]: ...

    def slot(self, position: int) -> str: ...

    def placement(self, bucket_id: bytes, key: bytes) -> list[int]: ...

    async def bucket_ids(self) -> list[bytes]: ...

    def walk_keys(
        self, bucket_id: bytes, *, start_after: bytes | None = None, skip: Collection[int] = ()
    ) -> AsyncIterator[KeyRecordsLike]: ...

    def expected_streams(self, rec: VersionRecord) -> list[tuple[str, int, bool]]: ...

    async def placement_check(self, bucket_id: bytes, key: bytes, position: int) -> CheckLike: ...

    async def repair(
        self, bucket_id: bytes, key: bytes, *, only: Collection[int] | None = None,
        deep: bool = False,
    ) -> Outcome: ...

    async def quorum_for(self, bucket_id: bytes) -> tuple[int, int]: ...

    def needs_collect(self, kr: KeyRecordsLike, bucket_id: bytes, *, k: int, w: int,
                      window: float, now_ns: int) -> bool: ...

    async def collect_key(self, bucket_id: bytes, key: bytes, *, window: float, now_ns: int) -> int: ...

    async def referenced_data(self, position: int) -> set[str] | None: ...

    async def abort_stale_uploads(self, max_age: float) -> int: ...

    async def collect_upload_remnants(self, window: float) -> int: ...

    async def collect_part_remnants(self, window: float, positions: Collection[int]) -> int: ...
