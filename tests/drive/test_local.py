"""LocalDrive (titans3/drive/local.py) on real temporary directories."""

from __future__ import annotations

import errno
import json
import os
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import lmdb
import pytest
import trio

from titans3.core.errors import DriveError, DriveOffline, FragmentCorrupt, FragmentMissing
from titans3.drive import direct, health, local
from titans3.drive import fragment as fmt
from titans3.drive import index as index_mod
from titans3.drive.local import INLINE_MAX, LocalDrive
from titans3.drive.protocol import Drive, DriveState
from titans3.drive.records import VersionRecord

B = b"bucket01"
O_DIRECT_FLAG = 0o40000


def run(fn: Callable[[LocalDrive], Awaitable[Any]], root: Path, **kw: Any) -> Any:
    """Open a drive at ``root``, run ``fn(drive)``, close it."""

    async def main() -> Any:
        async with LocalDrive(root, **kw) as d:
            return await fn(d)

    return trio.run(main)


def new_id() -> str:
    return uuid.uuid4().hex


def vid(n: int) -> str:
    return f"{n:032x}"


async def put_file(d: LocalDrive, payload: bytes, *, chunk: int = 300_000) -> str:
    data_id = new_id()
    w = await d.create_fragment(data_id, 0)
    for i in range(0, len(payload), chunk):
        await w.write(payload[i : i + chunk])
    assert await w.finish() == len(payload)
    return data_id


async def put_object(d: LocalDrive, key: bytes, payload: bytes, v: int, **rec: Any) -> str:
    data_id = await put_file(d, payload)
    record = VersionRecord(vid=vid(v), size=len(payload), data=data_id, **rec)
    await d.commit_version(B, key, record, promote=[data_id])
    return data_id


# ------------------------------------------------------------------ identity
def test_a_new_drive_writes_its_identity_and_layout(tmp_path: Path) -> None:
    root = tmp_path / "d"

    async def body(d: LocalDrive) -> str:
        assert isinstance(d, Drive)
        assert d.state is DriveState.ONLINE
        return d.drive_id

    drive_id = run(body, root, cluster_id="c1")
    ident = json.loads((root / "titans3-drive.json").read_text())
    assert ident["drive_id"] == drive_id and ident["cluster_id"] == "c1"
    assert ident["format_version"] == 1 and ident["created"]
    assert {p.name for p in root.iterdir()} >= {"index.lmdb", "chunks", "staging", "quarantine"}
    # Reopened without an id, it keeps its id.
    assert run(lambda d: _value(d.drive_id), root) == drive_id


async def _value(v: Any) -> Any:
    return v


def test_opening_a_drive_under_another_id_or_an_unformatted_dir_fails(tmp_path: Path) -> None:
    run(lambda d: _value(None), tmp_path / "d", drive_id="a" * 32)
    with pytest.raises(DriveError, match="holds drive"):
        run(lambda d: _value(None), tmp_path / "d", drive_id="b" * 32)
    with pytest.raises(DriveError, match="not a TitanS3 drive"):
        run(lambda d: _value(None), tmp_path / "blank", create=False)
    (tmp_path / "d" / "titans3-drive.json").unlink()
    with pytest.raises(DriveError, match="no identity"):
        run(lambda d: _value(None), tmp_path / "d")


# ------------------------------------------------------------------ data path
def test_fragments_round_trip_and_ranges_read_only_covering_blocks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    payload = os.urandom(10 * fmt.PAYLOAD + 321)
    reads: list[tuple[int, int]] = []
    real = direct.pread_into

    def spy(fd: int, buf: memoryview, offset: int) -> int:
        reads.append((offset, len(buf)))
        return real(fd, buf, offset)

    async def body(d: LocalDrive) -> None:
        data_id = await put_object(d, b"obj", payload, 1)
        assert await d.fragment_size(data_id) == len(payload)
        assert await d.read_fragment(data_id, 0, len(payload)) == payload
        monkeypatch.setattr(direct, "pread_into", spy)
        off, ln = 4 * fmt.PAYLOAD + 17, fmt.PAYLOAD + 100  # blocks 4..5 of 11
        assert await d.read_fragment(data_id, off, ln) == payload[off : off + ln]
        assert reads == [(fmt.HEADER_SIZE + 4 * fmt.BLOCK, 2 * fmt.BLOCK)]  # header cached
        assert await d.read_fragment(data_id, len(payload) - 5, 100) == payload[-5:]
        assert await d.read_fragment(data_id, len(payload) + 5, 100) == b""

    run(body, tmp_path / "d")


def test_many_small_writes_and_large_writes_mix_into_one_stream(tmp_path: Path) -> None:
    sizes = [1, 4096, 65519, 65521, 3, 300_000, 2 << 20, 17, 1 << 20, 5]
    payload = os.urandom(sum(sizes))

    async def body(d: LocalDrive) -> None:
        data_id = new_id()
        w = await d.create_fragment(data_id, 3)
        pos = 0
        for n in sizes:
            await w.write(memoryview(payload)[pos : pos + n])
            pos += n
        assert await w.finish() == len(payload)
        assert await w.finish() == len(payload)  # idempotent
        with pytest.raises(RuntimeError):
            await w.write(b"late")
        await d.commit_version(B, b"k", VersionRecord(vid=vid(1), data=data_id), promote=[data_id])
        assert await d.read_fragment(data_id, 0, 1 << 62) == payload
        header = fmt.unpack_header(d.chunk_path(data_id).read_bytes()[: fmt.HEADER_SIZE])
        assert (header.data_id, header.frag_index, header.logical_len) == (data_id, 3, len(payload))

    run(body, tmp_path / "d")


def test_a_fragment_written_whole_is_the_file_a_stream_writes_and_stays_staged(tmp_path: Path) -> None:
    parts = [os.urandom(262_224) for _ in range(4)] + [os.urandom(1000)]
    payload = b"".join(parts)

    async def body(d: LocalDrive) -> None:
        whole = new_id()
        assert await d.write_fragment(whole, 2, [memoryview(p) for p in parts]) == len(payload)
        streamed = await put_file(d, payload)
        assert (d.root / "staging" / whole).exists() and not d.chunk_path(whole).exists()
        with pytest.raises(FragmentMissing):
            await d.read_fragment(whole, 0, 10)  # staged: not visible
        a, b = ((d.root / "staging" / i).read_bytes() for i in (whole, streamed))
        assert a[fmt.HEADER_SIZE :] == b[fmt.HEADER_SIZE :]
        await d.commit_version(B, b"k", VersionRecord(vid=vid(1), data=whole), promote=[whole])
        assert await d.read_fragment(whole, 0, 1 << 62) == payload
        header = fmt.unpack_header(d.chunk_path(whole).read_bytes()[: fmt.HEADER_SIZE])
        assert (header.data_id, header.frag_index, header.logical_len) == (whole, 2, len(payload))

    run(body, tmp_path / "d")


def test_a_whole_fragment_write_that_fails_leaves_no_staging_file(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    def no_space(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    async def body(d: LocalDrive) -> None:
        monkeypatch.setattr(direct.os, "fdatasync", no_space)
        with pytest.raises(DriveError):
            await d.write_fragment(new_id(), 0, [os.urandom(100_000)])
        assert list((d.root / "staging").iterdir()) == []

    run(body, tmp_path / "d")


def test_writer_fds_carry_o_direct(tmp_path: Path) -> None:
    async def body(d: LocalDrive) -> None:
        w = await d.create_fragment(new_id(), 0)
        await w.write(os.urandom(3 << 20))  # forces real writes through the fd
        text = Path(f"/proc/self/fdinfo/{w.fileno()}").read_text()
        flags = int(next(x for x in text.splitlines() if x.startswith("flags:")).split()[1], 8)
        assert flags & O_DIRECT_FLAG
        await w.abort()

    run(body, tmp_path / "d")


def test_flipped_byte_quarantines_the_file_and_raises_corrupt(tmp_path: Path) -> None:
    payload = os.urandom(3 * fmt.PAYLOAD)

    async def body(d: LocalDrive) -> None:
        data_id = await put_object(d, b"obj", payload, 1)
        path = d.chunk_path(data_id)
        with open(path, "r+b") as f:
            f.seek(fmt.HEADER_SIZE + fmt.BLOCK + 5000)  # inside block 1
            b = f.read(1)
            f.seek(-1, os.SEEK_CUR)
            f.write(bytes([b[0] ^ 1]))
        # Block 0 is intact and still readable.
        assert await d.read_fragment(data_id, 0, 10) == payload[:10]
        with pytest.raises(FragmentCorrupt, match="block 1"):
            await d.read_fragment(data_id, 0, len(payload))
        assert not path.exists()
        q = list((tmp_path / "d" / "quarantine").iterdir())
        assert len(q) == 1 and q[0].name.startswith(data_id + ".")
        st = d.statistics()
        assert st.quarantined == 1 and st.errors == 1
        assert (await d.stat()).fragments_quarantined == 1
        with pytest.raises(FragmentMissing):
            await d.read_fragment(data_id, 0, 10)
        assert d.state is DriveState.ONLINE  # bitrot is not an offline drive

    run(body, tmp_path / "d")


def test_a_damaged_header_is_corrupt_too(tmp_path: Path) -> None:
    async def body(d: LocalDrive) -> None:
        data_id = await put_object(d, b"obj", b"hello", 1)
        with open(d.chunk_path(data_id), "r+b") as f:
            f.write(b"JUNK")
        with pytest.raises(FragmentCorrupt, match="magic"):
            await d.fragment_size(data_id)
        assert d.statistics().quarantined == 1

    run(body, tmp_path / "d")


def test_staged_data_is_never_visible(tmp_path: Path) -> None:
    async def body(d: LocalDrive) -> None:
        data_id = await put_file(d, b"x" * 100_000)
        assert (tmp_path / "d" / "staging" / data_id).exists()
        with pytest.raises(FragmentMissing):
            await d.read_fragment(data_id, 0, 10)
        with pytest.raises(FragmentMissing):
            await d.fragment_size(data_id)
        await d.put_inline(new_id(), b"small")
        assert await d.list_versions(B) == []
        # Leftovers are swept by age; a writer still open is left alone.
        busy = await d.create_fragment(new_id(), 0)
        assert await d.sweep_staging(max_age=0) == 1
        assert [p.name for p in (tmp_path / "d" / "staging").iterdir()] == [busy.data_id]
        await busy.abort()
        await busy.abort()  # idempotent
        assert list((tmp_path / "d" / "staging").iterdir()) == []

    run(body, tmp_path / "d")


def test_committing_unstaged_data_fails_without_a_record(tmp_path: Path) -> None:
    async def body(d: LocalDrive) -> None:
        rec = VersionRecord(vid=vid(1), data="ab" * 16)
        with pytest.raises(FragmentMissing):
            await d.commit_version(B, b"k", rec, promote=["ab" * 16])
        assert await d.read_versions(B, b"k") == []

    run(body, tmp_path / "d")


def test_promotion_is_durable_before_the_record_commits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "d"
    synced: list[tuple[str, bool, int]] = []
    real = index_mod.fsync_dir

    async def body(d: LocalDrive) -> None:
        data_id = await put_file(d, b"y" * 70_000)

        def spy(path: str) -> None:
            # Chunk already in place; the record not yet visible to readers.
            visible = d._index.read_sync(lambda txn: txn.get(B + b"k", db=d._index.db("versions")))
            synced.append((path, d.chunk_path(data_id).exists(), 0 if visible is None else 1))
            real(path)

        monkeypatch.setattr(index_mod, "fsync_dir", spy)
        await d.commit_version(B, b"k", VersionRecord(vid=vid(1), data=data_id), promote=[data_id])
        chunk_dir = str(d.chunk_path(data_id).parent)
        assert {p for p, _, _ in synced} >= {chunk_dir, str(root / "staging")}
        assert all(exists and not visible for _, exists, visible in synced)

    run(body, root)


def test_a_crash_between_promote_and_commit_leaves_only_an_orphan_chunk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def body(d: LocalDrive) -> None:
        data_id = await put_file(d, b"z" * 10)

        def crash(path: str) -> None:
            raise OSError(5, "EIO before commit")

        monkeypatch.setattr(index_mod, "fsync_dir", crash)
        with pytest.raises(DriveOffline):
            await d.commit_version(B, b"k", VersionRecord(vid=vid(1), data=data_id), promote=[data_id])
        assert d.chunk_path(data_id).exists()  # orphan for GC
        monkeypatch.undo()
        assert await d.check() is DriveState.ONLINE
        assert await d.read_versions(B, b"k") == []  # never a record without data

    run(body, tmp_path / "d")


# ------------------------------------------------------------------ versions
def test_null_versions_are_replaced_through_a_null_tombstone(tmp_path: Path) -> None:
    async def body(d: LocalDrive) -> None:
        old = await put_object(d, b"k", b"old" * 30_000, 1, null=True)
        new = await put_object(d, b"k", b"new" * 30_000, 2, null=True)
        # Both null versions stay until the new one is safe at quorum...
        assert [v.vid for v in await d.read_versions(B, b"k")] == [vid(2), vid(1)]
        # ...then a null tombstone purges every older null version and its data.
        await d.commit_version(B, b"k", VersionRecord(vid=vid(2), tomb=True, null=True))
        versions = await d.read_versions(B, b"k")
        assert [(v.vid, v.data) for v in versions] == [(vid(2), new)]
        assert not d.chunk_path(old).exists()
        with pytest.raises(FragmentMissing):
            await d.read_fragment(old, 0, 1)
        assert await d.read_fragment(new, 0, 3) == b"new"

    run(body, tmp_path / "d")


def test_tombstones_remove_one_version_and_its_data(tmp_path: Path) -> None:
    async def body(d: LocalDrive) -> None:
        a = await put_object(d, b"k", b"a" * 5000, 1)
        b = await put_object(d, b"k", b"b" * 5000, 2)
        await d.commit_version(B, b"k", VersionRecord(vid=vid(1), tomb=True))
        assert [v.vid for v in await d.read_versions(B, b"k")] == [vid(2)]
        assert not d.chunk_path(a).exists() and d.chunk_path(b).exists()
        # Delete markers are ordinary versions.
        await d.commit_version(B, b"k", VersionRecord(vid=vid(3), dm=True))
        assert [v.dm for v in await d.read_versions(B, b"k")] == [True, False]
        # Removing the last versions removes the key from listings.
        await d.commit_version(B, b"k", VersionRecord(vid=vid(3), tomb=True))
        await d.commit_version(B, b"k", VersionRecord(vid=vid(2), tomb=True))
        assert await d.read_versions(B, b"k") == []
        assert await d.list_versions(B) == []
        assert not d.chunk_path(b).exists()

    run(body, tmp_path / "d")


def test_recommit_with_new_data_frees_the_replaced_data(tmp_path: Path) -> None:
    async def body(d: LocalDrive) -> None:
        first = await put_object(d, b"k", b"1" * 100, 1)
        second = await put_object(d, b"k", b"2" * 100, 1)  # repair rewrote vid 1
        assert [v.data for v in await d.read_versions(B, b"k")] == [second]
        assert not d.chunk_path(first).exists()

    run(body, tmp_path / "d")


def test_inline_fragments_live_in_the_index(tmp_path: Path) -> None:
    async def body(d: LocalDrive) -> None:
        first, second = new_id(), new_id()
        await d.put_inline(first, b"tiny object")
        with pytest.raises(FragmentMissing):
            await d.read_fragment(first, 0, 4)  # staged: invisible
        rec = VersionRecord(vid=vid(1), data=first, inline=True, null=True, size=11)
        await d.commit_version(B, b"k", rec, promote=[first])
        assert await d.read_fragment(first, 5, 3) == b"obj"
        assert await d.fragment_size(first) == 11
        assert list((tmp_path / "d" / "chunks").rglob("*")) == []
        assert d.statistics().staged_inline == 0
        await d.put_inline(first, b"tiny object")  # an idempotent re-commit
        await d.commit_version(B, b"k", rec, promote=[first])
        assert d.statistics().bytes_stored == 11
        # Purging the old null version frees its inline blob in the same txn.
        await d.put_inline(second, b"other")
        await d.commit_version(B, b"k", VersionRecord(vid=vid(2), data=second, inline=True, null=True), promote=[second])
        await d.commit_version(B, b"k", VersionRecord(vid=vid(2), tomb=True, null=True))
        assert d.statistics().bytes_stored == len(b"other")
        with pytest.raises(FragmentMissing):
            await d.read_fragment(first, 0, 1)
        with pytest.raises(ValueError):
            await d.put_inline(new_id(), b"x" * (INLINE_MAX + 1))

    run(body, tmp_path / "d")


def test_corrupt_inline_blobs_are_quarantined(tmp_path: Path) -> None:
    async def body(d: LocalDrive) -> None:
        data_id = new_id()
        await d.put_inline(data_id, b"payload")
        await d.commit_version(B, b"k", VersionRecord(vid=vid(1), data=data_id, inline=True), promote=[data_id])
        env, db = d._index.env, d._index.db("inline")
        assert env is not None
        with env.begin(write=True) as txn:
            raw = bytearray(txn.get(data_id.encode(), db=db))
            raw[-1] ^= 1
            txn.put(data_id.encode(), bytes(raw), db=db)
        with pytest.raises(FragmentCorrupt):
            await d.read_fragment(data_id, 0, 7)
        with pytest.raises(FragmentMissing):
            await d.read_fragment(data_id, 0, 7)
        assert d.statistics().quarantined == 1

    run(body, tmp_path / "d")


def test_recommitting_the_same_version_is_idempotent(tmp_path: Path) -> None:
    async def body(d: LocalDrive) -> None:
        data_id = await put_file(d, b"q" * 1000)
        rec = VersionRecord(vid=vid(1), data=data_id, size=1000)
        await d.commit_version(B, b"k", rec, promote=[data_id])
        await d.commit_version(B, b"k", rec, promote=[data_id])
        assert len(await d.read_versions(B, b"k")) == 1
        assert await d.read_fragment(data_id, 0, 3) == b"qqq"

    run(body, tmp_path / "d")


def test_delete_data_removes_files_and_inline_blobs(tmp_path: Path) -> None:
    async def body(d: LocalDrive) -> None:
        f = await put_object(d, b"f", b"f" * 100, 1)
        i = new_id()
        await d.put_inline(i, b"inline")
        await d.commit_version(B, b"i", VersionRecord(vid=vid(1), data=i, inline=True), promote=[i])
        stored = d.statistics().bytes_stored
        assert stored == fmt.file_size(100) + len(b"inline")
        await d.delete_data([f, i, new_id()])
        for data_id in (f, i):
            with pytest.raises(FragmentMissing):
                await d.read_fragment(data_id, 0, 1)
        assert d.statistics().bytes_stored == 0

    run(body, tmp_path / "d")


def test_bytes_stored_survives_a_restart(tmp_path: Path) -> None:
    run(lambda d: put_object(d, b"k", b"x" * 5000, 1), tmp_path / "d")
    got = run(lambda d: _value(d.statistics().bytes_stored), tmp_path / "d")
    assert got == fmt.file_size(5000)


# ------------------------------------------------------------------ listing
def test_long_keys_list_in_exact_binary_order(tmp_path: Path) -> None:
    base = b"p" * 600
    all_keys = [base[:502], base[:502] + b"\x00", base + b"b", base + b"a" * 424, b"p" * 1024, b"p", b"q"]
    all_keys += [base[:510] + b"/x%d" % i for i in range(3)]

    async def body(d: LocalDrive) -> None:
        for n, k in enumerate(all_keys):
            data_id = new_id()
            await d.put_inline(data_id, k[-8:])
            await d.commit_version(B, k, VersionRecord(vid=vid(n + 1), data=data_id, inline=True), promote=[data_id])
        got = await d.list_versions(B)
        assert [e.key for e in got] == sorted(all_keys)
        assert all(e.versions and e.versions[0].data for e in got)
        # Each long key reads back its own record.
        for n, k in enumerate(all_keys):
            assert [v.vid for v in await d.read_versions(B, k)] == [vid(n + 1)]
        page = await d.list_versions(B, start_after=base + b"a" * 424, limit=2)
        assert [e.key for e in page] == sorted(all_keys)[sorted(all_keys).index(base + b"a" * 424) + 1 :][:2]
        # Delimiter push-down inside the long-key range.
        p = base[:510]
        expected = sorted({k if b"/" not in k[510:] else k[: k.index(b"/", 510) + 1]
                           for k in all_keys if k.startswith(p)})
        got = await d.list_versions(B, prefix=p, delimiter=b"/")
        assert [e.key for e in got] == expected
        assert [e.is_prefix for e in got] == [k.endswith(b"/") for k in expected]
        assert got[0].key == p + b"/"

    run(body, tmp_path / "d")


def test_delimiter_listing_collapses_prefixes(tmp_path: Path) -> None:
    async def body(d: LocalDrive) -> None:
        for n, k in enumerate([b"a/1", b"a/2", b"a/b/3", b"b", b"c/4"]):
            await d.commit_version(B, k, VersionRecord(vid=vid(n + 1), dm=True))
        await d.commit_version(b"bucket02", b"a/zzz", VersionRecord(vid=vid(9), dm=True))
        got = await d.list_versions(B, delimiter=b"/")
        assert [(e.key, e.is_prefix, e.versions is None) for e in got] == [
            (b"a/", True, True), (b"b", False, False), (b"c/", True, True)
        ]
        got = await d.list_versions(B, prefix=b"a/", delimiter=b"/")
        assert [e.key for e in got] == [b"a/1", b"a/2", b"a/b/"]
        assert [e.key for e in await d.list_versions(B, start_after=b"a/", delimiter=b"/")] == [b"b", b"c/"]

    run(body, tmp_path / "d")


# ------------------------------------------------------------------ tables
def test_meta_tables_put_get_list_delete(tmp_path: Path) -> None:
    async def body(d: LocalDrive) -> None:
        assert await d.get_meta("uploads", b"x") is None
        assert await d.list_meta("uploads") == []
        part = await put_file(d, b"part" * 1000)
        await d.put_meta("uploads", b"u1/00001", b"p1", promote=[part])
        assert await d.read_fragment(part, 0, 4) == b"part"
        for k in (b"u1/00002", b"u2/00001", b"u0"):
            await d.put_meta("uploads", k, b"v")
        assert await d.get_meta("uploads", b"u1/00001") == b"p1"
        assert [k for k, _ in await d.list_meta("uploads", prefix=b"u1/")] == [b"u1/00001", b"u1/00002"]
        assert [k for k, _ in await d.list_meta("uploads", start_after=b"u1/00001", limit=2)] == [b"u1/00002", b"u2/00001"]
        assert await d.list_meta("uploads", prefix=b"u1/", start_after=b"u2") == []
        await d.put_meta("uploads", b"u0", None)
        assert await d.get_meta("uploads", b"u0") is None
        with pytest.raises(ValueError):
            await d.put_meta("uploads", b"k" * 512, b"v")

    run(body, tmp_path / "d")
    assert run(lambda d: d.get_meta("uploads", b"u2/00001"), tmp_path / "d") == b"v"


# ------------------------------------------------------------------ health
def test_a_removed_drive_dir_goes_offline(tmp_path: Path) -> None:
    root = tmp_path / "d"

    async def body(d: LocalDrive) -> None:
        data_id = await put_object(d, b"k", b"data", 1)
        moved = tmp_path / "gone"
        os.rename(root, moved)  # what an unmount or rm -rf looks like to us
        with pytest.raises(DriveOffline):
            await d.read_fragment(data_id, 0, 4)
        assert d.state is DriveState.OFFLINE
        # Offline: every call fails fast, even ones that never touch the disk.
        with pytest.raises(DriveOffline):
            await d.read_versions(B, b"k")
        with pytest.raises(DriveOffline):
            await d.put_inline(new_id(), b"x")
        st = await d.stat()
        assert st.state is DriveState.OFFLINE and st.errors >= 1
        assert await d.check() is DriveState.OFFLINE
        os.rename(moved, root)
        assert await d.check() is DriveState.ONLINE
        assert await d.read_fragment(data_id, 0, 4) == b"data"

    run(body, root)


def test_a_deleted_drive_dir_is_detected_on_commit(tmp_path: Path) -> None:
    import shutil

    root = tmp_path / "d"

    async def body(d: LocalDrive) -> None:
        await d.put_meta("t", b"k", b"v")
        shutil.rmtree(root)
        with pytest.raises(DriveOffline):
            await d.put_meta("t", b"k2", b"v")
        assert d.state is DriveState.OFFLINE
        assert await d.check() is DriveState.OFFLINE

    run(body, root)


def test_a_fenced_root_goes_offline_even_for_root(tmp_path: Path) -> None:
    root = tmp_path / "d"

    async def body(d: LocalDrive) -> None:
        os.chmod(root, 0)
        try:
            await trio.sleep(local.PROBE_TTL)  # inline reads trust a probe this recent
            with pytest.raises(DriveOffline):
                await d.read_versions(B, b"k")  # an inline (event-loop) read
            assert d.state is DriveState.OFFLINE
        finally:
            os.chmod(root, 0o755)
        assert await d.check() is DriveState.ONLINE
        os.chmod(root, 0)
        try:  # a write probes every time, however recent the last probe
            with pytest.raises(DriveOffline):
                await d.put_meta("t", b"k", b"v")
            with pytest.raises(DriveOffline):
                await d.list_versions(B)
            assert d.state is DriveState.OFFLINE
        finally:
            os.chmod(root, 0o755)
        assert await d.check() is DriveState.ONLINE

    run(body, root)


def test_a_full_disk_is_an_error_not_an_offline_drive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def enospc(*a: Any) -> None:
        raise OSError(28, "No space left on device")

    async def body(d: LocalDrive) -> None:
        w = await d.create_fragment(new_id(), 0)
        monkeypatch.setattr(direct, "pwrite_all", enospc)
        with pytest.raises(DriveError) as e:
            await w.write(os.urandom(2 << 20))
        assert not isinstance(e.value, DriveOffline)
        assert d.state is DriveState.ONLINE
        assert list((tmp_path / "d" / "staging").iterdir()) == []  # broken writer cleaned up

    run(body, tmp_path / "d")


def test_failed_is_final(tmp_path: Path) -> None:
    async def body(d: LocalDrive) -> None:
        d.mark_failed()
        assert await d.check() is DriveState.FAILED
        with pytest.raises(DriveOffline):
            await d.read_versions(B, b"k")

    run(body, tmp_path / "d")


# ------------------------------------------------------------------ concurrency
def test_concurrent_commits_are_grouped_and_all_land(tmp_path: Path) -> None:
    async def body(d: LocalDrive) -> None:
        async def one(i: int) -> None:
            data_id = new_id()
            await d.put_inline(data_id, b"%d" % i)
            await d.commit_version(B, b"k%03d" % i, VersionRecord(vid=vid(1), data=data_id, inline=True), promote=[data_id])

        async with trio.open_nursery() as n:
            for i in range(64):
                n.start_soon(one, i)
        st = d.statistics()
        assert st.commits == 64 and st.avg_commit_batch > 1
        assert len(await d.list_versions(B)) == 64

    run(body, tmp_path / "d")


def test_stat_and_statistics_report_the_drive(tmp_path: Path) -> None:
    async def body(d: LocalDrive) -> None:
        await put_object(d, b"k", b"x" * 1000, 1)
        await d.read_fragment((await d.read_versions(B, b"k"))[0].data or "", 0, 1000)
        st = await d.stat()
        assert st.capacity > 0 and 0 < st.free <= st.capacity and st.used == st.capacity - st.free
        assert st.state is DriveState.ONLINE and st.path == str(tmp_path / "d")
        s = d.statistics()
        assert (s.reads, s.writes, s.bytes_read, s.bytes_written) == (1, 1, 1000, 1000)
        assert s.open_writers == 0

    run(body, tmp_path / "d")


def test_bad_arguments_are_rejected_before_io(tmp_path: Path) -> None:
    async def body(d: LocalDrive) -> None:
        with pytest.raises(ValueError):
            await d.create_fragment("../etc/passwd", 0)
        with pytest.raises(ValueError):
            await d.read_fragment(new_id(), -1, 5)
        with pytest.raises(FragmentMissing):
            await d.read_fragment("", 0, 1 << 62)  # a record without a data id
        with pytest.raises(ValueError):
            await d.read_versions(b"short", b"k")

    run(body, tmp_path / "d")


def test_module_exports(tmp_path: Path) -> None:
    assert local.INLINE_MAX == 128 * 1024


# --------------------------------------------------------------- full disks
@pytest.mark.parametrize(("exc", "full", "offline"), [
    (OSError(errno.ENOSPC, "No space left on device"), True, False),
    (OSError(errno.EDQUOT, "Disk quota exceeded"), True, False),
    (lmdb.DiskError("mdb_txn_commit", 28), True, False),  # py-lmdb's ENOSPC, not an I/O error
    (lmdb.MapFullError("mdb_put", -30792), True, False),
    (OSError(errno.EIO, "Input/output error"), False, True),
    (lmdb.Error("mdb_txn_commit", errno.EIO), False, True),
    (lmdb.CorruptedError("mdb_get", -30796), False, True),
    (OSError(errno.EMFILE, "Too many open files"), False, False),
])
def test_a_full_drive_is_told_apart_from_a_failing_one(exc, full, offline) -> None:
    assert health.full_error(exc) is full
    assert health.offline_error(exc) is offline


@pytest.mark.parametrize(("exc", "medium"), [
    (OSError(errno.EIO, "Input/output error"), True),
    (lmdb.CorruptedError("mdb_get", -30796), True),
    (FileNotFoundError(errno.ENOENT, "drive directory renamed away"), False),
    (PermissionError(errno.EACCES, "fenced"), False),
    (OSError(errno.ENOSPC, "No space left on device"), False),
])
def test_only_the_disk_failing_counts_toward_failing_a_drive(exc, medium) -> None:
    assert health.medium_error(exc) is medium


# ---------------------------------------------------------------- inline lookups
def _slow_lookup(seconds: float, fault_file: Path | None = None) -> Callable[[], int]:
    """A lookup that takes ``seconds`` and, with ``fault_file``, one major page
    fault (the file's pages were dropped from the page cache, as a read from a
    stalling disk has to wait for the device)."""
    import mmap
    import time as _time

    def fn() -> int:
        _time.sleep(seconds)
        if fault_file is None:
            return 0
        with open(fault_file, "rb") as f, mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ) as m:
            return m[0]

    return fn


def test_a_preempted_lookup_keeps_running_inline(tmp_path: Path) -> None:
    async def body(d: LocalDrive) -> None:
        assert await d._fast(_slow_lookup(local.FAST_BUDGET * 2)) == 0
        assert d._slow_until == 0.0  # slow without touching the disk: not the drive's fault

    run(body, tmp_path / "d")


def test_a_lookup_stalled_on_the_disk_demotes_the_drive_to_threads(tmp_path: Path) -> None:
    page = tmp_path / "page"
    page.write_bytes(b"\x07" * 4096)
    fd = os.open(page, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)  # next touch is a major fault
    finally:
        os.close(fd)

    async def body(d: LocalDrive) -> None:
        local._FAULTS._at = -1.0  # a fresh baseline at this lookup, whatever ran before
        assert await d._fast(_slow_lookup(local.FAST_BUDGET * 2, page)) == 7
        assert d._slow_until > 0.0

    run(body, tmp_path / "d")
