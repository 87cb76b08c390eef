"""The HTTP layer as S3 clients see it: status lines, ``Expect: 100-continue``,
body framing, and errors that must come before the status line.

What AWS does and these tests pin:

* every status line carries its reason phrase (botocore's ``Expect`` handling
  needs three parts in it);
* a request with ``Expect: 100-continue`` that fails authentication or
  validation gets its final status *instead of* ``100 Continue``, with
  ``Connection: close``; the body is never asked for;
* botocore PUTs refused that way raise the right error and leave the client's
  connection pool working, with no traceback in the server log;
* a PUT with neither ``Content-Length`` nor ``Transfer-Encoding: chunked`` is
  ``411 MissingContentLength``; a chunked PUT (``curl -T -``) is stored;
* a GET whose first bytes cannot be read answers ``503`` with an XML error,
  not a ``200`` that breaks after the headers.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import socket
import subprocess
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from .cluster import EMPTY_SHA256, HOST, Credentials, Daemon, MiB, s3_client
from .objtools import module_fixtures
from .rawhttp import parse_raw_response, s3_error_code, sign

BUCKET = "httplayer"
GiB = 1 << 30


d, s3, cli, _no_traceback = module_fixtures(BUCKET, home="aws-httplayer")


def _head(method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _read_until_closed(s: socket.socket) -> bytes:
    raw = b""
    while chunk := s.recv(65536):  # a TimeoutError here means the socket stayed open
        raw += chunk
    return raw


def _status_line(raw: bytes) -> bytes:
    return raw.split(b"\r\n", 1)[0]


# ------------------------------------------------------------ status lines
@pytest.mark.parametrize(
    ("path", "signed", "line"),
    [
        ("/", True, b"HTTP/1.1 200 OK"),
        (f"/{BUCKET}/no-such-key", True, b"HTTP/1.1 404 Not Found"),
        ("/", False, b"HTTP/1.1 403 Forbidden"),
        (f"/{BUCKET}/k?torrent", True, b"HTTP/1.1 501 Not Implemented"),
    ],
)
def test_status_lines_carry_the_standard_reason_phrase(
    d: Daemon, path: str, signed: bool, line: bytes
) -> None:
    hdrs = sign("GET", d.endpoint + path, d.credentials) if signed else {"Host": f"{HOST}:{d.s3_port}"}
    with socket.create_connection((HOST, d.s3_port), timeout=10) as s:
        s.sendall(_head("GET", path, {**hdrs, "Connection": "close"}))
        raw = _read_until_closed(s)
    assert _status_line(raw) == line


def test_a_request_h11_cannot_parse_gets_a_reason_phrase_too(d: Daemon) -> None:
    with socket.create_connection((HOST, d.s3_port), timeout=10) as s:
        s.sendall(b"PUT /x HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n")
        raw = _read_until_closed(s)
    assert _status_line(raw) == b"HTTP/1.1 400 Bad Request"
    assert s3_error_code(parse_raw_response(raw).body) == "BadRequest"


# ------------------------------------------------------- Expect: 100-continue
def _refused(d: Daemon, case: str) -> tuple[str, dict[str, str], int]:
    """(path, signed headers, Content-Length) of a PUT that must be refused."""
    length = 1 * MiB
    path = f"/{BUCKET}/refused"
    creds = d.credentials
    if case == "bad-signature":
        creds = Credentials(creds.access_key, "not-the-secret-key-0000000000000000000000")
    elif case == "missing-bucket":
        path = "/no-such-bucket-here/refused"
    elif case == "too-large":
        length = 5 * GiB + 1
    hdrs = sign("PUT", d.endpoint + path, creds, {}, "UNSIGNED-PAYLOAD")
    return path, hdrs, length


@pytest.mark.parametrize(
    ("case", "status", "code"),
    [
        ("bad-signature", 403, "SignatureDoesNotMatch"),
        ("missing-bucket", 404, "NoSuchBucket"),
        ("too-large", 400, "EntityTooLarge"),
    ],
)
def test_expect_100_continue_gets_the_final_error_instead_of_100(
    d: Daemon, case: str, status: int, code: str
) -> None:
    path, hdrs, length = _refused(d, case)
    mark = d.log_mark()
    with socket.create_connection((HOST, d.s3_port), timeout=10) as s:
        s.sendall(_head("PUT", path, {**hdrs, "Content-Length": str(length),
                                      "Expect": "100-continue"}))  # fmt: skip
        raw = _read_until_closed(s)  # the body is never sent: the server must answer and close
    assert not raw.startswith(b"HTTP/1.1 100"), raw[:200]
    resp = parse_raw_response(raw)
    assert resp.status == status
    assert resp.error_code() == code
    assert resp.headers["connection"] == "close"
    assert resp.headers["x-amz-request-id"]
    assert "Traceback" not in d.log_since(mark)


def test_expect_100_continue_comes_when_the_body_is_wanted(d: Daemon) -> None:
    body = os.urandom(300_000)
    path = f"/{BUCKET}/continue"
    hdrs = sign("PUT", d.endpoint + path, d.credentials, {}, hashlib.sha256(body).hexdigest())
    with socket.create_connection((HOST, d.s3_port), timeout=10) as s:
        s.sendall(_head("PUT", path, {**hdrs, "Content-Length": str(len(body)),
                                      "Expect": "100-continue", "Connection": "close"}))  # fmt: skip
        interim = s.recv(4096)
        assert interim.startswith(b"HTTP/1.1 100 Continue\r\n") and interim.endswith(b"\r\n\r\n")
        s.sendall(body)
        final = parse_raw_response(_read_until_closed(s))
    assert final.status == 200
    assert final.headers["etag"] == f'"{hashlib.md5(body).hexdigest()}"'


class _Announced(io.RawIOBase):
    """A body that claims ``size`` bytes and yields none: a refused PUT must not need it."""

    def __init__(self, size: int) -> None:
        self._size, self._pos = size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        self._pos = {0: offset, 1: self._pos + offset, 2: self._size + offset}[whence]
        return self._pos

    def tell(self) -> int:
        return self._pos

    def readinto(self, b) -> int:  # noqa: ANN001
        return 0


@pytest.mark.parametrize("case", ["bad-signature", "missing-bucket", "too-large"])
def test_botocore_puts_refused_before_the_body_leave_the_client_usable(
    d: Daemon, case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """boto3 sends ``Expect: 100-continue`` for file bodies.  A refused PUT
    raises the S3 error (not BadStatusLine, not a dropped connection) without
    sending its body, and the same clients' next requests work: nothing
    desynchronised, nothing leaked."""
    good = s3_client(d)
    creds = d.credentials
    if case == "bad-signature":
        creds = Credentials(creds.access_key, "not-the-secret-key-0000000000000000000000")
    client = s3_client(d, creds) if case == "bad-signature" else good
    if case == "too-large":
        # Over plain HTTP botocore's signers hash the whole body first; 5 GiB of
        # hashing would only time the client.  Its pure-Python S3 signer, told
        # not to sign the payload, leaves the body unread until the server asks.
        import botocore.auth

        class UnsignedPayload(botocore.auth.S3SigV4Auth):
            def payload(self, request):  # noqa: ANN001
                return botocore.auth.UNSIGNED_PAYLOAD

        monkeypatch.setitem(botocore.auth.AUTH_TYPE_MAPS, "s3v4", UnsignedPayload)
        client = s3_client(d, request_checksum_calculation="when_required",
                           signature_version="s3v4")  # fmt: skip
    bucket = "no-such-bucket-here" if case == "missing-bucket" else BUCKET
    body_path = tmp_path / "body.bin"
    body_path.write_bytes(os.urandom(2 * MiB))
    expected = {"bad-signature": "SignatureDoesNotMatch", "missing-bucket": "NoSuchBucket",
                "too-large": "EntityTooLarge"}[case]  # fmt: skip
    mark = d.log_mark()
    try:
        for i in range(3):
            caplog.clear()
            with (
                caplog.at_level(logging.DEBUG, logger="botocore.awsrequest"),
                open(body_path, "rb") as f,
                pytest.raises(ClientError) as err,
            ):
                body = _Announced(5 * GiB + 1) if case == "too-large" else f
                client.put_object(Bucket=bucket, Key=f"refused-{i}", Body=body)
            assert err.value.response["Error"]["Code"] == expected
            assert "NOT sending request body" in caplog.text  # the final answer came first
            # The same clients, right after: their pools must still work.
            good.put_object(Bucket=BUCKET, Key="after-refusal", Body=io.BytesIO(b"fine"))
            assert good.get_object(Bucket=BUCKET, Key="after-refusal")["Body"].read() == b"fine"
            if case == "bad-signature":
                with pytest.raises(ClientError) as err:
                    client.head_bucket(Bucket=BUCKET)  # answered, not a protocol error
                assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
            else:
                client.head_bucket(Bucket=BUCKET)
    finally:
        if client is not good:
            client.close()
        good.close()
    log = d.log_since(mark)
    assert "Traceback" not in log and "BusyResourceError" not in log


def test_many_refused_expect_requests_race_nothing(d: Daemon) -> None:
    """Final answers and interim 100s are sent by one task, in order: no
    ``trio.BusyResourceError`` (two tasks sending on one socket) under load."""
    mark = d.log_mark()
    path, hdrs, length = _refused(d, "bad-signature")
    for _ in range(60):
        with socket.create_connection((HOST, d.s3_port), timeout=10) as s:
            s.sendall(_head("PUT", path, {**hdrs, "Content-Length": str(length),
                                          "Expect": "100-continue"}))  # fmt: skip
            s.sendall(b"\0" * 65536)  # a client that does not wait for the 100
            raw = _read_until_closed_tolerant(s)
        assert parse_raw_response(raw).status == 403
    log = d.log_since(mark)
    assert "BusyResourceError" not in log and "Traceback" not in log


def _read_until_closed_tolerant(s: socket.socket) -> bytes:
    raw = b""
    try:
        while chunk := s.recv(65536):
            raw += chunk
    except ConnectionResetError:
        pass  # the server closed with part of our unread body still queued
    return raw


# ------------------------------------------------------------- body framing
def test_put_without_length_or_chunked_encoding_is_411(d: Daemon) -> None:
    path = f"/{BUCKET}/no-length"
    hdrs = sign("PUT", d.endpoint + path, d.credentials, {}, "UNSIGNED-PAYLOAD")
    with socket.create_connection((HOST, d.s3_port), timeout=10) as s:
        s.sendall(_head("PUT", path, {**hdrs, "Connection": "close"}))
        resp = parse_raw_response(_read_until_closed(s))
    assert resp.status == 411
    assert resp.error_code() == "MissingContentLength"


def test_chunked_transfer_encoding_put_is_stored(d: Daemon, s3) -> None:  # noqa: ANN001
    body = os.urandom(3 * MiB + 17)
    path = f"/{BUCKET}/chunked-raw"
    hdrs = sign("PUT", d.endpoint + path, d.credentials, {}, hashlib.sha256(body).hexdigest())
    with socket.create_connection((HOST, d.s3_port), timeout=30) as s:
        s.sendall(_head("PUT", path, {**hdrs, "Transfer-Encoding": "chunked",
                                      "Connection": "close"}))  # fmt: skip
        for i in range(0, len(body), 700_000):
            piece = body[i : i + 700_000]
            s.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
        s.sendall(b"0\r\n\r\n")
        resp = parse_raw_response(_read_until_closed(s))
    assert resp.status == 200, resp.body
    assert resp.headers["etag"] == f'"{hashlib.md5(body).hexdigest()}"'
    assert s3.get_object(Bucket=BUCKET, Key="chunked-raw")["Body"].read() == body


def test_curl_upload_from_stdin_is_chunked_and_stored(d: Daemon, s3) -> None:  # noqa: ANN001
    body = os.urandom(2 * MiB + 5)
    presigner = s3_client(d, signature_version="s3v4")
    url = presigner.generate_presigned_url("put_object", Params={"Bucket": BUCKET, "Key": "from-stdin"})
    presigner.close()
    proc = subprocess.run(
        ["curl", "-sS", "--noproxy", "*", "-v", "-T", "-", "-o", "/dev/null", "-w", "%{http_code}", url],
        input=body, capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.stdout == b"200", proc.stderr[-2000:]
    assert b"Transfer-Encoding: chunked" in proc.stderr  # curl really streamed it
    assert s3.get_object(Bucket=BUCKET, Key="from-stdin")["Body"].read() == body


def test_chunked_put_with_a_signed_payload_hash_that_differs_is_refused(d: Daemon) -> None:
    body = b"x" * 100_000
    path = f"/{BUCKET}/chunked-bad-sha"
    hdrs = sign("PUT", d.endpoint + path, d.credentials, {}, EMPTY_SHA256)
    with socket.create_connection((HOST, d.s3_port), timeout=30) as s:
        s.sendall(_head("PUT", path, {**hdrs, "Transfer-Encoding": "chunked",
                                      "Connection": "close"}))  # fmt: skip
        s.sendall(f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n")
        resp = parse_raw_response(_read_until_closed(s))
    assert resp.status == 400
    assert resp.error_code() == "XAmzContentSHA256Mismatch"


# ------------------------------------------------- errors before the status line
def test_a_get_whose_first_bytes_cannot_be_read_is_503_with_xml(daemon: Daemon) -> None:
    """Three of six fragments gone (EC 4+2): the first segment cannot be decoded.
    The answer is a 503 with S3's XML error, not a 200 that breaks after the headers."""
    s3 = s3_client(daemon)
    s3.create_bucket(Bucket=BUCKET)
    body = os.urandom(3 * MiB)  # fragments far above the inline limit: real files
    s3.put_object(Bucket=BUCKET, Key="unreadable", Body=body)
    s3.put_object(Bucket=BUCKET, Key="fine", Body=b"still readable")
    files = {i: daemon.fragment_files(i) for i in range(6)}
    assert all(len(f) == 1 for f in files.values()), files  # one object with files: this one
    for i in (0, 2, 4):
        files[i][0].unlink()
    mark = daemon.log_mark()
    path = f"/{BUCKET}/unreadable"
    hdrs = sign("GET", daemon.endpoint + path, daemon.credentials)
    with socket.create_connection((HOST, daemon.s3_port), timeout=30) as s:
        s.sendall(_head("GET", path, {**hdrs, "Connection": "close"}))
        raw = _read_until_closed(s)
    resp = parse_raw_response(raw)
    assert _status_line(raw) == b"HTTP/1.1 503 Service Unavailable", raw[:300]
    assert resp.error_code() == "ServiceUnavailable"
    assert int(resp.headers["content-length"]) == len(resp.body)
    assert resp.headers["x-amz-request-id"]
    assert "Traceback" not in daemon.log_since(mark)
    # The daemon goes on serving, on a fresh connection as on a kept-alive one.
    assert s3.get_object(Bucket=BUCKET, Key="fine")["Body"].read() == b"still readable"
    with pytest.raises(ClientError) as err:
        s3.get_object(Bucket=BUCKET, Key="unreadable")
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    s3.close()
