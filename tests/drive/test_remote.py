"""RemoteDrive (titans3/drive/remote.py) against a LocalDrive served by the real
peer app (titans3/peer/app.py) under hypercorn on 127.0.0.1."""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from hypercorn.config import Config as HyperConfig
from hypercorn.trio import serve

from titans3.core.errors import DriveError, DriveOffline, FragmentCorrupt, FragmentMissing
from titans3.drive import fragment as fmt
from titans3.drive import remote, wire
from titans3.drive.local import LocalDrive
from titans3.drive.protocol import Drive, DriveState
from titans3.drive.records import VersionRecord
from titans3.drive.remote import PeerClient, RemoteDrive, Timeouts
from titans3.peer.app import PeerService, build_peer_app
from titans3.peer.auth import Signer

B = b"bucket01"
SECRET = "test-cluster-secret-0123456789"


def new_id() -> str:
    return uuid.uuid4().hex


def vid(n: int) -> str:
    return f"{n:032x}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Served:
    local: LocalDrive
    remote: RemoteDrive
    client: PeerClient
    svc: PeerService
    port: int
    stop_server: Callable[[], None]


def run(fn: Callable[[Served], Awaitable[Any]], root: Path, *, timeouts: Timeouts | None = None) -> Any:
    """Serve a LocalDrive at ``root`` through the peer app; run ``fn`` against it."""

    async def main() -> Any:
        async with LocalDrive(root) as local:
            svc = PeerService(
                [local], secret=SECRET,
                describe=lambda: {"host_id": "h1", "ring_version": 0, "drives": [
                    {"index": 0, "drive_id": local.drive_id, "state": local.state.value}]},
            )
            port = free_port()
            hc = HyperConfig()
            hc.bind = [f"127.0.0.1:{port}"]
            hc.accesslog = None
            hc.graceful_timeout = 0.5
            async with trio.open_nursery() as nursery:
                server_scope = trio.CancelScope()

                async def server(task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
                    with server_scope:
                        await serve(build_peer_app(svc), hc, task_status=task_status)  # type: ignore[arg-type]

                await nursery.start(server)
                client = PeerClient(f"127.0.0.1:{port}", Signer(SECRET, "tester"),
                                    timeouts=timeouts or Timeouts(read=5.0))
                try:
                    await client.heartbeat()
                    served = Served(local, client.drive(0), client, svc, port, server_scope.cancel)
                    return await fn(served)
                finally:
                    await client.aclose()
                    nursery.cancel_scope.cancel()

    return trio.run(main)


async def put_file(d: Drive, payload: bytes, *, chunk: int = 300_000, frag: int = 0) -> str:
    data_id = new_id()
    w = await d.create_fragment(data_id, frag)
    for i in range(0, len(payload), chunk):
        await w.write(payload[i : i + chunk])
    assert await w.finish() == len(payload)
    return data_id


async def put_object(d: Drive, key: bytes, payload: bytes, v: int, **rec: Any) -> str:
    data_id = await put_file(d, payload)
    record = VersionRecord(vid=vid(v), size=len(payload), data=data_id, **rec)
    await d.commit_version(B, key, record, promote=[data_id])
    return data_id


# ------------------------------------------------------------------ identity
def test_a_remote_drive_is_a_drive_named_by_its_peer(tmp_path: Path) -> None:
    async def body(s: Served) -> None:
        assert isinstance(s.remote, Drive)
        assert s.remote.drive_id == s.local.drive_id
        assert s.remote.state is DriveState.ONLINE
        assert s.client.host_id == "h1" and s.client.online
        st = await s.remote.stat()
        assert st.drive_id == s.local.drive_id and st.state is DriveState.ONLINE and st.capacity > 0

    run(body, tmp_path / "d")


# ------------------------------------------------------------------ data
def test_fragments_round_trip_with_ranges_across_chunk_boundaries(tmp_path: Path) -> None:
    sizes = [1, 4096, 65519, 3, 300_000, 2 << 20, 17, 1 << 20, 5, 5 << 20]
    payload = os.urandom(sum(sizes))

    async def body(s: Served) -> None:
        d = s.remote
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
        assert await d.fragment_size(data_id) == len(payload)
        # Bigger than one streamed piece (4 MiB): arrives in several.
        assert await d.read_fragment(data_id, 0, 1 << 62) == payload
        off, ln = 4 * fmt.PAYLOAD + 17, fmt.PAYLOAD + 100
        assert await d.read_fragment(data_id, off, ln) == payload[off : off + ln]
        assert await d.read_fragment(data_id, len(payload) - 5, 100) == payload[-5:]
        assert await d.read_fragment(data_id, len(payload) + 5, 100) == b""
        # The fragment is the one the local drive holds, header and all.
        header = fmt.unpack_header(s.local.chunk_path(data_id).read_bytes()[: fmt.HEADER_SIZE])
        assert (header.data_id, header.frag_index, header.logical_len) == (data_id, 3, len(payload))

    run(body, tmp_path / "d")


def test_staged_data_is_invisible_and_abort_removes_it(tmp_path: Path) -> None:
    async def body(s: Served) -> None:
        d = s.remote
        data_id = await put_file(d, b"x" * 100_000)
        assert (tmp_path / "d" / "staging" / data_id).exists()
        with pytest.raises(FragmentMissing):
            await d.read_fragment(data_id, 0, 10)
        w = await d.create_fragment(new_id(), 0)
        await w.write(b"y" * (3 << 20))  # some chunks already sent
        await w.abort()
        await w.abort()  # idempotent
        assert [p.name for p in (tmp_path / "d" / "staging").iterdir()] == [data_id]
        assert s.svc.sessions.keys() == {(0, data_id)}

    run(body, tmp_path / "d")


def test_committing_unstaged_data_fails_without_a_record(tmp_path: Path) -> None:
    async def body(s: Served) -> None:
        rec = VersionRecord(vid=vid(1), data="ab" * 16)
        with pytest.raises(FragmentMissing):
            await s.remote.commit_version(B, b"k", rec, promote=["ab" * 16])
        assert await s.remote.read_versions(B, b"k") == []

    run(body, tmp_path / "d")


def test_versions_null_tombstones_and_records_round_trip(tmp_path: Path) -> None:
    async def body(s: Served) -> None:
        d = s.remote
        old = await put_object(d, b"k", b"old" * 30_000, 1, null=True, meta={"content-type": "a/b"})
        new = await put_object(d, b"k", b"new" * 30_000, 2, null=True)
        assert await d.commit_version(B, b"k", VersionRecord(vid=vid(3), dm=True, null=True)) is True
        versions = await d.read_versions(B, b"k")
        assert [v.vid for v in versions] == [vid(3), vid(2), vid(1)]
        assert versions == await s.local.read_versions(B, b"k")  # identical records
        assert versions[2].meta == {"content-type": "a/b"} and versions[2].data == old
        await d.commit_version(B, b"k", VersionRecord(vid=vid(3), tomb=True, null=True))
        assert [(v.vid, v.data) for v in await d.read_versions(B, b"k")] == [(vid(3), None)]
        for gone in (old, new):
            with pytest.raises(FragmentMissing):
                await d.read_fragment(gone, 0, 1)

    run(body, tmp_path / "d")


def test_inline_fragments_and_delete_data(tmp_path: Path) -> None:
    async def body(s: Served) -> None:
        d = s.remote
        first = new_id()
        await d.put_inline(first, b"tiny object")
        with pytest.raises(FragmentMissing):
            await d.read_fragment(first, 0, 4)
        rec = VersionRecord(vid=vid(1), data=first, inline=True, null=True, size=11)
        await d.commit_version(B, b"k", rec, promote=[first])
        assert await d.read_fragment(first, 5, 3) == b"obj"
        assert await d.read_fragment(first, 0, 1 << 62) == b"tiny object"
        assert await d.fragment_size(first) == 11
        with pytest.raises(ValueError):
            await d.put_inline(new_id(), b"x" * (128 * 1024 + 1))
        f = await put_object(d, b"f", b"f" * 100, 1)
        await d.delete_data([f, first, new_id()])
        for data_id in (f, first):
            with pytest.raises(FragmentMissing):
                await d.read_fragment(data_id, 0, 1)
        with pytest.raises(FragmentMissing):
            await d.read_fragment("not-hex", 0, 1)

    run(body, tmp_path / "d")


def test_a_small_object_is_one_call_per_drive_each_way(tmp_path: Path) -> None:
    async def body(s: Served) -> None:
        d = s.remote
        data_id = new_id()
        before = s.client._requests
        await d.put_inline(data_id, b"small object")  # waits for its commit
        assert s.client._requests == before
        rec = VersionRecord(vid=vid(1), data=data_id, inline=True, null=True, size=12)
        await d.commit_version(B, b"k", rec, promote=[data_id])
        assert s.client._requests == before + 1
        assert await s.local.read_fragment(data_id, 0, 100) == b"small object"  # committed there
        # The read: the records bring the newest inline fragment along.
        before = s.client._requests
        recs = await d.read_versions(B, b"k")
        assert [r.data for r in recs] == [data_id]
        assert await d.read_fragment(data_id, 0, 1 << 62) == b"small object"
        assert s.client._requests == before + 1
        # Taken once: the next read asks the peer again (and gets the same bytes).
        assert await d.read_fragment(data_id, 6, 6) == b"object"
        assert s.client._requests == before + 2
        # An older version's blob does not ride along; only the newest readable one.
        newer = new_id()
        await d.put_inline(newer, b"newer")
        await d.commit_version(B, b"k", VersionRecord(vid=vid(2), data=newer, inline=True, size=5),
                               promote=[newer])
        await d.read_versions(B, b"k")
        before = s.client._requests
        assert await d.read_fragment(newer, 0, 5) == b"newer"
        assert s.client._requests == before
        assert await d.read_fragment(data_id, 0, 5) == b"small"
        assert s.client._requests == before + 1

    run(body, tmp_path / "d")


def test_a_blob_staged_for_a_commit_that_fails_is_not_committed_later(tmp_path: Path) -> None:
    async def body(s: Served) -> None:
        d = s.remote
        data_id = new_id()
        await d.put_inline(data_id, b"lost")
        s.client.mark_down("test: the host went away")
        with pytest.raises(DriveOffline):
            await d.commit_version(B, b"k", VersionRecord(vid=vid(1), data=data_id, inline=True,
                                                          size=4), promote=[data_id])
        await s.client.heartbeat()
        # The outbox kept it for the commit it belongs to; another commit of the
        # same id (a retry) still carries it, an unrelated one does not.
        await d.commit_version(B, b"other", VersionRecord(vid=vid(2), size=0))
        with pytest.raises(FragmentMissing):
            await s.local.read_fragment(data_id, 0, 4)
        await d.commit_version(B, b"k", VersionRecord(vid=vid(1), data=data_id, inline=True,
                                                      size=4), promote=[data_id])
        assert await s.local.read_fragment(data_id, 0, 4) == b"lost"

    run(body, tmp_path / "d")


def test_flipped_byte_raises_corrupt_through_the_peer(tmp_path: Path) -> None:
    payload = os.urandom(3 * fmt.PAYLOAD)

    async def body(s: Served) -> None:
        d = s.remote
        data_id = await put_object(d, b"obj", payload, 1)
        path = s.local.chunk_path(data_id)
        with open(path, "r+b") as f:
            f.seek(fmt.HEADER_SIZE + fmt.BLOCK + 5000)
            b = f.read(1)
            f.seek(-1, os.SEEK_CUR)
            f.write(bytes([b[0] ^ 1]))
        assert await d.read_fragment(data_id, 0, 10) == payload[:10]
        with pytest.raises(FragmentCorrupt, match="block 1"):
            await d.read_fragment(data_id, 0, len(payload))
        with pytest.raises(FragmentMissing):
            await d.read_fragment(data_id, 0, 10)
        assert d.state is DriveState.ONLINE  # bitrot is not an offline drive
        assert (await d.stat()).fragments_quarantined == 1

    run(body, tmp_path / "d")


# ------------------------------------------------------------------ listing and tables
def test_listing_with_long_keys_and_delimiters(tmp_path: Path) -> None:
    base = b"p" * 600
    keys = [base[:502], base[:502] + b"\x00", base + b"b", b"p" * 1024, b"a/1", b"a/2", b"a/b/3", b"c/4"]

    async def body(s: Served) -> None:
        d = s.remote
        for n, k in enumerate(keys):
            await d.commit_version(B, k, VersionRecord(vid=vid(n + 1), dm=True))
        got = await d.list_versions(B)
        assert [e.key for e in got] == sorted(keys)
        assert all(e.versions and e.versions[0].dm for e in got)
        got = await d.list_versions(B, delimiter=b"/")
        assert [(e.key, e.is_prefix, e.versions is None) for e in got][:2] == [
            (b"a/", True, True), (b"c/", True, True)
        ]
        got = await d.list_versions(B, prefix=b"a/", delimiter=b"/", start_after=b"a/1", limit=5)
        assert [e.key for e in got] == [b"a/2", b"a/b/"]

    run(body, tmp_path / "d")


def test_meta_tables_put_get_list_delete_with_promotion(tmp_path: Path) -> None:
    async def body(s: Served) -> None:
        d = s.remote
        assert await d.get_meta("uploads", b"x") is None
        assert await d.list_meta("uploads") == []
        part = await put_file(d, b"part" * 1000)
        await d.put_meta("uploads", b"u1/00001", b"p1", promote=[part])
        assert await d.read_fragment(part, 0, 4) == b"part"
        for k in (b"u1/00002", b"u2/00001", b"u0"):
            await d.put_meta("uploads", k, b"v")
        assert await d.get_meta("uploads", b"u1/00001") == b"p1"
        assert [k for k, _ in await d.list_meta("uploads", prefix=b"u1/")] == [b"u1/00001", b"u1/00002"]
        assert await d.list_meta("uploads", start_after=b"u1/00001", limit=2) == [
            (b"u1/00002", b"v"), (b"u2/00001", b"v")]
        await d.put_meta("uploads", b"u0", None)
        assert await d.get_meta("uploads", b"u0") is None
        with pytest.raises(ValueError):
            await d.put_meta("uploads", b"k" * 512, b"v")

    run(body, tmp_path / "d")


# ------------------------------------------------------------------ failures
def test_a_local_drive_gone_offline_is_offline_remotely_until_a_heartbeat(tmp_path: Path) -> None:
    async def body(s: Served) -> None:
        os.rename(tmp_path / "d", tmp_path / "moved")
        with pytest.raises(DriveOffline):
            await s.remote.commit_version(B, b"k", VersionRecord(vid=vid(1), dm=True))
        assert s.remote.state is DriveState.OFFLINE
        with pytest.raises(DriveOffline):
            await s.remote.read_versions(B, b"k")  # refused locally, no request
        os.rename(tmp_path / "moved", tmp_path / "d")
        await s.local.check()
        assert await s.remote.check() is DriveState.ONLINE
        await s.remote.commit_version(B, b"k", VersionRecord(vid=vid(1), dm=True))

    run(body, tmp_path / "d")


def test_a_stopped_server_makes_calls_fail_fast_with_drive_offline(tmp_path: Path) -> None:
    async def body(s: Served) -> None:
        data_id = await put_object(s.remote, b"k", b"z" * 1000, 1)
        s.stop_server()
        await trio.sleep(0.2)
        t0 = time.monotonic()
        with pytest.raises(DriveOffline):
            await s.remote.read_fragment(data_id, 0, 10)
        assert time.monotonic() - t0 < 2.0
        assert s.remote.state is DriveState.OFFLINE and not s.client.online
        # Every drive of the host is now refused without a request.
        before = s.client.statistics().requests
        with pytest.raises(DriveOffline):
            await s.remote.read_versions(B, b"k")
        assert s.client.statistics().requests == before
        assert await s.remote.check() is DriveState.OFFLINE
        st = await s.remote.stat()
        assert st.state is DriveState.OFFLINE and st.capacity == 0

    run(body, tmp_path / "d")


def test_a_hung_peer_costs_one_timeout_not_a_hang(tmp_path: Path) -> None:
    async def main() -> None:
        listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
        port = listener.socket.getsockname()[1]
        conns: list[trio.SocketStream] = []

        async def accept_and_ignore() -> None:
            while True:
                conns.append(await listener.accept())

        async with trio.open_nursery() as nursery:
            nursery.start_soon(accept_and_ignore)
            client = PeerClient(f"127.0.0.1:{port}", Signer(SECRET, "t"),
                                timeouts=Timeouts(connect=0.5, read=0.5, write=0.5, pool=0.5, heartbeat=0.5))
            d = client.drive(0)
            t0 = time.monotonic()
            with pytest.raises(DriveOffline):
                await client.heartbeat()
            assert time.monotonic() - t0 < 1.5
            client.online, d._remote_state = True, DriveState.ONLINE  # pretend it was up
            t0 = time.monotonic()
            with pytest.raises(DriveOffline):
                await d.read_versions(B, b"k")
            assert time.monotonic() - t0 < 1.5
            assert d.state is DriveState.OFFLINE
            await client.aclose()
            nursery.cancel_scope.cancel()

    trio.run(main)


def test_a_different_host_at_the_address_is_not_adopted(tmp_path: Path) -> None:
    async def body(s: Served) -> None:
        s.client.host_id = "someone-else"
        with pytest.raises(DriveError, match="expected host"):
            await s.client.heartbeat()
        assert s.remote.state is DriveState.OFFLINE

    run(body, tmp_path / "d")


# ------------------------------------------------------------------ authentication
def _raw(port: int, method: str, target: str, body: bytes = b"", headers: dict[str, str] | None = None) -> httpx.Response:
    with httpx.Client(trust_env=False, timeout=5) as c:
        return c.request(method, f"http://127.0.0.1:{port}{target}", content=body, headers=headers or {})


def test_unsigned_or_badly_signed_requests_get_403_and_touch_nothing(tmp_path: Path) -> None:
    async def body(s: Served) -> None:
        d = s.remote
        data_id = await put_object(d, b"k", b"z" * 1000, 1)
        rec = VersionRecord(vid=vid(9), dm=True).to_dict()
        commit = wire.pack({"b": B, "k": b"k", "r": rec, "p": []})
        target = "/peer/v1/drive/0/rpc/commit_version"
        wrong = Signer("another-secret-0123456789", "intruder")
        good = Signer(SECRET, "tester")
        tampered = good.headers("POST", target, commit)
        tampered["x-titans3-content"] = "0" * 64
        attempts = [
            ("POST", target, commit, {}),
            ("POST", target, commit, wrong.headers("POST", target, commit)),
            ("POST", target, commit, good.headers("POST", target, b"other body")),
            ("POST", target, commit, tampered),
            ("GET", f"/peer/v1/drive/0/frag/{data_id}?offset=0&length=10", b"", {}),
            ("POST", "/peer/v1/drive/0/rpc/delete_data", wire.pack({"ids": [data_id]}), {}),
            ("GET", "/peer/v1/heartbeat", b"", wrong.headers("GET", "/peer/v1/heartbeat")),
            ("GET", "/no/such/route", b"", {}),
        ]
        for method, tgt, payload, headers in attempts:
            resp = await trio.to_thread.run_sync(_raw, s.port, method, tgt, payload, headers)
            assert resp.status_code == 403, (method, tgt, resp.status_code)
        assert [v.vid for v in await s.local.read_versions(B, b"k")] == [vid(1)]
        assert await s.local.read_fragment(data_id, 0, 3) == b"zzz"
        # The same request properly signed is served; replaying it is refused.
        signed = good.headers("POST", target, commit)
        resp = await trio.to_thread.run_sync(_raw, s.port, "POST", target, commit, signed)
        assert resp.status_code == 200
        resp = await trio.to_thread.run_sync(_raw, s.port, "POST", target, commit, signed)
        assert resp.status_code == 403
        assert s.svc.verifier is not None and s.svc.verifier.statistics().rejected >= 8

    run(body, tmp_path / "d")


def test_a_request_dated_outside_the_window_gets_403(tmp_path: Path) -> None:
    async def body(s: Served) -> None:
        old = Signer(SECRET, "tester", clock=lambda: time.time() - 120)
        target = "/peer/v1/heartbeat"
        resp = await trio.to_thread.run_sync(_raw, s.port, "GET", target, b"", old.headers("GET", target))
        assert resp.status_code == 403

    run(body, tmp_path / "d")


def test_a_host_without_a_cluster_secret_refuses_everything(tmp_path: Path) -> None:
    async def main() -> None:
        svc = PeerService([], secret=None, describe=lambda: {})
        app = build_peer_app(svc)
        client = app.test_client()
        resp = await client.get("/peer/v1/heartbeat", headers=Signer(SECRET, "x").headers(
            "GET", "/peer/v1/heartbeat"))
        assert resp.status_code == 403

    trio.run(main)


def test_chunks_out_of_order_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(remote, "CHUNK", 4096)

    async def body(s: Served) -> None:
        w = await s.remote.create_fragment(new_id(), 0)
        await w.write(b"a" * 5000)
        w._sent = 0  # pretend we lost track: the next chunk claims offset 0 again
        with pytest.raises(DriveError, match="does not continue"):
            await w.write(b"b" * 5000)
        await w.abort()

    run(body, tmp_path / "d")



def test_swap_meta_is_a_compare_and_set_on_the_peers_drive(tmp_path: Path) -> None:
    async def body(s: Served) -> None:
        d = s.remote
        assert await d.swap_meta("t", b"k", b"one", None)  # absent -> one
        assert not await d.swap_meta("t", b"k", b"two", None)  # not absent any more
        assert not await d.swap_meta("t", b"k", b"two", b"zero")
        assert await d.swap_meta("t", b"k", b"two", b"one")
        assert await s.local.get_meta("t", b"k") == b"two"
        assert await d.swap_meta("t", b"k", None, b"two")  # delete
        assert await d.get_meta("t", b"k") is None
        assert await s.local.swap_meta("fresh-table", b"k", b"v", None)  # creates the table

    run(body, tmp_path / "d")


def test_a_session_whose_client_died_is_dropped_on_the_next_request_of_any_kind(tmp_path: Path) -> None:
    """Found by the crash torture: a coordinator SIGKILLed mid-PUT left its open
    writer (fd + staging file) on the peer until another upload opened -- in an
    idle cluster, for ever, and always beyond GC's commit window."""

    async def body(s: Served) -> None:
        s.svc.session_ttl = 0.5
        data_id = new_id()
        w = await s.remote.create_fragment(data_id, 0)
        await w.write(b"x" * 5000)  # ... and the client dies: no finish, no abort
        staged = tmp_path / "d" / "staging" / data_id
        assert staged.exists() and s.local.statistics().open_writers == 1
        await trio.sleep(1.1)
        await s.client.heartbeat()  # any request, not an upload
        assert not staged.exists() and s.local.statistics().open_writers == 0

    run(body, tmp_path / "d")
