"""The sans-I/O modules of titans3.fuse: paths, metadata, inodes, cookies, extents,
read-ahead and commit plans."""

from __future__ import annotations

import errno
import stat

import pytest
from hypothesis import given
from hypothesis import strategies as st

from titans3.fuse import meta as M
from titans3.fuse import plan
from titans3.fuse.backend import Entry
from titans3.fuse.cookies import CookieLog
from titans3.fuse.errors import FsError
from titans3.fuse.extents import BASE, DIRTY, ZERO, Extents, Layout
from titans3.fuse.inodes import ROOT_INODE, InodeTable
from titans3.fuse.listing import items_of
from titans3.fuse.paths import Namespace, check_name, valid_component
from titans3.fuse.readahead import ReadAhead


def test_namespace_maps_paths_to_keys_and_refuses_long_ones():
    ns = Namespace.parse("bkt/some/prefix/")
    assert (ns.bucket, ns.prefix) == ("bkt", "some/prefix/")
    assert ns.key("a/b") == "some/prefix/a/b"
    assert ns.dir_prefix("") == "some/prefix/" and ns.dir_prefix("a") == "some/prefix/a/"
    assert ns.path_of("some/prefix/a/b/") == "a/b"
    assert ns.path_of("some/prefix/a//b") is None and ns.path_of("other/x") is None
    with pytest.raises(FsError) as e:
        Namespace.parse("bkt").key("x" * 1025)
    assert e.value.errno == errno.ENAMETOOLONG
    with pytest.raises(ValueError):
        Namespace.parse("bkt/a/../b")


def test_names_from_the_kernel():
    assert check_name("é.txt".encode()) == "é.txt"
    for raw, err in ((b"x" * 256, errno.ENAMETOOLONG), (b"\xff", errno.EINVAL), (b"..", errno.EINVAL)):
        with pytest.raises(FsError) as e:
            check_name(raw)
        assert e.value.errno == err
    assert not valid_component("a\x00b") and not valid_component("") and valid_component("\x01")


def test_s3fs_metadata_round_trips():
    d = M.Defaults(uid=7, gid=8)
    a = M.Attrs(M.FILE, stat.S_IFREG | 0o640, 1000, 1001, 1_500_000_000_123_000_000,
                xattrs={b"user.k": b"\x00v"})
    enc = M.encode(a)
    assert enc[M.MODE] == str(0o100640) and enc[M.MTIME] == "1500000000.123000000"
    back = M.decode("k", enc, size=5, mtime_ns=9, etag="e", defaults=d)
    assert (back.kind, back.mode, back.uid, back.gid, back.mtime_ns, back.xattrs) == (
        M.FILE, a.mode, 1000, 1001, a.mtime_ns, a.xattrs)
    # What s3fs writes: integer mtime, mode with type bits; symlinks by mode.
    s3fs = M.decode("l", {M.MODE: "41471", M.MTIME: "1600000000"}, size=3, mtime_ns=1,
                    etag="", defaults=d)
    assert s3fs.kind == M.LINK and s3fs.mtime_ns == 1_600_000_000 * 10**9 and s3fs.uid == 7
    foreign = M.decode("dir/", None, size=0, mtime_ns=5, etag="", defaults=d)
    assert foreign.kind == M.DIR and foreign.mode == stat.S_IFDIR | 0o755
    assert M.decode("f", {M.MODE: "420"}, size=0, mtime_ns=1, etag="", defaults=d).mode == \
        stat.S_IFREG | 0o644
    assert M.decode_xattrs("not json") == {}


def test_lookup_counts_and_forget_drop_nodes_exactly():
    t = InodeTable(M.implicit_dir(M.Defaults()))
    n = t.bind("a", M.FILE)
    t.ref(n, 3)
    t.forget(n.ino, 2)
    assert t.get(n.ino) is n
    t.opened(n)
    t.forget(n.ino, 1)
    assert t.get(n.ino) is n  # open: kept
    t.closed(n)
    with pytest.raises(FsError) as e:
        t.get(n.ino)
    assert e.value.errno == errno.ESTALE
    t.forget(ROOT_INODE, 100)
    assert t.get(ROOT_INODE).path == ""


def test_rename_moves_descendants_and_detaches_the_target():
    t = InodeTable(M.implicit_dir(M.Defaults()))
    d, f, g = t.bind("d", M.DIR), t.bind("d/x/f", M.FILE), t.bind("e", M.FILE)
    for n in (d, f, g):
        t.ref(n)
    t.move("d", "e")
    assert t.at("e") is d and t.at("e/x/f") is f and f.path == "e/x/f"
    assert g.path is None and t.get(g.ino) is g  # still known to the kernel
    assert t.bind("e/x/f", M.DIR) is not f  # a kind change is a new inode


def test_cookies_resolve_every_handed_out_name_even_after_spilling():
    log = CookieLog(spill_bytes=1024)
    cookies = [(log.cookie(f"name-{i:06d}/"), f"name-{i:06d}/") for i in range(5000)]
    assert all(log.name(c) == n for c, n in cookies[::97])
    assert all(c > 0 for c, _ in cookies)
    with pytest.raises(FsError):
        log.name(log.size + 10)
    log.close()


@given(st.lists(st.tuples(st.sampled_from("wt"), st.integers(0, 200), st.integers(0, 60)),
                max_size=30), st.integers(0, 150))
def test_layout_sources_match_a_byte_model(ops, base):
    lay = Layout(base)
    model = ["B"] * base
    for op, a, n in ops:
        if op == "w":
            lay.write(a, n)
            if n:
                model += ["Z"] * max(0, a + n - len(model))
                model[a:a + n] = ["D"] * n
        else:
            lay.truncate(a)
            model = model[:a] + ["Z"] * max(0, a - len(model))
    got = []
    for s, e, src in lay.pieces(0, lay.size):
        got += [{DIRTY: "D", BASE: "B", ZERO: "Z"}[src]] * (e - s)
    assert got == model and lay.size == len(model)


def test_extents_merge_adjacent_and_clip():
    x = Extents()
    x.add(10, 20)
    x.add(20, 30)
    x.add(5, 6)
    assert list(x) == [(5, 6), (10, 30)]
    x.clip(12)
    assert list(x) == [(5, 6), (10, 12)] and x.total() == 3
    assert x.overlaps(11, 50) and not x.overlaps(6, 10)


def test_read_ahead_grows_for_sequential_readers_and_collapses_for_random_ones():
    ra = ReadAhead(block=1 << 20, max_blocks=4)
    p = ra.plan(0, 128 << 10, 100 << 20)
    assert list(p.blocks) == [0] and list(p.prefetch) == [1]
    for blk in (1, 2, 3):
        p = ra.plan(blk << 20, 128 << 10, 100 << 20)
    assert len(p.prefetch) == 4
    p = ra.plan(77 << 20, 4096, 100 << 20)
    assert p.direct == (77 << 20, (77 << 20) + 4096) and not p.blocks


def test_append_to_a_large_file_copies_every_unchanged_part():
    lay = Layout(200 << 20)
    lay.write(200 << 20, 1 << 20)
    part = plan.part_size_for(lay.size)
    parts = plan.parts(lay, part, can_copy=True)
    assert plan.use_multipart(lay, part, can_copy=True)
    assert [p.copy for p in parts] == [True] * 12 + [False]
    assert sum(p.end - p.start for p in parts) == lay.size
    assert plan.part_size_for(2 << 40) * plan.MAX_PARTS >= 2 << 40
    small = Layout(0)
    small.write(0, 100)
    assert not plan.use_multipart(small, part, can_copy=False)


def test_listing_items_hide_markers_bad_names_and_what_the_resume_point_covers():
    es = [Entry(k, 1, "e", 1) for k in ("d/", "d/a", "d/a-1", "d/x_$folder$", "d/b")]
    items = items_of("d/", es, ["d/a/", "d/c/"], "a")
    assert [i.rest for i in items] == ["a-1", "a/", "b", "c/"]
    assert [i.rest for i in items_of("d/", es, ["d/a/"], "a/")] == ["b"]
