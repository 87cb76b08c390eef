"""What every ``titanctl`` command shares: the signed admin client, errors, formatting.

``titanctl`` (the entry point) and its command modules (``ctl_*``) all import
this module and never each other's internals, so the CLI has one direction of
imports: ``titanctl`` -> ``ctl_*`` -> ``client``.

* pure formatting -- :func:`human_bytes`, :func:`format_ec`, :func:`format_table`,
  :func:`parse_s3_error`, :func:`describe_http_error` -- values in, text out;
* :class:`AdminClient` and :func:`call_json` -- one signed request, JSON out,
  every failure turned into a :class:`CtlError` carrying the one-line message
  and the exit status.
"""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from titans3.s3.signer import sign_request
from titans3.s3.sigv4 import uri_encode

DEFAULT_ENDPOINT = "http://127.0.0.1:9000"
INFO_PATH = "/titans3/admin/v1/info"
REGION = "us-east-1"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2


class CtlError(Exception):
    """A failure to report as one ``titanctl: ...`` line with exit status ``code``."""

    def __init__(self, message: str, code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


ADMIN = "/titans3/admin/v1/"


# ------------------------------------------------------------------- formatting
_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")


def human_bytes(n: int | float | None) -> str:
    """``1536`` -> ``"1.5 KiB"`` (IEC units, one decimal); ``None`` -> ``"-"``."""
    if n is None:
        return "-"
    value = float(n)
    if abs(value) < 1024:
        return f"{int(value)} B"
    for unit in _UNITS[1:]:
        value /= 1024
        if abs(value) < 1024 or unit == _UNITS[-1]:
            return f"{value:.1f} {unit}"
    raise AssertionError("unreachable")


def format_ec(ec: dict[str, Any] | None) -> str:
    """``{"k": 4, "m": 2}`` -> ``"4+2"``; anything else -> ``"?"``."""
    if not isinstance(ec, dict) or "k" not in ec or "m" not in ec:
        return "?"
    return f"{ec['k']}+{ec['m']}"


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> str:
    """Columns padded to their widest cell; column indexes in ``right`` are right-aligned."""
    widths = [len(h) for h in header]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]

    def line(cells: Sequence[str]) -> str:
        out = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(out).rstrip()

    return "\n".join([line(header), *(line(r) for r in rows)])


def parse_s3_error(body: bytes) -> tuple[str, str] | None:
    """``(Code, Message)`` of an S3 ``<Error>`` document, or None if ``body`` is not one."""
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return None
    if root.tag.rsplit("}", 1)[-1] != "Error":
        return None
    fields = {child.tag.rsplit("}", 1)[-1]: (child.text or "").strip() for child in root}
    if not fields.get("Code"):
        return None
    return fields["Code"], fields.get("Message", "")


def describe_http_error(status: int, reason: str, body: bytes) -> str:
    """One line for a non-2xx answer: the S3 error if there is one, else status + body start."""
    parsed = parse_s3_error(body)
    if parsed is not None:
        code, message = parsed
        return f"{code}: {message}" if message else code
    text = body.decode("utf-8", "replace").strip().splitlines()
    first = text[0][:200] if text else ""
    return f"HTTP {status} {reason}" + (f": {first}" if first else "")


# ------------------------------------------------------------------------ client
@dataclass(frozen=True)
class AdminClient:
    """Signed GETs against one endpoint's admin API."""

    endpoint: str
    access_key: str
    secret_key: str
    timeout: float = 10.0
    transport: httpx.BaseTransport | None = None  # tests inject httpx.MockTransport

    def get_json(self, path: str) -> Any:
        url = self.endpoint.rstrip("/") + path
        headers = sign_request(
            "GET",
            url,
            {},
            access_key=self.access_key,
            secret_key=self.secret_key,
            region=REGION,
            payload_sha256=EMPTY_SHA256,
        )
        try:
            with httpx.Client(timeout=self.timeout, transport=self.transport) as http:
                resp = http.get(url, headers=headers)
        except httpx.ConnectError as e:
            raise CtlError(
                f"cannot reach {self.endpoint}: {_connect_reason(e)}", EXIT_USAGE
            ) from None
        except httpx.TimeoutException:
            raise CtlError(f"cannot reach {self.endpoint}: timed out", EXIT_USAGE) from None
        except httpx.HTTPError as e:
            raise CtlError(f"request to {self.endpoint} failed: {e}", EXIT_USAGE) from None
        if resp.status_code >= 300:
            raise CtlError(describe_http_error(resp.status_code, resp.reason_phrase, resp.content))
        try:
            return resp.json()
        except ValueError:
            raise CtlError(f"unexpected answer from {url}: not JSON") from None


def _connect_reason(e: httpx.ConnectError) -> str:
    text = str(e) or type(e).__name__
    # httpx says "[Errno 111] Connection refused"; operators want the plain words.
    return "connection refused" if "refused" in text.lower() else text


def check_endpoint(endpoint: str) -> str:
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CtlError(
            f"bad endpoint {endpoint!r}: want http://HOST:PORT or https://HOST:PORT", EXIT_USAGE
        )
    return endpoint


def call_json(
    client: AdminClient, method: str, path: str, query: Mapping[str, str] | None = None
) -> Any:
    """One signed admin call (``path`` under ``/titans3/admin/v1/``); JSON out."""
    qs = "&".join(f"{uri_encode(k)}={uri_encode(v)}" for k, v in (query or {}).items())
    url = client.endpoint.rstrip("/") + ADMIN + path + (f"?{qs}" if qs else "")
    headers = sign_request(method, url, {}, access_key=client.access_key,
                           secret_key=client.secret_key, region=REGION,
                           payload_sha256=EMPTY_SHA256)
    try:
        with httpx.Client(timeout=client.timeout, transport=client.transport) as http:
            resp = http.request(method, url, headers=headers)
    except httpx.ConnectError as e:
        raise CtlError(f"cannot reach {client.endpoint}: {_connect_reason(e)}", EXIT_USAGE) from None
    except httpx.TimeoutException:
        raise CtlError(f"cannot reach {client.endpoint}: timed out", EXIT_USAGE) from None
    except httpx.HTTPError as e:
        raise CtlError(f"request to {client.endpoint} failed: {e}", EXIT_USAGE) from None
    if resp.status_code >= 300:
        raise CtlError(describe_http_error(resp.status_code, resp.reason_phrase, resp.content))
    try:
        doc = resp.json()
    except ValueError:
        raise CtlError(f"unexpected answer from {ADMIN}{path}: not JSON") from None
    if not isinstance(doc, dict):
        raise CtlError(f"unexpected answer from {ADMIN}{path}: not a JSON object")
    return doc
