"""Bad streamed bodies against the real daemon: the AWS error, and nothing visible.

Signed aws-chunked bodies are built here from the SigV4 primitives (seed
signature from the Authorization header, then one signature per chunk), so
tampering and truncation can be aimed exactly.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import http.client
import os
import zlib
from collections.abc import Iterator

import pytest

from titans3.s3 import signer, sigv4

from . import cluster
from .cluster import HOST, REGION, Daemon
from .rawhttp import Response, raw_request

BUCKET = "badbodies"
EMPTY = hashlib.sha256(b"").hexdigest()


@pytest.fixture(scope="module")
def d(module_daemon: Daemon) -> Iterator[Daemon]:
    assert raw_request(module_daemon, "PUT", f"/{BUCKET}").status == 200
    yield module_daemon


def _signed_chunked_put(
    d: Daemon, key: str, chunks: list[bytes], *, tamper: int | None = None, drop_final: bool = False
) -> Response:
    now = dt.datetime.now(dt.UTC)
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    date = amz_date[:8]
    decoded = sum(len(c) for c in chunks)
    path = f"/{BUCKET}/{key}"
    headers = {
        "content-encoding": "aws-chunked",
        "x-amz-decoded-content-length": str(decoded),
        "x-amz-date": amz_date,
    }
    added = signer.sign_request(
        "PUT", d.endpoint + path, dict(headers), access_key=d.credentials.access_key,
        secret_key=d.credentials.secret_key, region=REGION,
        payload_sha256="STREAMING-AWS4-HMAC-SHA256-PAYLOAD", now=now,
    )
    headers.update(added)
    seed = headers["authorization"].rsplit("Signature=", 1)[1]
    key_bytes = sigv4.derive_signing_key(d.credentials.secret_key, date, REGION, "s3")
    scope = f"{date}/{REGION}/s3/aws4_request"
    body = bytearray()
    prev = seed
    for i, chunk in enumerate([*chunks, b""]):
        if drop_final and not chunk:
            break
        to_sign = "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", amz_date, scope, prev, EMPTY,
                             hashlib.sha256(chunk).hexdigest()])
        sig = sigv4.sign(key_bytes, to_sign)
        if tamper == i:
            sig = ("0" if sig[0] != "0" else "1") + sig[1:]
        body += f"{len(chunk):x};chunk-signature={sig}\r\n".encode() + chunk + b"\r\n"
        prev = sig
    headers["content-length"] = str(len(body))
    conn = http.client.HTTPConnection(HOST, d.s3_port, timeout=60)
    try:
        conn.request("PUT", path, body=bytes(body), headers=headers)
        r = conn.getresponse()
        return Response(r.status, dict(r.getheaders()), r.read())
    finally:
        conn.close()


def _visible(d: Daemon, key: str) -> bool:
    return raw_request(d, "HEAD", f"/{BUCKET}/{key}").status == 200


def test_signed_chunked_upload_round_trips(d: Daemon) -> None:
    chunks = [os.urandom(64 * 1024), os.urandom(64 * 1024), os.urandom(1000)]
    r = _signed_chunked_put(d, "good", chunks)
    assert r.status == 200, r.body
    assert raw_request(d, "GET", f"/{BUCKET}/good").body == b"".join(chunks)


@pytest.mark.parametrize("which", [0, 1, 2])
def test_wrong_chunk_signature_is_403_and_leaves_nothing(d: Daemon, which: int) -> None:
    chunks = [os.urandom(64 * 1024), os.urandom(5000)]
    r = _signed_chunked_put(d, f"tampered{which}", chunks, tamper=which)
    assert r.status == 403 and r.error_code() == "SignatureDoesNotMatch"
    assert not _visible(d, f"tampered{which}")


def test_chunked_body_without_its_final_chunk_is_incomplete_and_invisible(d: Daemon) -> None:
    r = _signed_chunked_put(d, "truncated", [os.urandom(70_000)], drop_final=True)
    assert r.status == 400 and r.error_code() == "IncompleteBody"
    assert not _visible(d, "truncated")


def test_truncated_overwrite_keeps_the_previous_version(d: Daemon) -> None:
    assert raw_request(d, "PUT", f"/{BUCKET}/keep", body=b"old").status == 200
    r = _signed_chunked_put(d, "keep", [os.urandom(2 << 20)], drop_final=True)
    assert r.status == 400
    assert raw_request(d, "GET", f"/{BUCKET}/keep").body == b"old"


def test_wrong_trailing_crc32_is_bad_digest_and_invisible(d: Daemon) -> None:
    data = os.urandom(100_000)
    bad = base64.b64encode((zlib.crc32(data) ^ 1).to_bytes(4, "big")).decode()
    body = f"{len(data):x}\r\n".encode() + data + b"\r\n0\r\n" + \
        f"x-amz-checksum-crc32:{bad}\r\n\r\n".encode()
    path = f"/{BUCKET}/badcrc"
    headers = {
        "content-encoding": "aws-chunked",
        "x-amz-decoded-content-length": str(len(data)),
        "x-amz-trailer": "x-amz-checksum-crc32",
    }
    headers.update(signer.sign_request(
        "PUT", d.endpoint + path, dict(headers), access_key=d.credentials.access_key,
        secret_key=d.credentials.secret_key, region=REGION,
        payload_sha256="STREAMING-UNSIGNED-PAYLOAD-TRAILER",
    ))
    conn = http.client.HTTPConnection(HOST, d.s3_port, timeout=60)
    try:
        conn.request("PUT", path, body=body, headers=headers)
        resp = conn.getresponse()
        out = Response(resp.status, dict(resp.getheaders()), resp.read())
    finally:
        conn.close()
    assert out.status == 400 and out.error_code() == "BadDigest"
    assert not _visible(d, "badcrc")


def test_listing_is_in_exact_utf8_byte_order_with_unicode_and_1024_byte_keys(d: Daemon) -> None:
    s3 = cluster.s3_client(d)
    try:
        s3.create_bucket(Bucket="order")
        keys = [
            "a", "A", "ä", "z", "é", "日本", "😀", "a/b", "a0", "a-", "ab",
            ("x" * 1023) + "a", ("x" * 1023) + "b", ("x" * 1022) + "é",
            ("x" * 600) + "middle", ("L" * 1000) + "/é",
        ]
        keys = [k for k in keys if len(k.encode()) <= 1024]
        for k in keys:
            s3.put_object(Bucket="order", Key=k, Body=k.encode()[:10])
        got: list[str] = []
        token = None
        while True:
            kw = {"Bucket": "order", "MaxKeys": 3}
            if token:
                kw["ContinuationToken"] = token
            page = s3.list_objects_v2(**kw)
            got += [o["Key"] for o in page.get("Contents", [])]
            if not page.get("IsTruncated"):
                break
            token = page["NextContinuationToken"]
        assert got == sorted(keys, key=lambda k: k.encode())
        assert max(len(k.encode()) for k in got) == 1024
    finally:
        s3.close()
