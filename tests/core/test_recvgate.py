"""titans3.core.recvgate under a real hypercorn, over real sockets: a request is read
in narrow ``recv``s until its application widens the window, in full ones after."""

from __future__ import annotations

import socket
from typing import Any

import trio
from hypercorn.config import Config
from hypercorn.trio import serve, tcp_server

from titans3.core import connlimit, recvgate

BODY = 8 << 20


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _sizes_seen(narrow: int | None, widen_after: int) -> tuple[list[int], list[int]]:
    """Body message sizes before and after the app widened its window."""
    before: list[int] = []
    after: list[int] = []

    async def app(scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            while True:
                message = await receive()
                await send({"type": message["type"] + ".complete"})
                if message["type"] == "lifespan.shutdown":
                    return
        got = 0
        more = True
        while more and got < widen_after:
            message = await receive()
            more = message.get("more_body", False)
            before.append(len(message["body"]))
            got += len(message["body"])
        with recvgate.widened():
            assert recvgate.current() is not None and recvgate.current().wide
            while more:
                await trio.sleep(0.001)  # let the read loop run ahead of us
                message = await receive()
                more = message.get("more_body", False)
                after.append(len(message["body"]))
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"0")]})  # fmt: skip
        await send({"type": "http.response.body", "body": b""})

    def client(port: int) -> None:
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(b"PUT /x HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % BODY)
            s.sendall(bytes(BODY))
            assert s.recv(100).startswith(b"HTTP/1.1 200")

    port = _port()
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    config.errorlog = None
    if narrow is not None:
        config.titans3_recv_narrow = narrow  # type: ignore[attr-defined]

    async def main() -> None:
        connlimit.install()
        previous = tcp_server.MAX_RECV
        tcp_server.MAX_RECV = 1 << 20
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(lambda task_status: serve(app, config, task_status=task_status))
                try:
                    await trio.to_thread.run_sync(client, port)
                finally:
                    nursery.cancel_scope.cancel()
        finally:
            tcp_server.MAX_RECV = previous

    trio.run(main)
    return before, after


def test_reads_stay_narrow_until_the_request_is_admitted_then_go_full_size() -> None:
    before, after = _sizes_seen(recvgate.NARROW_RECV, widen_after=1 << 20)
    assert before and max(before) <= recvgate.NARROW_RECV
    assert max(after) > recvgate.NARROW_RECV
    assert sum(before) + sum(after) == BODY


def test_a_listener_without_a_narrow_size_reads_full_size_throughout() -> None:
    before, _ = _sizes_seen(None, widen_after=1 << 20)
    assert max(before) > recvgate.NARROW_RECV


def test_widened_outside_a_connection_is_a_no_op() -> None:
    assert recvgate.current() is None
    with recvgate.widened():
        assert recvgate.current() is None
