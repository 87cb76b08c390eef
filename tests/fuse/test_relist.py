"""An expired snapshot of a small directory is renewed with one listing
(titans3/fuse/relist.py): creating many files, or stat of every file, costs
no request each, and a change through S3 is still seen within the timeout."""

from __future__ import annotations

import errno
import os
import time

import pytest
import trio

from titans3.fuse import meta as M
from titans3.fuse.errors import FsError
from titans3.fuse.fs import FileSystem
from titans3.fuse.inodes import ROOT_INODE
from titans3.fuse.options import MountOptions
from titans3.fuse.paths import Namespace

from .membackend import MemBackend

TTL = 0.2


def test_creates_in_a_directory_whose_snapshot_expired_cost_one_listing(tmp_path):
    be = MemBackend()
    fs = FileSystem(be, Namespace("b"), MountOptions(staging_dir=str(tmp_path),
                                                     entry_timeout=TTL, attr_timeout=TTL))

    async def create(parent: int, name: bytes) -> None:
        fh, _, _ = await fs.create(parent, name, 0o644, os.O_WRONLY, 0, 0)
        await fs.write(fh, 0, b"x")
        await fs.release(fh)

    async def main() -> None:
        async with trio.open_nursery() as n:
            fs.nursery = n
            d, _ = await fs.mkdir(ROOT_INODE, b"d", 0o755, 0, 0)
            await create(d.ino, b"a")
            await trio.sleep(TTL * 1.5)  # the empty snapshot of mkdir has expired
            calls = len(be.calls)
            for i in range(20):
                await create(d.ino, f"f{i}".encode())
            lookups = [c for c in be.calls[calls:] if c.startswith(("LIST", "HEAD"))]
            assert lookups == ["LIST d/"], lookups  # one listing, no probe per name
            # stat of every file after the attribute timeout: one listing, no HEAD each.
            await trio.sleep(TTL * 1.5)
            calls = len(be.calls)
            for i in range(20):
                node, attrs = await fs.lookup(d.ino, f"f{i}".encode())
                assert attrs.size == 1
            lookups = [c for c in be.calls[calls:] if c.startswith(("LIST", "HEAD"))]
            assert lookups == ["LIST d/"], lookups
            # A file written through S3 shows once the snapshot expires again.
            be._set("d/s3", b"y", M.encode(M.Attrs(M.FILE, 0o100644, 0, 0, 1)))
            deadline = time.monotonic() + TTL * 1.5 + 1
            while True:
                try:
                    node, _ = await fs.lookup(d.ino, b"s3")
                    break
                except Exception:
                    assert time.monotonic() < deadline, "not seen within the entry timeout"
                    await trio.sleep(0.02)
            assert fs.attrs(node).size == 1
            # ... and so is a file deleted through S3.
            await be.delete("d/f0")
            await trio.sleep(TTL * 1.5)
            with pytest.raises(FsError) as e:
                await fs.lookup(d.ino, b"f0")
            assert e.value.errno == errno.ENOENT
            n.cancel_scope.cancel()

    trio.run(main)
