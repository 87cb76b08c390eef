"""readdir cookies that stay valid under concurrent create and unlink.

Theory of operation
-------------------
The kernel resumes a directory listing with the ``next_id`` of the last
entry it accepted (and ``seekdir`` may hand back any earlier one).  Object
listings are sorted by key and resume *after a key* (``start-after``), so a
cookie only has to name the entry it follows: resuming after that name
returns every entry that sorts later and exists now -- entries present for
the whole listing are reported exactly once whatever is created or removed
meanwhile, which is the guarantee ``readdir`` promises.

A cookie is ``1 + the offset of the name in an append-only log`` of the
names handed out by one open directory.  Nothing is kept per entry in
memory: the log is a spooled temporary file (RAM up to 256 KiB, then
disk), so a 100,000-entry directory costs a few MiB of temporary file at
most and every cookie ever returned stays resolvable until ``releasedir``.
"""

from __future__ import annotations

import errno
import struct
import tempfile

from titans3.fuse.errors import FsError

_LEN = struct.Struct("<H")


class CookieLog:
    def __init__(self, spill_bytes: int = 256 << 10) -> None:
        self._log = tempfile.SpooledTemporaryFile(max_size=spill_bytes)  # noqa: SIM115 -- closed in close()
        self._end = 0

    def cookie(self, name: str) -> int:
        """A cookie meaning "resume after ``name``"."""
        raw = name.encode("utf-8")
        self._log.seek(self._end)
        self._log.write(_LEN.pack(len(raw)) + raw)
        offset = self._end
        self._end += _LEN.size + len(raw)
        return offset + 1

    def name(self, cookie: int) -> str:
        """The name a cookie resumes after (EINVAL for one never handed out)."""
        offset = cookie - 1
        if not 0 <= offset < self._end:
            raise FsError(errno.EINVAL, f"readdir offset {cookie} was not handed out")
        self._log.seek(offset)
        (n,) = _LEN.unpack(self._log.read(_LEN.size))
        return self._log.read(n).decode("utf-8")

    @property
    def size(self) -> int:
        return self._end

    def close(self) -> None:
        self._log.close()
