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
