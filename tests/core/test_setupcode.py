"""The one-time setup code file (docs/appliance.md)."""

from __future__ import annotations

import re
import stat
from pathlib import Path

from titans3.cli.serve import main as titans3
from titans3.core import setupcode


def test_created_once_0600_and_readable_again(tmp_path: Path) -> None:
    path = tmp_path / "state" / "setup-code"
    code = setupcode.create(path)
    assert re.fullmatch(r"[A-HJKMNP-Z2-9]{4}-[A-HJKMNP-Z2-9]{4}", code)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert setupcode.create(path) == code  # first boot run twice keeps the shown code
    assert setupcode.read(path) == code


def test_check_ignores_case_spaces_and_dashes_and_consume_ends_it(tmp_path: Path) -> None:
    path = tmp_path / "setup-code"
    code = setupcode.create(path)
    assert setupcode.check(path, code.lower().replace("-", " "))
    assert not setupcode.check(path, "AAAA-AAAA")
    setupcode.consume(path)
    assert setupcode.read(path) is None
    assert not setupcode.check(path, code)
    setupcode.consume(path)  # twice is fine


def test_titans3_setup_code_command(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    state = str(tmp_path / "st")
    assert titans3(["setup-code", "--state-dir", state]) == 1
    assert "no setup pending" in capsys.readouterr().err
    assert titans3(["setup-code", "--state-dir", state, "--create"]) == 0
    code = capsys.readouterr().out.strip()
    assert (tmp_path / "st" / "setup-code").read_text().strip() == code
    assert titans3(["setup-code", "--state-dir", state]) == 0
    assert capsys.readouterr().out.strip() == code
