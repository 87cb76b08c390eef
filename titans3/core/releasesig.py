"""Signatures of appliance upgrade media: Ed25519 over the medium's manifest.

An upgrade medium (image/mkbundle.sh) holds a ``manifest`` naming the version
and the sha256 of every part; ``manifest.sig`` signs those exact bytes.  So a
good signature vouches for every part, and ``titans3-upgrade`` checks it before
it reads anything else of the medium: a medium that is unsigned, signed by a
key the running image does not trust, or altered after signing is refused.

Invariants and why:

* The trusted public keys are part of the running image
  (``/etc/titans3/release-keys/*.pub``), not of the medium: a medium cannot
  bring its own trust.  An upgrade installs the next image's keys, which is
  how a key is rotated (release N+1 trusts both, N+2 drops the old one).
* The signature line names its key by id (the first 16 hex digits of the
  sha256 of the raw public key), so a node trusting several keys needs no
  trial and error, and the refusal can say which key signed.
* Only bytes in, verdicts out (:func:`sign`, :func:`verify`); files and the
  command line are the thin shell below (``python -m titans3.core.releasesig``),
  which the node's shell script calls.

File formats, one line each: a public key ``ed25519 <base64 of 32 bytes>``;
a signature ``ed25519 <key id> <base64 of 64 bytes>``.  The private key is
PKCS#8 PEM (mode 0600), kept on the build host (``TITANS3_RELEASE_KEY``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ALGORITHM = "ed25519"


class SignatureRefused(Exception):
    """The manifest is unsigned, signed by an untrusted key, or altered."""


@dataclass(frozen=True)
class PublicKey:
    raw: bytes  # 32 bytes

    @property
    def key_id(self) -> str:
        return hashlib.sha256(self.raw).hexdigest()[:16]

    def line(self) -> str:
        return f"{ALGORITHM} {base64.b64encode(self.raw).decode()}\n"

    @classmethod
    def parse(cls, text: str) -> PublicKey:
        parts = text.split()
        if len(parts) != 2 or parts[0] != ALGORITHM:
            raise ValueError(f"not an {ALGORITHM} public key line")
        raw = _b64(parts[1])
        if len(raw) != 32:
            raise ValueError("an ed25519 public key is 32 bytes")
        return cls(raw)


def _b64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("bad base64") from None


def new_private_key() -> bytes:
    """A fresh private key, PKCS#8 PEM."""
    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def _private(pem: bytes) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("the release key is not an Ed25519 key")
    return key


def public_key(pem: bytes) -> PublicKey:
    return PublicKey(_private(pem).public_key().public_bytes(serialization.Encoding.Raw,
                                                             serialization.PublicFormat.Raw))


def sign(manifest: bytes, pem: bytes) -> str:
    """The signature line of ``manifest`` under the private key ``pem``."""
    sig = _private(pem).sign(manifest)
    return f"{ALGORITHM} {public_key(pem).key_id} {base64.b64encode(sig).decode()}\n"


def verify(manifest: bytes, signature: str, trusted: list[PublicKey]) -> PublicKey:
    """The trusted key that signed ``manifest``; :class:`SignatureRefused` otherwise."""
    parts = signature.split()
    if len(parts) != 3 or parts[0] != ALGORITHM:
        raise SignatureRefused(f"the signature is not an {ALGORITHM} signature line")
    key_id = parts[1]
    key = next((k for k in trusted if k.key_id == key_id), None)
    if key is None:
        raise SignatureRefused(f"signed by key {key_id}, which this node does not trust"
                               f" (trusted: {', '.join(k.key_id for k in trusted) or 'none'})")
    try:
        Ed25519PublicKey.from_public_bytes(key.raw).verify(_b64(parts[2]), manifest)
    except (InvalidSignature, ValueError):
        raise SignatureRefused(f"the manifest does not match its signature by key {key_id}:"
                               " the medium was altered after signing") from None
    return key


def trusted_keys(directory: Path) -> list[PublicKey]:
    """Every ``*.pub`` in ``directory``; an unreadable line is skipped, not trusted."""
    keys = []
    for p in sorted(directory.glob("*.pub")) if directory.is_dir() else []:
        try:
            keys.append(PublicKey.parse(p.read_text()))
        except (OSError, ValueError) as e:
            print(f"releasesig: ignoring {p}: {e}", file=sys.stderr)
    return keys


# ------------------------------------------------------------------ command line
USAGE = """usage: python -m titans3.core.releasesig COMMAND
  keygen KEY.pem               make a private key (mode 0600) unless KEY.pem exists
  pubkey KEY.pem               print its public key line
  sign KEY.pem MANIFEST        write MANIFEST.sig
  verify KEYDIR MANIFEST       check MANIFEST.sig against KEYDIR/*.pub (exit 1: refused)"""


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(USAGE, file=sys.stderr)
        return 2
    cmd, args = argv[0], argv[1:]
    try:
        if cmd == "keygen" and len(args) == 1:
            path = Path(args[0])
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as f:
                    f.write(new_private_key())
            return 0
        if cmd == "pubkey" and len(args) == 1:
            sys.stdout.write(public_key(Path(args[0]).read_bytes()).line())
            return 0
        if cmd == "sign" and len(args) == 2:
            manifest = Path(args[1])
            Path(f"{manifest}.sig").write_text(sign(manifest.read_bytes(), Path(args[0]).read_bytes()))
            return 0
        if cmd == "verify" and len(args) == 2:
            manifest = Path(args[1])
            sig = Path(f"{manifest}.sig")
            if not sig.exists():
                raise SignatureRefused("the medium is not signed (no manifest.sig)")
            key = verify(manifest.read_bytes(), sig.read_text(), trusted_keys(Path(args[0])))
            print(f"signed by trusted key {key.key_id}")
            return 0
    except SignatureRefused as e:
        print(f"signature refused: {e}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as e:
        print(f"releasesig: {e}", file=sys.stderr)
        return 1
    print(USAGE, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
