"""The remote backend: any S3 endpoint over HTTP(S) with SigV4 (issue 10, adapter 2).

Theory of operation
-------------------
Path-style requests (``/bucket/key``), signed with :mod:`titans3.s3.signer`
(payload ``UNSIGNED-PAYLOAD`` for bodies, the SHA-256 of the empty body
otherwise), through one pooled ``httpx.AsyncClient`` that runs on the mount's
trio loop.  What the mount needs from a server: ListObjectsV2 with
``start-after`` and ``delimiter``, ranged GET with ``If-Match``, user
metadata, CopyObject with ``x-amz-metadata-directive: REPLACE``, multipart
upload with UploadPartCopy (``x-amz-copy-source-range`` and
``x-amz-copy-source-if-match``).  AWS, MinIO, Ceph RGW and Garage have them.

**Never a hung mount.**  Every request has a connect/read/write timeout
(``timeout``, default 10 s).  Transport failures and 5xx answers are retried
with backoff for up to ``retry_window`` seconds (default 20 s) -- long enough
to ride out a daemon restart -- and then fail as ``Unavailable`` with the
reason, which the core logs and returns as EIO.  The next operation tries
again, so the mount recovers by itself when the endpoint returns.  Bodies are
factories (see :mod:`titans3.fuse.backend`), so writes are retried too.

Errors: 404 -> ``NotFound``; 412 -> ``Changed``; 403 -> ``Denied``;
``KeyTooLongError`` -> ``NameTooLong``; 507 or a storage-full code
(``XMinioStorageFull``) -> ``NoSpace``; other 4xx -> EIO with the S3 code.

S3 has no capacity call: ``statfs`` asks TitanS3's admin API (which answers
the root key only) and otherwise reports 1 PiB free, as s3fs does.
"""

from __future__ import annotations

import email.utils
import hashlib
import logging
import math
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any
from urllib.parse import quote

import httpx
import trio

from titans3.fuse.backend import Body, Capacity, Entry, Page
from titans3.fuse.errors import (
    BackendError,
    Changed,
    Denied,
    NameTooLong,
    NoSpace,
    NotFound,
    Unavailable,
)
from titans3.s3.signer import sign_request
from titans3.s3.sigv4 import UNSIGNED_PAYLOAD, uri_encode

log = logging.getLogger(__name__)

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
RETRY_STATUS = frozenset({500, 502, 503, 504})
FULL_CODES = frozenset({"XMinioStorageFull", "InsufficientStorage", "StorageFull"})
UNKNOWN_CAPACITY = Capacity(1 << 50, 1 << 50)
COPY_MAX = 5 << 30


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _children(node: ET.Element, name: str) -> list[ET.Element]:
    return [c for c in node if _local(c.tag) == name]


def _text(node: ET.Element, name: str, default: str = "") -> str:
    for c in node:
        if _local(c.tag) == name:
            return c.text or ""
    return default


def _error_code(body: bytes) -> tuple[str, str]:
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return "", ""
    return _text(root, "Code"), _text(root, "Message")


def _http_mtime(value: str | None) -> int:
    if not value:
        return 0
    try:
        return int(email.utils.parsedate_to_datetime(value).timestamp()) * 1_000_000_000
    except (TypeError, ValueError):
        return 0


def _iso_mtime(value: str) -> int:
    import datetime as dt

    try:
        return int(dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
                   * 1e9)
    except ValueError:
        return 0


def _etag(value: str | None) -> str:
    return (value or "").strip().strip('"')


def _meta(headers: httpx.Headers) -> dict[str, str]:
    out = {}
    for name, value in headers.items():
        n = name.lower()
        if n.startswith("x-amz-meta-") or n in ("content-type", "cache-control",
                                                "content-encoding", "content-disposition"):
            out[n] = value
    return out


def _header_value(value: str) -> str:
    # Metadata values travel as latin-1 header bytes; non-ASCII goes as UTF-8
    # (the S3 front decodes it the same way).
    return value.encode("utf-8").decode("latin-1")


class S3Backend:
    atomic_rename = False
    listing_has_meta = False
    complete_sets_meta = False  # CompleteMultipartUpload takes no metadata

    def __init__(self, endpoint: str, bucket: str, *, access_key: str, secret_key: str,
                 region: str = "us-east-1", session_token: str = "", timeout: float = 10.0,
                 retry_window: float = 20.0, verify: bool | str = True,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.bucket = bucket
        self.name = self.endpoint
        self.region = region
        self.retry_window = retry_window
        self._keys = (access_key, secret_key, session_token)
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout), verify=verify, transport=transport,
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=16))
        self._admin_capacity: bool | None = None

    # ------------------------------------------------------------ transport
    def _url(self, key: str | None, query: Mapping[str, str] | None = None) -> str:
        path = f"/{uri_encode(self.bucket)}"
        if key is not None:
            path += "/" + uri_encode(key, keep_slash=True)
        url = self.endpoint + path
        if query:
            url += "?" + "&".join(f"{uri_encode(k)}={uri_encode(v)}" if v != "" else uri_encode(k)
                                  for k, v in sorted(query.items()))
        return url

    def _signed(self, method: str, url: str, headers: Mapping[str, str], payload: str
                ) -> dict[str, str]:
        access, secret, token = self._keys
        all_headers = dict(headers)
        if token:
            all_headers["x-amz-security-token"] = token
        all_headers.update(sign_request(method, url, all_headers, access_key=access,
                                        secret_key=secret, region=self.region,
                                        payload_sha256=payload))
        return all_headers

    async def _send(self, method: str, key: str | None, *, query: Mapping[str, str] | None = None,
                    headers: Mapping[str, str] | None = None, body: Body | bytes | None = None,
                    what: str, stream: bool = False) -> httpx.Response:
        """One request, retried on transport errors and 5xx within ``retry_window``.
        A 2xx/3xx response is returned (``stream``: unread); 4xx raise."""
        url = self._url(key, query)
        deadline = trio.current_time() + self.retry_window
        delay = 0.1
        while True:
            hdrs = dict(headers or {})
            if isinstance(body, bytes):
                payload = hashlib.sha256(body).hexdigest()
                content: Any = body
            elif body is None:
                payload, content = EMPTY_SHA256, None
            else:
                payload, content = UNSIGNED_PAYLOAD, body()
            signed = self._signed(method, url, hdrs, payload)
            try:
                req = self._http.build_request(method, url, headers=signed, content=content)
                resp = await self._http.send(req, stream=True)
            except httpx.HTTPError as e:
                reason = f"{what}: {type(e).__name__}: {e or 'no answer'}"
            else:
                if resp.status_code < 400:
                    if not stream:
                        await resp.aread()
                        await resp.aclose()
                    return resp
                data = await resp.aread()
                await resp.aclose()
                code, message = _error_code(data)
                if resp.status_code not in RETRY_STATUS:
                    raise self._error(resp.status_code, code, message, what)
                reason = f"{what}: HTTP {resp.status_code} {code} {message}".rstrip()
            if trio.current_time() + delay > deadline:
                raise Unavailable(reason)
            log.info("%s; retrying in %.1fs", reason, delay)
            await trio.sleep(delay)
            delay = min(delay * 2, 2.0)

    @staticmethod
    def _error(status: int, code: str, message: str, what: str) -> BackendError:
        text = f"{what}: HTTP {status} {code} {message}".rstrip()
        if status == 404:
            return NotFound(text)
        if status == 412:
            return Changed(text)
        if status == 403:
            return Denied(text)
        if status == 507 or code in FULL_CODES:
            return NoSpace(text)
        if code == "KeyTooLongError":
            return NameTooLong(text)
        return Unavailable(text)

    # ------------------------------------------------------------ objects
    async def head(self, key: str) -> Entry:
        resp = await self._send("HEAD", key, what=f"HEAD {key}")
        h = resp.headers
        return Entry(key, int(h.get("content-length", "0")), _etag(h.get("etag")),
                     _http_mtime(h.get("last-modified")), _meta(h))

    async def read(self, key: str, first: int, last: int, *, etag: str | None = None
                   ) -> AsyncIterator[bytes]:
        headers = {"range": f"bytes={first}-{last}"}
        if etag:
            headers["if-match"] = f'"{etag}"'
        resp = await self._send("GET", key, headers=headers, what=f"GET {key}", stream=True)
        try:
            async for chunk in resp.aiter_bytes(1 << 20):
                yield chunk
        except httpx.HTTPError as e:
            raise Unavailable(f"GET {key}: {type(e).__name__}: {e}") from None
        finally:
            await resp.aclose()

    async def put(self, key: str, body: Body, size: int, meta: Mapping[str, str]) -> Entry:
        headers = {"content-length": str(size), **self._meta_headers(meta)}
        resp = await self._send("PUT", key, headers=headers, body=body, what=f"PUT {key}")
        return Entry(key, size, _etag(resp.headers.get("etag")), trio_now_ns(), dict(meta))

    def _meta_headers(self, meta: Mapping[str, str]) -> dict[str, str]:
        out = {k: _header_value(v) for k, v in meta.items()}
        out.setdefault("content-type", "application/octet-stream")
        return out

    async def upload_start(self, key: str, meta: Mapping[str, str]) -> str:
        resp = await self._send("POST", key, query={"uploads": ""},
                                headers=self._meta_headers(meta), what=f"CreateMultipartUpload {key}")
        uid = _text(ET.fromstring(resp.content), "UploadId")
        if not uid:
            raise Unavailable(f"CreateMultipartUpload {key}: no UploadId in the answer")
        return uid

    async def upload_part(self, key: str, upload_id: str, number: int, body: Body,
                          size: int) -> str:
        resp = await self._send("PUT", key, query={"partNumber": str(number), "uploadId": upload_id},
                                headers={"content-length": str(size)}, body=body,
                                what=f"UploadPart {key} #{number}")
        return _etag(resp.headers.get("etag"))

    async def copy_part(self, key: str, upload_id: str, number: int, src_key: str,
                        first: int, last: int, src_etag: str) -> str:
        headers = {
            "x-amz-copy-source": self._copy_source(src_key),
            "x-amz-copy-source-range": f"bytes={first}-{last}",
            "x-amz-copy-source-if-match": f'"{src_etag}"',
        }
        resp = await self._send("PUT", key, query={"partNumber": str(number), "uploadId": upload_id},
                                headers=headers, what=f"UploadPartCopy {key} #{number}")
        return _etag(_text(ET.fromstring(resp.content), "ETag"))

    def _copy_source(self, key: str) -> str:
        return "/" + quote(f"{self.bucket}/{key}", safe="/")

    async def upload_complete(self, key: str, upload_id: str, parts: Sequence[tuple[int, str]],
                              meta: Mapping[str, str] | None = None) -> Entry:
        doc = "<CompleteMultipartUpload>" + "".join(
            f"<Part><PartNumber>{n}</PartNumber><ETag>\"{e}\"</ETag></Part>" for n, e in parts
        ) + "</CompleteMultipartUpload>"
        resp = await self._send("POST", key, query={"uploadId": upload_id}, body=doc.encode(),
                                what=f"CompleteMultipartUpload {key}")
        root = ET.fromstring(resp.content)
        if _local(root.tag) == "Error":  # a 200 with an error body (AWS does this)
            raise Unavailable(f"CompleteMultipartUpload {key}: {_text(root, 'Code')}")
        return await self.head(key)

    async def upload_abort(self, key: str, upload_id: str) -> None:
        try:
            await self._send("DELETE", key, query={"uploadId": upload_id},
                             what=f"AbortMultipartUpload {key}")
        except BackendError as e:
            log.warning("abort of upload %s failed: %s", upload_id, e.reason)

    async def list(self, prefix: str, *, delimiter: str = "/", start_after: str = "",
                   limit: int = 1000) -> Page:
        query = {"list-type": "2", "prefix": prefix, "max-keys": str(limit),
                 "encoding-type": "url"}
        if delimiter:
            query["delimiter"] = delimiter
        if start_after:
            query["start-after"] = start_after
        resp = await self._send("GET", None, query=query, what=f"LIST {prefix}")
        root = ET.fromstring(resp.content)
        from urllib.parse import unquote

        decode = unquote if _text(root, "EncodingType") == "url" else (lambda s: s)
        entries = [
            Entry(decode(_text(c, "Key")), int(_text(c, "Size", "0")), _etag(_text(c, "ETag")),
                  _iso_mtime(_text(c, "LastModified")))
            for c in _children(root, "Contents")
        ]
        prefixes = [decode(_text(p, "Prefix")) for p in _children(root, "CommonPrefixes")]
        truncated = _text(root, "IsTruncated") == "true"
        last = max([e.key for e in entries] + prefixes, default=None)
        return Page(entries, prefixes, truncated, last if truncated else None)

    async def delete(self, key: str) -> None:
        try:
            await self._send("DELETE", key, what=f"DELETE {key}")
        except NotFound:
            return

    async def copy(self, src: str, dst: str, meta: Mapping[str, str]) -> Entry:
        info = await self.head(src)
        if info.size > COPY_MAX:
            return await self._copy_large(src, dst, info, meta)
        headers = {"x-amz-copy-source": self._copy_source(src),
                   "x-amz-metadata-directive": "REPLACE", **self._meta_headers(meta)}
        resp = await self._send("PUT", dst, headers=headers, what=f"COPY {src} -> {dst}")
        root = ET.fromstring(resp.content)
        if _local(root.tag) == "Error":
            raise Unavailable(f"COPY {src} -> {dst}: {_text(root, 'Code')}")
        return Entry(dst, info.size, _etag(_text(root, "ETag")), trio_now_ns(), dict(meta))

    async def _copy_large(self, src: str, dst: str, info: Entry,
                          meta: Mapping[str, str]) -> Entry:
        uid = await self.upload_start(dst, meta)
        try:
            part = max(1 << 30, math.ceil(info.size / 10_000))
            parts = []
            for n, first in enumerate(range(0, info.size, part), start=1):
                last = min(info.size, first + part) - 1
                parts.append((n, await self.copy_part(dst, uid, n, src, first, last, info.etag)))
            return await self.upload_complete(dst, uid, parts)
        except BaseException:
            with trio.CancelScope(shield=True):
                await self.upload_abort(dst, uid)
            raise

    async def rename(self, src: str, dst: str) -> Entry:
        info = await self.head(src)
        entry = await self.copy(src, dst, info.meta or {})
        await self.delete(src)
        return entry

    async def statfs(self) -> Capacity:
        if self._admin_capacity is False:
            return UNKNOWN_CAPACITY
        url = self.endpoint + "/titans3/admin/v1/info"
        try:
            resp = await self._http.get(url, headers=self._signed("GET", url, {}, EMPTY_SHA256))
            doc = resp.json() if resp.status_code == 200 else None
            drives = doc["drives"] if isinstance(doc, dict) else None
            ec = doc["ec"] if isinstance(doc, dict) else None
        except (httpx.HTTPError, ValueError, KeyError):
            drives = ec = None
        if not drives or not ec:
            if self._admin_capacity is None:
                self._admin_capacity = False
            return UNKNOWN_CAPACITY
        self._admin_capacity = True
        k, m = int(ec["k"]), int(ec["m"])
        total = sum(int(d.get("capacity", 0)) for d in drives)
        free = sum(int(d.get("free", 0)) for d in drives if d.get("state") == "online")
        return Capacity(total * k // (k + m), free * k // (k + m))

    async def aclose(self) -> None:
        await self._http.aclose()


def trio_now_ns() -> int:
    import time

    return time.time_ns()
