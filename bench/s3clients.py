"""S3 clients for bench/s3bench.py: a lean raw SigV4 client and a boto3 adapter.

Both expose the same calls (create_bucket, put, get, list_page, close) so every row of
the benchmark runs through exactly the same code with either client.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import socket
import time
import urllib.parse

REGION = "us-east-1"
KiB = 1 << 10
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


class S3Failure(Exception):
    pass


class RawClient:
    """A lean S3 client: SigV4 header auth over one keep-alive http.client connection.

    Signs the real payload SHA-256, which callers precompute once per payload
    (benchmark payloads are reused), so per-request client CPU is one HMAC and
    the HTTP framing -- a few tens of microseconds -- and the client is not the
    bottleneck for small objects the way boto3 (~1-2 ms/request) is.
    """

    def __init__(self, endpoint: str, access_key: str, secret_key: str) -> None:
        url = urllib.parse.urlsplit(endpoint)
        self.host, self.port = url.hostname or "127.0.0.1", url.port or 80
        self.host_header = url.netloc
        self.access_key, self.secret_key = access_key, secret_key
        self._conn: http.client.HTTPConnection | None = None
        self._key_date = ""
        self._key = b""

    def _signing_key(self, date: str) -> bytes:
        if date != self._key_date:
            k = f"AWS4{self.secret_key}".encode()
            for part in (date, REGION, "s3", "aws4_request"):
                k = hmac.new(k, part.encode(), hashlib.sha256).digest()
            self._key_date, self._key = date, k
        return self._key

    def _headers(
        self, method: str, path: str, payload_sha256: str, query: str = ""
    ) -> dict[str, str]:
        amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        scope = f"{amz_date[:8]}/{REGION}/s3/aws4_request"
        signed = "host;x-amz-content-sha256;x-amz-date"
        canonical = (
            f"{method}\n{urllib.parse.quote(path, safe='/~')}\n{query}\n"
            f"host:{self.host_header}\nx-amz-content-sha256:{payload_sha256}\n"
            f"x-amz-date:{amz_date}\n\n{signed}\n{payload_sha256}"
        )
        to_sign = (
            f"AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n"
            f"{hashlib.sha256(canonical.encode()).hexdigest()}"
        )
        signature = hmac.new(
            self._signing_key(amz_date[:8]), to_sign.encode(), hashlib.sha256
        ).hexdigest()
        return {
            "Host": self.host_header,
            "x-amz-date": amz_date,
            "x-amz-content-sha256": payload_sha256,
            "Authorization": f"AWS4-HMAC-SHA256 Credential={self.access_key}/{scope}, "
            f"SignedHeaders={signed}, Signature={signature}",
        }

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=300)
            conn.connect()
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._conn = conn
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        sha: str = EMPTY_SHA256,
        sink: memoryview | None = None,
        params: dict[str, str] | None = None,
    ) -> tuple[int, bytes, int]:
        """Send one request; returns (status, body or b"" when sunk, body length)."""
        query = "&".join(
            f"{urllib.parse.quote(k, safe='-_.~')}={urllib.parse.quote(v, safe='-_.~')}"
            for k, v in sorted((params or {}).items())
        )  # SigV4's canonical query string, also sent as is
        for attempt in (0, 1):
            # A keep-alive connection the server closed while idle fails on first
            # use; retry once on a fresh one (every request here is idempotent).
            try:
                conn = self._connection()
                target = f"{path}?{query}" if query else path
                conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
                for name, value in self._headers(method, path, sha, query).items():
                    conn.putheader(name, value)
                conn.putheader("Content-Length", str(len(body)))
                if len(body) <= 64 * KiB:
                    conn.endheaders(body or None)  # one send for small requests
                else:
                    conn.endheaders()
                    conn.send(body)  # no 64 MiB concatenation with the headers
                resp = conn.getresponse()
                if sink is not None and resp.status == 200:
                    n = 0
                    while chunk := resp.readinto(sink):
                        n += chunk
                    return resp.status, b"", n
                data = resp.read()
                return resp.status, data, len(data)
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def create_bucket(self, bucket: str) -> None:
        status, data, _ = self._request("PUT", f"/{bucket}")
        if status not in (200, 409):
            raise S3Failure(f"CreateBucket {bucket}: {status} {data[:300]!r}")

    def put(self, bucket: str, key: str, body: bytes, sha: str) -> None:
        status, data, _ = self._request("PUT", f"/{bucket}/{key}", body, sha)
        if status != 200:
            raise S3Failure(f"PUT {key}: {status} {data[:300]!r}")

    def get(self, bucket: str, key: str, sink: memoryview | None = None) -> tuple[bytes, int]:
        status, data, n = self._request("GET", f"/{bucket}/{key}", sink=sink)
        if status != 200:
            raise S3Failure(f"GET {key}: {status} {data[:300]!r}")
        return data, n

    def list_page(self, bucket: str, prefix: str, start_after: str, max_keys: int) -> int:
        """One ListObjectsV2 page; returns how many keys it held."""
        params = {"list-type": "2", "max-keys": str(max_keys), "prefix": prefix}
        if start_after:
            params["start-after"] = start_after
        status, data, _ = self._request("GET", f"/{bucket}", params=params)
        if status != 200:
            raise S3Failure(f"LIST {prefix}: {status} {data[:300]!r}")
        return data.count(b"<Key>")


class Boto3Client:
    """The same four calls through boto3 (path-style, us-east-1, SDK defaults)."""

    def __init__(self, endpoint: str, access_key: str, secret_key: str) -> None:
        import boto3
        from botocore.config import Config

        self.s3 = boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            region_name=REGION,
            config=Config(
                s3={"addressing_style": "path"},
                retries={"max_attempts": 2, "mode": "standard"},
                read_timeout=300,
                max_pool_connections=2,
            ),
        )

    def close(self) -> None:
        self.s3.close()

    def create_bucket(self, bucket: str) -> None:
        try:
            self.s3.create_bucket(Bucket=bucket)
        except self.s3.exceptions.ClientError as exc:
            if exc.response["ResponseMetadata"]["HTTPStatusCode"] != 409:
                raise

    def put(self, bucket: str, key: str, body: bytes, sha: str) -> None:
        self.s3.put_object(Bucket=bucket, Key=key, Body=body)

    def get(self, bucket: str, key: str, sink: memoryview | None = None) -> tuple[bytes, int]:
        stream = self.s3.get_object(Bucket=bucket, Key=key)["Body"]
        if sink is None:
            data = stream.read()
            return data, len(data)
        n = 0
        for chunk in stream.iter_chunks(len(sink)):
            n += len(chunk)
        return b"", n

    def list_page(self, bucket: str, prefix: str, start_after: str, max_keys: int) -> int:
        kw = {"StartAfter": start_after} if start_after else {}
        page = self.s3.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=max_keys, **kw)
        return len(page.get("Contents", []))


CLIENTS = {"raw": RawClient, "boto3": Boto3Client}
