"""Raw HTTP against the daemon: signed requests, streamed bodies, and generated data.

boto3 hides exactly what some tests must control: sending a body from a
generator without holding it, stopping mid-body, or sending headers no SDK
would produce.  These helpers use http.client (or a bare socket) and sign with
botocore's ``SigV4Auth`` -- botocore is a test dependency and an independent
SigV4 implementation, which is the point.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import random
import socket
import urllib.parse
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .cluster import EMPTY_SHA256, HOST, REGION, Credentials, Daemon, MiB


# ------------------------------------------------------------- raw requests
def sign(
    method: str,
    url: str,
    credentials: Credentials,
    headers: dict[str, str] | None = None,
    payload_sha256: str = EMPTY_SHA256,
) -> dict[str, str]:
    """Headers (including Host, X-Amz-Date, Authorization) for a SigV4-signed request."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials as BotoCredentials

    hdrs = dict(headers or {})
    hdrs["X-Amz-Content-SHA256"] = payload_sha256
    req = AWSRequest(method=method, url=url, headers=hdrs)
    SigV4Auth(
        BotoCredentials(credentials.access_key, credentials.secret_key), "s3", REGION
    ).add_auth(req)
    out = dict(req.headers.items())
    out.setdefault("Host", urllib.parse.urlsplit(url).netloc)
    return out


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def error_code(self) -> str | None:
        return s3_error_code(self.body)


def s3_error_code(body: bytes) -> str | None:
    """The ``<Code>`` of an S3 ``<Error>`` XML body, or None if it is not one."""
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return None
    if root.tag.rsplit("}", 1)[-1] != "Error":
        return None
    for child in root:
        if child.tag.rsplit("}", 1)[-1] == "Code":
            return (child.text or "").strip()
    return None


def raw_request(
    daemon: Daemon,
    method: str,
    path: str,
    *,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    credentials: Credentials | None = None,
    signed: bool = True,
    timeout: float = 60,
) -> Response:
    """One signed (SigV4, real payload hash) request via http.client; body read whole."""
    url = daemon.endpoint + path
    hdrs = dict(headers or {})
    if signed:
        hdrs = sign(method, url, credentials or daemon.credentials, hdrs,
                    hashlib.sha256(body).hexdigest())  # fmt: skip
    conn = http.client.HTTPConnection(HOST, daemon.s3_port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=hdrs)
        resp = conn.getresponse()
        return Response(resp.status, dict(resp.getheaders()), resp.read())
    finally:
        conn.close()


def send_raw_bytes(port: int, data: bytes, timeout: float = 10) -> bytes:
    """Write ``data`` verbatim to 127.0.0.1:port and read until the server closes or times out."""
    chunks = []
    with socket.create_connection((HOST, port), timeout=timeout) as s:
        s.sendall(data)
        with contextlib.suppress(ConnectionResetError):
            s.shutdown(socket.SHUT_WR)
        try:
            while chunk := s.recv(65536):
                chunks.append(chunk)
        except (TimeoutError, ConnectionResetError):
            pass
    return b"".join(chunks)


def parse_raw_response(raw: bytes) -> Response:
    """Split a raw HTTP/1.1 response (as from :func:`send_raw_bytes`) into a Response."""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    if not lines or not lines[0].startswith("HTTP/"):
        raise AssertionError(f"not an HTTP response: {raw[:200]!r}")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        body = body[: int(headers["content-length"])]
    return Response(status, headers, body)


# ------------------------------------------------------------ streaming I/O
def pattern_chunks(total: int, seed: int, chunk: int = MiB) -> Iterator[bytes]:
    """Deterministic incompressible bytes, ``total`` long, produced ``chunk`` at a time.

    One random block per seed, each chunk prefixed by its index, so content is
    reproducible (hash it once, send it later) and never held whole.
    """
    base = random.Random(seed).randbytes(chunk)
    sent, i = 0, 0
    while sent < total:
        n = min(chunk, total - sent)
        block = i.to_bytes(8, "big") + seed.to_bytes(8, "big") + base[16:]
        yield block[:n]
        sent += n
        i += 1


def sha256_of(chunks: Iterable[bytes]) -> str:
    h = hashlib.sha256()
    for c in chunks:
        h.update(c)
    return h.hexdigest()


def stream_put(
    daemon: Daemon,
    bucket: str,
    key: str,
    chunks: Iterable[bytes],
    length: int,
    *,
    payload_sha256: str = "UNSIGNED-PAYLOAD",
    on_progress: Callable[[int], None] | None = None,
    timeout: float = 600,
) -> Response:
    """PUT ``length`` bytes from ``chunks`` without holding them; signed with SigV4.

    ``on_progress(bytes_sent)`` runs after every chunk (a crash test kills the
    daemon from there).  Connection errors propagate as OSError /
    http.client.HTTPException.
    """
    path = "/" + bucket + "/" + urllib.parse.quote(key, safe="/~")
    hdrs = sign("PUT", daemon.endpoint + path, daemon.credentials,
                {"Content-Type": "application/octet-stream"}, payload_sha256)  # fmt: skip
    conn = http.client.HTTPConnection(HOST, daemon.s3_port, timeout=timeout)
    try:
        conn.putrequest("PUT", path, skip_host=True, skip_accept_encoding=True)
        for name, value in hdrs.items():
            conn.putheader(name, value)
        conn.putheader("Content-Length", str(length))
        conn.endheaders()
        sent = 0
        for c in chunks:
            conn.send(c)
            sent += len(c)
            if on_progress is not None:
                on_progress(sent)
        resp = conn.getresponse()
        return Response(resp.status, dict(resp.getheaders()), resp.read())
    finally:
        conn.close()


def stream_get(
    daemon: Daemon,
    bucket: str,
    key: str,
    *,
    headers: dict[str, str] | None = None,
    timeout: float = 600,
    read_size: int = MiB,
) -> tuple[int, str, int]:
    """GET and hash the body as it arrives: (status, sha256 hex, byte count)."""
    path = "/" + bucket + "/" + urllib.parse.quote(key, safe="/~")
    hdrs = sign("GET", daemon.endpoint + path, daemon.credentials, headers)
    conn = http.client.HTTPConnection(HOST, daemon.s3_port, timeout=timeout)
    try:
        conn.request("GET", path, headers=hdrs)
        resp = conn.getresponse()
        h = hashlib.sha256()
        n = 0
        while chunk := resp.read(read_size):
            h.update(chunk)
            n += len(chunk)
        return resp.status, h.hexdigest(), n
    finally:
        conn.close()


# ------------------------------------------------------------------- files
def write_random_file(path: Path, size: int, chunk: int = 4 * MiB) -> str:
    """Write ``size`` bytes of os.urandom to ``path`` in chunks; return their sha256."""
    h = hashlib.sha256()
    with open(path, "wb") as f:
        left = size
        while left:
            block = os.urandom(min(chunk, left))
            f.write(block)
            h.update(block)
            left -= len(block)
    return h.hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(4 * MiB):
            h.update(block)
    return h.hexdigest()
