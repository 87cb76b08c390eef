"""The S3 access log: one JSON object per line, with S3 server access log fields.

Theory of operation
-------------------
AWS documents a server access log record (bucket owner, bucket, time, remote
IP, requester, request id, operation, key, request URI, status, error code,
bytes sent, object size, total time, turn-around time, referer, user agent,
version id, host id, signature version, cipher suite, authentication type,
host header, TLS version).  Log tools that read S3 logs know those fields, so
this log has them -- under snake_case names, as JSON lines rather than AWS's
space-separated text, because every log shipper parses JSON without a custom
grok pattern.  A field the request did not have is ``null`` (AWS writes ``-``).

:func:`record` is pure (an :class:`~titans3.core.metrics.Exchange` in, a dict
out); :class:`AccessLog` buffers the lines and appends them in bursts to a
size-rotated file (``<state>/access.log``, 64 MiB x 4 by default), or to
stderr (``-``) for journald.  Writes go to the page cache from the event loop:
no fsync, the log is a record of traffic, not of data, and a crash may lose
its last second.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import trio

from titans3.core.metrics import Exchange

MAX_BYTES = 64 << 20
BACKUPS = 4


def _op_type(note: dict[str, Any]) -> str:
    if note.get("key") is not None:
        return "OBJECT"
    return "BUCKET" if note.get("bucket") else "SERVICE"


_WANTED = {b"user-agent": "user_agent", b"referer": "referer", b"host": "host_header",
           b"authorization": "authorization"}


_second = -1
_second_text = ""


def utc_stamp(t: float) -> str:
    """``2026-12-07T18:01:31.123Z`` for the epoch time ``t`` (the second's text cached)."""
    global _second, _second_text
    second = int(t)
    if second != _second:
        _second_text, _second = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)), second
    return f"{_second_text}.{int(t * 1000) % 1000:03d}Z"


_ENCODER = json.JSONEncoder(separators=(",", ":"))  # json.dumps would build one per call


def record(ex: Exchange, *, owner: str = "") -> dict[str, Any]:
    """The access log record of one finished request."""
    scope, note = ex.scope, ex.note
    headers: dict[str, str] = {}
    for k, v in scope.get("headers", ()):
        name = _WANTED.get(k.lower())
        if name is not None:
            headers[name] = v.decode("latin-1")
    client = scope.get("client") or (None, None)
    method = scope.get("method", "")
    raw = scope.get("raw_path") or scope.get("path", "").encode()
    qs = scope.get("query_string", b"").decode("latin-1")
    uri = raw.decode("latin-1") + ("?" + qs if qs else "")
    ext = scope.get("extensions")
    tls = ext.get("tls") if isinstance(ext, dict) else None
    auth = headers.get("authorization", "")
    if auth.startswith("AWS4-HMAC-SHA256"):
        sig, auth_type = "SigV4", "AuthHeader"
    elif "x-amz-signature=" in qs.lower():
        sig, auth_type = "SigV4", "QueryString"
    elif auth.startswith("AWS "):
        sig, auth_type = "SigV2", "AuthHeader"
    else:
        sig, auth_type = None, None
    out = ex.headers_out
    length = out.get("content-length")
    started = ex.started
    return {
        "bucket_owner": owner or None,
        "bucket": note.get("bucket"),
        "time": utc_stamp(started),
        "remote_ip": client[0],
        "requester": note.get("requester"),
        "request_id": out.get("x-amz-request-id"),
        "operation": f"REST.{method}.{_op_type(note)}",
        "api_operation": note.get("op"),
        "key": note.get("key"),
        "request_uri": f"{method} {uri} HTTP/{scope.get('http_version', '1.1')}",
        "http_status": ex.status,
        "error_code": ex.error_code or None,
        "bytes_sent": ex.bytes_out,
        "bytes_received": ex.bytes_in,
        "object_size": int(length) if length and length.isdigit() and ex.status < 300 else None,
        "total_time_ms": round(ex.duration * 1000, 3),
        "turn_around_time_ms": round(ex.first_byte * 1000, 3) if ex.first_byte is not None else None,
        "referer": headers.get("referer"),
        "user_agent": headers.get("user_agent"),
        "version_id": note.get("version_id") or out.get("x-amz-version-id"),
        "host_id": out.get("x-amz-id-2"),
        "signature_version": sig,
        "cipher_suite": tls.get("cipher_suite") if isinstance(tls, dict) else None,
        "authentication_type": auth_type,
        "host_header": headers.get("host_header"),
        "tls_version": tls.get("tls_version") if isinstance(tls, dict) else None,
        "trace_id": note.get("trace_id"),
    }


class AccessLog:
    """Writes :func:`record` lines to ``target`` (a path, or ``-`` for stderr).

    Lines are buffered and written when ``BUFFER`` bytes are waiting, when a
    line comes ``FLUSH_EVERY`` seconds after the last write, and by
    :meth:`run` once a second -- one ``write`` per burst instead of one per
    request (the logging module's rotating handler cost ~0.2 ms a line: a
    flush and two ``stat`` calls each).  The file is rotated by size:
    ``access.log`` -> ``access.log.1`` -> ... ``.BACKUPS``.
    """

    BUFFER = 64 << 10
    FLUSH_EVERY = 1.0

    def __init__(self, target: str, *, owner: str = "", max_bytes: int = MAX_BYTES,
                 backups: int = BACKUPS) -> None:
        self.owner = owner
        self.target = target
        self.max_bytes = max_bytes
        self.backups = backups
        self._buf: list[bytes] = []
        self._pending = 0
        self._last = time.monotonic()
        self._fh: Any = None
        self._size = 0
        if target != "-":
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            self._open()

    def _open(self) -> None:
        self._fh = open(self.target, "ab", buffering=0)  # noqa: SIM115 -- held for the process
        self._size = self._fh.tell()

    def __call__(self, ex: Exchange) -> None:
        line = _ENCODER.encode(record(ex, owner=self.owner)).encode() + b"\n"
        self._buf.append(line)
        self._pending += len(line)
        if self._pending >= self.BUFFER or time.monotonic() - self._last >= self.FLUSH_EVERY:
            self.flush()

    def flush(self) -> None:
        self._last = time.monotonic()
        if not self._buf:
            return
        data = b"".join(self._buf)
        self._buf, self._pending = [], 0
        try:
            if self._fh is None:
                sys.stderr.buffer.write(data)
                sys.stderr.flush()
                return
            if self._size + len(data) > self.max_bytes and self._size:
                self._rotate()
            self._fh.write(data)
            self._size += len(data)
        except OSError as e:  # a full log disk must not fail requests
            logging.getLogger(__name__).warning("access log %s: %s", self.target, e)

    def _rotate(self) -> None:
        self._fh.close()
        base = Path(self.target)
        for i in range(self.backups - 1, 0, -1):
            src = base.with_name(f"{base.name}.{i}")
            if src.exists():
                os.replace(src, base.with_name(f"{base.name}.{i + 1}"))
        os.replace(base, base.with_name(f"{base.name}.1"))
        self._open()

    async def run(self) -> None:
        """Flush once a second (the daemon runs it), so a quiet log is not held back."""
        while True:
            await trio.sleep(self.FLUSH_EVERY)
            if self._buf:
                self.flush()

    def close(self) -> None:
        self.flush()
        if self._fh is not None:
            self._fh.close()
            self._fh = None
