"""The shell lines that point clients at this host: root credentials and endpoint.

What ``titans3 credentials`` (and so ``scripts/start.sh``) and a first
``titans3 serve`` print, ready to paste: ``export`` lines for the AWS CLI and
SDKs (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL``,
which botocore and the AWS CLI honour) and, when the S3 port is not
titanctl's default, ``TITANS3_ENDPOINT``.  titanctl takes the same ``AWS_*``
keys when ``TITANS3_ROOT_*`` are not set.  Values are shell-quoted.
"""

from __future__ import annotations

import shlex

from titans3.core import tls
from titans3.core.config import Config, parse_hostport
from titans3.core.credentials import Credentials

TITANCTL_DEFAULT_ENDPOINT = "http://127.0.0.1:9000"


def endpoint(cfg: Config) -> str:
    """The S3 URL a client on this host uses (a wildcard bind is reached on loopback)."""
    host, port = parse_hostport(cfg.listen, "listen")
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    shown = f"[{shown}]" if ":" in shown else shown
    return f"{tls.scheme(cfg)}://{shown}:{port}"


def export_lines(creds: Credentials, cfg: Config) -> list[str]:
    url = endpoint(cfg)
    lines = [
        f"export AWS_ACCESS_KEY_ID={shlex.quote(creds.root_access_key)}",
        f"export AWS_SECRET_ACCESS_KEY={shlex.quote(creds.root_secret_key)}",
        f"export AWS_ENDPOINT_URL={shlex.quote(url)}",
    ]
    if url != TITANCTL_DEFAULT_ENDPOINT:
        lines.append(f"export TITANS3_ENDPOINT={shlex.quote(url)}  # for titanctl")
    return lines
