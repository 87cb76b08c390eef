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
out); :class:`AccessLog` writes the lines through a size-rotated file handler
(``<state>/access.log``, 64 MiB x 4 by default), or to stderr (``-``) for
journald.  A write is an append to the page cache on the event loop: no fsync,
the log is a record of traffic, not of data.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import sys
import time
from pathlib import Path
from typing import Any

from titans3.core.metrics import Exchange

MAX_BYTES = 64 << 20
BACKUPS = 4


def _op_type(note: dict[str, Any]) -> str:
    if note.get("key") is not None:
        return "OBJECT"
    return "BUCKET" if note.get("bucket") else "SERVICE"


def record(ex: Exchange, *, owner: str = "") -> dict[str, Any]:
    """The access log record of one finished request."""
    scope, note = ex.scope, ex.note
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", ())}
    client = scope.get("client") or (None, None)
    raw = scope.get("raw_path") or scope.get("path", "").encode()
    qs = scope.get("query_string", b"")
    uri = raw.decode("latin-1") + ("?" + qs.decode("latin-1") if qs else "")
    tls = scope.get("extensions", {}).get("tls") if isinstance(scope.get("extensions"), dict) else None
    auth = headers.get("authorization", "")
    if auth.startswith("AWS4-HMAC-SHA256"):
        sig, auth_type = "SigV4", "AuthHeader"
    elif "x-amz-signature=" in qs.decode("latin-1").lower():
        sig, auth_type = "SigV4", "QueryString"
    elif auth.startswith("AWS "):
        sig, auth_type = "SigV2", "AuthHeader"
    else:
        sig, auth_type = None, None
    length = ex.headers_out.get("content-length")
    return {
        "bucket_owner": owner or None,
        "bucket": note.get("bucket"),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ex.started))
        + f".{int(ex.started * 1000) % 1000:03d}Z",
        "remote_ip": client[0],
        "requester": note.get("requester"),
        "request_id": ex.headers_out.get("x-amz-request-id"),
        "operation": f"REST.{scope.get('method', '')}.{_op_type(note)}",
        "api_operation": note.get("op"),
        "key": note.get("key"),
        "request_uri": f"{scope.get('method', '')} {uri} HTTP/{scope.get('http_version', '1.1')}",
        "http_status": ex.status,
        "error_code": ex.error_code or None,
        "bytes_sent": ex.bytes_out,
        "bytes_received": ex.bytes_in,
        "object_size": int(length) if length and length.isdigit() and ex.status < 300 else None,
        "total_time_ms": round(ex.duration * 1000, 3),
        "turn_around_time_ms": round(ex.first_byte * 1000, 3) if ex.first_byte is not None else None,
        "referer": headers.get("referer"),
        "user_agent": headers.get("user-agent"),
        "version_id": note.get("version_id") or ex.headers_out.get("x-amz-version-id"),
        "host_id": ex.headers_out.get("x-amz-id-2"),
        "signature_version": sig,
        "cipher_suite": tls.get("cipher_suite") if isinstance(tls, dict) else None,
        "authentication_type": auth_type,
        "host_header": headers.get("host"),
        "tls_version": tls.get("tls_version") if isinstance(tls, dict) else None,
        "trace_id": note.get("trace_id"),
    }


class AccessLog:
    """Writes :func:`record` lines to ``target`` (a path, or ``-`` for stderr)."""

    def __init__(self, target: str, *, owner: str = "") -> None:
        self.owner = owner
        self.target = target
        handler: logging.Handler
        if target == "-":
            handler = logging.StreamHandler(sys.stderr)
        else:
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            handler = logging.handlers.RotatingFileHandler(
                target, maxBytes=MAX_BYTES, backupCount=BACKUPS, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(message)s"))
        self._log = logging.Logger("titans3.access")  # private: never propagates to the root
        self._log.addHandler(handler)
        self._log.setLevel(logging.INFO)

    def __call__(self, ex: Exchange) -> None:
        self._log.info(json.dumps(record(ex, owner=self.owner), separators=(",", ":")))

    def close(self) -> None:
        for h in list(self._log.handlers):
            h.close()
