"""titanctl disk: the table (pure), the calls it makes, one-line refusals."""

from __future__ import annotations

import functools
import json
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from titans3.cli import titanctl
from titans3.cli.ctl_disk import format_disks
from titans3.cli.titanctl import AdminClient, main

ENV = {"TITANS3_ROOT_ACCESS_KEY": "AK", "TITANS3_ROOT_SECRET_KEY": "SK",
       "TITANS3_ENDPOINT": "http://127.0.0.1:9999"}
GiB = 1 << 30
DOC = {
    "mode": "auto",
    "disks": [
        {"device": "/dev/sdb", "drive_id": "0123456789abcdef0123456789abcdef", "slot": "a1b2c3/drive-0",
         "state": "online", "capacity": 4 * GiB, "used": GiB, "errors": 0, "reason": ""},
        {"device": "/dev/sdc", "drive_id": "fedcba9876543210fedcba9876543210", "slot": "a1b2c3/drive-1",
         "state": "failed", "capacity": None, "used": None, "errors": 7, "reason": "disk removed"},
        {"device": "/dev/sdd", "drive_id": "", "slot": "", "state": "ignored", "capacity": 2 * GiB,
         "used": None, "errors": None, "reason": "has an ext4 filesystem"},
    ],
}


def test_disk_table_has_a_row_per_disk_with_short_ids_and_reasons():
    text = format_disks(DOC)
    lines = text.splitlines()
    assert lines[0] == "mode: auto (1 failed, 1 ignored, 1 online)"
    assert lines[2].split() == ["DEVICE", "DRIVE", "SLOT", "STATE", "CAPACITY", "USED", "ERRORS", "NOTE"]
    assert lines[3].split() == ["/dev/sdb", "0123456789ab", "drive-0", "online", "4.0", "GiB", "1.0", "GiB", "0"]
    assert lines[4].split()[:4] == ["/dev/sdc", "fedcba987654", "drive-1", "failed"]
    assert lines[4].endswith("7  disk removed")
    assert lines[5].split()[:4] == ["/dev/sdd", "-", "-", "ignored"]
    assert lines[5].endswith("has an ext4 filesystem")


def test_disk_table_without_disks_says_so():
    assert format_disks({"mode": "directories", "disks": []}) == "mode: directories\nno disks"


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch):
    seen: list[httpx.Request] = []
    answers: list[httpx.Response] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answers.pop(0)

    monkeypatch.setattr(titanctl, "AdminClient",
                        functools.partial(AdminClient, transport=httpx.MockTransport(handle)))
    return seen, answers


def test_claim_posts_the_device_and_force_and_prints_the_message(server, capsys):
    seen, answers = server
    answers.append(httpx.Response(200, json={"message": "/dev/sdb is drive abc in slot h/drive-1"}))
    assert main(["disk", "claim", "--force", "/dev/sdb"], env=ENV) == 0
    assert capsys.readouterr().out == "/dev/sdb is drive abc in slot h/drive-1\n"
    (req,) = seen
    assert (req.method, req.url.path) == ("POST", "/titans3/admin/v1/disks/claim")
    assert parse_qs(urlsplit(str(req.url)).query) == {"device": ["/dev/sdb"], "force": ["1"]}
    assert req.headers["authorization"].startswith("AWS4-HMAC-SHA256 ")


@pytest.mark.parametrize("argv,path,query", [
    (["disk", "drain", "0123abcd"], "drain", {"target": ["0123abcd"]}),
    (["disk", "replace", "/dev/sdb", "/dev/sde"], "replace", {"old": ["/dev/sdb"], "new": ["/dev/sde"]}),
    (["disk", "forget", "0123abcd"], "forget", {"drive": ["0123abcd"]}),
])
def test_changing_commands_post_their_arguments(server, capsys, argv, path, query):
    seen, answers = server
    answers.append(httpx.Response(200, json={"message": "done it"}))
    assert main(argv, env=ENV) == 0
    assert seen[0].url.path == f"/titans3/admin/v1/disks/{path}"
    assert parse_qs(urlsplit(str(seen[0].url)).query) == query
    assert capsys.readouterr().out == "done it\n"


def test_list_json_prints_the_document(server, capsys):
    _, answers = server
    answers.append(httpx.Response(200, json=DOC))
    assert main(["disk", "list", "--json"], env=ENV) == 0
    assert json.loads(capsys.readouterr().out) == DOC


def test_a_refusal_is_one_line_and_exit_1(server, capsys):
    _, answers = server
    body = (b"<Error><Code>DiskRefused</Code><Message>/dev/sdb has an ext4 filesystem; "
            b"`titanctl disk claim --force /dev/sdb` erases it</Message></Error>")
    answers.append(httpx.Response(409, content=body))
    assert main(["disk", "claim", "/dev/sdb"], env=ENV) == 1
    err = capsys.readouterr().err
    assert err == ("titanctl: DiskRefused: /dev/sdb has an ext4 filesystem; "
                   "`titanctl disk claim --force /dev/sdb` erases it\n")


def test_disk_without_an_action_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as e:
        main(["disk"], env=ENV)
    assert e.value.code == 2
    assert "ACTION" in capsys.readouterr().err
