"""Root credentials: from the environment, or generated once and kept sealed.

The secret is stored sealed under the host master key (see
:mod:`titans3.core.crypto`) in ``<state>/root-credentials.json``.  When the
operator sets ``TITANS3_ROOT_ACCESS_KEY`` / ``TITANS3_ROOT_SECRET_KEY`` those
win and nothing is written.  Later work moves users into cluster-wide system
records; this class keeps the same ``get_secret`` face for the S3 front.
"""

from __future__ import annotations

import json
import secrets
import string
from dataclasses import dataclass
from pathlib import Path

from titans3.core.crypto import load_or_create_master_key, seal, unseal, write_atomic
from titans3.core.errors import ConfigError

_PURPOSE = "titans3/root-secret"


@dataclass(frozen=True)
class Credentials:
    root_access_key: str
    root_secret_key: str
    generated: bool = False  # True the first time they were created (print them)

    def get_secret(self, access_key: str) -> str | None:
        return self.root_secret_key if access_key == self.root_access_key else None


def _random(alphabet: str, n: int) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(n))


def load_root_credentials(state_dir: Path, access_key: str = "", secret_key: str = "") -> Credentials:
    if access_key and secret_key:
        return Credentials(access_key, secret_key)
    path = state_dir / "root-credentials.json"
    master = load_or_create_master_key(state_dir)
    if path.exists():
        try:
            doc = json.loads(path.read_text())
            secret = unseal(master, doc["secret_sealed"], _PURPOSE).decode()
            return Credentials(doc["access_key"], secret)
        except (ValueError, KeyError) as e:
            raise ConfigError(f"state_dir: {path} is damaged ({e})") from None
    ak = "T3" + _random(string.ascii_uppercase + string.digits, 18)
    sk = _random(string.ascii_letters + string.digits + "+/", 40)
    doc = {"access_key": ak, "secret_sealed": seal(master, sk.encode(), _PURPOSE)}
    write_atomic(path, json.dumps(doc, indent=1).encode())
    return Credentials(ak, sk, generated=True)
