"""titanctl: output formatting (pure) and its one-line errors, exit statuses, no tracebacks."""

from __future__ import annotations

import functools
import json
import socket

import httpx
import pytest

from titans3.cli import client, titanctl
from titans3.cli.titanctl import (
    AdminClient,
    CtlError,
    describe_http_error,
    format_ec,
    format_info,
    format_table,
    human_bytes,
    main,
    parse_s3_error,
)

INFO = {
    "host": "node-a",
    "version": "0.1.0",
    "ec": {"k": 4, "m": 2},
    "drives": [
        {
            "drive_id": "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
            "path": f"/srv/titans3/drive-{i}",
            "state": "ok" if i != 3 else "offline",
            "capacity": 100 * 2**30,
            "used": 1536 * 2**20 * i,
            "free": 100 * 2**30 - 1536 * 2**20 * i,
            "errors": i // 3,
        }
        for i in range(6)
    ],
}

ENV = {"TITANS3_ROOT_ACCESS_KEY": "AK", "TITANS3_ROOT_SECRET_KEY": "SK"}


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (None, "-"),
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (1536, "1.5 KiB"),
        (100 * 2**30, "100.0 GiB"),
        (3 * 2**40 + 2**39, "3.5 TiB"),
        (2**70, "1024.0 EiB"),
    ],
)
def test_human_bytes_uses_iec_units_with_one_decimal(n: int | None, text: str) -> None:
    assert human_bytes(n) == text


def test_format_ec_is_k_plus_m_or_question_mark() -> None:
    assert format_ec({"k": 4, "m": 2}) == "4+2"
    assert format_ec({"k": 8, "m": 4}) == "8+4"
    assert format_ec({}) == "?"
    assert format_ec(None) == "?"


def test_format_table_pads_columns_and_right_aligns_numbers() -> None:
    out = format_table(["NAME", "SIZE"], [["a", "1 B"], ["longer", "10.0 KiB"]], right={1})
    assert out.splitlines() == [
        "NAME        SIZE",
        "a            1 B",
        "longer  10.0 KiB",
    ]


def test_format_info_shows_summary_and_one_row_per_drive() -> None:
    out = format_info(INFO)
    lines = out.splitlines()
    assert lines[0] == "host:     node-a"
    assert lines[1] == "version:  0.1.0"
    assert lines[2].startswith("erasure:  4+2")
    assert lines[3] == "drives:   6 (1 offline, 5 ok)"
    header = next(i for i, ln in enumerate(lines) if ln.startswith("ID"))
    for col in ("PATH", "STATE", "CAPACITY", "USED", "FREE"):
        assert col in lines[header]
    rows = lines[header + 1 :]
    assert len(rows) == 6
    assert "/srv/titans3/drive-3" in rows[3] and "offline" in rows[3]
    assert "100.0 GiB" in rows[0]
    assert "1.5 GiB" in rows[1]  # used
    assert rows[0].startswith("0f1e2d3c ")  # drive id shortened to 8 characters
    # Right-aligned numeric columns end at the same place on every row.
    assert len({len(r) for r in rows}) == 1


def test_format_info_survives_missing_fields() -> None:
    out = format_info({"drives": [{"path": "/d0"}]})
    assert "host:     ?" in out
    assert "erasure:  ?" in out
    assert "/d0" in out


def test_parse_s3_error_reads_code_and_message() -> None:
    body = (
        b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
        b"<Message>Access Denied</Message><RequestId>1</RequestId></Error>"
    )
    assert parse_s3_error(body) == ("AccessDenied", "Access Denied")
    assert parse_s3_error(b"<html>nope</html>") is None
    assert parse_s3_error(b"not xml") is None
    assert parse_s3_error(b"<Error><Message>no code</Message></Error>") is None


def test_describe_http_error_prefers_s3_error_then_status_line() -> None:
    xml = b"<Error><Code>SignatureDoesNotMatch</Code><Message>bad sig</Message></Error>"
    assert describe_http_error(403, "Forbidden", xml) == "SignatureDoesNotMatch: bad sig"
    assert describe_http_error(502, "Bad Gateway", b"upstream died\nmore") == (
        "HTTP 502 Bad Gateway: upstream died"
    )
    assert (
        describe_http_error(500, "Internal Server Error", b"") == "HTTP 500 Internal Server Error"
    )


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again on exit: nothing listens there


def test_unreachable_endpoint_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    rc = main(["--endpoint", endpoint, "info"], env=ENV)
    err = capsys.readouterr().err
    assert rc == 2
    assert err == f"titanctl: cannot reach {endpoint}: connection refused\n"


def test_missing_credentials_is_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["info"], env={})
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("titanctl: no credentials:") and err.count("\n") == 1


def test_bad_endpoint_is_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--endpoint", "127.0.0.1:9000", "info"], env=ENV) == 2
    assert "bad endpoint" in capsys.readouterr().err


def test_no_subcommand_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([], env=ENV) == 2
    assert "info" in capsys.readouterr().err


def _with_mock_server(monkeypatch: pytest.MonkeyPatch, handler) -> list[httpx.Request]:
    """Route titanctl's AdminClient through an httpx.MockTransport answering with ``handler``."""
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request)

    transport = httpx.MockTransport(record)
    monkeypatch.setattr(
        titanctl, "AdminClient", functools.partial(AdminClient, transport=transport)
    )
    return seen


@pytest.fixture
def stub_signer(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """Replace the product signer (tested in tests/s3) with one that records its arguments."""
    calls: list[dict] = []

    def sign_request(method, url, headers, **kw):  # type: ignore[no-untyped-def]
        calls.append({"method": method, "url": url, **kw})
        return {"Authorization": "AWS4-HMAC-SHA256 stub", "x-amz-date": "20250101T000000Z"}

    monkeypatch.setattr(client, "sign_request", sign_request)  # where AdminClient signs
    return calls


def test_info_prints_table_and_signs_for_s3_us_east_1(
    monkeypatch: pytest.MonkeyPatch, stub_signer: list[dict], capsys: pytest.CaptureFixture[str]
) -> None:
    seen = _with_mock_server(monkeypatch, lambda r: httpx.Response(200, json=INFO))
    rc = main(["--endpoint", "http://127.0.0.1:9999", "info"], env=ENV)
    out = capsys.readouterr().out
    assert rc == 0
    assert out == format_info(INFO) + "\n"
    assert seen[0].url == "http://127.0.0.1:9999/titans3/admin/v1/info"
    assert seen[0].headers["authorization"] == "AWS4-HMAC-SHA256 stub"
    call = stub_signer[0]
    assert call["method"] == "GET" and call["url"] == str(seen[0].url)
    assert call["access_key"] == "AK" and call["secret_key"] == "SK"
    assert call["region"] == "us-east-1"
    assert call["payload_sha256"] == titanctl.EMPTY_SHA256


def test_info_json_after_subcommand_prints_the_document(
    monkeypatch: pytest.MonkeyPatch, stub_signer: list[dict], capsys: pytest.CaptureFixture[str]
) -> None:
    _with_mock_server(monkeypatch, lambda r: httpx.Response(200, json=INFO))
    env = {**ENV, "TITANS3_ENDPOINT": "http://127.0.0.1:9999"}
    assert main(["info", "--json"], env=env) == 0
    assert json.loads(capsys.readouterr().out) == INFO


def test_credential_flags_override_environment(
    monkeypatch: pytest.MonkeyPatch, stub_signer: list[dict], capsys: pytest.CaptureFixture[str]
) -> None:
    _with_mock_server(monkeypatch, lambda r: httpx.Response(200, json=INFO))
    argv = ["info", "--access-key", "AK2", "--secret-key", "SK2", "--endpoint", "http://h:1"]
    assert main(argv, env=ENV) == 0
    assert (stub_signer[0]["access_key"], stub_signer[0]["secret_key"]) == ("AK2", "SK2")


def test_s3_error_answer_is_code_and_message_exit_1(
    monkeypatch: pytest.MonkeyPatch, stub_signer: list[dict], capsys: pytest.CaptureFixture[str]
) -> None:
    body = b"<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"
    _with_mock_server(monkeypatch, lambda r: httpx.Response(403, content=body))
    assert main(["--endpoint", "http://h:1", "info"], env=ENV) == 1
    captured = capsys.readouterr()
    assert captured.err == "titanctl: AccessDenied: Access Denied\n"
    assert captured.out == ""


def test_non_json_answer_is_exit_1(
    monkeypatch: pytest.MonkeyPatch, stub_signer: list[dict], capsys: pytest.CaptureFixture[str]
) -> None:
    _with_mock_server(monkeypatch, lambda r: httpx.Response(200, content=b"<html/>"))
    assert main(["--endpoint", "http://h:1", "info"], env=ENV) == 1
    assert "not JSON" in capsys.readouterr().err


def test_timeout_is_cannot_reach_exit_2(
    monkeypatch: pytest.MonkeyPatch, stub_signer: list[dict], capsys: pytest.CaptureFixture[str]
) -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    _with_mock_server(monkeypatch, slow)
    assert main(["--endpoint", "http://h:1", "info"], env=ENV) == 2
    assert capsys.readouterr().err == "titanctl: cannot reach http://h:1: timed out\n"


def test_real_signer_signs_host_and_scope_for_s3_us_east_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seen = _with_mock_server(monkeypatch, lambda r: httpx.Response(200, json=INFO))
    assert main(["--endpoint", "http://127.0.0.1:9999", "info", "--json"], env=ENV) == 0
    auth = seen[0].headers["authorization"]
    assert auth.startswith("AWS4-HMAC-SHA256 Credential=AK/")
    assert "/us-east-1/s3/aws4_request" in auth
    assert "host" in auth.split("SignedHeaders=")[1].split(",")[0].split(";")
    assert seen[0].headers["host"] == "127.0.0.1:9999"
    assert seen[0].headers["x-amz-content-sha256"] == titanctl.EMPTY_SHA256


def test_ctl_error_defaults_to_exit_1() -> None:
    assert CtlError("x").code == 1
