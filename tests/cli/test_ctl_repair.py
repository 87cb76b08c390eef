"""titanctl scrub/repair/object/gc: signed calls, rate parsing, and what the operator reads."""

from __future__ import annotations

import argparse
import json
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from titans3.cli import ctl_repair
from titans3.cli.titanctl import AdminClient, CtlError, build_parser, main

STATUS = {
    "host": "node1",
    "healing": [{"position": 2, "slot": "h/drive-2", "drive_id": "abc"}],
    "workers": {
        "scrubber": {"state": "running", "bytes_scanned": 512 << 20, "bytes_total": 1 << 30,
                     "objects_checked": 42, "rate": 64 << 20, "rate_limit": 32 << 20,
                     "eta_s": 8, "corrupt": 3, "missing": 1, "records_missing": 0,
                     "queued_for_repair": 4, "passes_completed": 0},
        "heal-queue": {"queue_depth": 4, "capacity": 10000, "in_flight": 1, "done": 7,
                       "dropped_full": 0, "dropped_attempts": 0},
        "repair": {"state": "repairing", "objects_repaired": 7, "objects_checked": 8,
                   "fragments_rebuilt": 9, "bytes_rebuilt": 3 << 20, "rate": 1 << 20,
                   "eta_s": 4, "lost": 0, "errors": 0, "last_error": ""},
        "refill": {"state": "refilling", "drives": [
            {"slot": "h/drive-2", "drive_id": "abcdef0123", "state": "walking",
             "objects_checked": 10, "objects_repaired": 9, "bytes_rebuilt": 5 << 20,
             "rate": 2 << 20, "retry_pending": 1, "lost": 1, "lost_keys": ["00/k: gone"]}]},
        "gc": {"state": "idle", "passes_completed": 2, "staging_removed": 1,
               "orphan_chunks_removed": 0, "orphan_bytes_removed": 0, "versions_removed": 3},
    },
}


@pytest.mark.parametrize(("text", "want"), [
    ("0", 0), ("1000", 1000), ("64MiB", 64 << 20), ("64mib/s", 64 << 20), ("500M", 500_000_000),
    ("1.5GiB", 3 << 29), ("10k", 10_000),
])
def test_rates_parse_with_units(text, want):
    assert ctl_repair.parse_rate(text) == want


@pytest.mark.parametrize("text", ["", "fast", "-5", "5 parsecs"])
def test_bad_rate_is_a_usage_error(text):
    with pytest.raises(CtlError) as e:
        ctl_repair.parse_rate(text)
    assert e.value.code == 2


def test_status_shows_progress_eta_refill_and_lost_keys():
    text = ctl_repair.format_status(STATUS)
    assert "scrub running: 50% 512.0 MiB of ~1.0 GiB" in text
    assert "ETA 8s; 3 corrupt, 1 missing" in text
    assert "heal queue: 4 of 10000 keys" in text
    assert "7 objects repaired" in text
    assert "1 drive(s) healing (h/drive-2)" in text
    assert "walking" in text and "lost: 00/k: gone" in text


def test_inspect_view_marks_parity_and_bad_fragments():
    doc = {"bucket": "b", "key": "k", "healthy": False, "deep": True, "invisible_versions": [],
           "versions": [{"version_id": "null", "latest": True, "size": 5 << 20,
                         "ec": {"k": 4, "m": 2, "segment_size": 1 << 20}, "healthy_fragments": 5,
                         "fragments_total": 6, "fragments": [
                             {"index": 0, "drive_id": "d0", "host": "h", "slot": "h/drive-0",
                              "health": "ok", "parity": False},
                             {"index": 5, "drive_id": "d5", "host": "h", "slot": "h/drive-5",
                              "health": "corrupt", "detail": "block 3", "parity": True}]}]}
    text = ctl_repair.format_inspect(doc)
    assert "DEGRADED" in text and "EC 4+2" in text and "5/6 fragments ok" in text
    assert "5p" in text and "CORRUPT" in text and "block 3" in text


def _client(handler) -> AdminClient:
    return AdminClient("http://127.0.0.1:9", "AK", "SK", transport=httpx.MockTransport(handler))


def _args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(list(argv))


def test_calls_are_signed_with_the_right_method_path_and_query():
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path.endswith("/object/inspect"):
            return httpx.Response(200, json={"bucket": "b", "key": "a key/ü",
                                             "versions": [{"version_id": "null"}]})
        return httpx.Response(200, json={"rate_limit": 64 << 20, "started": True})

    client = _client(handler)
    ctl_repair.run(_args("scrub", "rate", "64MiB"), client)
    out = ctl_repair.run(_args("object", "inspect", "b", "a key/ü", "--deep", "--json"), client)
    assert json.loads(out)["key"] == "a key/ü"
    rate, inspect = seen
    assert rate.method == "PUT" and rate.url.path == "/titans3/admin/v1/scrub/rate"
    assert parse_qs(urlsplit(str(rate.url)).query) == {"bytes_per_second": [str(64 << 20)]}
    assert inspect.method == "GET"
    assert parse_qs(urlsplit(str(inspect.url)).query) == {
        "bucket": ["b"], "key": ["a key/ü"], "deep": ["1"]}
    for r in seen:
        assert r.headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AK/")


def test_scrub_start_wait_follows_progress_until_the_pass_completes():
    answers = iter([
        {"workers": {"scrubber": {**STATUS["workers"]["scrubber"]}}},
        {"workers": {"scrubber": {**STATUS["workers"]["scrubber"], "state": "idle",
                                  "passes_completed": 1, "bytes_scanned": 1 << 30}}},
    ])

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(200, json={"started": True, "message": "scrub pass started",
                                             "scrubber": {"passes_completed": 0}})
        return httpx.Response(200, json=next(answers))

    lines: list[str] = []
    out = ctl_repair.run(_args("scrub", "start", "--wait"), _client(handler), out=lines.append,
                         sleep=lambda s: None)
    assert lines[0] == "scrub pass started" and "50%" in lines[1]
    assert out.startswith("scrub pass complete: 100%")


def test_server_error_is_one_line_and_exit_1(capsys, monkeypatch):
    def handler(request: httpx.Request) -> httpx.Response:
        body = (b"<Error><Code>NoSuchBucket</Code><Message>The specified bucket does not "
                b"exist</Message></Error>")
        return httpx.Response(404, content=body)

    monkeypatch.setattr("titans3.cli.titanctl._client", lambda args, env: _client(handler))
    rc = main(["object", "inspect", "nope", "k"], env={})
    err = capsys.readouterr().err
    assert rc == 1 and err == "titanctl: NoSuchBucket: The specified bucket does not exist\n"


def test_inspecting_a_key_that_does_not_exist_says_so_and_exits_1(capsys, monkeypatch):
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"bucket": "b", "key": "gone", "versions": [],
                                         "invisible_versions": [], "healthy": False})

    monkeypatch.setattr("titans3.cli.titanctl._client", lambda args, env: _client(handler))
    for extra in ([], ["--json"]):
        rc = main(["object", "inspect", "b", "gone", *extra], env={})
        captured = capsys.readouterr()
        assert rc == 1 and captured.err == "titanctl: no such key: b/gone\n"
        assert "DEGRADED" not in captured.out
