"""tune_malloc really changes glibc's behaviour; the hypercorn recv patch is really read."""

from __future__ import annotations

import platform
import subprocess
import sys
import textwrap

import pytest
import trio

from titans3.core import alloc

glibc_only = pytest.mark.skipif(
    platform.libc_ver()[0] != "glibc", reason="mallopt tuning is glibc-only"
)

# 40 MiB is above glibc's largest *dynamic* mmap threshold (32 MiB on 64-bit), so
# with default settings every such buffer is a fresh mmap that page-faults on
# first touch; with tune_malloc it comes from the (kept) heap and stays warm.
_FAULTS = textwrap.dedent(
    """
    import resource, sys
    from titans3.core.alloc import tune_malloc
    applied = tune_malloc() if sys.argv[1] == "tuned" else None
    size = 40 << 20
    buf = b"\\x01" * size
    del buf
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):
        buf = b"\\x01" * size
        del buf
    print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    """
)


def _page_faults(mode: str) -> tuple[str, int]:
    env_free = {"PATH": "/usr/bin:/bin"}  # no MALLOC_* variables from the caller
    out = subprocess.run(
        [sys.executable, "-c", _FAULTS, mode],
        check=True,
        capture_output=True,
        text=True,
        env=env_free,
        timeout=60,
    ).stdout.split()
    return out[0], int(out[1])


@glibc_only
def test_tune_malloc_keeps_large_buffers_warm():
    applied, tuned_faults = _page_faults("tuned")
    _, default_faults = _page_faults("default")
    assert applied == "True"
    # default: ~10k faults per 40 MiB buffer; tuned: (almost) none after the first.
    assert default_faults > 5 * 5000
    assert tuned_faults < default_faults // 20


@glibc_only
def test_tune_malloc_reports_success_and_is_repeatable():
    assert alloc.tune_malloc() is True
    assert alloc.tune_malloc() is True


def test_tune_malloc_is_a_no_op_without_glibc(monkeypatch):
    monkeypatch.setattr(alloc, "_glibc", lambda: None)
    assert alloc.tune_malloc() is False


def test_patch_hypercorn_recv_sets_the_trio_worker_read_size(monkeypatch):
    from hypercorn.trio import tcp_server

    monkeypatch.setattr(tcp_server, "MAX_RECV", tcp_server.MAX_RECV)  # restored after
    original = tcp_server.MAX_RECV
    assert alloc.patch_hypercorn_recv(3 << 20) == original
    assert tcp_server.MAX_RECV == 3 << 20


def test_patched_size_reaches_receive_some(monkeypatch):
    """The patch only matters if hypercorn reads the module global per call."""
    from hypercorn.config import Config
    from hypercorn.trio import tcp_server

    monkeypatch.setattr(tcp_server, "MAX_RECV", tcp_server.MAX_RECV)
    alloc.patch_hypercorn_recv(1 << 20)

    asked: list[int] = []
    handled: list[object] = []

    class Stream:
        async def receive_some(self, max_bytes: int) -> bytes:
            asked.append(max_bytes)
            return b""

    class Protocol:
        async def handle(self, event: object) -> None:
            handled.append(event)

    server = tcp_server.TCPServer.__new__(tcp_server.TCPServer)
    server.config = Config()
    server.stream = Stream()
    server.protocol = Protocol()
    trio.run(server._read_data)
    assert asked == [1 << 20]


def test_patch_hypercorn_recv_rejects_nonpositive_sizes():
    with pytest.raises(ValueError):
        alloc.patch_hypercorn_recv(0)


def test_patch_hypercorn_recv_fails_loudly_if_hypercorn_changes(monkeypatch):
    from hypercorn.trio import tcp_server

    monkeypatch.delattr(tcp_server, "MAX_RECV")
    with pytest.raises(RuntimeError, match="MAX_RECV"):
        alloc.patch_hypercorn_recv()
