"""The trio face of :class:`~titans3.drive.direct.DirectWriter`.

Theory of operation
-------------------
A fragment write is a stream of ``write()`` calls followed by ``finish()``.
Small writes that fit in the writer's aligned 1 MiB buffer are framed on the
event loop (one memcpy of at most ``LOOP_COPY_MAX`` bytes plus a digest per
completed block: microseconds, cheaper than a thread hop).  A write that fills
the buffer -- and so needs a ``pwrite`` -- runs entirely in a worker thread
through the drive's limiter.  ``finish`` (tail, header, fdatasync) is one more
thread call.  The file stays in ``staging/`` until a commit promotes it.

The writer is single-task: calls must not overlap.  After any error it is
broken: the staging file is removed and every later call raises.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import trio

from titans3.drive.direct import DirectWriter

# A fragment of a 1 MiB segment under 4+2 (the 6-drive default) is 256 KiB +
# pyeclib's 80-byte header: at exactly 256 KiB every one of them took a thread
# hop (4 per MiB per drive) instead of 1 in 4.
LOOP_COPY_MAX = 264 * 1024


class LocalFragmentWriter:
    """Implements :class:`titans3.drive.protocol.FragmentWriter` for LocalDrive."""

    def __init__(
        self,
        writer: DirectWriter,
        *,
        run: Callable[..., Awaitable[Any]],
        on_close: Callable[[LocalFragmentWriter, int | None], None],
    ) -> None:
        self._w = writer
        self._run = run
        self._on_close = on_close
        self._length: int | None = None  # set by finish
        self._broken = False
        self._aborted = False

    @property
    def data_id(self) -> str:
        return self._w.data_id

    @property
    def path(self) -> Path:
        return self._w.path

    def fileno(self) -> int:
        """The staging file's descriptor (for diagnostics; -1 once closed)."""
        return -1 if self._w.closed else self._w.fd

    @property
    def direct(self) -> bool:
        return self._w.direct

    def _check_open(self) -> None:
        if self._broken or self._aborted:
            raise RuntimeError(f"fragment writer {self.data_id} is closed")
        if self._length is not None:
            raise RuntimeError(f"fragment writer {self.data_id} already finished")

    async def write(self, data: bytes | memoryview | bytearray) -> None:
        self._check_open()
        n = len(data)
        if n <= LOOP_COPY_MAX and self._w.fits(n):
            self._w.buffer(data)
            await trio.lowlevel.checkpoint()
            return
        try:
            await self._run(self._w.write, data)
        except BaseException:
            await self._break()
            raise

    async def finish(self) -> int:
        if self._length is not None:
            return self._length
        self._check_open()
        try:
            self._length = await self._run(self._w.finish)
        except BaseException:
            await self._break()
            raise
        self._on_close(self, self._length)
        return self._length

    async def abort(self) -> None:
        if self._aborted:
            await trio.lowlevel.checkpoint()
            return
        self._aborted = True
        await self._break()

    async def _break(self) -> None:
        """Close and remove the staging file, best effort (the drive may be gone)."""
        self._broken = True
        w = self._w

        def cleanup() -> None:
            w.close()
            w.path.unlink(missing_ok=True)

        # Shielded: abort is what callers run while being cancelled.  An error
        # here is left for staging GC (the drive may be gone).
        with trio.CancelScope(shield=True), contextlib.suppress(OSError):
            await trio.to_thread.run_sync(cleanup)
        self._on_close(self, None)
