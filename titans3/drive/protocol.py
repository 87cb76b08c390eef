"""The Drive protocol: the one interface the object layer talks to.

Theory of operation
-------------------
A drive stores two things (DESIGN §2, §5):

1. **Fragment data**, named by a *data id* (32 hex chars, unique per stored
   stream: one per single-part object version, one per multipart part).  Data
   is first written to ``staging/`` through a :class:`FragmentWriter`; it becomes
   visible only when a commit *promotes* it to ``chunks/``.  Anything left in
   staging after a crash is garbage.
2. **Records** in the drive's LMDB index: per-object version lists
   (:class:`~titans3.drive.records.VersionRecord`) keyed by ``(bucket id, key)``
   and small generic tables (buckets, multipart uploads, system records) keyed
   by bytes.

Commits are atomic per drive: promotion of the staged files and the LMDB write
happen in one call; when it returns, both are durable (fdatasync + directory
fsync + synced LMDB commit).  Commits from concurrent callers are grouped into
one LMDB transaction.

The object layer never knows whether it holds a :class:`LocalDrive` or (later) a
``RemoteDrive``: both implement this protocol, so one host with six disks and
six hosts with one disk run the same code path.

Errors: every method may raise :class:`~titans3.core.errors.DriveError`
(``DriveOffline`` when the drive is gone -- the drive marks itself offline);
``read_fragment`` raises ``FragmentMissing`` or ``FragmentCorrupt`` (the latter
after moving the file to ``quarantine/``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, runtime_checkable

from titans3.drive.records import VersionRecord, unpack_versions

INLINE_MAX = 128 * 1024  # bytes: the largest fragment put_inline takes (kept in the index)


class DriveState(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"  # cannot be reached / I/O failed; retried by the health check
    FAILED = "failed"  # operator or disk manager declared it dead


@dataclass(frozen=True, slots=True)
class DriveStat:
    drive_id: str
    path: str
    state: DriveState
    capacity: int  # bytes
    used: int  # bytes
    free: int  # bytes
    errors: int  # I/O + checksum errors since start
    fragments_quarantined: int
    full: bool = False  # refused a write for space lately, and nothing was freed since


class ListEntry:
    """One step of a drive listing: a key with its versions, or a common prefix.

    A drive that keeps records packed (``LocalDrive``) may hand over
    ``packed`` (the stored form, ``records.pack_versions``) instead of decoded
    ``versions``: they are decoded on first access.  A listing page resolves
    most keys from the packed forms with one full decode per key instead of
    one per drive (``objects/resolve.py``, ``resolve_packed``)."""

    __slots__ = ("key", "is_prefix", "packed", "_versions")

    def __init__(self, key: bytes, versions: list[VersionRecord] | None,
                 is_prefix: bool = False, *, packed: bytes | None = None) -> None:
        self.key = key
        self.is_prefix = is_prefix
        self.packed = packed
        self._versions = versions

    @property
    def versions(self) -> list[VersionRecord] | None:  # None for a common prefix
        if self._versions is None and self.packed is not None:
            self._versions = unpack_versions(self.packed)
        return self._versions

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ListEntry):
            return NotImplemented
        return (self.key, self.is_prefix, self.versions) == \
            (other.key, other.is_prefix, other.versions)

    __hash__ = None  # type: ignore[assignment]  # holds lists: never hashable

    def __repr__(self) -> str:
        return f"ListEntry({self.key!r}, {self.versions!r}, {self.is_prefix!r})"


class FragmentWriter(Protocol):
    """Append-only writer of one fragment stream into ``staging/``."""

    async def write(self, data: bytes | memoryview) -> None: ...

    async def finish(self) -> int:
        """Flush, fdatasync; returns the logical length.  Still in staging."""
        ...

    async def abort(self) -> None:
        """Remove the staging file.  Safe to call after ``finish`` or twice."""
        ...


@runtime_checkable
class Drive(Protocol):
    drive_id: str

    # -------------------------------------------------------------- state
    @property
    def state(self) -> DriveState: ...

    async def stat(self) -> DriveStat: ...

    # -------------------------------------------------------------- data
    async def create_fragment(self, data_id: str, frag_index: int) -> FragmentWriter: ...

    async def read_fragment(self, data_id: str, offset: int, length: int) -> bytes:
        """Logical bytes ``[offset, offset+length)`` of a committed fragment,
        every covering block verified.  Short only at end of fragment."""
        ...

    async def fragment_size(self, data_id: str) -> int: ...

    async def put_inline(self, data_id: str, data: bytes) -> None:
        """Stage a small fragment that will live inside LMDB (promoted on commit)."""
        ...

    # -------------------------------------------------------------- versions
    async def commit_version(
        self, bucket_id: bytes, key: bytes, record: VersionRecord, *, promote: Sequence[str] = ()
    ) -> bool:
        """Promote ``promote`` data ids from staging and merge ``record`` into the
        key's version list (see :func:`~titans3.drive.records.merge_commit`), in
        one durable step.  Data freed by the merge is deleted after the commit.
        Returns True when the key still holds null versions older than
        ``record`` (a null record): the caller purges them once it is safe."""
        ...

    async def read_versions(self, bucket_id: bytes, key: bytes) -> list[VersionRecord]:
        """The key's records on this drive, newest first."""
        ...

    async def list_versions(
        self,
        bucket_id: bytes,
        *,
        prefix: bytes = b"",
        start_after: bytes | None = None,
        delimiter: bytes | None = None,
        limit: int = 1000,
        live: bool = False,
    ) -> list[ListEntry]:
        """Keys (with their records) in binary order after ``start_after``.
        With a delimiter, keys sharing ``prefix + ... + delimiter`` collapse into
        one prefix entry and the scan skips past them.  ``live``: only keys
        whose newest visible record here holds data, and prefixes with such a
        key below them (drive/liveness.py)."""
        ...

    async def delete_data(self, data_ids: Sequence[str]) -> None:
        """Remove fragment files / inline blobs no record references any more."""
        ...

    # -------------------------------------------------------------- tables
    async def put_meta(
        self, table: str, key: bytes, value: bytes | None, *, promote: Sequence[str] = ()
    ) -> None:
        """Write (or delete, with ``None``) one entry of a small table, durably,
        promoting staged data in the same step (used for multipart parts)."""
        ...

    async def swap_meta(
        self, table: str, key: bytes, value: bytes | None, expect: bytes | None
    ) -> bool:
        """Compare-and-set one entry: write ``value`` (delete with ``None``) only
        if the entry is exactly ``expect`` now (``None``: absent), in one durable
        transaction; whether it was written."""
        ...

    async def get_meta(self, table: str, key: bytes) -> bytes | None: ...

    async def list_meta(
        self, table: str, *, prefix: bytes = b"", start_after: bytes | None = None, limit: int = 1000
    ) -> list[tuple[bytes, bytes]]: ...

    async def close(self) -> None: ...
