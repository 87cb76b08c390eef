"""One daemon per drive: an exclusive ``flock`` held for the drive's lifetime.

Theory of operation
-------------------
LMDB is multi-process safe, so nothing stopped a second ``titans3 serve``
(other ports, same ``--data``) from opening the same drives: two processes
then promote, GC and repair the same files with two different views of what
is in flight, and each one's staging looks like garbage to the other.

:func:`acquire` opens ``<root>/titans3-drive.lock`` and takes
``flock(LOCK_EX | LOCK_NB)`` on it; the holder writes its pid into the file
(for the refusal message only -- the lock, not the pid, is the truth).  The
kernel drops the lock when the descriptor is closed or the process dies,
SIGKILL included, so a crash never leaves a stale lock to clean up.

``flock`` locks belong to the open file description: a second open of the
same file, even from the same process, conflicts.  A drive that is reopened
after a health failure (``LocalDrive._reopen_sync``) therefore keeps its
descriptor when the lock file is still the same inode, and takes a new lock
only when the drive directory was replaced under it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from dataclasses import dataclass
from pathlib import Path

from titans3.core.errors import ConfigError

LOCK_FILE = "titans3-drive.lock"


class DriveInUse(ConfigError):
    """Another process holds the drive's lock; the message names drive and pid."""

    def __init__(self, root: Path, holder: int | None) -> None:
        self.root = root = Path(root).absolute()
        self.holder = holder
        who = f"process {holder}" if holder else "another process"
        super().__init__(
            f"drive {root} is in use by {who} (another titans3 serve?); "
            "one daemon per drive -- stop it first"
        )


@dataclass(slots=True)
class DriveLock:
    fd: int
    key: tuple[int, int]  # (st_dev, st_ino) of the lock file

    def release(self) -> None:
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.fd)  # closing the descriptor drops the flock
            self.fd = -1


def _holder(fd: int) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        raw = os.pread(fd, 32, 0).strip()
        return int(raw) if raw else None
    return None


def acquire(root: Path) -> DriveLock:
    """Lock ``root`` for this process; raises :class:`DriveInUse` if another holds it."""
    path = Path(root) / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        holder = _holder(fd)
        os.close(fd)
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            raise DriveInUse(Path(root), holder) from None
        raise
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        st = os.fstat(fd)
    except OSError:
        os.close(fd)
        raise
    return DriveLock(fd, (st.st_dev, st.st_ino))


def still_held(lock: DriveLock | None, root: Path) -> bool:
    """True when ``lock`` is on the lock file ``root`` has now (not a replaced one)."""
    if lock is None or lock.fd < 0:
        return False
    try:
        st = os.stat(Path(root) / LOCK_FILE)
    except OSError:
        return False
    return (st.st_dev, st.st_ino) == lock.key
