"""Commits after close in the background (titans3/fuse/closecommit.py): close
returns first, fsync is still durable, and this mount sees the file meanwhile."""

from __future__ import annotations

import errno
import os

import pytest
import trio
import trio.testing

from titans3.fuse.errors import FsError, Unavailable
from titans3.fuse.fs import FileSystem
from titans3.fuse.inodes import ROOT_INODE
from titans3.fuse.options import MountOptions
from titans3.fuse.paths import Namespace

from .membackend import MemBackend


class GatedBackend(MemBackend):
    """File PUTs wait for ``gate`` (a commit in flight); ``fail`` makes them fail."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = trio.Event()
        self.fail = 0
        self.in_flight = 0

    async def put(self, key, body, size, meta):  # type: ignore[no-untyped-def]
        if key.endswith("/"):  # directory markers (mkdir) are not held
            return await super().put(key, body, size, meta)
        self.in_flight += 1
        try:
            await self.gate.wait()
            if self.fail:
                self.fail -= 1
                raise Unavailable("drives gone")
            return await super().put(key, body, size, meta)
        finally:
            self.in_flight -= 1


def make(tmp_path, **kw) -> tuple[FileSystem, GatedBackend]:
    be = GatedBackend()
    opts = MountOptions(staging_dir=str(tmp_path), close_async_max=1 << 20, **kw)
    return FileSystem(be, Namespace("b"), opts), be


async def write_file(fs: FileSystem, name: bytes, data: bytes) -> int:
    fh, node, _ = await fs.create(ROOT_INODE, name, 0o644, os.O_WRONLY, 0, 0)
    await fs.write(fh, 0, data)
    await fs.flush(fh)  # close(2)
    await fs.release(fh)
    return node.ino


def run(fn):
    def wrapper(tmp_path):
        fs, be = make(tmp_path)

        async def main() -> None:
            async with trio.open_nursery() as n:
                fs.nursery = n
                await fn(fs, be)
                be.gate.set()
                await fs.commit_all()
                n.cancel_scope.cancel()

        trio.run(main)

    wrapper.__name__ = fn.__name__
    return wrapper


@run
async def test_close_returns_before_the_commit_and_this_mount_sees_the_file(fs, be):
    ino = await write_file(fs, b"a", b"hello")
    await trio.testing.wait_all_tasks_blocked()
    assert be.in_flight == 1 and "a" not in be.objects  # not in S3 yet
    node, attrs = await fs.lookup(ROOT_INODE, b"a")
    assert node.ino == ino and attrs.size == 5
    calls = len(be.calls)
    fh, _ = await fs.open(ino, os.O_RDONLY)  # no HEAD: the open state is still here
    assert be.calls[calls:] == []
    got: list[bytes] = []

    async def read() -> None:  # waits for the file's lock, which the commit holds
        got.append(await fs.read(fh, 0, 10))

    async with trio.open_nursery() as n:
        n.start_soon(read)
        await trio.testing.wait_all_tasks_blocked()
        be.gate.set()
    assert got == [b"hello"]
    await fs.release(fh)
    await fs.background.drain()
    assert be.objects["a"][0] == b"hello" and ino not in fs.files


@run
async def test_fsync_waits_for_the_commit_in_flight(fs, be):
    fh, node, _ = await fs.create(ROOT_INODE, b"f", 0o644, os.O_WRONLY, 0, 0)
    await fs.write(fh, 0, b"one")
    await fs.flush(fh)
    await fs.write(fh, 3, b"two")
    done = trio.Event()

    async def fsync() -> None:
        await fs.fsync(fh)
        done.set()

    async with trio.open_nursery() as n:
        n.start_soon(fsync)
        await trio.testing.wait_all_tasks_blocked()
        assert not done.is_set()
        be.gate.set()
    assert be.objects["f"][0] == b"onetwo"  # durable when fsync returned
    await fs.release(fh)


@run
async def test_unlink_and_rename_wait_for_the_commit_in_flight(fs, be):
    await write_file(fs, b"gone", b"x")
    await write_file(fs, b"old", b"y")
    await trio.testing.wait_all_tasks_blocked()
    async with trio.open_nursery() as n:
        n.start_soon(fs.unlink, ROOT_INODE, b"gone")
        n.start_soon(fs.rename, ROOT_INODE, b"old", ROOT_INODE, b"new", 0)
        await trio.testing.wait_all_tasks_blocked()
        be.gate.set()
    await fs.background.drain()
    assert sorted(be.objects) == ["new"]  # the unlinked file did not come back
    assert be.objects["new"][0] == b"y"


@run
async def test_rmdir_of_a_directory_with_a_file_in_flight_is_enotempty(fs, be):
    d, _ = await fs.mkdir(ROOT_INODE, b"d", 0o755, 0, 0)
    fh, _, _ = await fs.create(d.ino, b"f", 0o644, os.O_WRONLY, 0, 0)
    await fs.flush(fh)
    await fs.release(fh)
    with pytest.raises(FsError) as e:
        await fs.rmdir(ROOT_INODE, b"d")
    assert e.value.errno == errno.ENOTEMPTY


@run
async def test_a_failed_background_commit_is_retried_and_fsync_reports_what_it_cannot_fix(fs, be):
    be.fail = 1
    be.gate.set()
    await write_file(fs, b"r", b"retry")
    with trio.fail_after(5):
        await fs.background.drain()  # failed once, retried after a pause
    assert be.objects["r"][0] == b"retry"
    be.fail = 10**6
    fs.background.retry_for = 60
    fh, node, _ = await fs.create(ROOT_INODE, b"s", 0o644, os.O_WRONLY, 0, 0)
    await fs.write(fh, 0, b"z")
    await fs.flush(fh)  # starts the commit
    with pytest.raises(FsError):
        await fs.fsync(fh)  # waits, then commits itself: the failure is reported
    be.fail = 0
    await fs.fsync(fh)
    assert be.objects["s"][0] == b"z"
    await fs.release(fh)
    fs.background.retry_for = 0  # a commit that keeps failing is given up and logged
    be.fail = 10**6
    await write_file(fs, b"t", b"lost")
    await fs.background.drain()
    assert fs.background.lost == 1 and "t" not in be.objects
    be.fail = 0


def test_large_files_and_the_default_options_commit_at_close(tmp_path):
    fs, be = make(tmp_path)
    be.gate.set()
    plain = FileSystem(be, Namespace("b"), MountOptions(staging_dir=str(tmp_path)))

    async def main() -> None:
        async with trio.open_nursery() as n:
            fs.nursery = plain.nursery = n
            await write_file(fs, b"big", os.urandom((1 << 20) + 1))
            assert "big" in be.objects  # over close_async_max: durable at close
            await write_file(plain, b"small", b"s")
            assert "small" in be.objects  # off by default
            n.cancel_scope.cancel()

    trio.run(main)
