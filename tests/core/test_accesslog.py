"""The request observer and the access log, around a small ASGI app."""

from __future__ import annotations

import json
import time
from pathlib import Path

import trio

from titans3.core import metrics
from titans3.core.accesslog import AccessLog
from titans3.core.metrics import RequestObserver, annotate, peer_route


def make_app(status: int, body: bytes):
    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        annotate(scope, op="GetObject", bucket="bkt", key="a/b.txt", requester="AKIA1")
        msg = await receive()
        assert msg["type"] == "http.request"
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"x-amz-request-id", b"REQ1"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
    return app


async def one(app, body: bytes = b"") -> None:  # type: ignore[no-untyped-def]
    scope = {"type": "http", "method": "PUT", "path": "/bkt/a/b.txt", "raw_path": b"/bkt/a/b.txt",
             "query_string": b"x-id=PutObject", "http_version": "1.1", "client": ("10.1.2.3", 5000),
             "headers": [(b"Authorization", b"AWS4-HMAC-SHA256 Credential=..."), (b"User-Agent", b"ua/1")]}
    events = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive():  # type: ignore[no-untyped-def]
        return events.pop(0)

    async def send(m):  # type: ignore[no-untyped-def]
        pass

    await app(scope, receive, send)


def test_an_error_is_logged_with_its_s3_code_and_counted(tmp_path: Path) -> None:
    log = AccessLog(str(tmp_path / "access.log"), owner="owner-id")
    err = b"<?xml version='1.0'?><Error><Code>NoSuchKey</Code><Message>m</Message></Error>"
    before = metrics.S3_ERRORS.labels("GetObject", "NoSuchKey")._value.get()
    trio.run(one, RequestObserver(make_app(404, err), "s3", on_done=log), b"12345")
    log.close()
    rec = json.loads((tmp_path / "access.log").read_text())
    assert rec["http_status"] == 404 and rec["error_code"] == "NoSuchKey"
    assert rec["bucket"] == "bkt" and rec["key"] == "a/b.txt" and rec["requester"] == "AKIA1"
    assert rec["bytes_received"] == 5 and rec["bytes_sent"] == len(err) and rec["object_size"] is None
    assert rec["request_uri"] == "PUT /bkt/a/b.txt?x-id=PutObject HTTP/1.1"
    assert rec["operation"] == "REST.PUT.OBJECT" and rec["request_id"] == "REQ1"
    assert rec["signature_version"] == "SigV4" and rec["authentication_type"] == "AuthHeader"
    assert rec["remote_ip"] == "10.1.2.3" and rec["user_agent"] == "ua/1" and rec["bucket_owner"] == "owner-id"
    assert metrics.S3_ERRORS.labels("GetObject", "NoSuchKey")._value.get() == before + 1


def test_the_log_rotates_by_size(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    log = AccessLog(str(path), max_bytes=2000, backups=2)
    app = RequestObserver(make_app(200, b"ok"), "s3", on_done=log)
    for _ in range(40):
        trio.run(one, app)
        log.flush()
    log.close()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["access.log", "access.log.1", "access.log.2"]
    assert all(p.stat().st_size <= 2000 for p in tmp_path.iterdir())
    for p in tmp_path.iterdir():
        assert all(json.loads(line)["http_status"] == 200 for line in p.read_text().splitlines())


def test_peer_routes_are_bounded_labels() -> None:
    assert peer_route("/peer/v1/drive/3/rpc/commit_version") == "rpc/commit_version"
    assert peer_route("/peer/v1/drive/0/frag/abcd/write") == "frag"
    assert peer_route("/peer/v1/batch") == "batch"
    assert peer_route("/peer/v1/cluster/ring") == "cluster/ring"


def test_utc_stamp_matches_strftime_across_second_boundaries():
    from titans3.core.accesslog import utc_stamp

    for t in (0.0, 1733594491.1234, 1733594491.9999, 1733594492.0005, 1733594491.5, 1e9 + 0.25):
        want = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}Z"
        assert utc_stamp(t) == want
