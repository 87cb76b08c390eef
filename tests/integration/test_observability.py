"""Metrics, access log, graphs and traces, read from the real daemon.

* ``/metrics`` (parsed by prometheus-client's own parser): the per-operation
  request counters, latency histograms and byte counters, and the per-drive
  I/O latency histograms move by what the test's boto3 requests did; errors
  are counted by S3 error code.
* The access log has one JSON line per request with the S3 server access log
  fields (operation, bucket, key, status, error code, bytes).
* The graphs of the last hour are in the HTML the server sends (no script
  run): four SVG charts with the samples the history took.
* A PUT through one host of a two-host cluster is one trace: the daemons run
  the OpenTelemetry SDK's console exporter (configured by environment), and
  the span of the peer request on the second host has the first host's S3
  span as its parent.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import botocore.exceptions
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from .cluster import Daemon, s3_client
from .peerhosts import ClusterHost, plan, running
from .peerhosts import s3_client as cluster_s3


def scrape(d: Daemon) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(f"{d.web_endpoint}/metrics", timeout=10).text
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(m: dict, name: str, **labels: str) -> float:
    return m.get((name, tuple(sorted(labels.items()))), 0.0)


def drive_io_count(m: dict) -> float:
    return sum(v for (n, _), v in m.items() if n == "titans3_drive_io_seconds_count")


@pytest.fixture
def node(daemon_factory: Callable[..., Daemon], tmp_path: Path) -> Daemon:
    return daemon_factory(drives=6, env={"TITANS3_WEB_SAMPLE_INTERVAL": "1",
                                         "TITANS3_SETUP_CODE_FILE": str(tmp_path / "none")})


def test_metrics_count_and_time_every_operation(node: Daemon) -> None:
    before = scrape(node)
    body = b"m" * 300_000
    with closing(s3_client(node)) as s3:
        s3.create_bucket(Bucket="metrics")
        for i in range(5):
            s3.put_object(Bucket="metrics", Key=f"k{i}", Body=body)
        for i in range(5):
            assert s3.get_object(Bucket="metrics", Key=f"k{i}")["Body"].read() == body
        with pytest.raises(botocore.exceptions.ClientError):
            s3.get_object(Bucket="metrics", Key="missing")
    after = scrape(node)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("titans3_s3_requests_total", op="PutObject", status="200") == 5
    assert moved("titans3_s3_requests_total", op="GetObject", status="200") == 5
    assert moved("titans3_s3_request_duration_seconds_count", op="PutObject") == 5
    assert moved("titans3_s3_request_duration_seconds_bucket", op="GetObject", le="+Inf") == 6  # + the 404
    assert moved("titans3_s3_request_duration_seconds_sum", op="PutObject") > 0
    assert moved("titans3_s3_received_bytes_total", op="PutObject") >= 5 * len(body)
    assert moved("titans3_s3_sent_bytes_total", op="GetObject") >= 5 * len(body)
    assert moved("titans3_s3_errors_total", op="GetObject", code="NoSuchKey") == 1
    assert drive_io_count(after) > drive_io_count(before)
    stored = [v for (n, _), v in after.items() if n == "titans3_drive_stored_bytes"]
    assert len(stored) == 6 and all(v > 0 for v in stored)
    shared = [v for (n, _), v in after.items() if n == "titans3_drive_filesystem_shared"]
    assert shared == [6.0] * 6  # six directories on one filesystem, and the page says so

    log = node.data_dir / ".titans3" / "access.log"

    def logged() -> list[dict]:  # lines are written in bursts, at least once a second
        lines = [json.loads(x) for x in log.read_text().splitlines()]
        return lines if any(r["key"] == "missing" for r in lines) else []

    lines = eventually(logged, timeout=5)
    puts = [r for r in lines if r["api_operation"] == "PutObject"]
    assert len(puts) == 5 and all(r["http_status"] == 200 and r["bucket"] == "metrics" for r in puts)
    assert {r["key"] for r in puts} == {f"k{i}" for i in range(5)}
    assert all(r["bytes_received"] >= len(body) and r["operation"] == "REST.PUT.OBJECT" for r in puts)
    miss = [r for r in lines if r["key"] == "missing"]
    assert miss and miss[0]["http_status"] == 404 and miss[0]["error_code"] == "NoSuchKey"
    assert all(r["request_id"] and r["remote_ip"] == "127.0.0.1" and r["total_time_ms"] > 0 for r in puts)


def test_the_graphs_are_in_the_server_rendered_page(node: Daemon) -> None:
    with closing(s3_client(node)) as s3:
        s3.create_bucket(Bucket="graphs")
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:  # a few seconds of traffic, sampled every second
            s3.put_object(Bucket="graphs", Key="k", Body=b"g" * 10_000)
            s3.get_object(Bucket="graphs", Key="k")["Body"].read()
    time.sleep(1.5)
    html = httpx.get(f"{node.web_endpoint}/", timeout=10).text  # no script runs here
    # Per drive: what TitanS3 stores, next to the filesystem the six directories share.
    assert html.count("(one filesystem for 6 drives)") == 6
    assert "stored by TitanS3" in html and "TitanS3 stores" in html
    for chart in ("graph-requests", "graph-throughput", "graph-latency", "graph-errors"):
        assert f'<svg id="{chart}"' in html, chart
    requests_svg = html[html.index('<svg id="graph-requests"'):]
    requests_svg = requests_svg[:requests_svg.index("</svg>")]
    points = re.search(r'<polyline points="([^"]+)"[^>]*data-series="requests"', requests_svg)
    assert points, requests_svg[:500]
    ys = [float(p.split(",")[1]) for p in points.group(1).split()]
    assert min(ys) < max(ys)  # the line rises above the baseline where the traffic was
    hist = httpx.get(f"{node.web_endpoint}/api/history", timeout=10).json()
    assert hist["interval"] == 1.0
    assert max(s["requests"] for s in hist["samples"]) > 0
    assert any(s["p99"] for s in hist["samples"])


def spans(host: ClusterHost) -> list[dict]:
    return [json.loads(line.split("otel-span ", 1)[1]) for line in host.log_text().splitlines()
            if line.startswith("otel-span ")]


def test_a_put_through_one_host_is_one_trace_across_both(tmp_path: Path) -> None:
    addrs, ports, peers = plan(2)
    env = {"TITANS3_TRACE_EXPORTER": "console"}
    hosts = [ClusterHost(a, tmp_path, i + 1, peers, p, extra=["--ec", "1+1"], env=env)
             for i, (a, p) in enumerate(zip(addrs, ports, strict=True))]
    with running(hosts):
        with closing(cluster_s3(hosts[0])) as s3:
            s3.create_bucket(Bucket="traced")
            s3.put_object(Bucket="traced", Key="k", Body=b"t" * 200_000)

        def put_span() -> dict | None:
            return next((s for s in spans(hosts[0]) if s["name"] == "S3 PutObject"), None)

        root = eventually(put_span)
        trace_id = root["context"]["trace_id"]
        assert root["kind"] == "SpanKind.SERVER" and root["attributes"]["aws.s3.bucket"] == "traced"

        def children() -> list[dict]:
            return [s for s in spans(hosts[1]) if s["context"]["trace_id"] == trace_id]

        remote = eventually(children)
        assert all(s["name"].startswith("peer ") for s in remote)
        assert {s["parent_id"] for s in remote} == {root["context"]["span_id"]}
        assert all(s["resource"]["attributes"]["service.name"] == "titans3" for s in remote)


def eventually(cond: Callable[[], object], timeout: float = 20) -> object:
    deadline = time.monotonic() + timeout
    while not (got := cond()):
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the spans")
        time.sleep(0.2)
    return got


def test_spans_reach_an_otlp_endpoint(daemon_factory: Callable[..., Daemon], tmp_path: Path) -> None:
    """``trace_exporter = "otlp"``: the SDK's OTLP/HTTP exporter posts the spans
    to ``trace_endpoint`` -- here a small HTTP server that decodes them with the
    OpenTelemetry protobuf definitions."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    from .cluster import free_port

    names: list[str] = []

    class Collector(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 -- http.server's naming
            body = self.rfile.read(int(self.headers["Content-Length"]))
            req = ExportTraceServiceRequest.FromString(body)
            names.extend(s.name for rs in req.resource_spans for ss in rs.scope_spans for s in ss.spans)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        node = daemon_factory(drives=6, env={"TITANS3_TRACE_EXPORTER": "otlp",
                                             "TITANS3_TRACE_ENDPOINT": f"http://127.0.0.1:{port}/v1/traces"})
        with closing(s3_client(node)) as s3:
            s3.create_bucket(Bucket="otlp")
            s3.put_object(Bucket="otlp", Key="k", Body=b"x")
        eventually(lambda: "S3 PutObject" in names, timeout=20)  # the SDK batches for up to 5 s
        assert "S3 CreateBucket" in names
    finally:
        server.shutdown()
        server.server_close()
