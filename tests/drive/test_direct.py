"""Aligned O_DIRECT I/O (titans3/drive/direct.py) on a real filesystem."""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path

import pytest

from titans3.drive import direct
from titans3.drive import fragment as fmt

DATA_ID = "feedfacefeedfacefeedfacefeedface"
O_DIRECT_FLAG = 0o40000


def fd_flags(fd: int) -> int:
    for line in Path(f"/proc/self/fdinfo/{fd}").read_text().splitlines():
        if line.startswith("flags:"):
            return int(line.split()[1], 8)
    raise AssertionError("no flags line")


def write_fragment(path: Path, payload: bytes, chunks: list[int], pool: direct.BufferPool) -> direct.DirectWriter:
    w = direct.DirectWriter(path, DATA_ID, 2, pool)
    pos = 0
    for n in chunks:
        w.write(payload[pos : pos + n])
        pos += n
    w.write(payload[pos:])
    assert w.finish() == len(payload)
    return w


def test_aligned_buffers_are_page_aligned() -> None:
    import ctypes

    buf = direct.aligned_buffer(direct.WRITE_BUFFER)
    addr = ctypes.addressof(ctypes.c_char.from_buffer(buf))
    assert addr % 4096 == 0
    del addr
    buf.close()


def test_buffer_pool_reuses_buffers() -> None:
    pool = direct.BufferPool(8192, keep=1)
    a = pool.get()
    pool.put(a)
    assert pool.get() is a
    pool.close()


def test_writer_fd_carries_o_direct(tmp_path: Path) -> None:
    pool = direct.BufferPool(direct.WRITE_BUFFER)
    w = direct.DirectWriter(tmp_path / "f", DATA_ID, 0, pool)
    try:
        assert w.direct
        assert fd_flags(w.fd) & O_DIRECT_FLAG
    finally:
        w.close()


@pytest.mark.parametrize("size", [0, 1, fmt.PAYLOAD, 3 * fmt.PAYLOAD + 1, direct.WRITE_BUFFER * 2 + 5])
def test_written_file_is_header_plus_framed_blocks(tmp_path: Path, size: int) -> None:
    payload = os.urandom(size)
    pool = direct.BufferPool(direct.WRITE_BUFFER)
    path = tmp_path / "frag"
    write_fragment(path, payload, [size // 3, 7], pool)
    raw = path.read_bytes()
    assert len(raw) == fmt.file_size(size)
    assert fmt.unpack_header(raw[: fmt.HEADER_SIZE]) == fmt.FragmentHeader(DATA_ID, 2, size)
    assert raw[fmt.HEADER_SIZE :] == fmt.frame(payload)


def test_read_blocks_streams_large_ranges_through_small_buffers(tmp_path: Path) -> None:
    size = 9 * fmt.PAYLOAD + 1234
    payload = os.urandom(size)
    path = tmp_path / "frag"
    write_fragment(path, payload, [100_000], direct.BufferPool(direct.WRITE_BUFFER))
    small = direct.BufferPool(2 * fmt.BLOCK)  # forces 5 read rounds
    fd, is_direct = direct.open_direct(path, os.O_RDONLY)
    try:
        assert is_direct
        h = direct.read_header(fd, small)
        for off, ln in [(0, size), (5, 3 * fmt.PAYLOAD), (8 * fmt.PAYLOAD - 1, 10**9), (size - 1, 1)]:
            rng = fmt.blocks_for_range(off, ln, h.logical_len)
            assert direct.read_blocks(fd, rng, off, ln, h.logical_len, small) == payload[off : off + ln]
    finally:
        os.close(fd)


def test_truncated_file_reads_as_corrupt(tmp_path: Path) -> None:
    size = 3 * fmt.PAYLOAD
    path = tmp_path / "frag"
    write_fragment(path, os.urandom(size), [], direct.BufferPool(direct.WRITE_BUFFER))
    os.truncate(path, fmt.HEADER_SIZE + 2 * fmt.BLOCK)
    pool = direct.BufferPool(direct.READ_BUFFER)
    fd, _ = direct.open_direct(path, os.O_RDONLY)
    try:
        rng = fmt.blocks_for_range(0, size, size)
        with pytest.raises(fmt.FragmentFormatError) as e:
            direct.read_blocks(fd, rng, 0, size, size, pool)
        assert e.value.block == 2
    finally:
        os.close(fd)


def test_filesystems_refusing_o_direct_fall_back_with_one_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real_open = os.open

    def no_direct(path: str, flags: int, mode: int = 0o777) -> int:
        if flags & os.O_DIRECT:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_open(path, flags, mode)

    monkeypatch.setattr(os, "open", no_direct)
    monkeypatch.setattr(direct, "_warned", False)
    payload = os.urandom(fmt.PAYLOAD + 10)
    with caplog.at_level(logging.WARNING, logger="titans3.drive.direct"):
        for name in ("a", "b"):
            w = write_fragment(tmp_path / name, payload, [], direct.BufferPool(direct.WRITE_BUFFER))
            assert not w.direct
    assert (tmp_path / "b").read_bytes()[fmt.HEADER_SIZE :] == fmt.frame(payload)
    assert len([r for r in caplog.records if "O_DIRECT" in r.getMessage()]) == 1


def test_other_open_errors_are_not_swallowed(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        direct.open_direct(tmp_path / "missing" / "f", os.O_RDONLY)
