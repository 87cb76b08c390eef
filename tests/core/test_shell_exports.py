"""The export lines ``titans3 credentials`` prints for pasting into a shell."""

from __future__ import annotations

import subprocess

from titans3.core.config import load
from titans3.core.credentials import Credentials
from titans3.core.shell_exports import export_lines

CREDS = Credentials("AKIAEXAMPLE0000001", "se/cret+key=with$chars")


def _env_after(lines: list[str]) -> dict[str, str]:
    script = "\n".join(lines) + "\nenv -0"
    out = subprocess.run(["bash", "-c", script], capture_output=True, check=True, env={}).stdout
    return dict(item.split("=", 1) for item in out.decode().split("\0") if "=" in item)


def test_default_port_needs_no_titanctl_endpoint():
    env = _env_after(export_lines(CREDS, load(flags={"listen": "0.0.0.0:9000"}, environ={})))
    assert env["AWS_ACCESS_KEY_ID"] == CREDS.root_access_key
    assert env["AWS_SECRET_ACCESS_KEY"] == CREDS.root_secret_key  # quoted: survives the shell
    assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:9000"
    assert "TITANS3_ENDPOINT" not in env


def test_another_port_or_address_exports_titans3_endpoint_too():
    env = _env_after(export_lines(CREDS, load(flags={"listen": "127.0.0.7:19000"}, environ={})))
    assert env["AWS_ENDPOINT_URL"] == env["TITANS3_ENDPOINT"] == "http://127.0.0.7:19000"
