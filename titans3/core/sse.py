"""The encrypted object format (DESIGN §8): sans-I/O, bytes in and bytes out.

Theory of operation
-------------------
Every encrypted object has its own random 32-byte *data key* (``DK``).  Each
data stream of it -- the object, or each part of a multipart object -- has a
random 16-byte *salt* of its own, and is encrypted under the *stream key*
``HKDF-SHA256(DK, salt, "titans3-sse-v1 stream")``.  A fresh key per stream
is what makes the deterministic nonces below safe: a part uploaded twice
under one upload's data key still never reuses a (key, nonce) pair.

The plaintext is cut into *packages* of ``PACKAGE`` = 64 KiB; package ``i``
is sealed with AES-256-GCM under the stream key with

* nonce ``= final (4 bytes BE, 1 for the last package else 0) ‖ i (8 bytes BE)``
* associated data ``= "titans3-sse-v1" ‖ i ‖ final``

and stored as ``ciphertext ‖ 16-byte tag`` (``STORED`` = 65,552 bytes for a
full package).  Consequences every reader relies on:

* **sizes are arithmetic**: a stream of ``n`` plaintext bytes stores
  :func:`stored_size` ``(n)`` bytes -- ``max(1, ceil(n / PACKAGE))``
  packages, so even an empty stream has one (final, empty) package and
  cannot be truncated to nothing unnoticed;
* **a range decrypts only its packages**: :func:`stored_range` maps a
  plaintext range to the whole packages that hold it;
* **reordering, truncating or extending is detected**: the sequence number
  and the final flag are authenticated, so a package moved to another
  position, a stream cut at a package boundary (the new last package was
  not sealed as final) or one with a package appended all fail their tag;
  a flipped bit anywhere fails its package's tag.  A failure raises
  :class:`PackageError` -- never wrong plaintext.

Key wrapping (:func:`wrap_key` / :func:`unwrap_key`) seals a data key under a
key-encryption key with AES-256-GCM and an associated-data string that binds
it to where it may be used (bucket and key, ``objects/sse.py``), so a sealed
key copied onto another object does not open.

Nothing here logs or stores keys: callers keep them in memory only.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import struct
from collections.abc import Iterator

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

PACKAGE = 64 * 1024
TAG = 16
STORED = PACKAGE + TAG
KEY_BYTES = 32
SALT_BYTES = 16
_LABEL = b"titans3-sse-v1"
_WRAP_MAGIC = b"T3K1"


class PackageError(Exception):
    """A package failed authentication: wrong key, damaged, reordered or truncated."""


class KeyUnwrapError(Exception):
    """A sealed data key does not open with this key-encryption key and binding."""


# ------------------------------------------------------------------ arithmetic
def packages(n: int) -> int:
    """Packages in a stream of ``n`` plaintext bytes (at least one)."""
    return max(1, -(-n // PACKAGE))


def stored_size(n: int) -> int:
    """Bytes stored for a stream of ``n`` plaintext bytes."""
    return n + TAG * packages(n)


def stored_range(first: int, last: int, size: int) -> tuple[int, int, int]:
    """``(stored first, stored last, first package)`` holding plaintext bytes
    ``[first, last]`` (inclusive) of a stream of ``size`` bytes."""
    if not 0 <= first <= last < size:
        raise ValueError(f"range {first}-{last} outside a stream of {size} bytes")
    p0, p1 = first // PACKAGE, last // PACKAGE
    return p0 * STORED, min((p1 + 1) * STORED, stored_size(size)) - 1, p0


def new_data_key() -> bytes:
    return secrets.token_bytes(KEY_BYTES)


def new_salt() -> bytes:
    return secrets.token_bytes(SALT_BYTES)


def stream_key(data_key: bytes, salt: bytes) -> bytes:
    return HKDF(hashes.SHA256(), KEY_BYTES, salt, _LABEL + b" stream").derive(data_key)


def _nonce_aad(seq: int, final: bool) -> tuple[bytes, bytes]:
    nonce = struct.pack(">IQ", 1 if final else 0, seq)
    return nonce, _LABEL + nonce


# ------------------------------------------------------------------ encryption
class Encryptor:
    """Plaintext in (any chunking), sealed packages out, in order.

    A package is emitted only once the next byte arrives (or at
    :meth:`finish`), because only then is it known whether it is the last.
    """

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)
        self._buf = bytearray()
        self._seq = 0
        self._done = False

    def feed(self, data: bytes | memoryview) -> bytes:
        assert not self._done, "feed after finish"
        mv = memoryview(data).cast("B")
        out = []
        # Keep at least one byte buffered beyond the packages we seal, so the
        # last full package waits to learn whether it is final.  Whole packages
        # are sealed straight from ``data``; only a remainder is copied.
        if self._buf and len(self._buf) + len(mv) > PACKAGE:
            take = PACKAGE - len(self._buf)
            self._buf += mv[:take]
            mv = mv[take:]
            out.append(self._seal(bytes(self._buf), final=False))
            self._buf.clear()
        pos = 0
        while len(mv) - pos > PACKAGE and not self._buf:
            out.append(self._seal(bytes(mv[pos : pos + PACKAGE]), final=False))
            pos += PACKAGE
        self._buf += mv[pos:]
        return b"".join(out)

    def finish(self) -> bytes:
        assert not self._done, "finish twice"
        self._done = True
        last = self._seal(bytes(self._buf), final=True)
        self._buf.clear()
        return last

    def _seal(self, plain: bytes | memoryview, *, final: bool) -> bytes:
        nonce, aad = _nonce_aad(self._seq, final)
        self._seq += 1
        return self._aead.encrypt(nonce, plain, aad)


def encrypt(key: bytes, plain: bytes) -> bytes:
    """The whole stored stream of ``plain`` (tests, small values)."""
    enc = Encryptor(key)
    return enc.feed(plain) + enc.finish()


# ------------------------------------------------------------------ decryption
class Decryptor:
    """Stored bytes of packages ``first_package ..`` in, plaintext out.

    ``size`` is the stream's plaintext size (from the version record): it
    fixes which package is final and how long each one is, so a short or
    long stream is a :class:`PackageError`.  ``skip``/``take`` trim the
    output to the requested plaintext range.
    """

    def __init__(self, key: bytes, size: int, *, first_package: int = 0, skip: int = 0,
                 take: int | None = None) -> None:
        self._aead = AESGCM(key)
        self._size = size
        self._total = packages(size)
        self._seq = first_package
        self._buf = bytearray()
        self._skip = skip
        self._take = size - first_package * PACKAGE - skip if take is None else take
        if self._take > 0:
            self._end = (first_package * PACKAGE + skip + self._take - 1) // PACKAGE + 1
        else:  # an empty stream's one package is still opened: truncation shows
            self._end = 1 if size == 0 else first_package
        if self._end > self._total:
            raise ValueError("range past the end of the stream")

    def _stored_len(self, seq: int) -> int:
        if seq < self._total - 1:
            return STORED
        return self._size - seq * PACKAGE + TAG

    def feed(self, data: bytes | memoryview) -> bytes:
        mv = memoryview(data).cast("B")
        out = []
        if self._buf:  # complete the package begun by an earlier call
            need = self._stored_len(self._seq) - len(self._buf) if self._seq < self._end else 0
            self._buf += mv[:need]
            mv = mv[need:]
            if self._seq < self._end and len(self._buf) == self._stored_len(self._seq):
                out.append(self._open(bytes(self._buf)))
                self._buf.clear()
        pos = 0
        while not self._buf and self._seq < self._end:
            n = self._stored_len(self._seq)
            if len(mv) - pos < n:
                break
            out.append(self._open(bytes(mv[pos : pos + n])))
            pos += n
        self._buf += mv[pos:]
        if self._buf and self._seq >= self._end:
            raise PackageError("more stored bytes than the packages hold")
        return b"".join(out)

    def finish(self) -> None:
        """Raise unless every requested package arrived whole."""
        if self._seq < self._end or self._buf:
            raise PackageError(f"stream truncated at package {self._seq}")

    def _open(self, sealed: bytes | memoryview) -> bytes:
        final = self._seq == self._total - 1
        nonce, aad = _nonce_aad(self._seq, final)
        try:
            plain = self._aead.decrypt(nonce, sealed, aad)
        except InvalidTag:
            raise PackageError(f"package {self._seq} failed authentication") from None
        self._seq += 1
        if self._skip or len(plain) > self._take:
            mv = memoryview(plain)[self._skip :][: self._take]
            self._skip = 0
            self._take -= len(mv)
            return bytes(mv)
        self._take -= len(plain)
        return plain


def decrypt(key: bytes, stored: bytes, size: int) -> bytes:
    dec = Decryptor(key, size)
    out = dec.feed(stored)
    dec.finish()
    return out


def decrypt_range(key: bytes, stored_slice: bytes, size: int, first: int, last: int) -> bytes:
    """Plaintext ``[first, last]`` from the stored bytes :func:`stored_range` named."""
    _, _, p0 = stored_range(first, last, size)
    dec = Decryptor(key, size, first_package=p0, skip=first - p0 * PACKAGE,
                    take=last - first + 1)
    out = dec.feed(stored_slice)
    dec.finish()
    return out


def chunks(data: bytes, n: int) -> Iterator[bytes]:
    for i in range(0, len(data), n):
        yield data[i : i + n]


# ------------------------------------------------------------------ key wrapping
def wrap_key(kek: bytes, data_key: bytes, binding: str) -> str:
    """``data_key`` sealed under ``kek``, usable only with the same ``binding``."""
    nonce = secrets.token_bytes(12)
    ct = AESGCM(kek).encrypt(nonce, data_key, binding.encode())
    return base64.b64encode(_WRAP_MAGIC + nonce + ct).decode()


def unwrap_key(kek: bytes, sealed: str, binding: str) -> bytes:
    try:
        raw = base64.b64decode(sealed)
    except ValueError:
        raise KeyUnwrapError("sealed key: not base64") from None
    if not raw.startswith(_WRAP_MAGIC) or len(raw) < 4 + 12 + TAG:
        raise KeyUnwrapError("sealed key: unknown format")
    try:
        return AESGCM(kek).decrypt(raw[4:16], raw[16:], binding.encode())
    except InvalidTag:
        raise KeyUnwrapError("sealed key: does not open with this key") from None


def customer_key_md5(key: bytes) -> str:
    """Base64 MD5 of an SSE-C key, as S3 returns it (never the key itself)."""
    return base64.b64encode(hashlib.md5(key).digest()).decode()
