"""Fragment files of one drive: chunks/, staging/, quarantine/ (blocking).

Theory of operation
-------------------
``chunks/xx/yy/<data id>`` holds committed fragment files (``xx``/``yy`` are
the first four hex digits of the id: at most 65,536 directories, each small
enough that lookups stay fast).  Writers create files in ``staging/``; only
:meth:`ChunkStore.promote`, called inside a commit, moves them into
``chunks/``, registering the directories the commit must fsync before its
LMDB record becomes durable.  Reads never look at staging.

A read opens the file O_DIRECT, takes the header from a small cache (headers
of committed files never change except through promote/delete/quarantine,
which invalidate it), reads only the covering blocks and verifies each.  A
file that fails verification is renamed into ``quarantine/`` -- evidence for
the operator and the repair worker, never deleted here -- and the
:class:`~titans3.drive.fragment.FragmentFormatError` propagates.

Every method blocks: call them from worker threads.  Errors are the raw
``OSError`` / ``FragmentFormatError``; :mod:`titans3.drive.local` maps them
onto the drive's health state and typed errors.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Container, Sequence
from pathlib import Path

from titans3.drive import direct
from titans3.drive import fragment as fmt

log = logging.getLogger(__name__)


class ChunkStore:
    def __init__(self, root: Path, *, threads: int = 4, header_cache: int = 65536) -> None:
        self.chunks = root / "chunks"
        self.staging = root / "staging"
        self.quarantine_dir = root / "quarantine"
        self.write_pool = direct.BufferPool(direct.WRITE_BUFFER, keep=2 * threads)
        self.read_pool = direct.BufferPool(direct.READ_BUFFER, keep=threads)
        self._headers: dict[str, fmt.FragmentHeader] = {}
        self._header_cache = header_cache
        self._known_dirs: set[str] = set()
        self._lock = threading.Lock()
        self.quarantined = 0
        # Told the size of each file moved to quarantine (bytes-stored count).
        self.on_quarantine: Callable[[int], None] | None = None

    def make_dirs(self) -> None:
        for d in (self.chunks, self.staging, self.quarantine_dir):
            d.mkdir(exist_ok=True)

    def reset(self) -> None:
        """Forget cached state (after the drive was remounted / reopened)."""
        self._headers.clear()
        self._known_dirs.clear()

    def close(self) -> None:
        self.write_pool.close()
        self.read_pool.close()

    def path(self, data_id: str) -> Path:
        return self.chunks / data_id[:2] / data_id[2:4] / data_id

    def staging_path(self, data_id: str) -> Path:
        return self.staging / data_id

    # ------------------------------------------------------------------ reads
    def read(self, data_id: str, offset: int, length: int) -> bytes:
        """Verified logical bytes; FileNotFoundError if there is no such file,
        FragmentFormatError (file already quarantined) if it is corrupt."""
        path = self.path(data_id)
        fd = direct.open_direct(path, os.O_RDONLY)[0]
        try:
            header = self._header(data_id, fd)
            rng = fmt.blocks_for_range(offset, length, header.logical_len)
            return direct.read_blocks(fd, rng, offset, length, header.logical_len, self.read_pool)
        except fmt.FragmentFormatError as e:
            self.quarantine(data_id, e)
            raise
        finally:
            os.close(fd)

    def size(self, data_id: str) -> int:
        path = self.path(data_id)
        fd = direct.open_direct(path, os.O_RDONLY)[0]
        try:
            return self._header(data_id, fd).logical_len
        except fmt.FragmentFormatError as e:
            self.quarantine(data_id, e)
            raise
        finally:
            os.close(fd)

    def _header(self, data_id: str, fd: int) -> fmt.FragmentHeader:
        h = self._headers.get(data_id)
        if h is None:
            h = direct.read_header(fd, self.read_pool)
            if h.data_id != data_id:
                raise fmt.FragmentFormatError(f"header names {h.data_id}, file is {data_id}")
            if len(self._headers) >= self._header_cache:
                with contextlib.suppress(StopIteration, KeyError, RuntimeError):
                    self._headers.pop(next(iter(self._headers)))
            self._headers[data_id] = h
        return h

    def quarantine(self, data_id: str, reason: object) -> int:
        """Move a committed file to quarantine/; returns its size (0 if a
        concurrent reader moved it first)."""
        self._headers.pop(data_id, None)
        path = self.path(data_id)
        dest = self.quarantine_dir / f"{data_id}.{time.time_ns()}"
        try:
            size = path.stat().st_size
            os.rename(path, dest)
        except FileNotFoundError:
            return 0
        direct.fsync_dir(self.quarantine_dir)
        with self._lock:
            self.quarantined += 1
        if self.on_quarantine is not None:
            self.on_quarantine(size)
        log.warning("fragment %s corrupt (%s): quarantined as %s", data_id, reason, dest)
        return size

    # ---------------------------------------------------------------- commits
    def promote(self, data_id: str, sync_dir: Callable[[Path], None]) -> int | None:
        """Rename ``staging/<id>`` into ``chunks/``; register the directories
        to fsync before the commit.  Returns the growth in stored bytes, None
        if the file was already promoted; FileNotFoundError if neither."""
        src = self.staging_path(data_id)
        dst = self.path(data_id)
        self._make_dirs(dst.parent, sync_dir)
        try:
            size = os.stat(src).st_size
        except FileNotFoundError:
            if dst.exists():
                return None
            raise
        with contextlib.suppress(FileNotFoundError):
            size -= os.stat(dst).st_size  # a repair rewriting the same data id
        os.rename(src, dst)
        self._headers.pop(data_id, None)
        sync_dir(dst.parent)
        sync_dir(self.staging)
        return size

    def _make_dirs(self, leaf: Path, sync_dir: Callable[[Path], None]) -> None:
        key = str(leaf)
        if key in self._known_dirs:
            return
        mid = leaf.parent
        if not mid.exists():
            mid.mkdir(exist_ok=True)
            sync_dir(self.chunks)
        if not leaf.exists():
            leaf.mkdir(exist_ok=True)
            sync_dir(mid)
        self._known_dirs.add(key)

    def unlink(self, ids: Sequence[str]) -> tuple[list[str], int]:
        """Remove committed and staged files of ``ids``.  Returns the ids that
        had no file at all, and the bytes of committed files removed."""
        missing: list[str] = []
        freed = 0
        for data_id in ids:
            self._headers.pop(data_id, None)
            found = False
            for path, committed in ((self.path(data_id), True), (self.staging_path(data_id), False)):
                try:
                    size = os.stat(path).st_size
                    os.unlink(path)
                except FileNotFoundError:
                    continue
                found = True
                if committed:
                    freed += size
            if not found:
                missing.append(data_id)
        return missing, freed

    def sweep_staging(self, max_age: float, busy: Container[str]) -> int:
        cutoff = time.time() - max_age
        n = 0
        for entry in os.scandir(self.staging):
            if entry.name in busy:
                continue
            with contextlib.suppress(FileNotFoundError):
                if entry.stat().st_mtime <= cutoff:
                    os.unlink(entry.path)
                    n += 1
        return n
