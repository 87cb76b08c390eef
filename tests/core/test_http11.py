"""titans3.core.http11 under a real hypercorn, over real sockets: when ``100 Continue``
is sent, ``Connection: close`` on unread bodies, reason phrases, the install seam."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import hypercorn.protocol as hyper_protocol
import pytest
import trio
from h11 import _headers as h11_headers
from hypercorn.config import Config
from hypercorn.protocol import h11 as hyper_h11
from hypercorn.trio import serve
from hypothesis import given, settings
from hypothesis import strategies as st

from titans3.core import http11


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        await send({"type": message["type"] + ".complete"})
        if message["type"] == "lifespan.shutdown":
            return


async def _refuse(scope: dict, receive: Any, send: Any) -> None:
    """Answers 403 without reading the body (an authentication failure)."""
    if scope["type"] != "http":
        return await _lifespan(receive, send)
    await send({"type": "http.response.start", "status": 403,
                "headers": [(b"content-length", b"6")]})  # fmt: skip
    await send({"type": "http.response.body", "body": b"denied"})


async def _echo_length(scope: dict, receive: Any, send: Any) -> None:
    """Reads the whole body, answers with its length."""
    if scope["type"] != "http":
        return await _lifespan(receive, send)
    n = 0
    while True:
        message = await receive()
        n += len(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = str(n).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(len(body)).encode())]})  # fmt: skip
    await send({"type": "http.response.body", "body": body})


def _exchange(app: Callable[..., Any], client: Callable[[int], Any]) -> Any:
    """Run ``app`` under hypercorn with S3H11Protocol and ``client(port)`` in a thread."""
    port = _port()
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    config.errorlog = None

    async def main() -> Any:
        http11.install()
        async with trio.open_nursery() as nursery:
            await nursery.start(lambda task_status: serve(app, config, task_status=task_status))
            try:
                return await trio.to_thread.run_sync(client, port)
            finally:
                nursery.cancel_scope.cancel()

    return trio.run(main)


def _read_response(s: socket.socket) -> bytes:
    """One response with a Content-Length body, read exactly."""
    raw = b""
    while b"\r\n\r\n" not in raw:
        raw += s.recv(4096)
    head, _, body = raw.partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:")))  # fmt: skip
    while len(body) < length:
        body += s.recv(4096)
    return head + b"\r\n\r\n" + body


def _read_head(s: socket.socket) -> bytes:
    raw = b""
    while not raw.endswith(b"\r\n\r\n"):
        raw += s.recv(1)
    return raw


def _read_all(s: socket.socket) -> bytes:
    raw = b""
    while chunk := s.recv(65536):
        raw += chunk
    return raw


def test_a_refused_request_gets_its_final_answer_instead_of_100_and_is_closed():
    def client(port: int) -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"PUT /x HTTP/1.1\r\nHost: h\r\nContent-Length: 100000\r\n"
                      b"Expect: 100-continue\r\n\r\n")  # fmt: skip
            return _read_all(s)  # the body is never sent: the server must answer and close

    raw = _exchange(_refuse, client)
    assert raw.startswith(b"HTTP/1.1 403 Forbidden\r\n"), raw
    assert b"\r\nconnection: close\r\n" in raw.lower()
    assert raw.endswith(b"denied")


def test_the_100_comes_when_the_application_reads_the_body():
    def client(port: int) -> tuple[bytes, bytes]:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"PUT /x HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n"
                      b"Expect: 100-continue\r\nConnection: close\r\n\r\n")  # fmt: skip
            interim = s.recv(4096)
            s.sendall(b"hello")
            return interim, _read_all(s)

    interim, final = _exchange(_echo_length, client)
    assert interim.startswith(b"HTTP/1.1 100 Continue\r\n")
    assert final.startswith(b"HTTP/1.1 200 OK\r\n") and final.endswith(b"\r\n\r\n5")


def test_keep_alive_survives_requests_without_expect():
    def client(port: int) -> list[bytes]:
        out = []
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            for _ in range(3):
                s.sendall(b"PUT /x HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nab")
                out.append(_read_response(s))
        return out

    answers = _exchange(_echo_length, client)
    assert all(a.startswith(b"HTTP/1.1 200 OK\r\n") and a.endswith(b"2") for a in answers)
    assert not any(b"connection: close" in a.lower() for a in answers)


def _body_of(size: int, *, head_only: bool = False) -> Callable[..., Any]:
    async def app(scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await _lifespan(receive, send)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(size).encode())]})  # fmt: skip
        await send({"type": "http.response.body", "body": b"" if head_only else b"x" * size})

    return app


def _writes_per_response(app: Callable[..., Any], request: bytes) -> tuple[list[int], list[bytes]]:
    """Socket writes the server made for each of three keep-alive responses, and the answers."""
    writes: list[int] = []
    original = trio.SocketStream.send_all

    async def counting(self: trio.SocketStream, data: Any) -> None:
        writes.append(len(data))
        await original(self, data)

    def client(port: int) -> list[bytes]:
        out = []
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            for _ in range(3):
                s.sendall(request)
                out.append(_read_head(s) if request.startswith(b"HEAD") else _read_response(s))
        return out

    trio.SocketStream.send_all = counting  # type: ignore[method-assign]
    try:
        answers = _exchange(app, client)
    finally:
        trio.SocketStream.send_all = original  # type: ignore[method-assign]
    return writes, answers


@pytest.mark.parametrize("size", [0, 4096, http11.COALESCE_MAX])
def test_a_small_response_is_one_write(size: int):
    writes, answers = _writes_per_response(_body_of(size), b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n")
    assert len(writes) == 3, writes
    assert all(a.startswith(b"HTTP/1.1 200 OK\r\n") and a.endswith(b"\r\n\r\n" + b"x" * size)
               for a in answers)  # fmt: skip


def test_a_large_response_writes_its_head_first():
    size = http11.COALESCE_MAX + 1
    writes, answers = _writes_per_response(_body_of(size), b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n")
    assert len(writes) == 6 and writes[1] == size, writes
    assert all(a.endswith(b"x" * size) for a in answers)


def test_a_head_answer_keeps_its_length_and_is_one_write():
    request = b"HEAD /x HTTP/1.1\r\nHost: h\r\n\r\n"
    writes, answers = _writes_per_response(_body_of(4096, head_only=True), request)
    assert len(writes) == 3, writes
    assert all(a.startswith(b"HTTP/1.1 200 OK\r\n") and b"content-length: 4096\r\n" in a.lower()
               and a.endswith(b"\r\n\r\n") for a in answers)  # fmt: skip


@pytest.mark.parametrize(("status", "phrase"), [(200, b"OK"), (404, b"Not Found"),
                                               (501, b"Not Implemented"), (799, b"")])
def test_reason_phrases(status: int, phrase: bytes):
    assert http11.reason(status) == phrase


def test_install_refuses_when_hypercorns_seam_moved(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(hyper_protocol, "H11Protocol", object)
    with pytest.raises(RuntimeError, match="needs updating"):
        http11.install()
    monkeypatch.setattr(hyper_protocol, "H11Protocol", hyper_h11.H11Protocol)
    http11.install()
    http11.install()  # twice is fine
    assert hyper_protocol.H11Protocol is http11.S3H11Protocol


# ------------------------------------------------------ header checks in one pass
_header_bytes = st.binary(max_size=12) | st.sampled_from(
    [b"x-amz-meta-a", b"content-length", b"a b", b" a", b"a\t", b"a\r\nb", b"\x00", b"", b"\x01 x",
     b"ok\x01", b"\xff\xfe", b"t\tu", b"v\x0bw", b"e\x0c"])  # fmt: skip


@given(st.lists(st.tuples(_header_bytes, _header_bytes), max_size=6))
@settings(max_examples=2000, deadline=None)
def test_prechecked_headers_are_ones_h11_accepts(headers: list[tuple[bytes, bytes]]):
    if not http11._prechecked(headers):
        return
    h11_headers.normalize_and_validate(
        [(n, v) for n, v in headers if n.lower() not in (b"content-length", b"transfer-encoding")]
    )  # raises if h11 would refuse any of them


def test_common_response_headers_take_the_fast_path():
    assert http11._prechecked([(b"content-type", b"application/xml"), (b"etag", b'"abc"'),
                               (b"x-amz-meta-note", b"a b\tc"), (b"content-length", b"")])  # fmt: skip


@pytest.mark.parametrize("value", [b" lead", b"trail\t", b"a\x0bb"])
def test_values_h11_refuses_are_left_to_h11(value: bytes):
    assert not http11._prechecked([(b"x-amz-meta-a", value)])


@pytest.mark.parametrize("value", [b"a\r\nx-injected: 1", b"a\nb", b"a\x00"])
def test_a_header_value_h11_refuses_is_still_refused(value: bytes):
    assert not http11._prechecked([(b"x-amz-meta-a", value)])

    async def app(scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await _lifespan(receive, send)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"2"), (b"x-test", value)]})  # fmt: skip
        await send({"type": "http.response.body", "body": b"ok"})

    def client(port: int) -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n")
            return _read_all(s)

    raw = _exchange(app, client)
    assert b"x-injected" not in raw.lower() and b"x-test" not in raw.lower()
