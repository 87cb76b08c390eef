"""The appliance's one-time setup code: made at first boot, consumed by setup.

Theory of operation (the file contract, docs/appliance.md)
----------------------------------------------------------
``appliance/titans3-firstboot`` writes ``Config.setup_code_path`` (on the
image ``/var/lib/titans3/state/setup-code``) once, mode 0600, owner root: one
line, ``XXXX-XXXX`` from an alphabet without look-alikes (no 0/O, 1/I/L),
about 40 bits.  The console shows it (``/etc/issue`` and the serial console).
Whoever sets the node up -- the status page's setup flow -- proves presence
at the console by typing it: :func:`check` compares in constant time,
ignoring case, spaces and dashes.  Setup then calls :func:`consume`, which
deletes the file; from then on no code is accepted, and the console shows
"setup complete" instead of a code.  A missing file means "no setup pending".
"""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path

ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"


def generate() -> str:
    raw = "".join(secrets.choice(ALPHABET) for _ in range(8))
    return f"{raw[:4]}-{raw[4:]}"


def _norm(code: str) -> str:
    return "".join(code.split()).replace("-", "").upper()


def create(path: Path) -> str:
    """Write a new code unless one is pending (first boot may run twice); return the code."""
    existing = read(path)
    if existing is not None:
        return existing
    code = generate()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(code + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return code


def read(path: Path) -> str | None:
    """The pending code, or None when setup is done (or never started)."""
    try:
        code = path.read_text().strip()
    except FileNotFoundError:
        return None
    return code or None


def check(path: Path, offered: str) -> bool:
    code = read(path)
    if code is None:
        return False
    return hmac.compare_digest(_norm(code).encode(), _norm(offered).encode())


def consume(path: Path) -> None:
    """Setup finished: the code can never be used again."""
    path.unlink(missing_ok=True)
