"""PeerClient coalescing (titans3/drive/remote.py) against the real peer app's
``/peer/v1/batch`` route: calls to one host made together are one request."""

from __future__ import annotations

import socket
import uuid
from pathlib import Path
from typing import Any

import pytest
import trio
from hypercorn.config import Config as HyperConfig
from hypercorn.trio import serve

from titans3.core.errors import DriveOffline, FragmentMissing
from titans3.drive import wire
from titans3.drive.local import LocalDrive
from titans3.drive.records import VersionRecord
from titans3.drive.remote import PeerClient, Timeouts
from titans3.peer.app import PeerService, build_peer_app
from titans3.peer.auth import Signer

B = b"bucket01"
SECRET = "test-cluster-secret-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_two(tmp: Path, fn: Any) -> None:
    async def main() -> None:
        async with LocalDrive(tmp / "a") as a, LocalDrive(tmp / "b") as b:
            drives = [a, b]
            svc = PeerService(drives, secret=SECRET, describe=lambda: {
                "host_id": "h1", "ring_version": 0,
                "drives": [{"index": i, "drive_id": d.drive_id, "state": d.state.value}
                           for i, d in enumerate(drives)]})
            port = free_port()
            hc = HyperConfig()
            hc.bind = [f"127.0.0.1:{port}"]
            hc.accesslog = None
            hc.graceful_timeout = 0.5
            async with trio.open_nursery() as nursery:
                await nursery.start(serve, build_peer_app(svc), hc)
                client = PeerClient(f"127.0.0.1:{port}", Signer(SECRET, "tester"),
                                    timeouts=Timeouts(read=5.0))
                try:
                    await client.heartbeat()
                    await fn(client, drives)
                finally:
                    await client.aclose()
                    nursery.cancel_scope.cancel()

    trio.run(main)


def test_calls_made_together_are_one_request_and_keep_their_own_answers(tmp_path: Path) -> None:
    async def body(client: PeerClient, local: list[LocalDrive]) -> None:
        r0, r1 = client.drive(0), client.drive(1)
        rec = VersionRecord(vid=f"{1:032x}", size=0, null=True)
        await local[0].commit_version(B, b"k", rec)
        got: dict[str, Any] = {}

        async def read(name: str, d: Any) -> None:
            got[name] = await d.read_versions(B, b"k")

        async def missing() -> None:
            with pytest.raises(FragmentMissing):
                await r1.fragment_size(uuid.uuid4().hex)
            got["missing"] = True

        before = client._requests
        async with trio.open_nursery() as nursery:
            nursery.start_soon(read, "d0", r0)
            nursery.start_soon(read, "d1", r1)
            nursery.start_soon(missing)
        assert client._requests == before + 1 and client.batches == 1
        assert [r.vid for r in got["d0"]] == [rec.vid] and got["d1"] == [] and got["missing"]
        # Calls made one after the other are separate plain requests.
        await r0.read_versions(B, b"k")
        await r1.read_versions(B, b"k")
        assert client._requests == before + 3 and client.batches == 1

    serve_two(tmp_path, body)


def test_a_cancelled_first_caller_still_sends_the_others_calls(tmp_path: Path) -> None:
    async def body(client: PeerClient, local: list[LocalDrive]) -> None:
        await local[1].commit_version(B, b"k", VersionRecord(vid=f"{2:032x}", size=0))
        got: list[Any] = []

        async def first() -> None:
            with trio.CancelScope() as cs:
                cs.cancel()  # cancelled before it ever runs: it must still flush
                await client.drive(0).read_versions(B, b"k")

        async def second() -> None:
            got.append(await client.drive(1).read_versions(B, b"k"))

        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(first)
                nursery.start_soon(second)
        assert [r.vid for r in got[0]] == [f"{2:032x}"]

    serve_two(tmp_path, body)


def test_a_host_going_down_fails_every_call_of_the_batch_as_offline(tmp_path: Path) -> None:
    async def body(client: PeerClient, local: list[LocalDrive]) -> None:
        errors: list[Exception] = []

        async def one(i: int) -> None:
            try:
                await client.drive(i).read_versions(B, b"k")
            except DriveOffline as e:
                errors.append(e)

        async def kill_soon() -> None:
            client.mark_down("test")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(one, 0)
            nursery.start_soon(one, 1)
            nursery.start_soon(kill_soon)
        # Whether the mark came before the calls queued or while they were in
        # flight, both fail fast as offline; none hangs, none gets a result.
        assert len(errors) == 2

    serve_two(tmp_path, body)


def test_a_malformed_batch_is_refused_with_a_clean_error(tmp_path: Path) -> None:
    async def body(client: PeerClient, local: list[LocalDrive]) -> None:
        for raw in (b"\xc1", wire.pack({"not": "a list"}), wire.pack([[0, "stat"]]),
                    wire.pack([[0, "stat", {}]] * 300)):
            resp = await client._send("POST", "/peer/v1/batch", raw)
            assert resp.status_code == 400, raw[:20]
            assert wire.unpack(resp.content)["error"] == "ValueError"
        resp = await client._send("POST", "/peer/v1/batch", wire.pack([[7, "stat", {}], [0, "nope", {}]]))
        assert resp.status_code == 200
        (s1, d1), (s2, d2) = wire.unpack(resp.content)
        assert (s1, d1["error"]) == (404, "DriveError") and (s2, d2["error"]) == (404, "ValueError")

    serve_two(tmp_path, body)
