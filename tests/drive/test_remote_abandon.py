"""Requests waiting on a host that is marked down are given up at once."""

from __future__ import annotations

import time

import pytest
import trio

from titans3.core.errors import DriveOffline
from titans3.drive.protocol import DriveState
from titans3.drive.remote import PeerClient, Timeouts
from titans3.peer.auth import Signer

SECRET = "test-cluster-secret-0123456789"


def test_requests_in_flight_end_as_drive_offline_when_the_host_is_marked_down() -> None:
    async def main() -> None:
        listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
        port = listener.socket.getsockname()[1]
        conns: list[trio.SocketStream] = []

        async def accept_and_ignore() -> None:
            while True:
                conns.append(await listener.accept())

        async with trio.open_nursery() as nursery:
            nursery.start_soon(accept_and_ignore)
            # A read timeout far beyond the test: only the mark-down can end the calls.
            client = PeerClient(f"127.0.0.1:{port}", Signer(SECRET, "t"),
                                timeouts=Timeouts(connect=1, read=60, write=60, pool=60, heartbeat=1))
            d = client.drive(0)
            client.online, d._remote_state = True, DriveState.ONLINE
            outcomes: list[str] = []

            async def call(fn) -> None:  # type: ignore[no-untyped-def]
                try:
                    await fn()
                except DriveOffline:
                    outcomes.append("offline")

            t0 = time.monotonic()
            async with trio.open_nursery() as calls:
                calls.start_soon(call, lambda: d.read_versions(b"B" * 16, b"k"))
                calls.start_soon(call, lambda: d.read_fragment("ab" * 16, 0, 100))
                with trio.fail_after(5):
                    while len(conns) < 2:
                        await trio.sleep(0.01)
                client.mark_down("test")
            assert outcomes == ["offline", "offline"]
            assert time.monotonic() - t0 < 5
            with pytest.raises(DriveOffline):  # and new calls fail without a request
                await d.read_versions(b"B" * 16, b"k")
            await client.aclose()
            nursery.cancel_scope.cancel()

    trio.run(main)
