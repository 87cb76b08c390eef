"""Server-side encryption through the object store (objects/sse.py, objects/kms.py)
over in-memory drives, with the real built-in KMS on the drives' system records."""

from __future__ import annotations

import os
import random

import pytest
import trio

from titans3.accounts.register import SYSTEM, SystemTable
from titans3.core.errors import AccessDenied, InternalError, InvalidRequest
from titans3.core.sse import PACKAGE, stored_size
from titans3.objects.api import Encryption
from titans3.objects.kms import KMS_KEYRING, BuiltinKMS
from titans3.objects.sse import SSE

from .test_store import body, make_store, read_all

MARKER = b"PLAINTEXT-MARKER-7f3a"
CK = bytes(range(32))


def _setup(inline_max: int = 4 << 10):
    store, drives = make_store(inline_max=inline_max)
    sealing = os.urandom(32)
    store.kms = BuiltinKMS(SystemTable(lambda: store.drives, lambda: store.clock, SYSTEM), lambda: [sealing])
    return store, drives


def _all_bytes(drives) -> bytes:
    out = bytearray()
    for d in drives:
        for v in d.data.values():
            out += v
        for recs in d.versions.values():
            for r in recs:
                out += r.pack()
        for t in d.tables.values():
            for v in t.values():
                out += v
    return bytes(out)


def _data(n: int) -> bytes:
    return (MARKER + os.urandom(64)) * (n // (len(MARKER) + 64) + 1)


ENCS = {
    "s3": (Encryption("AES256"), None),
    "c": (Encryption("SSE-C", customer_key=CK), CK),
    "kms": (Encryption("aws:kms"), None),
}


@pytest.mark.parametrize("mode", sorted(ENCS))
@pytest.mark.parametrize("n", [0, 100, 3 * PACKAGE + 17])
def test_round_trip_ranges_and_nothing_plain_on_the_drives(mode: str, n: int) -> None:
    async def main() -> None:
        store, drives = _setup()
        enc, ck = ENCS[mode]
        await store.create_bucket("bkt")
        data = _data(n)[:n]
        put = await store.put_object("bkt", "k", body(data), size=n, encryption=enc)
        assert put.size == n
        got = await read_all(store, "bkt", "k", customer_key=ck)
        assert got == data
        head = await store.head_object("bkt", "k", customer_key=ck)
        assert head.size == n
        assert head.sse == ("" if mode == "c" else enc.mode)
        if n > 1:
            for first, last in [(0, 0), (PACKAGE - 1, PACKAGE), (n - 1, n - 1), (1, n - 2)]:
                if last < n:
                    got = await read_all(store, "bkt", "k", customer_key=ck, byte_range=(first, last))
                    assert got == data[first : last + 1]
        if n >= len(MARKER):
            assert MARKER not in _all_bytes(drives)

    trio.run(main)


def test_sse_s3_etag_is_the_plaintext_md5_and_others_are_not() -> None:
    import hashlib

    async def main() -> None:
        store, _ = _setup()
        await store.create_bucket("bkt")
        data = b"hello world" * 100
        md5 = hashlib.md5(data).hexdigest()
        p = await store.put_object("bkt", "s3", body(data), encryption=Encryption("AES256"))
        assert p.etag == md5
        p = await store.put_object("bkt", "c", body(data), encryption=Encryption("SSE-C", customer_key=CK))
        assert p.etag != md5
        p = await store.put_object("bkt", "kms", body(data), encryption=Encryption("aws:kms"))
        assert p.etag != md5 and p.info is not None and p.info.kms_key_id.startswith("arn:aws:kms:")

    trio.run(main)


def test_sse_c_needs_the_right_key() -> None:
    async def main() -> None:
        store, _ = _setup()
        await store.create_bucket("bkt")
        await store.put_object("bkt", "k", body(b"x" * 5000), encryption=Encryption("SSE-C", customer_key=CK))
        with pytest.raises(InvalidRequest):
            await store.get_object("bkt", "k")
        with pytest.raises(InvalidRequest):
            await store.head_object("bkt", "k")
        with pytest.raises(AccessDenied):
            await store.get_object("bkt", "k", customer_key=bytes(32))
        await store.put_object("bkt", "plain", body(b"y"))
        with pytest.raises(InvalidRequest):
            await store.get_object("bkt", "plain", customer_key=CK)

    trio.run(main)


def test_disabled_kms_key_refuses_until_enabled_and_rotation_keeps_old_objects() -> None:
    async def main() -> None:
        store, _ = _setup()
        await store.create_bucket("bkt")
        key = await store.kms.create_key(description="t")
        await store.put_object("bkt", "old", body(b"a" * 70_000),
                               encryption=Encryption("aws:kms", kms_key_id=key.key_id))
        rotated = await store.kms.rotate_key(key.key_id)
        assert rotated.versions == 2
        await store.put_object("bkt", "new", body(b"b" * 10),
                               encryption=Encryption("aws:kms", kms_key_id=key.arn))
        assert await read_all(store, "bkt", "old") == b"a" * 70_000
        await store.kms.set_key_enabled(key.key_id, False)
        with pytest.raises(AccessDenied):
            await store.get_object("bkt", "old")
        with pytest.raises(AccessDenied):
            await store.put_object("bkt", "x", body(b"c"), encryption=Encryption("aws:kms", kms_key_id=key.key_id))
        await store.kms.set_key_enabled(key.key_id, True)
        assert await read_all(store, "bkt", "new") == b"b" * 10

    trio.run(main)


def test_keyring_on_the_drives_holds_no_key_material_in_the_clear() -> None:
    async def main() -> None:
        store, drives = _setup()
        await store.create_bucket("bkt")
        await store.put_object("bkt", "k", body(b"z"), encryption=Encryption("AES256"))
        ring = await store.kms._load(fresh=True)
        material = [ring._material(kid, 0) for kid in ring.doc["keys"]]
        blob = _all_bytes(drives)
        assert material and all(m not in blob for m in material)

    trio.run(main)


@pytest.mark.parametrize("mode", ["s3", "c"])
def test_multipart_encrypts_each_part_and_reads_across_parts(mode: str) -> None:
    async def main() -> None:
        store, drives = _setup()
        enc, ck = ENCS[mode]
        await store.create_bucket("bkt")
        uid = await store.create_multipart("bkt", "mp", encryption=enc)
        p1, p2 = _data(5 << 20)[: 5 << 20], _data(1000)[:1000]
        a = await store.upload_part("bkt", "mp", uid, 1, body(p1, 1 << 20), customer_key=ck)
        b = await store.upload_part("bkt", "mp", uid, 2, body(p2), customer_key=ck)
        if mode == "c":
            with pytest.raises(InvalidRequest):
                await store.upload_part("bkt", "mp", uid, 3, body(b"q"))
        res = await store.complete_multipart("bkt", "mp", uid, [(1, a.etag), (2, b.etag)])
        assert res.size == len(p1) + len(p2)
        whole = p1 + p2
        assert await read_all(store, "bkt", "mp", customer_key=ck) == whole
        lo, hi = len(p1) - 10, len(p1) + 10
        assert await read_all(store, "bkt", "mp", customer_key=ck, byte_range=(lo, hi)) == whole[lo : hi + 1]
        assert await read_all(store, "bkt", "mp", customer_key=ck, part_number=2) == p2
        assert MARKER not in _all_bytes(drives)

    trio.run(main)


PAIRS = [(s, d) for s in ("none", "s3", "c", "kms") for d in ("none", "s3", "c", "kms")]


@pytest.mark.parametrize(("src", "dst"), PAIRS)
def test_copy_between_every_pair_of_encryptions(src: str, dst: str) -> None:
    other = bytes(reversed(CK))

    async def main() -> None:
        store, _ = _setup()
        await store.create_bucket("bkt")
        data = _data(150_000)
        src_enc, src_ck = ENCS[src] if src != "none" else (None, None)
        dst_enc, dst_ck = ENCS[dst] if dst != "none" else (None, None)
        if dst == "c":
            dst_enc, dst_ck = Encryption("SSE-C", customer_key=other), other
        await store.put_object("bkt", "src", body(data), encryption=src_enc)
        r = await store.copy_object("bkt", "src", "bkt", "dst", src_customer_key=src_ck, encryption=dst_enc)
        assert r.put is not None and r.put.size == len(data)
        assert await read_all(store, "bkt", "dst", customer_key=dst_ck) == data
        uid = await store.create_multipart("bkt", "mp", encryption=dst_enc)
        part = await store.upload_part_copy("bkt", "mp", uid, 1, "bkt", "src", byte_range=(10, 99_999),
                                            src_customer_key=src_ck, customer_key=dst_ck)
        assert part.part is not None
        await store.complete_multipart("bkt", "mp", uid, [(1, part.part.etag)])
        assert await read_all(store, "bkt", "mp", customer_key=dst_ck) == data[10:100_000]

    trio.run(main)


def test_a_flipped_ciphertext_byte_never_returns_wrong_plaintext() -> None:
    async def main() -> None:
        store, drives = _setup(inline_max=0)
        await store.create_bucket("bkt")
        data = _data(200_000)
        await store.put_object("bkt", "k", body(data), encryption=Encryption("AES256"))
        # Corrupt the same offset of every data fragment, so parity cannot mask
        # it (the fragment checksums of real drives would; these drives have none).
        for d in drives:
            for did, v in d.data.items():
                buf = bytearray(v)
                buf[100] ^= 0xFF
                d.data[did] = bytes(buf)
        with pytest.raises(InternalError):
            await read_all(store, "bkt", "k")

    trio.run(main)


def test_record_keeps_plaintext_size_and_stored_size_is_arithmetic() -> None:
    async def main() -> None:
        store, drives = _setup(inline_max=0)
        await store.create_bucket("bkt")
        await store.put_object("bkt", "k", body(b"q" * 100_000), encryption=Encryption("AES256"))
        recs = [r for d in drives for rs in d.versions.values() for r in rs]
        assert recs and all(r.size == 100_000 and SSE in r.extra for r in recs)
        assert "dk" in recs[0].extra[SSE] and stored_size(100_000) == 100_000 + 2 * 16

    trio.run(main)


def test_a_lone_hosts_keyring_is_resealed_when_it_gets_a_cluster_key() -> None:
    async def main() -> None:
        store, drives = make_store()
        alone, cluster = os.urandom(32), os.urandom(32)
        keys = [alone]
        records = SystemTable(lambda: store.drives, lambda: store.clock, SYSTEM)
        store.kms = BuiltinKMS(records, lambda: list(keys))
        await store.create_bucket("bkt")
        data = b"s" * 70_000
        await store.put_object("bkt", "k", body(data), encryption=Encryption("AES256"))
        keys[:] = [cluster, alone]  # the host created a cluster: a new sealing key first
        store.kms = BuiltinKMS(records, lambda: list(keys))
        assert await read_all(store, "bkt", "k") == data
        # Re-sealed and written back: a host with only the cluster key opens it.
        other = BuiltinKMS(records, lambda: [cluster])
        store.kms = other
        assert await read_all(store, "bkt", "k") == data

    trio.run(main)


def test_content_md5_and_sizes_are_checked_against_the_plaintext() -> None:
    import base64
    import hashlib

    from titans3.core.errors import BadDigest, IncompleteBody

    async def main() -> None:
        store, _ = _setup()
        await store.create_bucket("bkt")
        data = b"m" * 100_000
        good = base64.b64encode(hashlib.md5(data).digest()).decode()
        bad = base64.b64encode(hashlib.md5(b"other").digest()).decode()
        await store.put_object("bkt", "ok", body(data), size=len(data), content_md5=good,
                               encryption=Encryption("AES256"))
        with pytest.raises(BadDigest):
            await store.put_object("bkt", "bad", body(data), content_md5=bad,
                                   encryption=Encryption("AES256"))
        with pytest.raises(IncompleteBody):
            await store.put_object("bkt", "short", body(data), size=len(data) + 1,
                                   encryption=Encryption("AES256"))
        seen = bytearray()
        await store.put_object("bkt", "seen", body(data), on_data=lambda mv: seen.extend(mv),
                               encryption=Encryption("SSE-C", customer_key=CK))
        assert bytes(seen) == data  # checksums see the plaintext

    trio.run(main)


def test_internal_keys_created_by_two_hosts_at_once_open_each_others_objects() -> None:
    async def main() -> None:
        store, drives = make_store()
        sealing = os.urandom(32)
        records = SystemTable(lambda: store.drives, lambda: store.clock, SYSTEM)
        a, b = (BuiltinKMS(records, lambda: [sealing]) for _ in range(2))
        dk = os.urandom(32)
        # Both see no key, both create it; b's write lands last and wins.
        blob_a, _ = await a.wrap("titans3-sse-s3", dk, {"c": "1"})
        b._cached = None
        raw = await records.get(KMS_KEYRING)
        await records.delete(KMS_KEYRING)  # as if b read before a wrote
        blob_b, _ = await b.wrap("titans3-sse-s3", dk, {"c": "1"})
        assert raw is not None
        fresh = BuiltinKMS(records, lambda: [sealing])
        assert await fresh.unwrap(blob_a, {"c": "1"}) == dk
        assert await fresh.unwrap(blob_b, {"c": "1"}) == dk

    trio.run(main)


@pytest.mark.parametrize("latency", [0.0, 0.002])
def test_key_changes_racing_from_two_hosts_all_land(latency: float) -> None:
    """Two hosts' KMS (each with its own local lock) creating and rotating keys at
    once over one register: every change is a Paxos round, so none is lost (the
    last-writer-wins keyring lost some), none is refused and none made twice.

    ``latency``: each metadata call of a drive takes up to that long (real
    drives do): rounds then overlap, and a lost round's keyring is often built
    on by the other host's round -- the retry must find its change in it, not
    make it again ("alias taken", a third key version)."""

    async def main() -> None:
        store, drives = make_store()
        for d in drives:
            _slow_meta(d, latency)
        sealing = os.urandom(32)
        records = SystemTable(lambda: store.drives, lambda: store.clock, SYSTEM)
        hosts = [BuiltinKMS(records, lambda: [sealing]) for _ in range(2)]
        made: list[str] = []

        async def create(kms: BuiltinKMS, i: int) -> None:
            made.append((await kms.create_key(alias=f"alias/race-{i}")).key_id)

        async with trio.open_nursery() as nursery:
            for i in range(12):
                nursery.start_soon(create, hosts[i % 2], i)
        fresh = BuiltinKMS(records, lambda: [sealing])
        listed = {k.key_id for k in await fresh.list_keys()}
        assert len(made) == 12 and set(made) <= listed
        async with trio.open_nursery() as nursery:
            for i, kid in enumerate(made):
                nursery.start_soon(hosts[i % 2].rotate_key, kid)
        by_id = {k.key_id: k for k in await BuiltinKMS(records, lambda: [sealing]).list_keys()}
        assert all(by_id[kid].versions == 2 for kid in made)

    trio.run(main)


def _slow_meta(drive: object, latency: float) -> None:
    """Make ``drive``'s get_meta/swap_meta take a random 0..latency seconds."""
    if not latency:
        return
    rng = random.Random()
    for name in ("get_meta", "swap_meta"):
        original = getattr(drive, name)

        async def slow(*args: object, original=original, **kw: object) -> object:  # noqa: ANN001
            await trio.sleep(rng.uniform(0.0, latency))
            return await original(*args, **kw)

        setattr(drive, name, slow)
