"""Aligned O_DIRECT file I/O (blocking; call from worker threads).

Theory of operation
-------------------
Fragment files bypass the page cache: a storage node streams far more data
than it has RAM, and buffered writes followed by one fsync are slow and erratic
here (STACK-NOTES).  O_DIRECT needs the buffer address, file offset and length
aligned to the logical block size; the fragment format keeps every block on a
4 KiB boundary and :func:`aligned_buffer` returns page-aligned anonymous
``mmap`` memory, so every I/O below is aligned by construction.

Buffers are expensive to create (fresh pages fault at ~1.7 GB/s), so they come
from a :class:`BufferPool` and go back after use.

Some filesystems (tmpfs on older kernels, some FUSE mounts) refuse O_DIRECT
with EINVAL.  Then we fall back to buffered I/O plus ``fdatasync`` -- the same
durability, only slower -- and warn once per process.

Nothing here knows about trio: the callers run these functions through
``trio.to_thread.run_sync`` with the drive's CapacityLimiter.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import mmap
import os
import threading
from pathlib import Path

from titans3.drive import fragment as fmt

log = logging.getLogger(__name__)

_warned_lock = threading.Lock()
_warned = False

WRITE_BUFFER = 16 * fmt.BLOCK  # 1 MiB: 16 blocks per write(2)
READ_BUFFER = 64 * fmt.BLOCK  # 4 MiB: blocks per read(2) of a large range


def aligned_buffer(size: int) -> mmap.mmap:
    """Page-aligned, zero-filled anonymous memory of ``size`` bytes."""
    return mmap.mmap(-1, size)


class BufferPool:
    """A free list of equally sized aligned buffers (thread-safe)."""

    def __init__(self, size: int, *, keep: int = 8) -> None:
        self.size = size
        self._keep = keep
        self._free: list[mmap.mmap] = []
        self._lock = threading.Lock()

    def get(self) -> mmap.mmap:
        with self._lock:
            if self._free:
                return self._free.pop()
        return aligned_buffer(self.size)

    def put(self, buf: mmap.mmap) -> None:
        with self._lock:
            if len(self._free) < self._keep:
                self._free.append(buf)
                return
        buf.close()

    def close(self) -> None:
        with self._lock:
            free, self._free = self._free, []
        for b in free:
            # A view may still be alive (e.g. held by a FragmentFormatError's
            # traceback); then the mapping is freed when that view dies.
            with contextlib.suppress(BufferError):
                b.close()


def _warn_buffered(path: Path | str) -> None:
    global _warned
    with _warned_lock:
        if _warned:
            return
        _warned = True
    log.warning(
        "filesystem of %s refuses O_DIRECT; using buffered I/O + fdatasync "
        "(correct, but slower and pollutes the page cache)",
        path,
    )


def open_direct(path: Path | str, flags: int, mode: int = 0o644) -> tuple[int, bool]:
    """Open with O_DIRECT; returns ``(fd, direct)``.  Falls back to buffered
    I/O (``direct`` False) only when the filesystem refuses O_DIRECT."""
    try:
        return os.open(path, flags | os.O_DIRECT | os.O_CLOEXEC, mode), True
    except OSError as e:
        if e.errno != errno.EINVAL:
            raise
    fd = os.open(path, flags | os.O_CLOEXEC, mode)
    _warn_buffered(path)
    return fd, False


def pwrite_all(fd: int, data: memoryview, offset: int) -> None:
    """Write all of ``data`` at ``offset`` (aligned when the fd is direct)."""
    done = 0
    total = len(data)
    while done < total:
        n = os.pwrite(fd, data[done:], offset + done)
        if n <= 0:
            raise OSError(errno.EIO, "short write")
        done += n


def pread_into(fd: int, buf: memoryview, offset: int) -> int:
    """Fill ``buf`` from ``offset``; returns bytes read (less only at EOF)."""
    done = 0
    total = len(buf)
    while done < total:
        n = os.preadv(fd, [buf[done:]], offset + done)
        if n == 0:
            break
        done += n
    return done


def fsync_dir(path: Path | str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class DirectWriter:
    """Streams one fragment file: payload in, framed blocks out (blocking).

    Blocks are framed straight into a pooled aligned buffer (the only copy);
    whenever the buffer is full it is written with one ``pwrite``.  ``finish``
    writes the padded tail, then the header at offset 0, then ``fdatasync``.
    """

    def __init__(self, path: Path, data_id: str, frag_index: int, pool: BufferPool) -> None:
        self.path = path
        self.data_id = data_id
        self.frag_index = frag_index
        self._pool = pool
        self.fd, self.direct = open_direct(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        self._buf_obj: mmap.mmap | None = pool.get()
        self._buf = memoryview(self._buf_obj)
        self._filled = 0  # payload bytes in the buffer
        self._block = 0  # index of the block in buffer slot 0
        self.length = 0  # logical bytes accepted so far
        self.closed = False

    def fits(self, n: int) -> bool:
        """True when ``n`` more payload bytes fit without a write(2)."""
        return self._filled + n < fmt.capacity(self._buf)

    def buffer(self, data: memoryview | bytes) -> None:
        """Copy into the buffer; caller guarantees :meth:`fits` (no I/O)."""
        taken, self._filled = fmt.frame_into(self._buf, data, self._filled, first_block=self._block)
        self.length += taken

    def write(self, data: memoryview | bytes) -> int:
        """Frame and write ``data``; returns bytes written to disk."""
        src = memoryview(data)
        written = 0
        cap = fmt.capacity(self._buf)
        while len(src):
            taken, self._filled = fmt.frame_into(self._buf, src, self._filled, first_block=self._block)
            self.length += taken
            src = src[taken:]
            if self._filled == cap:
                written += self._flush_full()
        return written

    def _flush_full(self) -> int:
        nslots = len(self._buf) // fmt.BLOCK
        pwrite_all(self.fd, self._buf, fmt.HEADER_SIZE + self._block * fmt.BLOCK)
        self._block += nslots
        self._filled = 0
        return nslots * fmt.BLOCK

    def finish(self) -> int:
        """Write tail + header, fdatasync, close.  Returns the logical length."""
        n = fmt.seal_tail(self._buf, self._filled, first_block=self._block)
        if n:
            pwrite_all(self.fd, self._buf[:n], fmt.HEADER_SIZE + self._block * fmt.BLOCK)
        header = fmt.FragmentHeader(self.data_id, self.frag_index, self.length).pack()
        self._buf[: fmt.HEADER_SIZE] = header
        pwrite_all(self.fd, self._buf[: fmt.HEADER_SIZE], 0)
        os.fdatasync(self.fd)
        self.close()
        return self.length

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            os.close(self.fd)
        finally:
            self._buf.release()
            if self._buf_obj is not None:
                self._pool.put(self._buf_obj)
                self._buf_obj = None


def write_whole(path: Path, data_id: str, frag_index: int, parts: list[bytes | memoryview],
                pool: BufferPool) -> int:
    """Stage a fragment whose bytes are all here (``parts`` in order) in one
    blocking call: create, frame, write, header, fdatasync, close.  On any
    error the file is removed.  Returns the logical length."""
    w = DirectWriter(path, data_id, frag_index, pool)
    try:
        for p in parts:
            w.write(p)
        return w.finish()
    except BaseException:
        w.close()
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise


def read_blocks(
    fd: int, rng: fmt.BlockRange, offset: int, length: int, logical_len: int, pool: BufferPool
) -> bytes:
    """Read and verify the blocks of ``rng``; return logical bytes
    ``[offset, offset+length)``.  Streams through pooled buffers so a large
    range never needs one huge allocation.  Raises FragmentFormatError."""
    if rng.last_block < rng.first_block:
        return b""
    buf_obj = pool.get()
    buf = memoryview(buf_obj)
    try:
        slots = len(buf) // fmt.BLOCK
        parts: list[bytes] = []
        block = rng.first_block
        while block <= rng.last_block:
            nblocks = min(slots, rng.last_block - block + 1)
            last = block + nblocks - 1
            want = (nblocks - 1) * fmt.BLOCK + fmt.block_disk_len(last, logical_len)
            got = pread_into(fd, buf[:want], fmt.HEADER_SIZE + block * fmt.BLOCK)
            if got < want:
                raise fmt.FragmentFormatError("file truncated", block=block + got // fmt.BLOCK)
            views = fmt.verify_and_extract(buf[:want], block, offset, length, logical_len)
            # One copy out of the reused buffer; views must not escape it.
            parts.append(b"".join(views) if len(views) != 1 else bytes(views[0]))
            for v in views:
                v.release()
            block = last + 1
        return parts[0] if len(parts) == 1 else b"".join(parts)
    finally:
        buf.release()
        pool.put(buf_obj)


def read_header(fd: int, pool: BufferPool) -> fmt.FragmentHeader:
    buf_obj = pool.get()
    buf = memoryview(buf_obj)
    try:
        got = pread_into(fd, buf[: fmt.HEADER_SIZE], 0)
        if got < fmt.HEADER_SIZE:
            raise fmt.FragmentFormatError("header truncated")
        return fmt.unpack_header(buf[: fmt.HEADER_SIZE])
    finally:
        buf.release()
        pool.put(buf_obj)
