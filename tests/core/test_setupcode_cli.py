"""``titans3 setup-code``: what appliance first boot runs (docs/appliance.md)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from titans3.cli.serve import main as titans3
from titans3.core.setupcode import SetupCode


def test_made_once_0600_then_printed_until_consumed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "setup-code"
    assert titans3(["setup-code", "--setup-code-file", str(path)]) == 1
    assert "no setup pending" in capsys.readouterr().err
    assert titans3(["setup-code", "--setup-code-file", str(path), "--create"]) == 0
    code = capsys.readouterr().out.strip()
    assert path.read_text().strip() == code and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert titans3(["setup-code", "--setup-code-file", str(path), "--create"]) == 0  # first boot again
    assert capsys.readouterr().out.strip() == code  # the code on the console stays valid
    sc = SetupCode(str(path))
    assert sc.matches(code.lower().replace("-", ""))
    sc.consume()
    assert titans3(["setup-code", "--setup-code-file", str(path)]) == 1
