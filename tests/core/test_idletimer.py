"""titans3.core.idletimer under a real hypercorn (GatedTCPServer), over real sockets:
an idle keep-alive connection is closed after ``keep_alive_timeout``, a connection that
keeps sending requests is not, and a request does not start a task."""

from __future__ import annotations

import socket
import time
from typing import Any

import trio
from hypercorn.config import Config
from hypercorn.trio import serve

from titans3.core import connlimit

TIMEOUT = 0.6
REQUEST = b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _app(scope: dict, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


def _get(s: socket.socket) -> None:
    s.sendall(REQUEST)
    data = b""
    while not data.endswith(b"ok"):
        chunk = s.recv(4096)
        assert chunk, "connection closed during a request"
        data += chunk
    assert data.startswith(b"HTTP/1.1 200")


def _closed_within(s: socket.socket, seconds: float) -> float | None:
    """Seconds until the server closed ``s`` (None: still open after ``seconds``)."""
    start = time.monotonic()
    s.settimeout(seconds)
    try:
        return time.monotonic() - start if s.recv(1) == b"" else None
    except TimeoutError:
        return None
    except ConnectionResetError:
        return time.monotonic() - start


def _run(client: Any) -> Any:
    port = _port()
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    config.errorlog = None
    config.keep_alive_timeout = TIMEOUT
    result: list[Any] = []

    async def main() -> None:
        connlimit.install()
        async with trio.open_nursery() as nursery:
            await nursery.start(lambda task_status: serve(_app, config, task_status=task_status))
            try:
                result.append(await trio.to_thread.run_sync(client, port))
            finally:
                nursery.cancel_scope.cancel()

    trio.run(main)
    return result[0]


def test_an_idle_keep_alive_connection_is_closed_after_the_timeout() -> None:
    def client(port: int) -> float | None:
        with socket.create_connection(("127.0.0.1", port)) as s:
            _get(s)
            return _closed_within(s, TIMEOUT * 4)

    closed = _run(client)
    assert closed is not None, "idle connection still open"
    assert TIMEOUT * 0.7 < closed < TIMEOUT * 2.5, closed


def test_a_connection_busy_with_requests_outlives_the_timeout_then_idles_out() -> None:
    def client(port: int) -> tuple[float, float | None]:
        with socket.create_connection(("127.0.0.1", port)) as s:
            start = time.monotonic()
            while time.monotonic() - start < TIMEOUT * 3:  # each gap well under the timeout
                _get(s)
                time.sleep(TIMEOUT / 4)
            return time.monotonic() - start, _closed_within(s, TIMEOUT * 4)

    alive_for, closed = _run(client)
    assert alive_for >= TIMEOUT * 3
    assert closed is not None and TIMEOUT * 0.7 < closed < TIMEOUT * 2.5, closed


def test_a_slow_request_head_is_cut_at_the_timeout() -> None:
    def client(port: int) -> float | None:
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(b"GET /x HTTP/1.1\r\n")  # never finished: hypercorn counts it as idle
            return _closed_within(s, TIMEOUT * 4)

    closed = _run(client)
    assert closed is not None and closed < TIMEOUT * 2.5, closed


def test_a_request_spawns_only_its_application_task() -> None:
    spawned: list[str] = []

    class Spawns(trio.abc.Instrument):
        def task_spawned(self, task: trio.lowlevel.Task) -> None:
            spawned.append(task.name)

    port = _port()
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    config.errorlog = None
    config.keep_alive_timeout = 30
    n = 20

    def client() -> None:
        with socket.create_connection(("127.0.0.1", port)) as s:
            _get(s)
            trio.from_thread.run_sync(trio.lowlevel.add_instrument, instrument)
            for _ in range(n):
                _get(s)
            trio.from_thread.run_sync(trio.lowlevel.remove_instrument, instrument)

    instrument = Spawns()

    async def main() -> None:
        connlimit.install()
        async with trio.open_nursery() as nursery:
            await nursery.start(lambda task_status: serve(_app, config, task_status=task_status))
            try:
                await trio.to_thread.run_sync(client)
            finally:
                nursery.cancel_scope.cancel()

    trio.run(main)
    # one ASGI task per request; hypercorn's own timer would add one more each
    apps = [name for name in spawned if "_handle" in name]
    assert len(apps) == n, spawned
    assert len(spawned) <= n + 2, spawned
