"""titanctl -- the operator's admin client for a TitanS3 node.

Theory of operation
-------------------
``titanctl`` talks to the admin API (``/titans3/admin/v1/...``) that every
daemon serves on its S3 port.  Requests are SigV4-signed with the root
credentials exactly like S3 requests (service ``s3``, region ``us-east-1``),
using the product's own signer, so the admin API needs no second auth scheme.

The module is split so that the part worth testing carefully has no I/O:

* pure formatting -- :func:`human_bytes`, :func:`format_ec`, :func:`format_table`,
  :func:`format_info`, :func:`parse_s3_error` -- values in, text out;
* :class:`AdminClient` -- one signed GET, JSON out, every failure turned into a
  :class:`CtlError` carrying the one-line message and the exit status;
* :func:`main` -- argparse, wiring, printing.

Exit status: 0 success; 1 the server answered with an error (S3 error XML is
shown as ``titanctl: Code: Message``) or something unusable; 2 usage errors,
missing credentials, or the endpoint cannot be reached.  Never a traceback.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from titans3 import __version__
from titans3.s3.signer import sign_request

DEFAULT_ENDPOINT = "http://127.0.0.1:9000"
INFO_PATH = "/titans3/admin/v1/info"
REGION = "us-east-1"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2


class CtlError(Exception):
    """A failure to report as one ``titanctl: ...`` line with exit status ``code``."""

    def __init__(self, message: str, code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


# ------------------------------------------------------------------- formatting
_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")


def human_bytes(n: int | float | None) -> str:
    """``1536`` -> ``"1.5 KiB"`` (IEC units, one decimal); ``None`` -> ``"-"``."""
    if n is None:
        return "-"
    value = float(n)
    if abs(value) < 1024:
        return f"{int(value)} B"
    for unit in _UNITS[1:]:
        value /= 1024
        if abs(value) < 1024 or unit == _UNITS[-1]:
            return f"{value:.1f} {unit}"
    raise AssertionError("unreachable")


def format_ec(ec: dict[str, Any] | None) -> str:
    """``{"k": 4, "m": 2}`` -> ``"4+2"``; anything else -> ``"?"``."""
    if not isinstance(ec, dict) or "k" not in ec or "m" not in ec:
        return "?"
    return f"{ec['k']}+{ec['m']}"


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> str:
    """Columns padded to their widest cell; column indexes in ``right`` are right-aligned."""
    widths = [len(h) for h in header]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]

    def line(cells: Sequence[str]) -> str:
        out = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(out).rstrip()

    return "\n".join([line(header), *(line(r) for r in rows)])


def _percent(used: Any, capacity: Any) -> str:
    if not isinstance(used, int | float) or not isinstance(capacity, int | float) or capacity <= 0:
        return "-"
    return f"{100 * used / capacity:.0f}%"


def _num(v: Any) -> int | float | None:
    return v if isinstance(v, int | float) and not isinstance(v, bool) else None


def format_info(info: dict[str, Any]) -> str:
    """The human view of ``GET /titans3/admin/v1/info``: a summary, then one row per drive."""
    ec = info.get("ec") or {}
    drives = info.get("drives") or []
    states: dict[str, int] = {}
    for d in drives:
        states[str(d.get("state", "?"))] = states.get(str(d.get("state", "?")), 0) + 1
    state_summary = ", ".join(f"{n} {s}" for s, n in sorted(states.items()))
    scheme = format_ec(ec)
    if scheme != "?":
        scheme += f" ({ec['k']} data + {ec['m']} parity per object)"
    lines = [
        f"host:     {info.get('host', '?')}",
        f"version:  {info.get('version', '?')}",
        f"erasure:  {scheme}",
        f"drives:   {len(drives)}" + (f" ({state_summary})" if drives else ""),
    ]
    if drives:
        header = ["ID", "PATH", "STATE", "CAPACITY", "USED", "FREE", "USE%", "ERRORS"]
        rows = [
            [
                str(d.get("drive_id", "?"))[:8],
                str(d.get("path", "?")),
                str(d.get("state", "?")),
                human_bytes(_num(d.get("capacity"))),
                human_bytes(_num(d.get("used"))),
                human_bytes(_num(d.get("free"))),
                _percent(_num(d.get("used")), _num(d.get("capacity"))),
                str(d.get("errors", "-")),
            ]
            for d in drives
        ]
        lines += ["", format_table(header, rows, right={3, 4, 5, 6, 7})]
    return "\n".join(lines)


def parse_s3_error(body: bytes) -> tuple[str, str] | None:
    """``(Code, Message)`` of an S3 ``<Error>`` document, or None if ``body`` is not one."""
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return None
    if root.tag.rsplit("}", 1)[-1] != "Error":
        return None
    fields = {child.tag.rsplit("}", 1)[-1]: (child.text or "").strip() for child in root}
    if not fields.get("Code"):
        return None
    return fields["Code"], fields.get("Message", "")


def describe_http_error(status: int, reason: str, body: bytes) -> str:
    """One line for a non-2xx answer: the S3 error if there is one, else status + body start."""
    parsed = parse_s3_error(body)
    if parsed is not None:
        code, message = parsed
        return f"{code}: {message}" if message else code
    text = body.decode("utf-8", "replace").strip().splitlines()
    first = text[0][:200] if text else ""
    return f"HTTP {status} {reason}" + (f": {first}" if first else "")


# ------------------------------------------------------------------------ client
@dataclass(frozen=True)
class AdminClient:
    """Signed GETs against one endpoint's admin API."""

    endpoint: str
    access_key: str
    secret_key: str
    timeout: float = 10.0
    transport: httpx.BaseTransport | None = None  # tests inject httpx.MockTransport

    def get_json(self, path: str) -> Any:
        url = self.endpoint.rstrip("/") + path
        headers = sign_request(
            "GET",
            url,
            {},
            access_key=self.access_key,
            secret_key=self.secret_key,
            region=REGION,
            payload_sha256=EMPTY_SHA256,
        )
        try:
            with httpx.Client(timeout=self.timeout, transport=self.transport) as http:
                resp = http.get(url, headers=headers)
        except httpx.ConnectError as e:
            raise CtlError(
                f"cannot reach {self.endpoint}: {_connect_reason(e)}", EXIT_USAGE
            ) from None
        except httpx.TimeoutException:
            raise CtlError(f"cannot reach {self.endpoint}: timed out", EXIT_USAGE) from None
        except httpx.HTTPError as e:
            raise CtlError(f"request to {self.endpoint} failed: {e}", EXIT_USAGE) from None
        if resp.status_code >= 300:
            raise CtlError(describe_http_error(resp.status_code, resp.reason_phrase, resp.content))
        try:
            return resp.json()
        except ValueError:
            raise CtlError(f"unexpected answer from {url}: not JSON") from None


def _connect_reason(e: httpx.ConnectError) -> str:
    text = str(e) or type(e).__name__
    # httpx says "[Errno 111] Connection refused"; operators want the plain words.
    return "connection refused" if "refused" in text.lower() else text


def check_endpoint(endpoint: str) -> str:
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CtlError(
            f"bad endpoint {endpoint!r}: want http://HOST:PORT or https://HOST:PORT", EXIT_USAGE
        )
    return endpoint


# -------------------------------------------------------------------------- main
def _add_common(p: argparse.ArgumentParser, *, top: bool) -> None:
    """The options accepted both before and after the subcommand.

    On subcommands they default to SUPPRESS, so ``titanctl info --json`` and
    ``titanctl --json info`` mean the same and neither overrides the other.
    """

    def d(value: Any) -> Any:
        return value if top else argparse.SUPPRESS

    p.add_argument(
        "--endpoint",
        default=d(None),
        metavar="URL",
        help=f"S3 endpoint of a node (env TITANS3_ENDPOINT, default {DEFAULT_ENDPOINT})",
    )
    p.add_argument(
        "--access-key", default=d(None), help="root access key (env TITANS3_ROOT_ACCESS_KEY)"
    )
    p.add_argument(
        "--secret-key",
        default=d(None),
        help="root secret key (env TITANS3_ROOT_SECRET_KEY; prefer it: argv is visible in ps)",
    )
    p.add_argument("--json", action="store_true", default=d(False), help="print JSON, not a table")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="titanctl", description="Administer a TitanS3 node through its admin API."
    )
    parser.add_argument("--version", action="version", version=f"titanctl {__version__}")
    _add_common(parser, top=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    info = sub.add_parser("info", help="host, version, erasure scheme and drives")
    _add_common(info, top=False)
    from titans3.cli import ctl_repair  # here: it imports this module

    ctl_repair.add_commands(sub, _add_common)
    from titans3.cli import ctl_disk

    ctl_disk.add_commands(sub, _add_common)
    from titans3.cli import ctl_volume

    ctl_volume.add_commands(sub, _add_common)
    from titans3.cli import ctl_mounts

    ctl_mounts.add_commands(sub, _add_common)
    from titans3.cli import ctl_cluster_init

    # `cluster` groups the cluster commands; each module adds its actions to
    # `cluster_actions` (init: ctl_cluster_init; join/remove/status: ctl_cluster).
    cluster = sub.add_parser("cluster", help="cluster certificates and membership")
    _add_common(cluster, top=False)
    cluster_actions = cluster.add_subparsers(dest="action", metavar="ACTION", required=True)
    ctl_cluster_init.add_init(cluster_actions, _add_common)
    from titans3.cli import ctl_cluster

    ctl_cluster.add_actions(cluster_actions, _add_common)
    from titans3.cli import ctl_appliance  # cluster create/token/join-token, support, web

    ctl_appliance.add_cluster_actions(cluster_actions, _add_common)
    ctl_appliance.add_commands(sub, _add_common)  # support, web
    return parser


def _client(args: argparse.Namespace, env: dict[str, str]) -> AdminClient:
    endpoint = check_endpoint(args.endpoint or env.get("TITANS3_ENDPOINT") or DEFAULT_ENDPOINT)
    access = args.access_key or env.get("TITANS3_ROOT_ACCESS_KEY", "")
    secret = args.secret_key or env.get("TITANS3_ROOT_SECRET_KEY", "")
    if not access or not secret:
        raise CtlError(
            "no credentials: set TITANS3_ROOT_ACCESS_KEY and TITANS3_ROOT_SECRET_KEY "
            "(or pass --access-key and --secret-key)",
            EXIT_USAGE,
        )
    return AdminClient(endpoint, access, secret)


def cmd_info(client: AdminClient, as_json: bool) -> str:
    info = client.get_json(INFO_PATH)
    if not isinstance(info, dict):
        raise CtlError(f"unexpected answer from {client.endpoint}{INFO_PATH}: not a JSON object")
    return json.dumps(info, indent=2, sort_keys=True) if as_json else format_info(info)


def main(argv: Sequence[str] | None = None, env: dict[str, str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        if args.command == "cluster" and args.action == "init":  # local files: no node, no credentials
            from titans3.cli import ctl_cluster_init

            try:
                out = ctl_cluster_init.run_init(args)
            except ctl_cluster_init.InitError as e:
                raise CtlError(str(e), EXIT_USAGE) from None
        else:
            client = _client(args, dict(os.environ) if env is None else env)
            from titans3.cli import ctl_disk, ctl_repair

            if args.command in ctl_disk.COMMANDS:
                out = ctl_disk.run(args, client)
            elif args.command == "volume":
                from titans3.cli import ctl_volume

                out = ctl_volume.run(args, client)
            elif args.command == "mounts":
                from titans3.cli import ctl_mounts

                out = ctl_mounts.run(args, client)
            elif args.command == "cluster":
                from titans3.cli import ctl_appliance, ctl_cluster

                out = (ctl_appliance.run_cluster(args, client)
                       if args.action in ctl_appliance.CLUSTER_ACTIONS else ctl_cluster.run(args, client))
            elif args.command in ("support", "web"):  # ctl_appliance.COMMANDS
                from titans3.cli import ctl_appliance

                out = ctl_appliance.run(args, client)
            else:
                out = (ctl_repair.run(args, client) if args.command in ctl_repair.COMMANDS
                       else cmd_info(client, args.json))
    except CtlError as e:
        print(f"titanctl: {e.message}", file=sys.stderr)
        return e.code
    except KeyboardInterrupt:
        return 130
    try:
        print(out)
        sys.stdout.flush()
    except BrokenPipeError:
        # `titanctl info | head`: the reader left; that is not an error.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
