"""titanctl -- the operator's admin client for a TitanS3 node.

Theory of operation
-------------------
``titanctl`` talks to the admin API (``/titans3/admin/v1/...``) that every
daemon serves on its S3 port.  Requests are SigV4-signed with the root
credentials exactly like S3 requests (service ``s3``, region ``us-east-1``),
using the product's own signer, so the admin API needs no second auth scheme.

The entry point: argparse, wiring and printing (:func:`main`), and the
``info`` command (:func:`format_info`).  The other commands live in
``ctl_*`` modules; what they all share -- the signed :class:`AdminClient`,
:class:`CtlError`, the pure formatting helpers -- is ``cli/client.py``, which
imports none of them (this module re-exports its names).

Exit status: 0 success; 1 the server answered with an error (S3 error XML is
shown as ``titanctl: Code: Message``) or something unusable; 2 usage errors,
missing credentials, or the endpoint cannot be reached.  Never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from titans3 import __version__
from titans3.cli import (
    ctl_appliance,
    ctl_cluster,
    ctl_cluster_init,
    ctl_dataprot,
    ctl_disk,
    ctl_iam,
    ctl_mounts,
    ctl_repair,
    ctl_volume,
)
from titans3.cli.client import (  # noqa: F401 -- re-exported: titanctl's public names
    DEFAULT_ENDPOINT,
    EMPTY_SHA256,
    EXIT_ERROR,
    EXIT_OK,
    EXIT_USAGE,
    INFO_PATH,
    REGION,
    AdminClient,
    CtlError,
    check_endpoint,
    describe_http_error,
    format_ec,
    format_table,
    human_bytes,
    parse_s3_error,
)


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
        "--access-key", default=d(None),
        help="root access key (env TITANS3_ROOT_ACCESS_KEY, else AWS_ACCESS_KEY_ID)"
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
    ctl_repair.add_commands(sub, _add_common)
    ctl_disk.add_commands(sub, _add_common)
    ctl_volume.add_commands(sub, _add_common)
    ctl_mounts.add_commands(sub, _add_common)
    ctl_dataprot.add_commands(sub, _add_common)  # kms, lifecycle
    # `cluster` groups the cluster commands; each module adds its actions to
    # `cluster_actions` (init: ctl_cluster_init; join/remove/status: ctl_cluster).
    cluster = sub.add_parser("cluster", help="cluster certificates and membership")
    _add_common(cluster, top=False)
    cluster_actions = cluster.add_subparsers(dest="action", metavar="ACTION", required=True)
    ctl_cluster_init.add_init(cluster_actions, _add_common)
    ctl_cluster.add_actions(cluster_actions, _add_common)
    ctl_appliance.add_cluster_actions(cluster_actions, _add_common)
    ctl_appliance.add_commands(sub, _add_common)  # support, web
    ctl_iam.add_commands(sub, _add_common)  # user, key, account, audit
    return parser


def _client(args: argparse.Namespace, env: dict[str, str]) -> AdminClient:
    endpoint = check_endpoint(args.endpoint or env.get("TITANS3_ENDPOINT") or DEFAULT_ENDPOINT)
    # The AWS_* pair is what `titans3 credentials` prints for pasting (core/shell_exports.py).
    access = args.access_key or env.get("TITANS3_ROOT_ACCESS_KEY") or env.get("AWS_ACCESS_KEY_ID", "")
    secret = args.secret_key or env.get("TITANS3_ROOT_SECRET_KEY") or env.get(
        "AWS_SECRET_ACCESS_KEY", "")
    if not access or not secret:
        raise CtlError(
            "no credentials: set TITANS3_ROOT_ACCESS_KEY and TITANS3_ROOT_SECRET_KEY "
            "(or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or pass --access-key and --secret-key)",
            EXIT_USAGE,
        )
    if not env.get("TITANS3_CTL_TIMEOUT"):
        return AdminClient(endpoint, access, secret)
    try:  # a slow node (a VM under emulation) may need longer than the default 10 s
        timeout = float(env["TITANS3_CTL_TIMEOUT"])
    except ValueError:
        raise CtlError("TITANS3_CTL_TIMEOUT: expected seconds, such as 60", EXIT_USAGE) from None
    return AdminClient(endpoint, access, secret, timeout=timeout)


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

            try:
                out = ctl_cluster_init.run_init(args)
            except ctl_cluster_init.InitError as e:
                raise CtlError(str(e), EXIT_USAGE) from None
        else:
            client = _client(args, dict(os.environ) if env is None else env)
            if args.command in ctl_iam.COMMANDS:
                out = ctl_iam.run(args, client)
            elif args.command in ctl_disk.COMMANDS:
                out = ctl_disk.run(args, client)
            elif args.command == "volume":
                out = ctl_volume.run(args, client)
            elif args.command in ctl_dataprot.COMMANDS:
                out = ctl_dataprot.run(args, client)
            elif args.command == "mounts":
                out = ctl_mounts.run(args, client)
            elif args.command == "cluster":
                out = (ctl_appliance.run_cluster(args, client)
                       if args.action in ctl_appliance.CLUSTER_ACTIONS else ctl_cluster.run(args, client))
            elif args.command in ("support", "web"):  # ctl_appliance.COMMANDS
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
