"""LocalDrive's counters, as the frozen record its ``statistics()`` returns."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from titans3.drive.protocol import DriveState


@dataclass(frozen=True, slots=True)
class DriveStatistics:
    state: DriveState
    reads: int  # read_fragment calls that returned data
    writes: int  # fragment files finished
    bytes_read: int
    bytes_written: int  # logical fragment bytes finished
    errors: int  # I/O failures + corrupt fragments
    full_errors: int  # writes refused for space (not counted in errors: the disk is fine)
    medium_errors: int  # of errors: EIO and kin (not a vanished directory or a fenced root)
    quarantined: int  # files + inline blobs moved to quarantine
    commits: int  # commit requests applied
    commit_batches: int  # durable LMDB transactions
    avg_commit_batch: float
    bytes_stored: int  # chunk file + inline blob bytes (best-effort count)
    staged_inline: int  # inline blobs waiting for their commit
    open_writers: int


def statvfs_bytes(root: Path) -> tuple[int, int]:
    """(capacity, available) of the filesystem holding ``root``, in bytes."""
    st = os.statvfs(root)
    return st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize
