"""Process-wide allocator and socket-buffer tuning, applied once at start-up.

Theory of operation
-------------------
The data path allocates many short-lived buffers of 0.25-4 MiB: request body
chunks, 1 MiB segments, erasure fragments.  With glibc's defaults a buffer that
size is either ``mmap``-ed fresh (above ``M_MMAP_THRESHOLD``) or carved from the
heap top, which glibc hands back to the kernel as soon as more than
``M_TRIM_THRESHOLD`` is free.  Either way the next buffer arrives as untouched
pages, and first-touch page faults cost more than the work itself: ISA-L runs
at ~10 GB/s on warm memory but fell to 0.5-0.7 GB/s on fresh buffers in this VM
(docs: STACK-NOTES "glibc malloc trap"; ``bench/ec_speed.py`` re-measures it).

Raising both thresholds keeps those buffers on the heap and keeps the freed
heap mapped, so they are recycled warm.  The price is that RSS stays at its
high-water mark instead of shrinking -- bounded by the daemon's own
concurrency limits, and the right trade for a storage daemon.

The settings are process-global and cannot be undone, so the daemon calls
:func:`tune_malloc` first thing, before it allocates anything large.  They
are the ``mallopt(3)`` equivalents of ``MALLOC_MMAP_THRESHOLD_`` and
``MALLOC_TRIM_THRESHOLD_``; setting them explicitly also turns off glibc's
dynamic threshold, so behaviour no longer depends on allocation history.

:func:`patch_hypercorn_recv` raises hypercorn's per-``recv`` size for the trio
worker (64 KiB by default).  ``hypercorn.trio.tcp_server.TCPServer._read_data``
reads the module global ``MAX_RECV`` on every call, so assigning the module
attribute takes effect for connections accepted afterwards and for the next
read of live ones.  Fewer, larger reads cut the per-chunk Python overhead of
uploads (~2.5x less CPU together with the malloc setting, per STACK-NOTES).
The two belong together: ``socket.recv(n)`` allocates an ``n``-byte object and
shrinks it to what arrived, so with a 1 MiB recv size every read is a 1 MiB
allocation -- cheap from a warm heap, an ``mmap`` + page faults without it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

# mallopt(3) parameter numbers from glibc's <malloc.h>; stable ABI since 2.0.
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3

MMAP_THRESHOLD = 256 << 20  # buffers below 256 MiB come from the heap
TRIM_THRESHOLD = 1 << 30  # keep up to 1 GiB of freed heap mapped

DEFAULT_RECV_SIZE = 1 << 20


def _glibc() -> ctypes.CDLL | None:
    """The running glibc, or None on musl/macOS/Windows."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        version = libc.gnu_get_libc_version  # only glibc exports this
    except (OSError, AttributeError):
        return None
    version.restype = ctypes.c_char_p
    return libc


def tune_malloc(mmap_threshold: int = MMAP_THRESHOLD, trim_threshold: int = TRIM_THRESHOLD) -> bool:
    """Apply the allocator thresholds; True when glibc accepted both.

    A no-op returning False where glibc is not the allocator.  Safe to call
    more than once (later calls just re-apply the values).
    """
    libc = _glibc()
    if libc is None:
        return False
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    libc.mallopt.restype = ctypes.c_int
    # mallopt returns 1 on success, 0 when glibc rejects the value (it caps
    # the mmap threshold at HEAP_MAX_SIZE/2 on some builds).
    ok_mmap = libc.mallopt(M_MMAP_THRESHOLD, mmap_threshold) == 1
    ok_trim = libc.mallopt(M_TRIM_THRESHOLD, trim_threshold) == 1
    return ok_mmap and ok_trim


def patch_hypercorn_recv(size: int = DEFAULT_RECV_SIZE) -> int:
    """Make hypercorn's trio worker read up to ``size`` bytes per recv.

    Returns the previous value.  Raises RuntimeError if the installed
    hypercorn no longer has ``hypercorn.trio.tcp_server.MAX_RECV`` (the patch
    would silently do nothing otherwise).
    """
    if size <= 0:
        raise ValueError(f"recv size must be positive, got {size}")
    from hypercorn.trio import tcp_server

    previous = getattr(tcp_server, "MAX_RECV", None)
    if not isinstance(previous, int):
        raise RuntimeError(
            "hypercorn.trio.tcp_server.MAX_RECV is missing; "
            "the recv-size patch needs updating for this hypercorn version"
        )
    tcp_server.MAX_RECV = size
    return previous
