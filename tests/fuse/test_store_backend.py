"""The daemon's FUSE backend over a real object store on LocalDrives: rename is the
object layer's metadata-only ``rename_object`` -- no fragment written or freed, the
file keeps its ETag, metadata and mtime, open handles follow it, a directory moves
key by key the same way, and a rename racing another host's waits for it."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
import trio

from titans3.drive.local import LocalDrive
from titans3.erasure.codec import ECScheme
from titans3.fuse import meta as M
from titans3.fuse import store_backend
from titans3.fuse.backend import body_of, read_all
from titans3.fuse.errors import FsError, NotFound, Unavailable
from titans3.fuse.fs import FileSystem
from titans3.fuse.inodes import ROOT_INODE
from titans3.fuse.options import MountOptions
from titans3.fuse.paths import Namespace
from titans3.fuse.store_backend import StoreBackend
from titans3.objects.store import ObjectStore
from titans3.ring.builder import Member, build_ring

MiB = 1 << 20


def fragment_files(root: Path) -> set[Path]:
    return {p for p in root.glob("drive-*/chunks/**/*") if p.is_file()}


def with_store(tmp_path: Path, fn, *, hosts: int = 1) -> None:
    """Run ``fn(backend, stores)`` over 6 LocalDrives (EC 4+2) in ``tmp_path``;
    ``hosts`` > 1 puts more ObjectStores over the same drives, as other hosts of
    one cluster see them (their own key locks, the same records)."""

    async def main() -> None:
        drives = [LocalDrive(tmp_path / f"drive-{i}") for i in range(6)]
        for d in drives:
            await d.open()
        ring = build_ring([Member(d.drive_id, "h") for d in drives], 6, partition_power=4)
        stores = [ObjectStore(drives, ring, ECScheme(4, 2, MiB)) for _ in range(hosts)]
        try:
            async with trio.open_nursery() as nursery:
                for s in stores:
                    await nursery.start(s.run)
                await stores[0].create_bucket("mnt")
                await fn(StoreBackend(stores[0], "mnt"), stores)
                nursery.cancel_scope.cancel()
        finally:
            for d in drives:
                await d.close()

    trio.run(main)


def test_a_rename_moves_no_data_and_keeps_etag_metadata_and_mtime(tmp_path):
    data = os.urandom(5 * MiB + 17)

    async def go(be: StoreBackend, stores) -> None:
        assert be.atomic_rename
        put = await be.put("dir/big.bin", body_of(data), len(data), {"x-mode": "644"})
        before = await be.head("dir/big.bin")
        frags = fragment_files(tmp_path)
        assert frags, "a 5 MiB object is not inline"
        moved = await be.rename("dir/big.bin", "other/moved.bin")
        assert fragment_files(tmp_path) == frags  # metadata only: nothing copied, nothing freed
        assert (moved.key, moved.size, moved.etag, moved.mtime_ns, moved.meta) == (
            "other/moved.bin", len(data), put.etag, before.mtime_ns, {"x-mode": "644"})
        assert await be.head("other/moved.bin") == moved
        assert await read_all(be.read("other/moved.bin", 0, len(data) - 1)) == data
        assert await read_all(be.read("other/moved.bin", MiB - 3, 2 * MiB + 4,
                                      etag=put.etag)) == data[MiB - 3:2 * MiB + 5]
        with pytest.raises(NotFound):
            await be.head("dir/big.bin")
        page = await be.list("", delimiter="")
        assert [e.key for e in page.entries] == ["other/moved.bin"]
        with pytest.raises(NotFound):
            await be.rename("dir/big.bin", "again.bin")
        cap, st = await be.statfs(), await stores[0].statfs()  # the API's statfs, k/(k+m) of it
        assert cap.total == st.usable_capacity == st.raw_capacity * 4 // 6
        # Free space is the shared filesystem's, which other processes change between the calls.
        assert 0 < cap.free <= cap.total and abs(cap.free - st.usable_free) < cap.total // 20

    with_store(tmp_path, go)


def test_a_rename_replaces_the_destination_and_frees_its_data(tmp_path):
    keep, old = os.urandom(3 * MiB), os.urandom(3 * MiB)

    async def go(be: StoreBackend, stores) -> None:
        await be.put("keep", body_of(keep), len(keep), {})
        only_keep = fragment_files(tmp_path)
        await be.put("dst", body_of(old), len(old), {})
        await be.rename("keep", "dst")
        assert await read_all(be.read("dst", 0, len(keep) - 1)) == keep
        with trio.fail_after(10):
            while fragment_files(tmp_path) != only_keep:  # the replaced version's purge
                await trio.sleep(0.05)

    with_store(tmp_path, go)


def test_the_filesystem_renames_files_and_directories_through_the_store(tmp_path):
    files = {f"src/sub/f{i}": os.urandom(MiB + i) for i in range(5)}

    async def go(be: StoreBackend, stores) -> None:
        staging = tmp_path / "staging"
        staging.mkdir()
        fs = FileSystem(be, Namespace("mnt"), MountOptions(staging_dir=str(staging)))
        async with trio.open_nursery() as nursery:
            fs.nursery = nursery
            for key, data in files.items():
                await be.put(key, body_of(data), len(data), M.encode(M.Attrs(
                    M.FILE, 0o100640, 0, 0, 1_000_000_000)))
            frags = fragment_files(tmp_path)
            src, _ = await fs.lookup(ROOT_INODE, b"src")
            sub, _ = await fs.lookup(src.ino, b"sub")
            f0, _ = await fs.lookup(sub.ino, b"f0")
            fh, _ = await fs.open(f0.ino, os.O_RDONLY)
            head = await fs.read(fh, 0, 100)
            # A file, open for reading, renamed: the handle reads on under the new name.
            await fs.rename(sub.ino, b"f0", src.ino, b"first", 0)
            assert head + await fs.read(fh, 100, 2 * MiB) == files["src/sub/f0"]
            await fs.release(fh)
            # A directory: every key below it, each one metadata-only.
            await fs.rename(ROOT_INODE, b"src", ROOT_INODE, b"dst", 0)
            assert fragment_files(tmp_path) == frags
            page = await be.list("", delimiter="")
            assert sorted(e.key for e in page.entries) == sorted(
                ["dst/first"] + [k.replace("src/", "dst/") for k in files if k != "src/sub/f0"])
            moved = await be.head("dst/sub/f3")
            assert M.decode("dst/sub/f3", moved.meta, size=moved.size, mtime_ns=moved.mtime_ns,
                            etag=moved.etag, defaults=M.Defaults()).mode == 0o100640
            with pytest.raises(FsError) as e:
                await fs.lookup(ROOT_INODE, b"src")
            assert e.value.errno == errno.ENOENT
            # The keys renamed away stay as hidden anchors under src/: no directory.
            assert (await be.list("", delimiter="/")).prefixes == ["dst/"]
            fh = fs.opendir(ROOT_INODE)
            names: list[str] = []
            await fs.readdir(fh, 0, lambda name, node, attrs, c: names.append(name) or True)
            fs.releasedir(fh)
            assert names == ["dst"]
            for key, data in files.items():
                new = "dst/first" if key == "src/sub/f0" else key.replace("src/", "dst/")
                assert await read_all(be.read(new, 0, len(data) - 1)) == data
            nursery.cancel_scope.cancel()

    with_store(tmp_path, go)


class PausedRenames:
    """``store``'s renames pause after their mark (the moment another host's
    operation on the key races them) until ``go_on`` is set; ``rearm`` for the next."""

    def __init__(self, store: ObjectStore) -> None:
        self.rearm()
        commit_reference = store.renamer._commit_reference

        async def slow(*args, **kw):
            self.held.set()
            await self.go_on.wait()
            return await commit_reference(*args, **kw)

        store.renamer._commit_reference = slow

    def rearm(self) -> None:
        self.held, self.go_on = trio.Event(), trio.Event()

    async def release_after(self, seconds: float) -> None:
        await trio.sleep(seconds)
        self.go_on.set()


def test_a_rename_racing_another_hosts_rename_of_the_same_file_waits_for_it(
        tmp_path, monkeypatch):
    data = os.urandom(2 * MiB)

    async def go(be: StoreBackend, stores) -> None:
        other = stores[1]
        await be.put("a", body_of(data), len(data), {})
        paused = PausedRenames(other)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(other.rename_object, "mnt", "a", "theirs")
            await paused.held.wait()
            nursery.start_soon(paused.release_after, 0.3)
            with pytest.raises(NotFound):  # their rename won; ours finds no source
                await be.rename("a", "ours")
        assert await read_all(be.read("theirs", 0, len(data) - 1)) == data
        with pytest.raises(NotFound):
            await be.head("ours")

        # A rename that stays in flight longer than the wait: EIO with the reason.
        monkeypatch.setattr(store_backend, "RENAME_BUSY_WAIT", 0.3)
        paused.rearm()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(other.rename_object, "mnt", "theirs", "b")
            await paused.held.wait()
            with pytest.raises(Unavailable) as e:
                await be.rename("theirs", "ours")
            assert e.value.errno == errno.EIO and "another host" in e.value.reason
            paused.go_on.set()
        assert await read_all(be.read("b", 0, len(data) - 1)) == data

    with_store(tmp_path, go, hosts=2)


def test_a_metadata_write_racing_another_hosts_rename_waits_for_it(tmp_path, monkeypatch):
    data = os.urandom(2 * MiB)
    meta = M.encode(M.Attrs(M.FILE, 0o100600, 0, 0, 1_000_000_000))

    async def go(be: StoreBackend, stores) -> None:
        other = stores[1]
        await be.put("a", body_of(data), len(data), {})
        paused = PausedRenames(other)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(other.rename_object, "mnt", "a", "theirs")
            await paused.held.wait()
            nursery.start_soon(paused.release_after, 0.3)
            with pytest.raises(NotFound):  # chmod of a file renamed away: ENOENT, not EIO
                await be.copy("a", "a", meta)
        e = await be.head("theirs")
        assert e.meta == {} and await read_all(be.read("theirs", 0, len(data) - 1)) == data

        # The rename is done before the write: it lands on the key's current version.
        e = await be.copy("theirs", "theirs", meta)
        assert (await be.head("theirs")).meta == meta

        # A rename that stays in flight longer than the wait: EIO with the reason.
        monkeypatch.setattr(store_backend, "RENAME_BUSY_WAIT", 0.3)
        paused.rearm()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(other.rename_object, "mnt", "theirs", "b")
            await paused.held.wait()
            with pytest.raises(Unavailable) as err:
                await be.copy("theirs", "theirs", {})
            assert err.value.errno == errno.EIO and "another host" in err.value.reason
            paused.go_on.set()
        assert (await be.head("b")).meta == meta

    with_store(tmp_path, go, hosts=2)


def test_a_file_written_behind_completes_with_its_final_metadata_and_no_extra_version(
        tmp_path):
    part = 5 * MiB
    data = os.urandom(2 * part + 3)

    async def go(be: StoreBackend, stores) -> None:
        staging = tmp_path / "staging"
        staging.mkdir()
        fs = FileSystem(be, Namespace("mnt"), MountOptions(staging_dir=str(staging),
                                                           part_size=part, write_behind=True))
        async with trio.open_nursery() as nursery:
            fs.nursery = nursery
            fh, node, _ = await fs.create(ROOT_INODE, b"big", 0o644, os.O_WRONLY, 3, 4)
            for off in range(0, len(data), 1 * MiB):
                await fs.write(fh, off, data[off:off + MiB])
                await trio.sleep(0.01)  # the kernel's next request: parts go meanwhile
            of = fs.files[node.ino]
            assert of.behind is not None and of.behind.parts_behind >= 1
            await fs.setattr(node.ino, mode=0o600, mtime_ns=7_000_000_000)
            await fs.flush(fh)
            await fs.release(fh)
            nursery.cancel_scope.cancel()
        e = await be.head("big")
        attrs = M.decode("big", e.meta, size=e.size, mtime_ns=e.mtime_ns, etag=e.etag,
                         defaults=MountOptions().defaults)
        assert (attrs.mode & 0o7777, attrs.uid, attrs.gid, attrs.mtime_ns) == (0o600, 3, 4,
                                                                                7_000_000_000)
        assert e.etag.endswith("-3")  # one multipart upload ...
        assert stores[0].meta_updates.reissued == 0  # ... and no metadata version after it
        assert await read_all(be.read("big", 0, len(data) - 1)) == data

    with_store(tmp_path, go)


def test_chmod_chown_utimens_and_setxattr_write_metadata_without_moving_data(tmp_path):
    data = os.urandom(6 * MiB + 1)

    async def go(be: StoreBackend, stores) -> None:
        staging = tmp_path / "staging"
        staging.mkdir()
        fs = FileSystem(be, Namespace("mnt"), MountOptions(staging_dir=str(staging)))
        put = await be.put("f.bin", body_of(data), len(data),
                           M.encode(M.Attrs(M.FILE, 0o100644, 0, 0, 1_000_000_000)))
        frags = fragment_files(tmp_path)
        assert frags, "a 6 MiB object is not inline"
        async with trio.open_nursery() as nursery:
            fs.nursery = nursery
            node, _ = await fs.lookup(ROOT_INODE, b"f.bin")
            await fs.setattr(node.ino, mode=0o600, uid=7, gid=8, mtime_ns=2_000_000_000)
            await fs.setxattr(node.ino, b"user.tag", b"v")
            nursery.cancel_scope.cancel()
        assert fragment_files(tmp_path) == frags  # no fragment written, none freed
        assert stores[0].meta_updates.reissued == 2 and stores[0].meta_updates.copied == 0
        e = await be.head("f.bin")
        attrs = M.decode("f.bin", e.meta, size=e.size, mtime_ns=e.mtime_ns, etag=e.etag,
                         defaults=MountOptions().defaults)
        assert (attrs.mode & 0o7777, attrs.uid, attrs.gid, attrs.mtime_ns) == (0o600, 7, 8,
                                                                                2_000_000_000)
        assert attrs.xattrs == {b"user.tag": b"v"} and e.etag == put.etag
        assert await read_all(be.read("f.bin", 0, len(data) - 1)) == data

    with_store(tmp_path, go)
