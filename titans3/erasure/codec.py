"""Erasure coding of one segment: ``ECScheme`` (the numbers) and ``Codec`` (the work).

Theory of operation
-------------------
A segment of at most ``segment_size`` bytes becomes ``n = k + m`` fragments; any
``k`` of them give the segment back.  :mod:`titans3.erasure.stripe` decides
which segments a request needs; this module only ever sees one segment.

**Backend.**  pyeclib with ISA-L's Reed-Solomon over a *Cauchy* matrix
(``EC_TYPE``).  ``isa_l_rs_vand`` is as fast (measured side by side in this
VM: 7.1-7.9 GB/s encode and 11-15 GB/s degraded decode for both, 4+2 and 8+4),
but ISA-L documents that its Vandermonde construction is not guaranteed
invertible for every ``k, m`` pair, whereas a Cauchy matrix is MDS for every
pair -- and schemes are configurable per bucket.  ``EC_TYPE`` is part of the
on-disk format (version records store only ``k, m, segment_size``): fragments
written with one type cannot be decoded with another.  Changing it means a
format version.

**Fragment format.**  Each fragment is pyeclib's 80-byte header (fragment
index, payload size, original segment length, checksums of the header) plus
``ceil(L / k)`` payload bytes for an ``L``-byte segment
(:meth:`Codec.fragment_size`; verified against pyeclib when a codec is built
and in tests).  So every fragment of a full segment has the same size ``F``
and the stripe layout is pure arithmetic.  The code is systematic: fragment
``i < k`` carries segment bytes ``[i*P, (i+1)*P)`` in its payload.

**Mirroring.**  ``k == 1`` (1-3 drive clusters) is replication: no pyeclib, no
header, every fragment *is* the segment (``encode`` returns ``n`` references to
one bytes object).  ``m == 0`` is only allowed with ``k == 1``: striping without
parity would lose data with any single drive.

**Empty.**  An empty object has zero segments (see stripe), so nothing is
encoded; for robustness ``encode(b"")`` still returns ``n`` empty fragments and
decoding empty fragments gives ``b""``.

**Input hygiene.**  liberasurecode *aborts the process* (a C ``assert``) when
handed a fragment that is not a ``bytes`` object, fails a duplicated fragment
with an opaque "Unknown error", and happily "rebuilds" an index that does not
exist.  So fragment header indexes must equal their keys, lengths must agree,
indexes are range-checked, and whatever reaches pyeclib is converted to
``bytes`` first; pyeclib's own errors become :class:`DecodeError`.  Payload corruption is *not* detected
here (no checksum in the header): the drive layer verifies every block with
xxh3 before a fragment reaches this module.

**Healthy reads skip pyeclib.**  When all ``k`` data fragments are present the
segment is their payloads concatenated; a Python ``join`` of memoryview slices
does it with one copy (~54 GB/s vs ~22 GB/s through pyeclib, which copies
twice), straight from memoryview slices of the drive reads.  Scality's Go
binding of liberasurecode does the same.

**Threads.**  pyeclib's C calls never release the GIL (``pyeclib_c`` does not
even import ``PyEval_SaveThread``), so threads give no parallel coding and a
shared driver would be safe today.  Each thread still gets its own ``ECDriver``
(~0.2 ms to build, once per worker thread), so a future pyeclib that releases
the GIL stays correct and becomes parallel.  A process is CPU-bound at
~7-8 GB/s encode per core (STACK-NOTES); more throughput needs processes.
"""

from __future__ import annotations

import functools
import struct
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypeAlias

from titans3.core.errors import InternalError

from .stripe import Layout, layout_for

EC_TYPE = "isa_l_rs_cauchy"
DEFAULT_SEGMENT_SIZE = 1 << 20
MAX_FRAGMENTS = 32  # liberasurecode's EC_MAX_FRAGMENTS

# liberasurecode's packed fragment_header_t (erasurecode.h): all little-endian.
HEADER_SIZE = 80
_META = struct.Struct("<IIIQ")  # idx, payload size, backend metadata size, orig data size
_MAGIC_OFFSET = 59  # after the 59-byte fragment_metadata_t
_MAGIC = 0xB0C5ECC

# Stripe widths by drive count: the design table (4 -> 2+2, 6 -> 4+2, 8 -> 5+3,
# 12 -> 8+4) is exactly "use every drive, up to 12; m = 2 below 8 drives, 3 below
# 12, 4 from 12", which also fills the gaps: 5 -> 3+2, 7 -> 5+2, 9 -> 6+3,
# 10 -> 7+3, 11 -> 8+3.
_MAX_WIDTH = 12


class DecodeError(InternalError):  # type: ignore[misc,valid-type]
    """Fragments could not be turned back into data (too few, inconsistent, corrupt)."""


@dataclass(frozen=True, slots=True)
class ECScheme:
    """``k`` data + ``m`` parity fragments per segment of ``segment_size`` bytes."""

    k: int
    m: int
    segment_size: int = DEFAULT_SEGMENT_SIZE

    def __post_init__(self) -> None:
        if self.k < 1 or self.m < 0:
            raise ValueError(f"EC scheme {self.k}+{self.m}: need k >= 1 and m >= 0")
        if self.k > 1 and self.m == 0:
            raise ValueError(f"EC scheme {self.k}+0: striping without parity is not allowed")
        if self.n > MAX_FRAGMENTS:
            raise ValueError(f"EC scheme {self.k}+{self.m}: at most {MAX_FRAGMENTS} fragments")
        if self.segment_size < 1:
            raise ValueError(f"segment size must be positive, got {self.segment_size}")

    @property
    def n(self) -> int:
        return self.k + self.m

    @property
    def is_mirror(self) -> bool:
        """True when every fragment is a full copy (``k == 1``)."""
        return self.k == 1

    @staticmethod
    def for_drive_count(n: int, *, segment_size: int = DEFAULT_SEGMENT_SIZE) -> ECScheme:
        """The default scheme for a cluster of ``n`` drives (DESIGN §3).

        1-3 drives mirror (``1+(n-1)``); 4-11 drives use every drive with
        ``m = 2`` below 8 drives and ``m = 3`` from 8; 12 or more use 8+4.
        """
        if n < 1:
            raise ValueError(f"drive count must be >= 1, got {n}")
        if n <= 3:
            return ECScheme(1, n - 1, segment_size)
        width = min(n, _MAX_WIDTH)
        m = 2 if width < 8 else 3 if width < 12 else 4
        return ECScheme(width - m, m, segment_size)


Buffer: TypeAlias = bytes | bytearray | memoryview  # of unsigned bytes (format "B")


def _as_bytes(data: Buffer) -> bytes:
    # pyeclib needs exactly bytes (other buffers abort the process in C).
    return data if type(data) is bytes else bytes(data)


class Codec:
    """Encode/decode/reconstruct segments of one :class:`ECScheme`.

    Thread-safe.  Build through :func:`get_codec` to share one per scheme.
    """

    def __init__(self, scheme: ECScheme) -> None:
        self.scheme = scheme
        self._k = scheme.k
        self._n = scheme.n
        self._local = threading.local()
        if not scheme.is_mirror:
            self._check_fragment_format()

    # ------------------------------------------------------------------ sizes
    def fragment_size(self, segment_len: int) -> int:
        """Bytes of each fragment of a ``segment_len``-byte segment (0 for 0)."""
        if segment_len < 0:
            raise ValueError(f"segment length must be >= 0, got {segment_len}")
        if segment_len == 0:
            return 0
        if self.scheme.is_mirror:
            return segment_len
        return HEADER_SIZE + -(-segment_len // self._k)

    def layout(self, size: int) -> Layout:
        """The stripe layout of a ``size``-byte object under this scheme."""
        return layout_for(size, self.scheme, self.fragment_size)

    # ----------------------------------------------------------------- encode
    def encode(self, segment: Buffer) -> list[bytes]:
        """The ``n`` fragments of one segment, fragment ``i`` at index ``i``.

        pyeclib only takes ``bytes``: any other buffer is copied once first.
        For a mirror scheme all ``n`` entries are the same object.
        """
        data = _as_bytes(segment)
        if len(data) > self.scheme.segment_size:
            raise ValueError(
                f"segment of {len(data)} bytes exceeds segment size {self.scheme.segment_size}"
            )
        if not data:
            return [b""] * self._n
        if self.scheme.is_mirror:
            return [data] * self._n
        return self._driver().encode(data)

    # ----------------------------------------------------------------- decode
    def decode(self, fragments: Mapping[int, Buffer]) -> bytes:
        """The segment, from any ``k`` or more of its fragments (index -> buffer).

        Buffers may be memoryview slices of a larger read: the healthy path
        (all data fragments present) copies each payload exactly once.  Raises :class:`DecodeError` with fewer than ``k`` fragments or when the
        fragments do not belong together.
        """
        frags = self._checked(fragments)
        length = len(next(iter(frags.values())))
        if length == 0:
            return b""
        if self.scheme.is_mirror:
            return _as_bytes(frags[min(frags)])
        fast = self._join_data_fragments(frags)
        if fast is not None:
            return fast
        chosen = [_as_bytes(frags[i]) for i in sorted(frags)[: self._k]]
        try:
            return self._driver().decode(chosen)
        except Exception as exc:  # pyeclib's ECDriverError family
            raise DecodeError(f"{self._name()}: decode failed: {exc}") from exc

    def reconstruct(
        self, fragments: Mapping[int, Buffer], missing: Sequence[int]
    ) -> dict[int, bytes]:
        """Rebuild fragments ``missing`` (byte-identical to the originals) from
        any ``k`` or more fragments of the same segment."""
        wanted = list(dict.fromkeys(missing))
        for i in wanted:
            if not 0 <= i < self._n:
                raise ValueError(f"{self._name()}: no fragment index {i}")
        if not wanted:
            return {}
        frags = self._checked(fragments)
        length = len(next(iter(frags.values())))
        if length == 0 or self.scheme.is_mirror:
            copy = _as_bytes(frags[min(frags)])
            return {i: copy for i in wanted}
        out = {i: _as_bytes(frags[i]) for i in wanted if i in frags}
        build = [i for i in wanted if i not in frags]
        if build:
            chosen = [_as_bytes(frags[i]) for i in sorted(frags)[: self._k]]
            try:
                rebuilt = self._driver().reconstruct(chosen, build)
            except Exception as exc:  # pyeclib's ECDriverError family
                raise DecodeError(f"{self._name()}: reconstruct failed: {exc}") from exc
            out.update(zip(build, rebuilt, strict=True))
        return out

    # -------------------------------------------------------------- internals
    def _name(self) -> str:
        return f"EC {self._k}+{self.scheme.m}"

    def _driver(self):  # -> pyeclib.ec_iface.ECDriver
        driver = getattr(self._local, "driver", None)
        if driver is None:
            from pyeclib.ec_iface import ECDriver

            driver = ECDriver(k=self._k, m=self.scheme.m, ec_type=EC_TYPE)
            self._local.driver = driver
        return driver

    def _check_fragment_format(self) -> None:
        """Fail loudly if pyeclib's sizes ever stop matching :meth:`fragment_size`."""
        driver = self._driver()
        for length in {1, self._k, self._k + 1, self.scheme.segment_size}:
            got = driver.get_segment_info(length, length)["fragment_size"]
            if got != self.fragment_size(length):
                raise RuntimeError(
                    f"pyeclib {EC_TYPE} makes {got}-byte fragments for a {length}-byte "
                    f"segment, expected {self.fragment_size(length)}: fragment format changed"
                )

    def _checked(self, fragments: Mapping[int, Buffer]) -> dict[int, Buffer]:
        """The fragments, after every check that keeps pyeclib safe (not yet copied)."""
        if len(fragments) < self._k:
            raise DecodeError(f"{self._name()}: {len(fragments)} fragments given, need {self._k}")
        frags = dict(fragments)
        for i in frags:
            if not 0 <= i < self._n:
                raise DecodeError(f"{self._name()}: no fragment index {i}")
        lengths = {len(f) for f in frags.values()}
        if len(lengths) != 1:
            raise DecodeError(
                f"{self._name()}: fragments of different lengths {sorted(lengths)} "
                "(mixed segments or truncated)"
            )
        length = lengths.pop()
        if length == 0 or self.scheme.is_mirror:
            return frags
        if length <= HEADER_SIZE:
            raise DecodeError(f"{self._name()}: {length}-byte fragment is shorter than a header")
        for i, f in frags.items():
            idx = _META.unpack_from(f)[0]
            if idx != i:
                raise DecodeError(f"{self._name()}: fragment given as {i} says it is {idx}")
        return frags

    def _join_data_fragments(self, frags: dict[int, Buffer]) -> bytes | None:
        """The segment from data fragments ``0..k-1`` alone, or None if not possible."""
        k = self._k
        if any(i not in frags for i in range(k)):
            return None
        _, payload, backend_meta, orig = _META.unpack_from(frags[0])
        length = len(frags[0])
        if backend_meta or length != HEADER_SIZE + payload or not 0 < orig <= payload * k:
            return None  # let pyeclib judge it
        for i in range(k):
            f = frags[i]
            if (
                _META.unpack_from(f)[1:] != (payload, backend_meta, orig)
                or struct.unpack_from("<I", f, _MAGIC_OFFSET)[0] != _MAGIC
            ):
                return None
        parts = []
        remaining = orig
        for i in range(k):
            take = min(payload, remaining)
            if take <= 0:
                break
            parts.append(memoryview(frags[i])[HEADER_SIZE : HEADER_SIZE + take])
            remaining -= take
        return b"".join(parts)


@functools.lru_cache(maxsize=64)
def get_codec(scheme: ECScheme) -> Codec:
    """The shared :class:`Codec` for ``scheme``."""
    return Codec(scheme)
