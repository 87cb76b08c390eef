"""Hostile and broken clients: the daemon keeps serving others, stays bounded, answers cleanly.

One daemon (6 drives, EC 4+2) with short limits so the suite is quick:
idle/head timeout 4 s, body stall timeout 3 s, unacknowledged-send timeout
5 s, 1,500 connections per listener.  Every case checks, beside its own
answer, that a well-behaved boto3 client is served while the hostile one is
at work, and that the daemon's open descriptors come back afterwards.  RSS
and descriptors before / at the worst moment / after go into a table printed
when the module ends (``-s`` to see it; ``TITANS3_FIGURES=FILE`` keeps them).
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from . import hostile
from .cluster import HOST, Daemon, s3_client
from .conftest import _start, _teardown
from .hostile import MiB, Watch, connect, object_path, read_response, signed_head

IDLE, BODY, SEND, MAXCONN = 4.0, 3.0, 5.0, 1500
ENV = {
    "TITANS3_IDLE_TIMEOUT": str(IDLE),
    "TITANS3_BODY_TIMEOUT": str(BODY),
    "TITANS3_SEND_TIMEOUT": str(SEND),
    "TITANS3_MAX_CONNECTIONS": str(MAXCONN),
}
BUCKET = "hostile"


@pytest.fixture(scope="module")
def d(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    made: list[Daemon] = []
    try:
        dm = _start(tmp_path_factory.mktemp("hostile"), made, drives=6, env=ENV)
        s3_client(dm).create_bucket(Bucket=BUCKET)
        yield dm
        assert "Traceback" not in dm.log_text(), dm.log_tail(120)
    finally:
        _teardown(made)
        print("\nhostile clients: daemon RSS / open descriptors\n" + hostile.table())
        hostile.dump()


@pytest.fixture
def s3(d: Daemon):  # noqa: ANN201
    client = s3_client(d)
    yield client
    client.close()


def served(s3, key: str = "probe", size: int = 64 * 1024, budget: float = 10.0) -> float:  # noqa: ANN001
    """A well-behaved PUT + GET round trip works within ``budget`` seconds; returns its time."""
    body = os.urandom(size)
    t0 = time.monotonic()
    s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == body
    took = time.monotonic() - t0
    assert took < budget, f"a normal PUT+GET took {took:.1f}s while the hostile client ran"
    return took


def absent(s3, key: str) -> bool:  # noqa: ANN001
    from botocore.exceptions import ClientError

    try:
        s3.head_object(Bucket=BUCKET, Key=key)
    except ClientError as e:
        return e.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound")
    return False


# ------------------------------------------------------------ connections
def test_thousands_of_idle_connections_are_bounded_and_others_served(d: Daemon, s3) -> None:
    n = 4000
    w = Watch(d, f"{n} idle connections (limit {MAXCONN})")
    socks: list[socket.socket] = []
    try:
        for _ in range(n):
            socks.append(socket.create_connection((HOST, d.s3_port), timeout=10))
        time.sleep(1.0)
        peak = w.sample()
        assert peak.fds <= w.before.fds + MAXCONN + 50, f"daemon holds {peak.fds} descriptors"
        served(s3, "during-idle-flood")
        w.sample()
        # The gate shed the longest-idle ones to admit newer ones: the first are closed.
        closed = sum(hostile.is_closed_by_peer(s) for s in socks[:n - MAXCONN])
        assert closed >= n - MAXCONN - 100, f"only {closed} of the oldest idle connections shed"
    finally:
        for s in socks:
            s.close()
    after = w.settle(timeout=IDLE + 10)
    assert after.fds <= w.before.fds + 8, f"descriptors not released: {w.before} -> {after}"
    assert w.worst.rss - w.before.rss < 200 * MiB, f"RSS grew {w.before} -> {w.worst}"


def test_slowloris_headers_are_cut_at_the_idle_timeout(d: Daemon, s3) -> None:
    n = 200
    w = Watch(d, f"{n} slowloris heads, a header line per second")
    socks = [connect(d) for _ in range(n)]
    start = time.monotonic()
    alive = list(socks)
    cut_after: list[float] = []
    try:
        for s in socks:
            s.sendall(f"GET /{BUCKET}/x HTTP/1.1\r\nHost: {HOST}\r\n".encode())
        while alive and time.monotonic() - start < IDLE + 10:
            for s in list(alive):
                try:
                    s.sendall(b"X-Slow: a\r\n")
                except OSError:
                    alive.remove(s)
                    cut_after.append(time.monotonic() - start)
                    continue
                if hostile.is_closed_by_peer(s):
                    alive.remove(s)
                    cut_after.append(time.monotonic() - start)
            w.sample()
            if len(cut_after) < n // 2:
                served(s3, "during-slowloris-heads")
            time.sleep(1.0)
        assert not alive, f"{len(alive)} slowloris connections still open after {IDLE + 10:.0f}s"
        assert max(cut_after) < IDLE + 4, f"cut after up to {max(cut_after):.1f}s (idle {IDLE}s)"
    finally:
        for s in socks:
            s.close()
    w.settle()


def test_a_stalled_body_gets_400_request_timeout_and_a_close(d: Daemon, s3) -> None:
    w = Watch(d, "PUT body stalls after 1 KiB of 1 MiB")
    s = connect(d)
    try:
        head = signed_head(d, "PUT", object_path(BUCKET, "stalled"), {"Content-Length": str(MiB)})
        s.sendall(head + os.urandom(1024))
        t0 = time.monotonic()
        threading.Thread(target=served, args=(s3, "during-stalled-body"), daemon=True).start()
        r, closed = read_response(s, timeout=BODY + 10)
        took = time.monotonic() - t0
        assert r is not None, "no answer to a stalled body"
        assert (r.status, r.error_code()) == (400, "RequestTimeout"), (r.status, r.body)
        assert closed and took < BODY + 3, (closed, took)
    finally:
        s.close()
    assert absent(s3, "stalled")
    w.settle()


def test_a_trickled_body_is_cut_by_the_minimum_rate(d: Daemon, s3) -> None:
    s = connect(d)
    try:
        head = signed_head(d, "PUT", object_path(BUCKET, "trickle"), {"Content-Length": "100000"})
        s.sendall(head)
        t0 = time.monotonic()
        while time.monotonic() - t0 < 3 * BODY + 10:
            try:
                s.sendall(b"x")  # one byte a second: every wait is under the stall timeout
            except OSError:
                break
            if hostile.is_closed_by_peer(s):
                break
            s.settimeout(1.0)
            try:
                if s.recv(1, socket.MSG_PEEK):
                    break
            except TimeoutError:
                pass
            except OSError:
                break
        answer, _ = read_response(s, timeout=5)
        took = time.monotonic() - t0
        assert took < 3 * BODY + 5, f"a 1 byte/s body ran {took:.0f}s"
        if answer is not None:
            assert (answer.status, answer.error_code()) == (400, "RequestTimeout")
    finally:
        s.close()
    assert absent(s3, "trickle")
    served(s3)


def test_oversized_heads_get_a_clean_4xx(d: Daemon, s3) -> None:
    """A head h11 cannot hold (over 64 KiB still incomplete) is 431 and a close; a large one
    that arrived whole is an ordinary request and gets its ordinary S3 error."""
    w = Watch(d, "oversized heads (80 KiB-5 MiB header, 2,000 headers, 100 KiB target)")
    cases = {
        "one 80 KiB header": (f"GET /{BUCKET}/x HTTP/1.1\r\nHost: h\r\nX-Big: {'a' * 80_000}\r\n\r\n", False),
        "one 5 MiB header": (f"GET /{BUCKET}/x HTTP/1.1\r\nHost: h\r\nX-Big: {'a' * 5 * MiB}\r\n\r\n", True),
        "2,000 headers": (f"GET /{BUCKET}/x HTTP/1.1\r\nHost: h\r\n"
                          + "".join(f"X-H{i}: {'v' * 30}\r\n" for i in range(2000)) + "\r\n", False),
        "100 KiB target": (f"GET /{BUCKET}/{'k' * 100_000} HTTP/1.1\r\nHost: h\r\n\r\n", False),
        "2 MiB target": (f"GET /{BUCKET}/{'k' * 2 * MiB} HTTP/1.1\r\nHost: h\r\n\r\n", True),
    }
    for name, (raw, must_close) in cases.items():
        s = connect(d)
        try:
            # closed while we were still sending: also a clean refusal
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                s.sendall(raw.encode())
            r, closed = read_response(s, timeout=5)
            assert r is not None or closed, f"{name}: no answer and still open"
            if r is not None:
                assert 400 <= r.status < 500 and r.error_code(), f"{name}: {r.status} {r.body[:200]!r}"
            if must_close:
                assert closed, f"{name}: connection left open"
        finally:
            s.close()
        w.sample()
    served(s3)
    w.settle()


def test_body_longer_than_content_length_stores_exactly_the_declared_bytes(d: Daemon, s3) -> None:
    body = os.urandom(1000)
    s = connect(d)
    try:
        s.sendall(signed_head(d, "PUT", object_path(BUCKET, "longer"), {"Content-Length": "1000"})
                  + body + b"THIS IS NOT AN HTTP REQUEST\r\n\r\n")
        r, closed = read_response(s, timeout=10)
        assert r is not None and r.status == 200, r
        assert closed, "the bytes after the body are not a request: the connection must close"
    finally:
        s.close()
    assert s3.get_object(Bucket=BUCKET, Key="longer")["Body"].read() == body


def test_body_shorter_than_content_length_stores_nothing(d: Daemon, s3) -> None:
    s = connect(d)
    try:
        s.sendall(signed_head(d, "PUT", object_path(BUCKET, "shorter"), {"Content-Length": "100000"})
                  + os.urandom(50_000))
        s.shutdown(socket.SHUT_WR)  # the client is done: EOF 50,000 bytes early
        r, closed = read_response(s, timeout=BODY + 10)
        assert closed
        assert r is None or r.status == 400, (r.status, r.body)
    finally:
        s.close()
    assert absent(s3, "shorter")
    served(s3)


def test_a_client_that_stops_reading_a_large_get_is_dropped(d: Daemon, s3) -> None:
    size = 96 * MiB
    src = Path(os.environ.get("TMPDIR", "/tmp")) / f"hostile-{os.getpid()}.bin"
    with open(src, "wb") as f:
        for _ in range(size // MiB):
            f.write(os.urandom(MiB))
    try:
        s3.upload_file(str(src), BUCKET, "large")
    finally:
        src.unlink()
    w = Watch(d, "GET of 96 MiB, client stops reading after 64 KiB")
    s = connect(d)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        s.sendall(signed_head(d, "GET", object_path(BUCKET, "large"),
                              payload="e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"))
        got = s.recv(64 * 1024)
        assert got.startswith(b"HTTP/1.1 200"), got[:100]
        t0 = time.monotonic()
        for _ in range(3):
            served(s3, "while-a-get-is-stuck")
            w.sample()
        assert hostile.server_side_open(d.s3_port, s)
        # TCP_USER_TIMEOUT: the daemon's unacknowledged send fails, the request ends.
        hostile.wait_until(
            "the stuck GET's connection is closed by the daemon",
            lambda: (w.sample(), not hostile.server_side_open(d.s3_port, s))[1], SEND + 60, every=0.5)
        dropped_after = time.monotonic() - t0
    finally:
        s.close()
    after = w.settle()
    hostile.FIGURES[-1].note = f"dropped after {dropped_after:.0f}s"
    assert w.worst.rss - w.before.rss < 150 * MiB, f"RSS {w.before} -> {w.worst}"
    assert after.fds <= w.before.fds + 8


# --------------------------------------------------------------- framing
def _chunked_put(d: Daemon, key: str, wire: bytes, *, decoded: int, signed: bool = False) -> bytes:
    mode = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD" if signed else "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
    headers = {"Content-Encoding": "aws-chunked", "X-Amz-Decoded-Content-Length": str(decoded),
               "Content-Length": str(len(wire))}
    if not signed:
        headers["X-Amz-Trailer"] = "x-amz-checksum-crc32"
    return signed_head(d, "PUT", object_path(BUCKET, key), headers, payload=mode) + wire


MALFORMED = {
    "size not hex": (b"zz\r\nhello\r\n0\r\n\r\n", 5),
    "size beyond the decoded length": (b"10000\r\n" + b"a" * 0x10000 + b"\r\n0\r\n\r\n", 5),
    "no CRLF after the data": (b"5\r\nhelloXX0\r\n\r\n", 5),
    "64-bit size": (b"ffffffffffffffff\r\nhello\r\n0\r\n\r\n", 5),
    "negative size": (b"-5\r\nhello\r\n0\r\n\r\n", 5),
    "endless size line": (b"1" * 200_000, 5),
    "missing final chunk": (b"5\r\nhello\r\n", 5),
    "bad trailer": (b"5\r\nhello\r\n0\r\nx-amz-checksum-crc32:!!!notbase64\r\n\r\n", 5),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_aws_chunked_framing_is_a_clean_4xx(d: Daemon, s3, case: str) -> None:
    wire, decoded = MALFORMED[case]
    key = "chunked-" + case.replace(" ", "-")
    s = connect(d)
    try:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            s.sendall(_chunked_put(d, key, wire, decoded=decoded))
        r, closed = read_response(s, timeout=BODY + 10)
        assert r is not None, f"{case}: no answer (closed={closed})"
        assert 400 <= r.status < 500 and r.error_code(), (case, r.status, r.body[:300])
    finally:
        s.close()
    assert absent(s3, key)


def test_wrong_chunk_signatures_are_refused(d: Daemon, s3) -> None:
    wire = (b"5;chunk-signature=" + b"0" * 64 + b"\r\nhello\r\n"
            + b"0;chunk-signature=" + b"0" * 64 + b"\r\n\r\n")
    s = connect(d)
    try:
        s.sendall(_chunked_put(d, "bad-chunk-sig", wire, decoded=5, signed=True))
        r, _ = read_response(s, timeout=BODY + 10)
        assert r is not None and r.status == 403 and r.error_code() == "SignatureDoesNotMatch", r
    finally:
        s.close()
    assert absent(s3, "bad-chunk-sig")
