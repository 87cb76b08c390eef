"""Object integrity checksums: ``Content-MD5`` and the ``x-amz-checksum-*`` family.

Theory of operation
-------------------
Current AWS SDKs send a checksum with every upload (CRC32 by default, since
botocore 1.36), either as a header (``x-amz-checksum-crc32: <base64>``) or, for
streamed bodies, as an aws-chunked *trailer* announced by ``x-amz-trailer``.
``x-amz-sdk-checksum-algorithm`` only names the algorithm the SDK used; the value
always travels in a header or a trailer.  The S3 app therefore does three things,
all of them here:

1. ``requested_checksums(headers)`` validates the request's checksum headers the
   way S3 does (at most one ``x-amz-checksum-*`` value, header or trailer; the SDK
   algorithm must agree) and
   says which algorithms to compute: ``{algo: value}`` for a header value,
   ``{algo: None}`` when the value comes later in a trailer.
2. A :class:`ChecksumSet` is fed every payload byte once (``update``), computing
   all requested algorithms side by side so the body is read a single time.
3. ``ChecksumSet.verify(expected)`` compares with the values from the headers and
   trailers and returns ``{algo: base64}`` to store with the version.  A mismatch
   is ``400 BadDigest`` with AWS's wording -- also for a value that is not
   base64 of the algorithm's width (a truncated digest, as ceph's s3-tests
   send): it cannot match, and AWS answers ``BadDigest`` for it.  A header value
   is refused before the body is read, a trailer value after.

Digests are big-endian for the CRCs (what botocore and awscrt send) and base64
encoded.  CRC32 uses ``zlib`` (about 4 GB/s here, faster than awscrt's), CRC32C
and CRC64NVME use ``awscrt.checksums`` (hardware accelerated, 19-25 GB/s), SHA
uses ``hashlib``.  Every ``update`` accepts any buffer (bytes, bytearray,
memoryview) without copying, so the zero-copy slices of the aws-chunked decoder
can be fed directly.

Error messages are those S3 returns (as mirrored by OpenStack Swift's s3api and
versitygw, which test against AWS): e.g. "Expecting a single x-amz-checksum-
header. Multiple checksum Types are not allowed.".
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import zlib
from collections.abc import Iterable, Mapping
from typing import Protocol

from awscrt import checksums as _crt

from titans3.core.errors import BadDigest, InvalidDigest, InvalidRequest, NotImplementedS3

ALGORITHMS: tuple[str, ...] = ("CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256")

DIGEST_SIZES: dict[str, int] = {"CRC32": 4, "CRC32C": 4, "CRC64NVME": 8, "SHA1": 20, "SHA256": 32}

HEADER_PREFIX = "x-amz-checksum-"
# Headers that share the prefix but carry no checksum value.
_NOT_VALUE_HEADERS = frozenset(
    {"x-amz-checksum-algorithm", "x-amz-checksum-type", "x-amz-checksum-mode"}
)

# Algorithms newer SDKs know (botocore 1.44) that TitanS3 does not compute yet:
# 501 rather than 400, so a client learns the request was fine but unsupported.
_KNOWN_UNSUPPORTED = frozenset({"SHA512", "MD5", "XXHASH64", "XXHASH3", "XXHASH128"})

_MULTIPLE = "Expecting a single x-amz-checksum- header"
_MULTIPLE_TYPES = _MULTIPLE + ". Multiple checksum Types are not allowed."
_SDK_INVALID = "Value for x-amz-sdk-checksum-algorithm header is invalid."


class Checksum(Protocol):
    """A running checksum of one algorithm."""

    algorithm: str

    def update(self, data: bytes | bytearray | memoryview) -> None: ...

    def digest(self) -> bytes: ...

    def b64digest(self) -> str: ...


class _Crc:
    __slots__ = ("algorithm", "_fn", "_size", "_value")

    def __init__(self, algorithm: str, fn: object, size: int) -> None:
        self.algorithm = algorithm
        self._fn = fn
        self._size = size
        self._value = 0

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self._value = self._fn(data, self._value)  # type: ignore[operator]

    def digest(self) -> bytes:
        return self._value.to_bytes(self._size, "big")

    def b64digest(self) -> str:
        return base64.b64encode(self.digest()).decode("ascii")


class _Hash:
    __slots__ = ("algorithm", "_h")

    def __init__(self, algorithm: str) -> None:
        self.algorithm = algorithm
        self._h = hashlib.new(algorithm.lower())

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self._h.update(data)

    def digest(self) -> bytes:
        return self._h.digest()

    def b64digest(self) -> str:
        return base64.b64encode(self._h.digest()).decode("ascii")


def _normalize(algo: str) -> str:
    name = algo.strip().upper()
    if name not in DIGEST_SIZES:
        raise InvalidRequest(
            "Checksum algorithm provided is unsupported. Please try again with any of the "
            f"valid types: [{', '.join(ALGORITHMS)}]"
        )
    return name


def new_checksum(algo: str) -> Checksum:
    """A fresh checksum for ``algo`` (case-insensitive); InvalidRequest if unknown."""
    name = _normalize(algo)
    if name == "CRC32":
        return _Crc(name, zlib.crc32, 4)
    if name == "CRC32C":
        return _Crc(name, _crt.crc32c, 4)
    if name == "CRC64NVME":
        return _Crc(name, _crt.crc64nvme, 8)
    return _Hash(name)


def header_for(algo: str) -> str:
    """``"CRC32"`` -> ``"x-amz-checksum-crc32"``."""
    return HEADER_PREFIX + _normalize(algo).lower()


def algo_for_header(name: str) -> str | None:
    """``"x-amz-checksum-crc32"`` (any case) -> ``"CRC32"``; None if not a known one."""
    lname = name.strip().lower()
    if not lname.startswith(HEADER_PREFIX):
        return None
    algo = lname[len(HEADER_PREFIX) :].upper()
    return algo if algo in DIGEST_SIZES else None


def decode_value(algo: str, b64: str) -> bytes | None:
    """The digest ``b64`` encodes if it is strict base64 of ``algo``'s width, else None."""
    raw = _strict_b64(b64)
    if raw is None or len(raw) != DIGEST_SIZES[_normalize(algo)]:
        return None
    # Canonical form only: S3 refuses "y/Q5Jh==" (non-zero padding bits) as invalid.
    if base64.b64encode(raw).decode("ascii") != b64.strip():
        return None
    return raw


def _strict_b64(value: str) -> bytes | None:
    try:
        return binascii.a2b_base64(value.strip().encode("ascii"), strict_mode=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        return None


def verify_content_md5(b64: str, md5_digest: bytes) -> None:
    """Check a ``Content-MD5`` header against the MD5 of the body.

    InvalidDigest when ``b64`` is not base64 of 16 bytes, BadDigest when it differs.
    """
    raw = _strict_b64(b64)
    if raw is None or len(raw) != 16:
        raise InvalidDigest()
    if not hmac.compare_digest(raw, md5_digest):
        raise BadDigest()


def requested_checksums(headers: Mapping[str, str]) -> dict[str, str | None]:
    """The checksums an upload asks for: ``{algo: base64 value}`` from a header,
    ``{algo: None}`` when the value will arrive in an aws-chunked trailer.

    ``headers`` has lower-case names.  Raises InvalidRequest for the combinations
    S3 refuses, with S3's messages.  Empty when the request carries no checksum.
    """
    values: dict[str, str] = {}
    for name, value in headers.items():
        lname = name.lower()
        if not lname.startswith(HEADER_PREFIX) or lname in _NOT_VALUE_HEADERS:
            continue
        values[_value_header_algo(lname)] = value.strip()
    if len(values) > 1:
        raise InvalidRequest(_MULTIPLE_TYPES)

    trailer_algos: list[str] = []
    declared = headers.get("x-amz-trailer", "").strip()
    for item in declared.split(",") if declared else ():
        item = item.strip().lower()
        if not item:
            continue
        if not item.startswith(HEADER_PREFIX):
            # A trailer that is not a checksum: the decoder checks it arrives; S3
            # supports no other trailer today, so say so.
            raise InvalidRequest("The value specified in the x-amz-trailer header is not supported")
        if item[len(HEADER_PREFIX) :].upper() in _KNOWN_UNSUPPORTED:
            raise NotImplementedS3(f"The {item} algorithm is not supported.")
        algo = algo_for_header(item)
        if algo is None:
            raise InvalidRequest("The value specified in the x-amz-trailer header is not supported")
        trailer_algos.append(algo)
    if len(trailer_algos) > 1:
        raise InvalidRequest(_MULTIPLE_TYPES)
    if values and trailer_algos:
        raise InvalidRequest(_MULTIPLE)

    result: dict[str, str | None] = {}
    for algo, value in values.items():
        if decode_value(algo, value) is None:  # cannot match anything: a wrong digest
            raise BadDigest(f"The {algo} you specified did not match the calculated checksum.")
        result[algo] = value
    for algo in trailer_algos:
        result[algo] = None

    sdk_algo = headers.get("x-amz-sdk-checksum-algorithm", "").strip()
    if sdk_algo:
        if not result:
            raise InvalidRequest(
                "x-amz-sdk-checksum-algorithm specified, but no corresponding "
                "x-amz-checksum-* or x-amz-trailer headers were found."
            )
        if sdk_algo.upper() not in result:
            raise InvalidRequest(_SDK_INVALID)
    return result


def _value_header_algo(lname: str) -> str:
    algo = algo_for_header(lname)
    if algo is not None:
        return algo
    if lname[len(HEADER_PREFIX) :].upper() in _KNOWN_UNSUPPORTED:
        raise NotImplementedS3(f"The {lname} algorithm is not supported.")
    raise InvalidRequest("The algorithm type you specified in x-amz-checksum- header is invalid.")


class ChecksumSet:
    """Computes several checksums over one byte stream, then checks and reports them."""

    __slots__ = ("_checksums",)

    def __init__(self, algorithms: Iterable[str]) -> None:
        seen: dict[str, Checksum] = {}
        for algo in algorithms:
            name = _normalize(algo)
            if name not in seen:
                seen[name] = new_checksum(name)
        self._checksums = seen

    @property
    def algorithms(self) -> tuple[str, ...]:
        return tuple(self._checksums)

    def update(self, data: bytes | bytearray | memoryview) -> None:
        for checksum in self._checksums.values():
            checksum.update(data)

    def digests(self) -> dict[str, str]:
        """``{algo: base64}`` of everything fed so far."""
        return {algo: c.b64digest() for algo, c in self._checksums.items()}

    def verify(self, expected: Mapping[str, str | None]) -> dict[str, str]:
        """Compare with the client's values and return ``{algo: base64}`` to store.

        ``expected`` is keyed by algorithm (``"CRC32"``) or header/trailer name
        (``"x-amz-checksum-crc32"``); None values (not supplied) are skipped.  A
        key for an algorithm this set does not compute is a caller bug (ValueError).
        """
        for key, value in expected.items():
            algo = algo_for_header(key) if key.lower().startswith(HEADER_PREFIX) else key.upper()
            if algo not in self._checksums:
                raise ValueError(f"checksum {key!r} was not computed by this ChecksumSet")
            if value is None:
                continue
            raw = decode_value(algo, value)
            if raw is None or not hmac.compare_digest(raw, self._checksums[algo].digest()):
                raise BadDigest(f"The {algo} you specified did not match the calculated checksum.")
        return self.digests()


__all__ = [
    "ALGORITHMS",
    "DIGEST_SIZES",
    "Checksum",
    "ChecksumSet",
    "algo_for_header",
    "decode_value",
    "header_for",
    "new_checksum",
    "requested_checksums",
    "verify_content_md5",
]
