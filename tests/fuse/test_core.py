"""The filesystem core over an in-memory backend: readdir cookies under concurrent
change, 100,000-entry directories page by page, lookup counts, commits that reuse
unchanged parts."""

from __future__ import annotations

import errno
import os

import pytest
import trio

from titans3.fuse import meta as M
from titans3.fuse.errors import FsError
from titans3.fuse.fs import FileSystem
from titans3.fuse.inodes import ROOT_INODE
from titans3.fuse.options import MountOptions
from titans3.fuse.paths import Namespace

from .membackend import MemBackend


def make(tmp_path, **kw) -> tuple[FileSystem, MemBackend]:
    be = MemBackend()
    return FileSystem(be, Namespace("b"), MountOptions(staging_dir=str(tmp_path), **kw)), be


def listing(fs: FileSystem, ino: int, budget: int = 10**9, *, between=None) -> list[str]:
    """readdir like the kernel: batches of ``budget`` entries, resuming by cookie."""
    async def go() -> list[str]:
        fh = fs.opendir(ino)
        names: list[str] = []
        cookie = 0
        while True:
            got: list[tuple[str, int]] = []

            def emit(name, node, attrs, c, got=got):
                if len(got) == budget:
                    return False
                got.append((name, c))
                return True

            await fs.readdir(fh, cookie, emit)
            if not got:
                break
            names += [n for n, _ in got]
            cookie = got[-1][1]
            if between is not None:
                await between(len(names))
        fs.releasedir(fh)
        return names

    return trio.run(go)


def seed(be: MemBackend, keys) -> None:
    for k in keys:
        be._set(k, b"x", M.encode(M.Attrs(M.FILE, 0o100644, 0, 0, 1)))


def test_readdir_cookies_survive_concurrent_create_and_unlink(tmp_path):
    fs, be = make(tmp_path)
    seed(be, [f"d/f{i:04d}" for i in range(0, 600, 2)])
    d = trio.run(fs.lookup, ROOT_INODE, b"d")[0]
    stable = {f"f{i:04d}" for i in range(0, 600, 4)}  # never touched below

    async def churn(n: int) -> None:
        for i in range(n, n + 40):
            k = f"d/f{(i * 7) % 600:04d}"
            if k[2:] in stable:
                continue
            if k in be.objects:
                await be.delete(k)
            else:
                seed(be, [k])

    names = listing(fs, d.ino, budget=17, between=churn)
    assert len(names) == len(set(names)), "an entry was reported twice"
    assert stable <= set(names), "an entry present throughout was skipped"
    assert names == sorted(names)


def test_a_100000_entry_directory_is_listed_page_by_page(tmp_path):
    fs, be = make(tmp_path)
    seed(be, [f"big/{i:06d}" for i in range(100_000)])
    big = trio.run(fs.lookup, ROOT_INODE, b"big")[0]
    seen = 0
    peak = 0

    async def watch(n):
        nonlocal seen, peak
        seen = n
        peak = max(peak, max(len(dh.pending) for dh in fs.lister.dirs.values()))

    names = listing(fs, big.ino, budget=500, between=watch)
    assert len(names) == 100_000 and names[0] == "000000" and names[-1] == "099999"
    assert peak <= 1000  # never more than one backend page held
    assert sum(1 for c in be.calls if c.startswith("LIST big/")) >= 100  # paged


def test_readdir_counts_lookups_and_forget_releases_them(tmp_path):
    fs, be = make(tmp_path)
    seed(be, ["a", "b"])
    listing(fs, ROOT_INODE)
    a = fs.inodes.at("a")
    assert a is not None and a.lookups == 1
    node, _ = trio.run(fs.lookup, ROOT_INODE, b"a")
    assert node is a and a.lookups == 2
    fs.forget(a.ino, 2)
    with pytest.raises(FsError):
        fs.node(a.ino)


def test_a_complete_listing_answers_negative_lookups_without_requests(tmp_path):
    fs, be = make(tmp_path)
    seed(be, ["d/x"])
    d = trio.run(fs.lookup, ROOT_INODE, b"d")[0]
    listing(fs, d.ino)
    before = len(be.calls)
    with pytest.raises(FsError) as e:
        trio.run(fs.lookup, d.ino, b"missing")
    assert e.value.errno == errno.ENOENT and len(be.calls) == before


def test_appending_to_a_large_file_reuses_unchanged_parts_server_side(tmp_path):
    fs, be = make(tmp_path, part_size=5 << 20)
    data = os.urandom(40 << 20)
    be._set("big", data, {})

    async def go():
        async with trio.open_nursery() as n:
            fs.nursery = n
            node, _ = await fs.lookup(ROOT_INODE, b"big")
            fh, _ = await fs.open(node.ino, os.O_WRONLY)
            await fs.write(fh, len(data), b"tail" * 1000)
            await fs.release(fh)
            n.cancel_scope.cancel()

    trio.run(go)
    assert be.objects["big"][0] == data + b"tail" * 1000
    copies = [c for c in be.calls if c.startswith("COPYPART")]
    uploads = [c for c in be.calls if c.startswith("PART")]
    assert len(copies) == 8 and len(uploads) == 1


def test_rmdir_of_a_non_empty_directory_and_hard_links_fail_cleanly(tmp_path):
    fs, be = make(tmp_path)
    seed(be, ["d/x"])
    with pytest.raises(FsError) as e:
        trio.run(fs.rmdir, ROOT_INODE, b"d")
    assert e.value.errno == errno.ENOTEMPTY
    with pytest.raises(FsError) as e:
        fs.link()
    assert e.value.errno == errno.EPERM


def test_a_file_written_here_is_read_back_from_its_clean_copy_until_s3_changes_it(tmp_path):
    fs, be = make(tmp_path, attr_timeout=0, entry_timeout=0)
    data = os.urandom(3 << 20)

    async def read_all(ino: int) -> bytes:
        fh, _ = await fs.open(ino, os.O_RDONLY)
        out = b"".join([await fs.read(fh, off, 128 << 10) for off in range(0, len(data), 128 << 10)])
        await fs.release(fh)
        return out

    async def go():
        async with trio.open_nursery() as n:
            fs.nursery = n
            fh, node, _ = await fs.create(ROOT_INODE, b"f", 0o644, os.O_WRONLY, 0, 0)
            for off in range(0, len(data), 1 << 20):
                await fs.write(fh, off, data[off:off + (1 << 20)])
            await fs.release(fh)
            assert fs.area.clean.used == len(data) and fs.area.used == 0
            before = [c for c in be.calls if c.startswith("GET")]
            assert await read_all(node.ino) == data
            assert [c for c in be.calls if c.startswith("GET")] == before  # no GET
            # Changed through S3: the new version's bytes come from the backend.
            new = os.urandom(len(data))
            be._set("f", new, be.objects["f"][1])
            assert await read_all(node.ino) == new
            assert len([c for c in be.calls if c.startswith("GET")]) > len(before)
            n.cancel_scope.cancel()

    trio.run(go)


def test_clean_copies_give_way_to_dirty_data(tmp_path):
    fs, _ = make(tmp_path, write_back_max=4 << 20)

    async def go():
        async with trio.open_nursery() as n:
            fs.nursery = n
            for name in (b"a", b"b"):
                fh, _, _ = await fs.create(ROOT_INODE, name, 0o644, os.O_WRONLY, 0, 0)
                await fs.write(fh, 0, os.urandom(3 << 20))
                await fs.release(fh)
            assert len(fs.area.clean) == 1  # a's copy made room for b's
            fh, _, _ = await fs.create(ROOT_INODE, b"c", 0o644, os.O_WRONLY, 0, 0)
            await fs.write(fh, 0, os.urandom(2 << 20))
            assert fs.area.used + fs.area.clean.used <= 4 << 20
            await fs.release(fh)
            n.cancel_scope.cancel()

    trio.run(go)


def test_appending_to_a_file_written_here_reads_the_old_bytes_locally(tmp_path):
    fs, be = make(tmp_path)
    data = os.urandom(1 << 20)

    async def go():
        async with trio.open_nursery() as n:
            fs.nursery = n
            fh, node, _ = await fs.create(ROOT_INODE, b"log", 0o644, os.O_WRONLY, 0, 0)
            await fs.write(fh, 0, data)
            await fs.release(fh)
            fh, _ = await fs.open(node.ino, os.O_WRONLY)
            await fs.write(fh, len(data), b"more")
            await fs.release(fh)
            n.cancel_scope.cancel()

    trio.run(go)
    assert be.objects["log"][0] == data + b"more"
    assert not [c for c in be.calls if c.startswith("GET")]


class StalePrefixes(MemBackend):
    """A server whose delimiter listing still rolls up keys that are gone (TitanS3
    keeps a renamed object's source as a hidden anchor)."""

    stale = ("gone/",)

    async def list(self, prefix, *, delimiter="/", start_after="", limit=1000):
        page = await super().list(prefix, delimiter=delimiter, start_after=start_after,
                                  limit=limit)
        if delimiter and prefix == "":
            extra = [p for p in self.stale if p > start_after and p not in page.prefixes]
            page = type(page)(page.entries, sorted(page.prefixes + extra), page.truncated,
                              page.next_after)
        return page


def test_a_common_prefix_with_nothing_below_it_is_not_listed(tmp_path):
    be = StalePrefixes()
    fs = FileSystem(be, Namespace("b"), MountOptions(staging_dir=str(tmp_path)))
    seed(be, ["real/x"])
    assert listing(fs, ROOT_INODE) == ["real"]


class SlowCopies(MemBackend):
    async def copy(self, src, dst, meta):
        await trio.sleep(0.2)
        return await super().copy(src, dst, meta)


def test_an_open_while_batched_metadata_is_written_sees_the_new_mode(tmp_path):
    be = SlowCopies()
    fs = FileSystem(be, Namespace("b"), MountOptions(staging_dir=str(tmp_path)))

    async def go():
        async with trio.open_nursery() as n:
            fs.nursery = n
            fh, node, _ = await fs.create(ROOT_INODE, b"f", 0o644, os.O_WRONLY, 0, 0)
            await fs.write(fh, 0, b"x")
            await fs.release(fh)
            await fs.setattr(node.ino, mode=0o755)  # batched: written 50 ms later
            await trio.sleep(0.1)  # the write is in flight now
            fh, _ = await fs.open(node.ino, os.O_RDONLY)
            assert fs.attrs(node).mode & 0o777 == 0o755
            await fs.release(fh)
            assert (await fs.getattr(node.ino)).mode & 0o777 == 0o755
            n.cancel_scope.cancel()

    trio.run(go)
    assert int(be.objects["f"][1][M.MODE]) & 0o777 == 0o755


def test_chmod_of_a_directory_is_written_at_once_and_kept(tmp_path):
    fs, be = make(tmp_path)

    async def go():
        node, _ = await fs.mkdir(ROOT_INODE, b"d", 0o755, 0, 0)
        await fs.setattr(node.ino, mode=0o600)
        assert (await fs.getattr(node.ino)).mode & 0o777 == 0o600

    trio.run(go)
    assert int(be.objects["d/"][1][M.MODE]) & 0o777 == 0o600
