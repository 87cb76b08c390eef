"""Write-behind (titans3/fuse/writebehind.py) over the in-memory backend: a file
written from its start uploads finished parts while it is written, the commit
uploads only the rest and leaves the file as closed (bytes and final metadata);
a rewrite into the uploaded range, a truncate, a failed part or a rename falls
back to the plain commit with the right contents and no upload left behind."""

from __future__ import annotations

import os

import trio
import trio.testing

from titans3.fuse import meta as M
from titans3.fuse.errors import Unavailable
from titans3.fuse.fs import FileSystem
from titans3.fuse.inodes import ROOT_INODE
from titans3.fuse.options import MountOptions
from titans3.fuse.paths import Namespace

from .membackend import MemBackend

MiB = 1 << 20
PART = 5 << 20  # the smallest part S3 allows


def run(tmp_path, body, be: MemBackend | None = None) -> MemBackend:
    be = be or MemBackend()
    fs = FileSystem(be, Namespace("b"), MountOptions(staging_dir=str(tmp_path), part_size=PART,
                                                       write_behind=True))

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            fs.nursery = nursery
            await body(fs, be)
            nursery.cancel_scope.cancel()

    trio.run(main)
    return be


async def write_all(fs: FileSystem, fh: int, data: bytes, at: int = 0, step: int = 128 << 10
                    ) -> None:
    for off in range(0, len(data), step):
        await fs.write(fh, at + off, data[off:off + step])
        await trio.sleep(0)  # the kernel's next request: background parts get to run


def parts_before(be: MemBackend, key: str, mark: str) -> int:
    i = be.calls.index(mark) if mark in be.calls else len(be.calls)
    return sum(c.startswith(f"PART {key} ") for c in be.calls[:i])


def test_a_sequential_writer_uploads_parts_while_writing_and_close_commits_the_rest(tmp_path):
    data = os.urandom(3 * PART + 123)

    async def go(fs: FileSystem, be: MemBackend) -> None:
        fh, node, _ = await fs.create(ROOT_INODE, b"big", 0o644, os.O_WRONLY, 1, 2)
        await write_all(fs, fh, data)
        await trio.testing.wait_all_tasks_blocked()
        done_behind = sum(c.startswith("PART big ") for c in be.calls)
        assert done_behind == 3, be.calls  # every full part, before any close
        assert "big" not in be.objects  # nothing visible before the commit
        await fs.setattr(node.ino, mode=0o600, mtime_ns=5_000_000_000)
        be.calls.append("flush")
        await fs.flush(fh)
        await fs.release(fh)
        assert sum(c.startswith("PART big ") for c in be.calls) == 4  # the tail only
        got, meta, _ = be.objects["big"]
        assert got == data
        attrs = M.decode("big", meta, size=len(got), mtime_ns=1, etag="", defaults=M.Defaults())
        assert (attrs.mode & 0o7777, attrs.mtime_ns) == (0o600, 5_000_000_000)
        assert "COPY big big" in be.calls  # the final metadata, over the upload's first
        assert be.uploads == {}

    run(tmp_path, go)


def test_a_backend_whose_complete_sets_metadata_needs_no_copy_after_it(tmp_path):
    data = os.urandom(2 * PART + 1)
    be = MemBackend()
    be.complete_sets_meta = True

    async def go(fs: FileSystem, be: MemBackend) -> None:
        fh, node, _ = await fs.create(ROOT_INODE, b"big", 0o644, os.O_WRONLY, 0, 0)
        await write_all(fs, fh, data)
        await fs.setattr(node.ino, mtime_ns=9_000_000_000)
        await fs.flush(fh)
        await fs.release(fh)
        got, meta, _ = be.objects["big"]
        assert got == data and "COMPLETE big with meta" in be.calls
        assert not any(c.startswith("COPY") for c in be.calls)
        assert M.decode("big", meta, size=len(got), mtime_ns=1, etag="",
                        defaults=M.Defaults()).mtime_ns == 9_000_000_000

    run(tmp_path, go, be)


def test_a_rewrite_into_uploaded_parts_falls_back_to_a_plain_commit(tmp_path):
    data = bytearray(os.urandom(3 * PART))

    async def go(fs: FileSystem, be: MemBackend) -> None:
        fh, _, _ = await fs.create(ROOT_INODE, b"f", 0o644, os.O_WRONLY, 0, 0)
        await write_all(fs, fh, bytes(data))
        await trio.testing.wait_all_tasks_blocked()
        assert parts_before(be, "f", "end") >= 2
        await fs.write(fh, 100, b"x" * 1000)  # into part 1, already uploaded
        data[100:1100] = b"x" * 1000
        await fs.flush(fh)
        await fs.release(fh)
        await trio.testing.wait_all_tasks_blocked()
        assert be.objects["f"][0] == bytes(data)
        assert "PUT f" in be.calls and be.uploads == {}  # the upload was aborted

    run(tmp_path, go)


def test_a_truncate_below_the_uploaded_parts_falls_back(tmp_path):
    data = os.urandom(3 * PART)

    async def go(fs: FileSystem, be: MemBackend) -> None:
        fh, node, _ = await fs.create(ROOT_INODE, b"f", 0o644, os.O_WRONLY, 0, 0)
        await write_all(fs, fh, data)
        await trio.testing.wait_all_tasks_blocked()
        await fs.setattr(node.ino, size=PART + 7)
        await fs.flush(fh)
        await fs.release(fh)
        await trio.testing.wait_all_tasks_blocked()
        assert be.objects["f"][0] == data[:PART + 7] and be.uploads == {}

    run(tmp_path, go)


def test_a_failed_part_behind_the_writer_makes_the_commit_upload_the_file_whole(tmp_path):
    data = os.urandom(2 * PART + 5)
    be = MemBackend()
    upload_part = be.upload_part
    failures = [1]

    async def flaky(key, upload_id, number, body, size):
        if failures:
            failures.pop()
            raise Unavailable("PART: drive gone")
        return await upload_part(key, upload_id, number, body, size)

    be.upload_part = flaky  # type: ignore[method-assign]

    async def go(fs: FileSystem, be: MemBackend) -> None:
        fh, _, _ = await fs.create(ROOT_INODE, b"f", 0o644, os.O_WRONLY, 0, 0)
        await write_all(fs, fh, data)
        await trio.testing.wait_all_tasks_blocked()
        await fs.flush(fh)
        await fs.release(fh)
        await trio.testing.wait_all_tasks_blocked()
        assert be.objects["f"][0] == data and "PUT f" in be.calls and be.uploads == {}

    run(tmp_path, go, be)


def test_a_file_renamed_before_its_commit_is_committed_whole_under_the_new_name(tmp_path):
    data = os.urandom(2 * PART + 5)

    async def go(fs: FileSystem, be: MemBackend) -> None:
        fh, _, _ = await fs.create(ROOT_INODE, b"a", 0o644, os.O_WRONLY, 0, 0)
        await write_all(fs, fh, data)
        await trio.testing.wait_all_tasks_blocked()
        await fs.rename(ROOT_INODE, b"a", ROOT_INODE, b"b", 0)
        await fs.flush(fh)
        await fs.release(fh)
        await trio.testing.wait_all_tasks_blocked()
        assert be.objects["b"][0] == data and "a" not in be.objects and be.uploads == {}

    run(tmp_path, go)


def test_small_files_and_appends_to_an_old_version_keep_the_plain_commit(tmp_path):
    async def go(fs: FileSystem, be: MemBackend) -> None:
        fh, _, _ = await fs.create(ROOT_INODE, b"s", 0o644, os.O_WRONLY, 0, 0)
        await write_all(fs, fh, os.urandom(PART - 1))
        await fs.flush(fh)
        await fs.release(fh)
        assert "PUT s" in be.calls and not any(c.startswith("PART") for c in be.calls)

    run(tmp_path, go)


def test_parts_cancelled_by_an_unmount_make_the_last_commit_upload_the_file_whole(tmp_path):
    data = os.urandom(3 * PART)
    be = MemBackend()
    upload_part = be.upload_part

    async def stuck(key, upload_id, number, body, size):
        if number == 2:
            await trio.sleep_forever()
        return await upload_part(key, upload_id, number, body, size)

    be.upload_part = stuck  # type: ignore[method-assign]
    fs = FileSystem(be, Namespace("b"), MountOptions(staging_dir=str(tmp_path), part_size=PART,
                                                     write_behind=True))

    async def main() -> None:
        async with trio.open_nursery() as nursery:  # the mount's, gone at unmount
            fs.nursery = nursery
            fh, _, _ = await fs.create(ROOT_INODE, b"f", 0o644, os.O_WRONLY, 0, 0)
            await write_all(fs, fh, data)
            await trio.testing.wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()
        await fs.commit_all()  # as Mount.run does after the nursery closed
        assert be.objects["f"][0] == data and "PUT f" in be.calls

    trio.run(main)


def test_without_the_option_a_big_file_is_one_put_at_close(tmp_path):
    data = os.urandom(2 * PART + 1)
    be = MemBackend()
    fs = FileSystem(be, Namespace("b"), MountOptions(staging_dir=str(tmp_path), part_size=PART))

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            fs.nursery = nursery
            fh, _, _ = await fs.create(ROOT_INODE, b"f", 0o644, os.O_WRONLY, 0, 0)
            await write_all(fs, fh, data)
            await trio.testing.wait_all_tasks_blocked()
            assert not any(c.startswith("PART") for c in be.calls)
            await fs.flush(fh)
            await fs.release(fh)
            nursery.cancel_scope.cancel()

    trio.run(main)
    assert be.objects["f"][0] == data and "PUT f" in be.calls
