"""The one-time first-boot setup code (``setup_code_file``).

The appliance's first boot writes a code to this file and shows it on the
console; the status page asks for it before anyone may set the admin
password from another machine (titans3/web/auth.py has the rules).
``titanctl web reset-password`` writes a fresh one the same way.  The file
holds the code on one line; people may type it in any case, with or without
the dashes.
"""

from __future__ import annotations

import hmac
import logging
import os
import secrets
from pathlib import Path

from titans3.core.crypto import write_atomic

log = logging.getLogger(__name__)

_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read off a console


def new_code() -> str:
    raw = "".join(secrets.choice(_ALPHABET) for _ in range(12))
    return "-".join(raw[i:i + 4] for i in range(0, 12, 4))


def write(path: str | Path, code: str) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(p, code.encode() + b"\n", mode=0o600)


class SetupCode:
    """The appliance's one-time first-boot code (``setup_code_file``)."""

    def __init__(self, path: str) -> None:
        self.path = Path(path) if path else None

    def code(self) -> str | None:
        if self.path is None:
            return None
        try:
            text = self.path.read_text().strip()
        except OSError:
            return None
        return text or None

    @staticmethod
    def _norm(s: str) -> str:
        return "".join(ch for ch in s.upper() if ch.isalnum())

    def matches(self, given: str) -> bool:
        code = self._norm(self.code() or "")
        return bool(code) and hmac.compare_digest(code.encode(), self._norm(given).encode())

    def consume(self) -> None:
        if self.path is None:
            return
        try:
            os.unlink(self.path)
            # The removal must survive a power cut: the code would otherwise be back
            # (and valid) after the next boot, though the admin password is set.
            fd = os.open(os.path.dirname(os.path.abspath(self.path)), os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except FileNotFoundError:
            pass
        except OSError as e:  # read-only: a set password makes the code useless anyway
            log.warning("setup code %s not removed: %s", self.path, e)
