"""Host master key and sealing of secrets at rest (DESIGN §8).

Theory of operation
-------------------
SigV4 verification needs the S3 secret key in the clear, so secrets cannot be
hashed; they are *sealed* with AES-256-GCM under a 32-byte master key that
lives in ``<state>/master.key`` (mode 0600, created once, written atomically).
A sealed value is ``b"T3S1" ‖ 12-byte nonce ‖ ciphertext+tag``, and the
``purpose`` string is bound in as associated data, so a sealed root secret
cannot be replayed as some other secret.  Passwords that people type (web and
admin logins) are hashed with Argon2id instead: see :func:`hash_password`.
"""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import VerificationError
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from titans3.core.errors import ConfigError

_MAGIC = b"T3S1"


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write-then-rename with fsyncs, so a crash leaves the old or the new file."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def load_or_create_master_key(state_dir: Path) -> bytes:
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / "master.key"
    if path.exists():
        raw = path.read_bytes()
        if len(raw) != 32:
            raise ConfigError(f"state_dir: {path} is not a 32-byte master key")
        return raw
    key = secrets.token_bytes(32)
    write_atomic(path, key)
    return key


def seal(master_key: bytes, plaintext: bytes, purpose: str) -> str:
    nonce = secrets.token_bytes(12)
    ct = AESGCM(master_key).encrypt(nonce, plaintext, purpose.encode())
    return base64.b64encode(_MAGIC + nonce + ct).decode()


def unseal(master_key: bytes, sealed: str, purpose: str) -> bytes:
    raw = base64.b64decode(sealed)
    if not raw.startswith(_MAGIC):
        raise ConfigError("sealed secret: unknown format")
    try:
        return AESGCM(master_key).decrypt(raw[4:16], raw[16:], purpose.encode())
    except InvalidTag:
        raise ConfigError("sealed secret: does not open with this host's master key") from None


def cluster_sealing_keys(cluster_secret: str, master_key: bytes) -> list[bytes]:
    """The keys that seal cluster-wide secrets (KMS key material, objects/kms.py),
    current first.

    Every host of a cluster shares the cluster secret, so the key derived from
    it is the same everywhere; a host without one (running alone) uses a key
    derived from its own master key, which stays second in the list once the
    host has a cluster secret, so what it sealed alone can be re-sealed
    (docs/data-protection.md)."""
    host_key = HKDF(hashes.SHA256(), 32, None, b"titans3 host sealing key").derive(master_key)
    if cluster_secret:
        return [HKDF(hashes.SHA256(), 32, None, b"titans3 cluster sealing key").derive(
            cluster_secret.encode()), host_key]
    return [host_key]


_hasher = PasswordHasher()  # Argon2id with the library's current recommended costs


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(hashed: str, password: str) -> bool:
    try:
        return _hasher.verify(hashed, password)
    except VerificationError:
        return False
