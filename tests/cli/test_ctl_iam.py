"""titanctl user|key|account|audit: the calls they make and what they print."""

from __future__ import annotations

import functools
import io
import json
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from titans3.cli import titanctl
from titans3.cli.ctl_iam import format_records, format_users, verify_problems
from titans3.cli.titanctl import AdminClient, main

ENV = {"TITANS3_ROOT_ACCESS_KEY": "AK", "TITANS3_ROOT_SECRET_KEY": "SK",
       "TITANS3_ENDPOINT": "http://127.0.0.1:9999"}  # fmt: skip
USER = {"name": "alice", "user_id": "AIDA1", "arn": "arn:aws:iam::1:user/alice", "canonical_id": "c" * 64,
        "email": "", "disabled": False, "created_ns": 0, "policies": ["p"],
        "keys": [{"id": "AKIA1", "status": "Active", "created_ns": 0}]}  # fmt: skip


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    seen: list[httpx.Request] = []
    answers: list[httpx.Response] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answers.pop(0)

    monkeypatch.setattr(titanctl, "AdminClient",
                        functools.partial(AdminClient, transport=httpx.MockTransport(handle)))  # fmt: skip
    return seen, answers


def test_user_table():
    text = format_users([USER, {**USER, "name": "bob", "disabled": True, "keys": [], "policies": []}])
    lines = text.splitlines()
    assert lines[0].split()[:4] == ["USER", "STATE", "KEYS", "POLICIES"]
    assert lines[1].split()[:5] == ["alice", "enabled", "AKIA1", "(Active)", "p"]
    assert lines[2].split()[:4] == ["bob", "disabled", "-", "-"]


def test_key_create_prints_the_secret_once(server, capsys):  # noqa: ANN001
    seen, answers = server
    answers.append(httpx.Response(200, json={"key": {"user": "alice", "id": "AKIA2", "status": "Active",
                                                     "created_ns": 0, "secret": "s3cr3t"}}))  # fmt: skip
    assert main(["key", "create", "alice"], env=ENV) == 0
    out = capsys.readouterr().out
    assert "AWS_ACCESS_KEY_ID=AKIA2" in out and "AWS_SECRET_ACCESS_KEY=s3cr3t" in out
    (req,) = seen
    assert (req.method, req.url.path) == ("POST", "/titans3/admin/v1/keys/create")
    assert parse_qs(urlsplit(str(req.url)).query) == {"user": ["alice"]}


def test_policy_put_reads_the_document_from_stdin(server, capsys, monkeypatch):  # noqa: ANN001
    seen, answers = server
    answers.append(httpx.Response(200, json={"user": USER}))
    monkeypatch.setattr("sys.stdin", io.StringIO('{"Statement": []}'))
    assert main(["user", "policy", "put", "alice", "p", "-"], env=ENV) == 0
    assert parse_qs(urlsplit(str(seen[0].url)).query)["document"] == ['{"Statement": []}']


def test_an_iam_error_is_one_line(server, capsys):  # noqa: ANN001
    _, answers = server
    answers.append(httpx.Response(409, content=b"<Error><Code>LimitExceeded</Code><Message>Cannot exceed "
                                                b"quota for AccessKeysPerUser: 2</Message></Error>"))  # fmt: skip
    assert main(["key", "create", "alice"], env=ENV) == 1
    assert capsys.readouterr().err == "titanctl: LimitExceeded: Cannot exceed quota for AccessKeysPerUser: 2\n"


def test_audit_verify_fails_and_names_every_problem(server, capsys):  # noqa: ANN001
    _, answers = server
    doc = {"ok": False, "unreadable_drives": [], "hosts": {"h1": {"records": 4, "last_seq": 9, "problems": [
        "drive d (/x/drive-1): block at seq 1: seq 3 was edited"]}}}
    answers.append(httpx.Response(200, json=doc))
    assert main(["audit", "verify"], env=ENV) == 1
    err = capsys.readouterr().err
    assert "FAILED" in err and "host h1: drive d (/x/drive-1): block at seq 1: seq 3 was edited" in err
    assert verify_problems({"ok": True, "hosts": {"h1": {"problems": []}}}) == []
    answers.append(httpx.Response(200, json={"ok": True, "hosts": {"h1": {"records": 4, "last_seq": 4,
                                                                         "problems": []}}}))  # fmt: skip
    assert main(["audit", "verify"], env=ENV) == 0
    assert "host h1: 4 records verified, last seq 4" in capsys.readouterr().out


def test_audit_tail_table_and_json(server, capsys):  # noqa: ANN001
    _, answers = server
    records = [{"seq": 7, "time": "t", "user": "bob", "op": "GetObject", "bucket": "b", "object": "k",
                "status": 403, "src": "127.0.0.1"}]  # fmt: skip
    assert format_records(records).splitlines()[1].split() == ["7", "t", "bob", "GetObject", "b/k", "403",
                                                               "127.0.0.1"]  # fmt: skip
    answers.append(httpx.Response(200, json={"host": "h", "hosts": ["h"], "records": records}))
    assert main(["audit", "tail", "--json"], env=ENV) == 0
    assert json.loads(capsys.readouterr().out)["records"] == records
