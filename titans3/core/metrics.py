"""Request and drive I/O metrics, recorded once, read three ways.

Theory of operation
-------------------
Every HTTP face (S3, peer API) is wrapped by :class:`RequestObserver`, an ASGI
middleware that sees each request from its first byte to its last: it counts
the bytes that came in and went out, the status, the latency to the first
response byte and to the end, and -- because it does not know S3 -- reads the
*operation* from an annotation the app puts into the ASGI scope
(:func:`annotate`, one call in the S3 app right after it classified the
request; the lean ASGI app sets the same key).  Error codes are read from the
error body the app sent (``<Code>...</Code>`` of S3's XML), so the app needs
no second hook for them.

The same observation feeds three readers:

* prometheus-client metrics in :data:`REGISTRY` (``/metrics``), labelled by
  operation -- counters, errors by S3 error code, latency histograms, bytes;
* :class:`Totals`, plain integers summed over every operation, which the status
  page's history sampler (``titans3.web.history``) turns into per-interval
  rates and latency percentiles without walking label sets;
* the access log (:mod:`titans3.core.accesslog`), one JSON line per request.

Drive I/O latency: :func:`observe_drive`, called by LocalDrive around each
blocking call, keeps one cached histogram child per (drive, kind); observing
is a lock and a bisect (~1 us), cheap against the thread hop it measures.

Nothing here raises into the request: a metrics failure must never turn into
a client error.
"""

from __future__ import annotations

import bisect
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from titans3.core import tracing

# Buckets in seconds: 1 ms .. 60 s covers a cached small GET to a multi-GiB PUT.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                   1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
DRIVE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)
SCOPE_KEY = "titans3.observe"  # the app's annotations in the ASGI scope
_CODE = re.compile(rb"<Code>([A-Za-z0-9.]{1,64})</Code>")
_ERROR_SNIFF = 1024  # bytes of an error body searched for the S3 error code

REGISTRY = CollectorRegistry(auto_describe=True)

S3_REQUESTS = Counter("titans3_s3_requests", "S3 requests by operation and HTTP status",
                      ["op", "status"], registry=REGISTRY)
S3_ERRORS = Counter("titans3_s3_errors", "S3 requests answered with an error, by S3 error code",
                    ["op", "code"], registry=REGISTRY)
S3_LATENCY = Histogram("titans3_s3_request_duration_seconds",
                       "S3 request latency, first request byte to last response byte",
                       ["op"], buckets=LATENCY_BUCKETS, registry=REGISTRY)
S3_FIRST_BYTE = Histogram("titans3_s3_first_byte_seconds",
                          "S3 time to the first response byte (turn-around time)",
                          ["op"], buckets=LATENCY_BUCKETS, registry=REGISTRY)
S3_BYTES_IN = Counter("titans3_s3_received_bytes", "request body bytes received",
                      ["op"], registry=REGISTRY)
S3_BYTES_OUT = Counter("titans3_s3_sent_bytes", "response body bytes sent",
                       ["op"], registry=REGISTRY)
S3_INFLIGHT = Gauge("titans3_s3_requests_in_flight", "S3 requests being served",
                    registry=REGISTRY)
PEER_REQUESTS = Counter("titans3_peer_requests", "peer API requests served, by route and status",
                        ["op", "status"], registry=REGISTRY)
PEER_LATENCY = Histogram("titans3_peer_request_duration_seconds", "peer API request latency",
                         ["op"], buckets=LATENCY_BUCKETS, registry=REGISTRY)
DRIVE_IO = Histogram("titans3_drive_io_seconds",
                     "local drive I/O latency: one blocking call in a worker thread "
                     "(kind=io) or one durable index commit (kind=commit)",
                     ["drive", "kind"], buckets=DRIVE_BUCKETS, registry=REGISTRY)
WEB_LOGINS = Counter("titans3_web_logins", "status page login attempts by result",
                     ["result"], registry=REGISTRY)


@dataclass
class Totals:
    """Sums over every S3 operation, for the status page's history."""

    requests: int = 0
    errors: int = 0  # status >= 400
    server_errors: int = 0  # status >= 500
    bytes_in: int = 0
    bytes_out: int = 0
    latency: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))

    def observe(self, status: int, seconds: float, bytes_in: int, bytes_out: int) -> None:
        self.requests += 1
        if status >= 400:
            self.errors += 1
        if status >= 500:
            self.server_errors += 1
        self.bytes_in += bytes_in
        self.bytes_out += bytes_out
        self.latency[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1

    def snapshot(self) -> Totals:
        return Totals(self.requests, self.errors, self.server_errors, self.bytes_in,
                      self.bytes_out, list(self.latency))


TOTALS = Totals()


def annotate(scope: MutableMapping[str, Any], **fields: Any) -> None:
    """Tell the observer what a request is: ``op`` (AWS operation name), and for
    the access log ``bucket``, ``key``, ``requester``, ``version_id``, ..."""
    note = scope.get(SCOPE_KEY)
    if note is None:
        note = scope[SCOPE_KEY] = {}
    note.update({k: v for k, v in fields.items() if v is not None})
    tracing.name_request(fields.get("op"), fields)


@dataclass(slots=True)
class Exchange:
    """What one request did, as the observer saw it (the access log's input)."""

    scope: dict[str, Any]
    started: float  # time.time() at the first byte
    t0: float  # perf_counter() at the first byte
    status: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    first_byte: float | None = None  # seconds to the response start
    duration: float = 0.0
    error_code: str = ""
    request_id: str = ""
    headers_out: dict[str, str] = field(default_factory=dict)

    @property
    def note(self) -> dict[str, Any]:
        return self.scope.get(SCOPE_KEY) or {}


ASGIApp = Callable[[dict[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]],
                   Awaitable[None]]


class RequestObserver:
    """ASGI middleware: metrics, history totals, access log and the request span.

    ``face`` is ``"s3"`` or ``"peer"``; ``on_done`` (the access log) gets every
    finished :class:`Exchange`.
    """

    def __init__(self, app: ASGIApp, face: str, *,
                 on_done: Callable[[Exchange], None] | None = None) -> None:
        self.app = app
        self.face = face
        self.on_done = on_done

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        ex = Exchange(scope, time.time(), time.perf_counter())
        sniff: list[bytes] = []

        async def counting_receive() -> Any:
            message = await receive()
            if message["type"] == "http.request":
                ex.bytes_in += len(message.get("body", b""))
            return message

        async def counting_send(message: Any) -> None:
            kind = message["type"]
            if kind == "http.response.start":
                ex.status = int(message["status"])
                ex.first_byte = time.perf_counter() - ex.t0
                tracing.set_status(ex.status)
                for name, value in message.get("headers", ()):
                    n = _KEPT_HEADERS.get(name)
                    if n is None and not name.islower():  # ASGI names are lower case; be lenient
                        n = _KEPT_HEADERS.get(name.lower())
                    if n is not None:
                        ex.headers_out[n] = value.decode("latin-1")
            elif kind == "http.response.body":
                body = message.get("body", b"")
                ex.bytes_out += len(body)
                if ex.status >= 400 and sum(map(len, sniff)) < _ERROR_SNIFF:
                    sniff.append(body[:_ERROR_SNIFF])
            await send(message)

        if self.face == "s3":
            S3_INFLIGHT.inc()
        try:
            if not tracing.enabled():
                await self.app(scope, counting_receive, counting_send)
            else:
                with tracing.server_span(self.face, scope) as trace_id:
                    scope.setdefault(SCOPE_KEY, {})["trace_id"] = trace_id
                    await self.app(scope, counting_receive, counting_send)
        finally:
            if self.face == "s3":
                S3_INFLIGHT.dec()
            ex.duration = time.perf_counter() - ex.t0
            if ex.status >= 400:
                m = _CODE.search(b"".join(sniff))
                ex.error_code = m.group(1).decode() if m else ""
            self._record(ex)

    def record(self, ex: Exchange) -> None:
        """Count a request another process served (titans3/front/: the owner counts fronts')."""
        self._record(ex)

    def _record(self, ex: Exchange) -> None:
        try:
            if self.face == "s3":
                op = str(ex.note.get("op") or "Unknown")
                c = _children(op)
                _child(S3_REQUESTS, op, str(ex.status)).inc()
                c.latency.observe(ex.duration)
                if ex.first_byte is not None:
                    c.first_byte.observe(ex.first_byte)
                if ex.bytes_in:
                    c.bytes_in.inc(ex.bytes_in)
                if ex.bytes_out:
                    c.bytes_out.inc(ex.bytes_out)
                if ex.status >= 400:
                    _child(S3_ERRORS, op, ex.error_code or str(ex.status)).inc()
                TOTALS.observe(ex.status, ex.duration, ex.bytes_in, ex.bytes_out)
            else:
                op = peer_route(ex.scope.get("path", ""))
                _child(PEER_REQUESTS, op, str(ex.status)).inc()
                _child(PEER_LATENCY, op).observe(ex.duration)
            if self.on_done is not None:
                self.on_done(ex)
        except Exception:  # noqa: BLE001 -- observing must never fail a request
            import logging

            logging.getLogger(__name__).exception("recording request metrics failed")


_KEPT_HEADERS = {n.encode(): n for n in ("x-amz-request-id", "x-amz-id-2", "content-length",
                                         "x-amz-version-id")}  # what the access log reports  # fmt: skip

# prometheus-client's labels() takes a lock and builds a key on every call
# (~5 us); the label sets here are few and fixed, so children are cached.
_CHILDREN: dict[tuple[int, tuple[str, ...]], Any] = {}


def _child(metric: Any, *labels: str) -> Any:
    key = (id(metric), labels)
    child = _CHILDREN.get(key)
    if child is None:
        child = _CHILDREN[key] = metric.labels(*labels)
    return child


@dataclass(slots=True)
class _OpChildren:
    latency: Any
    first_byte: Any
    bytes_in: Any
    bytes_out: Any


_OPS: dict[str, _OpChildren] = {}


def _children(op: str) -> _OpChildren:
    c = _OPS.get(op)
    if c is None:
        c = _OPS[op] = _OpChildren(S3_LATENCY.labels(op), S3_FIRST_BYTE.labels(op),
                                   S3_BYTES_IN.labels(op), S3_BYTES_OUT.labels(op))
    return c


def peer_route(path: str) -> str:
    """``/peer/v1/drive/3/rpc/commit_version`` -> ``rpc/commit_version`` (bounded labels)."""
    parts = path.strip("/").split("/")[2:]  # drop "peer", "v1"
    if parts[:1] == ["drive"] and len(parts) >= 4:
        return f"{parts[2]}/{parts[3]}" if parts[2] == "rpc" else parts[2]
    return "/".join(parts[:2]) or "/"


_DRIVE_CHILDREN: dict[tuple[str, str], Any] = {}


def observe_drive(drive_id: str, kind: str, seconds: float) -> None:
    """One blocking call of a local drive took ``seconds`` (``kind``: io, commit)."""
    child = _DRIVE_CHILDREN.get((drive_id, kind))
    if child is None:
        child = _DRIVE_CHILDREN[(drive_id, kind)] = DRIVE_IO.labels(drive_id or "?", kind)
    child.observe(seconds)
