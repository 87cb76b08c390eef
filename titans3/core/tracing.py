"""OpenTelemetry traces of a request across hosts (off by default).

Theory of operation
-------------------
``setup(cfg)`` installs an SDK tracer provider only when ``trace_exporter``
is set: ``"otlp"`` (OTLP over HTTP/protobuf to ``trace_endpoint``, batched in
the SDK's background thread) or ``"console"`` (one ``otel-span {json}`` line
per finished span on stderr -- journald or the test's log file).  Without it
every function here is a cheap no-op: the request path pays one boolean test.

A request's span is opened by the request observer (core/metrics.py) around
the app: on the S3 face it is a root span (or continues a ``traceparent`` the
client sent), renamed ``S3 <operation>`` once the app classified it; on the
peer face it continues the ``traceparent`` the calling host sent.  The calling
side is ``inject``: the peer client (drive/remote.py) adds the current span's
W3C ``traceparent`` to every signed peer request.  Context travels in
``contextvars``, which trio copies into every task a request spawns, so the
peer calls a PUT fans out carry the PUT's trace.  A batched peer call carries
the trace of the request whose task sent the batch.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator, Mapping
from typing import Any

_tracer: Any = None  # set by setup(); None = tracing off
_provider: Any = None


def enabled() -> bool:
    return _tracer is not None


def _console_line(span: Any) -> str:
    return "otel-span " + json.dumps(json.loads(span.to_json()), separators=(",", ":")) + "\n"


def setup(exporter: str, *, endpoint: str = "", service: str = "titans3",
          attributes: Mapping[str, str] | None = None) -> None:
    """Install the tracer provider for ``exporter`` ("", "console", "otlp")."""
    global _tracer, _provider
    if not exporter:
        _tracer = None
        return
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        ConsoleSpanExporter,
        SimpleSpanProcessor,
    )

    resource = Resource.create({"service.name": service, **(attributes or {})})
    provider = TracerProvider(resource=resource)
    if exporter == "console":
        provider.add_span_processor(SimpleSpanProcessor(
            ConsoleSpanExporter(out=sys.stderr, formatter=_console_line)))
    elif exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(
            OTLPSpanExporter(endpoint=endpoint or "http://127.0.0.1:4318/v1/traces")))
    else:
        raise ValueError(f"unknown trace exporter {exporter!r}")
    trace.set_tracer_provider(provider)
    _provider = provider
    _tracer = provider.get_tracer("titans3")


def shutdown() -> None:
    """Flush what the exporter still holds (daemon exit)."""
    if _provider is not None:
        _provider.shutdown()


def _carrier(scope: Mapping[str, Any]) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", ())
            if k.lower() in (b"traceparent", b"tracestate")}


@contextlib.contextmanager
def server_span(face: str, scope: Mapping[str, Any]) -> Iterator[str]:
    """The span of one served request, current while the app runs; yields its
    trace id (hex), or "" when tracing is off."""
    if _tracer is None:
        yield ""
        return
    from opentelemetry import context, propagate, trace

    parent = propagate.extract(_carrier(scope))
    method = scope.get("method", "")
    client = scope.get("client") or ("", 0)
    span = _tracer.start_span(
        f"{face} {method}", context=parent, kind=trace.SpanKind.SERVER,
        attributes={"http.request.method": method, "url.path": scope.get("path", ""),
                    "client.address": str(client[0]), "titans3.face": face},
    )
    token = context.attach(trace.set_span_in_context(span, parent))
    try:
        yield format(span.get_span_context().trace_id, "032x")
    finally:
        context.detach(token)
        span.end()


def name_request(op: str | None, fields: Mapping[str, Any]) -> None:
    """The S3 app classified the current request: name its span after the operation."""
    if _tracer is None or not op:
        return
    from opentelemetry import trace

    span = trace.get_current_span()
    span.update_name(f"S3 {op}")
    span.set_attribute("aws.s3.operation", op)
    for name in ("bucket", "key"):
        if fields.get(name):
            span.set_attribute(f"aws.s3.{name}", str(fields[name]))


def set_status(status: int) -> None:
    if _tracer is None:
        return
    from opentelemetry import trace

    span = trace.get_current_span()
    span.set_attribute("http.response.status_code", status)
    if status >= 500:
        span.set_status(trace.Status(trace.StatusCode.ERROR))


def inject(headers: dict[str, str]) -> dict[str, str]:
    """Add the current trace context (W3C ``traceparent``) to outgoing ``headers``."""
    if _tracer is not None:
        from opentelemetry import propagate

        propagate.inject(headers)
    return headers
