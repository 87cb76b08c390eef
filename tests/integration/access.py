"""Helpers for the access-control tests: users made with ``titanctl``, curl as
the anonymous client, and error codes out of boto3 and the AWS CLI."""

from __future__ import annotations

import json
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

from .cluster import ROOT, TITANCTL, Credentials, clean_env


def titanctl(endpoint: str, *args: str, credentials: Credentials = ROOT, ca: Path | None = None,
             check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:  # fmt: skip
    env = {"TITANS3_ENDPOINT": endpoint, "TITANS3_ROOT_ACCESS_KEY": credentials.access_key,
           "TITANS3_ROOT_SECRET_KEY": credentials.secret_key}  # fmt: skip
    if ca is not None:
        env["SSL_CERT_FILE"] = str(ca)
    proc = subprocess.run([str(TITANCTL), *args], env=clean_env(env), capture_output=True, text=True,
                          timeout=timeout, check=False)  # fmt: skip
    if check and proc.returncode != 0:
        raise AssertionError(f"titanctl {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}")
    return proc


def make_user(endpoint: str, name: str, *, policy: dict | None = None, email: str = "",
              ca: Path | None = None) -> tuple[Credentials, dict]:  # fmt: skip
    """A user with one key (and an inline policy): (credentials, the user's JSON)."""
    args = ["user", "create", name, "--json"] + (["--email", email] if email else [])
    user = json.loads(titanctl(endpoint, *args, ca=ca).stdout)["user"]
    key = json.loads(titanctl(endpoint, "key", "create", name, "--json", ca=ca).stdout)["key"]
    if policy is not None:
        proc = subprocess.run([str(TITANCTL), "user", "policy", "put", name, "main", "-"],
                              input=json.dumps(policy), text=True, capture_output=True, timeout=60,
                              env=clean_env({"TITANS3_ENDPOINT": endpoint,
                                             "TITANS3_ROOT_ACCESS_KEY": ROOT.access_key,
                                             "TITANS3_ROOT_SECRET_KEY": ROOT.secret_key,
                                             **({"SSL_CERT_FILE": str(ca)} if ca else {})}),
                              check=False)  # fmt: skip
        assert proc.returncode == 0, proc.stderr
    return Credentials(key["id"], key["secret"]), user


def curl(url: str, *args: str) -> tuple[int, bytes]:
    """curl as the anonymous client: (status, body)."""
    proc = subprocess.run(["curl", "-sS", "-o", "-", "-w", "\n%{http_code}", *args, url],
                          capture_output=True, timeout=60, check=True)  # fmt: skip
    body, _, status = proc.stdout.rpartition(b"\n")
    return int(status), body


def error_code(body: bytes) -> str | None:
    try:
        return ET.fromstring(body).findtext("Code")
    except ET.ParseError:
        return None


def code_of(fn) -> str:  # noqa: ANN001
    """Run a boto3 call: "200"-ish "ok" or the error code it raised."""
    from botocore.exceptions import ClientError

    try:
        fn()
    except ClientError as e:
        return e.response["Error"]["Code"]
    return "ok"


def cli_code(proc: subprocess.CompletedProcess[str]) -> str:
    """The error code in an AWS CLI failure (``An error occurred (Code) when ...``), or "ok"."""
    if proc.returncode == 0:
        return "ok"
    text = proc.stderr
    start = text.find("An error occurred (")
    if start < 0:
        return f"exit {proc.returncode}: {text.strip()[:200]}"
    return text[start + len("An error occurred ("):].split(")", 1)[0]
