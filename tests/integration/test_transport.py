"""Authentication and transport against the real daemon, with clients we did not write.

* presigned URLs made by boto3 (``signature_version="s3v4"``) and by
  ``aws s3 presign``, fetched with curl: GET, PUT, HEAD, DELETE; expiry;
* clock skew, anonymous requests (SigV2: test_access_sigv2.py);
* virtual-hosted-style addressing (the daemon runs with ``--domain``; curl
  reaches ``<bucket>.<domain>`` on 127.0.0.1 through ``--resolve``);
* ``Expect: 100-continue`` and HTTP keep-alive;
* CORS preflight and response headers as a browser would send them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import http.client
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.config import Config

from titans3.s3 import signer

from .cluster import HOST, REGION, AwsCli, Daemon, MiB, s3_client
from .rawhttp import Response, parse_raw_response, raw_request, sha256_file, write_random_file

DOMAIN = "s3.titan.test"
BUCKET = "transport"
CURL = "curl"


@pytest.fixture(scope="module")
def d(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    # A daemon of our own: it needs --domain (set through its TITANS3_* twin).
    from . import cluster

    base = tmp_path_factory.mktemp("transport")
    daemon = Daemon(base / "data", base / "titans3.log", drives=6, env={"TITANS3_DOMAIN": DOMAIN},
                    name="titans3[transport]")  # fmt: skip
    cluster.LIVE.append(daemon)
    try:
        daemon.start()
        s3_client(daemon).create_bucket(Bucket=BUCKET)
        yield daemon
    finally:
        try:
            daemon.stop()
        finally:
            cluster.LIVE.remove(daemon)


@pytest.fixture(scope="module")
def s3(d: Daemon) -> Iterator[object]:
    client = s3_client(d, signature_version="s3v4")
    yield client
    client.close()


def curl(*args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    """curl, writing the body to stdout and ``<status>`` as the last line of stderr."""
    proc = subprocess.run([CURL, "-sS", "--noproxy", "*", "-w", "%{stderr}%{http_code}", *args],
                          capture_output=True, timeout=120, check=False)  # fmt: skip
    if check and proc.returncode != 0:
        raise AssertionError(f"curl {args} exited {proc.returncode}: {proc.stderr!r}")
    return proc


def status_of(proc: subprocess.CompletedProcess[bytes]) -> int:
    return int(proc.stderr.decode().strip().splitlines()[-1][-3:])


# -------------------------------------------------------------- presigned URLs
def test_boto3_presigned_get_put_head_delete_with_curl(d: Daemon, s3, tmp_path: Path) -> None:  # noqa: ANN001
    src = tmp_path / "up.bin"
    digest = write_random_file(src, 3 * MiB + 17)
    url = s3.generate_presigned_url("put_object", Params={"Bucket": BUCKET, "Key": "pre/sig ned+key"},
                                    ExpiresIn=600)  # fmt: skip
    assert "X-Amz-Signature=" in url
    assert status_of(curl("-T", str(src), url)) == 200

    get = s3.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": "pre/sig ned+key"})
    out = tmp_path / "down.bin"
    assert status_of(curl("-o", str(out), get)) == 200
    assert sha256_file(out) == digest

    head = s3.generate_presigned_url("head_object", Params={"Bucket": BUCKET, "Key": "pre/sig ned+key"})
    proc = curl("-I", head)
    assert status_of(proc) == 200
    assert f"content-length: {3 * MiB + 17}" in proc.stdout.decode().lower()

    delete = s3.generate_presigned_url("delete_object", Params={"Bucket": BUCKET, "Key": "pre/sig ned+key"})
    assert status_of(curl("-X", "DELETE", delete)) == 204
    assert status_of(curl("-o", os.devnull, get)) == 404


def test_aws_s3_presign_url_works_with_curl(d: Daemon, s3, tmp_path: Path) -> None:  # noqa: ANN001
    s3.put_object(Bucket=BUCKET, Key="cli/presigned.txt", Body=b"from the cli\n")
    cli = AwsCli(d.endpoint, d.credentials, tmp_path / "aws")
    # AWS CLI v1 presigns with SigV2 in us-east-1 unless told otherwise; TitanS3,
    # like every AWS region opened since 2014, accepts SigV4 only.
    cli.config_file.write_text("[default]\ns3 =\n    signature_version = s3v4\n")
    url = cli("s3", "presign", f"s3://{BUCKET}/cli/presigned.txt", "--expires-in", "604800").stdout.strip()
    proc = curl(url)
    assert (status_of(proc), proc.stdout) == (200, b"from the cli\n")


def test_expired_and_overlong_presigned_urls_are_refused(d: Daemon, s3) -> None:  # noqa: ANN001
    s3.put_object(Bucket=BUCKET, Key="expiring", Body=b"x")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": "expiring"},
                                    ExpiresIn=1)  # fmt: skip
    time.sleep(2.1)
    proc = curl(url)
    assert status_of(proc) == 403
    assert b"<Code>AccessDenied</Code>" in proc.stdout and b"Request has expired" in proc.stdout
    week_plus = s3.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": "expiring"},
                                          ExpiresIn=604801)  # fmt: skip
    proc = curl(week_plus)
    assert status_of(proc) == 400 and b"AuthorizationQueryParametersError" in proc.stdout


# ------------------------------------------------------------------ auth errors
def test_request_time_too_skewed(d: Daemon) -> None:
    url = f"{d.endpoint}/{BUCKET}"
    past = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=20)
    hdrs = signer.sign_request("GET", url, {}, access_key=d.credentials.access_key,
                              secret_key=d.credentials.secret_key, now=past)  # fmt: skip
    r = raw_request(d, "GET", f"/{BUCKET}", headers=hdrs, signed=False)
    assert (r.status, r.error_code()) == (403, "RequestTimeTooSkewed")
    near = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10)  # within the 15-minute window
    hdrs = signer.sign_request("GET", url, {}, access_key=d.credentials.access_key,
                              secret_key=d.credentials.secret_key, now=near)  # fmt: skip
    assert raw_request(d, "GET", f"/{BUCKET}", headers=hdrs, signed=False).status == 200


def test_anonymous_requests_are_denied(d: Daemon) -> None:
    for method, path in [("GET", "/"), ("GET", f"/{BUCKET}"), ("GET", f"/{BUCKET}/k"),
                         ("PUT", f"/{BUCKET}/k"), ("DELETE", f"/{BUCKET}")]:  # fmt: skip
        r = raw_request(d, method, path, signed=False, body=b"x" if method == "PUT" else b"")
        assert (r.status, r.error_code()) == (403, "AccessDenied"), (method, path)
        assert r.headers.get("x-amz-request-id")


# ------------------------------------------------------------- virtual hosting
def test_virtual_hosted_style_with_curl_resolve(d: Daemon, tmp_path: Path) -> None:
    host = f"{BUCKET}.{DOMAIN}"
    base = f"http://{host}:{d.s3_port}"
    sign = ["--resolve", f"{host}:{d.s3_port}:{HOST}", "--aws-sigv4", f"aws:amz:{REGION}:s3",
            "--user", f"{d.credentials.access_key}:{d.credentials.secret_key}"]  # fmt: skip
    body = tmp_path / "v.txt"
    body.write_bytes(b"virtual host\n")
    # curl signs the payload hash only when told to; S3 requires the header.
    payload = ["-H", f"x-amz-content-sha256: {hashlib.sha256(body.read_bytes()).hexdigest()}"]
    assert status_of(curl(*sign, *payload, "-T", str(body), f"{base}/dir/v.txt")) == 200
    empty = ["-H", f"x-amz-content-sha256: {hashlib.sha256(b'').hexdigest()}"]
    got = curl(*sign, *empty, f"{base}/dir/v.txt")
    assert (status_of(got), got.stdout) == (200, b"virtual host\n")
    listing = curl(*sign, *empty, f"{base}/?list-type=2&prefix=dir/")
    assert status_of(listing) == 200 and b"<Key>dir/v.txt</Key>" in listing.stdout
    # The same object path-style, and the service endpoint at the bare domain.
    assert raw_request(d, "GET", f"/{BUCKET}/dir/v.txt").body == b"virtual host\n"
    svc = curl("--resolve", f"{DOMAIN}:{d.s3_port}:{HOST}", *sign[2:], *empty,
               f"http://{DOMAIN}:{d.s3_port}/")  # fmt: skip
    assert status_of(svc) == 200 and f"<Name>{BUCKET}</Name>".encode() in svc.stdout


def test_virtual_hosted_style_with_boto3(d: Daemon) -> None:
    import boto3

    client = boto3.session.Session().client(
        "s3", endpoint_url=f"http://{DOMAIN}:{d.s3_port}", region_name=REGION,
        aws_access_key_id=d.credentials.access_key, aws_secret_access_key=d.credentials.secret_key,
        config=Config(s3={"addressing_style": "virtual"}, retries={"total_max_attempts": 1}),
    )  # fmt: skip

    def connect_locally(request, **_: object) -> None:  # noqa: ANN001
        # Signed for <bucket>.<domain>; connect to 127.0.0.1, as DNS would resolve it.
        netloc = request.url.split("/")[2]
        assert netloc.endswith(f".{DOMAIN}:{d.s3_port}")
        request.headers["Host"] = netloc
        request.url = request.url.replace(netloc, f"{HOST}:{d.s3_port}", 1)

    client.meta.events.register_first("before-send.s3", connect_locally)
    made = client.create_bucket(Bucket="vhost-made")
    assert made["Location"] == f"http://vhost-made.{DOMAIN}:{d.s3_port}/"
    client.put_object(Bucket=BUCKET, Key="boto-vhost", Body=b"hi")
    assert client.get_object(Bucket=BUCKET, Key="boto-vhost")["Body"].read() == b"hi"
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=BUCKET, Prefix="boto-")["Contents"]]
    assert keys == ["boto-vhost"]
    client.close()


# -------------------------------------------------------- Expect, keep-alive
def test_curl_put_with_expect_100_continue(d: Daemon, s3, tmp_path: Path) -> None:  # noqa: ANN001
    src = tmp_path / "expect.bin"
    digest = write_random_file(src, 2 * MiB)
    url = s3.generate_presigned_url("put_object", Params={"Bucket": BUCKET, "Key": "expect"})
    proc = curl("-v", "-H", "Expect: 100-continue", "-T", str(src), url)
    assert status_of(proc) == 200
    assert b"< HTTP/1.1 100" in proc.stderr  # the interim answer came before the body
    assert hashlib.sha256(s3.get_object(Bucket=BUCKET, Key="expect")["Body"].read()).hexdigest() == digest


def test_expect_100_continue_on_a_raw_socket(d: Daemon) -> None:
    body = os.urandom(100_000)
    path = f"/{BUCKET}/raw-expect"
    from .rawhttp import sign

    hdrs = sign("PUT", d.endpoint + path, d.credentials, {}, hashlib.sha256(body).hexdigest())
    head = [f"PUT {path} HTTP/1.1", *(f"{k}: {v}" for k, v in hdrs.items()),
            f"Content-Length: {len(body)}", "Expect: 100-continue", "Connection: close"]  # fmt: skip
    with socket.create_connection((HOST, d.s3_port), timeout=10) as s:
        s.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        interim = s.recv(4096)
        assert interim.startswith(b"HTTP/1.1 100 "), interim
        s.sendall(body)
        raw = b""
        while chunk := s.recv(65536):
            raw += chunk
    final: Response = parse_raw_response(raw)
    assert final.status == 200
    assert raw_request(d, "GET", path).body == body


def test_keep_alive_serves_many_requests_on_one_connection(d: Daemon) -> None:
    from .rawhttp import sign

    conn = http.client.HTTPConnection(HOST, d.s3_port, timeout=30)
    try:
        sockets = set()
        for i in range(30):
            path = f"/{BUCKET}/ka-{i % 3}"
            for method, body in [("PUT", f"v{i}".encode()), ("GET", b""), ("HEAD", b"")]:
                hdrs = sign(method, d.endpoint + path, d.credentials, {},
                            hashlib.sha256(body).hexdigest())  # fmt: skip
                conn.request(method, path, body=body, headers=hdrs)
                resp = conn.getresponse()
                data = resp.read()
                assert resp.status == 200, (method, path, data[:200])
                if method == "GET":
                    assert data == f"v{i}".encode()
                assert resp.getheader("Connection", "").lower() != "close"
                sockets.add(id(conn.sock))
            missing = f"/{BUCKET}/nope-{i}"
            conn.request("GET", missing, headers=sign("GET", d.endpoint + missing, d.credentials))
            resp = conn.getresponse()
            resp.read()
            assert resp.status == 404
            sockets.add(id(conn.sock))
        assert len(sockets) == 1, "the connection was not kept alive"
    finally:
        conn.close()


@pytest.mark.parametrize("path", ["/", f"/{BUCKET}", f"/{BUCKET}/no-such-key"])
def test_connection_close_is_honoured(d: Daemon, path: str) -> None:
    """After ``Connection: close`` the server closes the socket once the answer is out."""
    from .rawhttp import sign

    hdrs = sign("GET", d.endpoint + path, d.credentials)
    head = [f"GET {path} HTTP/1.1", *(f"{k}: {v}" for k, v in hdrs.items()), "Connection: close"]
    with socket.create_connection((HOST, d.s3_port), timeout=5) as s:
        s.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        raw = b""
        while chunk := s.recv(65536):  # a TimeoutError here means the socket stayed open
            raw += chunk
    assert parse_raw_response(raw).status in (200, 404)


# ------------------------------------------------------------------- browsers
def test_cors_preflight_and_actual_request_like_a_browser(d: Daemon, s3) -> None:  # noqa: ANN001
    s3.put_bucket_cors(Bucket=BUCKET, CORSConfiguration={"CORSRules": [
        {"AllowedOrigins": ["https://*.app.example"], "AllowedMethods": ["GET", "PUT"],
         "AllowedHeaders": ["content-type", "x-amz-*"], "ExposeHeaders": ["ETag"],
         "MaxAgeSeconds": 300}]})  # fmt: skip
    s3.put_object(Bucket=BUCKET, Key="cors.txt", Body=b"c")
    target = f"{d.endpoint}/{BUCKET}/cors.txt"
    pre = curl("-i", "-X", "OPTIONS", "-H", "Origin: https://www.app.example",
               "-H", "Access-Control-Request-Method: PUT",
               "-H", "Access-Control-Request-Headers: content-type,x-amz-date", target)  # fmt: skip
    head = pre.stdout.decode().lower()
    assert status_of(pre) == 200
    assert "access-control-allow-origin: https://www.app.example" in head
    assert "access-control-allow-methods: get, put" in head
    assert "access-control-allow-headers: content-type, x-amz-date" in head
    assert "access-control-max-age: 300" in head
    denied = curl("-X", "OPTIONS", "-H", "Origin: https://evil.example",
                  "-H", "Access-Control-Request-Method: GET", target)  # fmt: skip
    assert status_of(denied) == 403 and b"AccessForbidden" in denied.stdout
    url = s3.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": "cors.txt"})
    actual = curl("-i", "-H", "Origin: https://www.app.example", url)
    assert "access-control-expose-headers: etag" in actual.stdout.decode().lower()
    s3.delete_bucket_cors(Bucket=BUCKET)


def test_boto3_unsigned_config_is_denied(d: Daemon) -> None:
    from botocore import UNSIGNED

    client = s3_client(d, signature_version=UNSIGNED)
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as err:
        client.list_objects_v2(Bucket=BUCKET)
    assert err.value.response["Error"]["Code"] == "AccessDenied"
    client.close()
