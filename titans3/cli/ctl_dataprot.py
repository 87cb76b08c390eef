"""``titanctl kms ...`` and ``titanctl lifecycle status``: data protection from the command line.

Theory of operation
-------------------
* ``titanctl kms list`` -- the built-in KMS's keys (id, alias, state, versions,
  last rotation); ``kms create [--description D] [--alias A]``;
  ``kms rotate KEY``; ``kms disable KEY``; ``kms enable KEY`` (KEY: an id,
  an ARN or ``alias/NAME``).  No call ever returns key material.
* ``titanctl lifecycle status`` -- the lifecycle worker's progress (pass,
  buckets and objects scanned, what each action removed, errors).

Formatting is pure (values in, text out); failures are one ``titanctl: ...``
line with an exit status.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Mapping
from typing import Any

from titans3.cli.client import AdminClient, call_json, format_table

COMMANDS = ("kms", "lifecycle")


def add_commands(sub: Any, add_common: Callable[..., None]) -> None:
    kms = sub.add_parser("kms", help="keys of the built-in KMS (SSE-KMS)")
    add_common(kms, top=False)
    k = kms.add_subparsers(dest="action", metavar="ACTION", required=True)
    add_common(k.add_parser("list", help="every key and its state"), top=False)
    cr = k.add_parser("create", help="create a key")
    add_common(cr, top=False)
    cr.add_argument("--description", default="")
    cr.add_argument("--alias", default="", help="a name usable as alias/NAME")
    for name, what in (("rotate", "add a new key version (old objects stay readable)"),
                       ("disable", "refuse the key: its objects become unreadable"),
                       ("enable", "accept the key again")):
        p = k.add_parser(name, help=what)
        add_common(p, top=False)
        p.add_argument("key", metavar="KEY", help="key id, ARN or alias/NAME")

    lc = sub.add_parser("lifecycle", help="the lifecycle worker")
    add_common(lc, top=False)
    a = lc.add_subparsers(dest="action", metavar="ACTION", required=True)
    add_common(a.add_parser("status", help="progress of the lifecycle worker"), top=False)


def _when(ns: Any) -> str:
    if not ns:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(int(ns) / 1e9))


def format_keys(doc: Mapping[str, Any]) -> str:
    keys = doc.get("keys") or []
    if not keys:
        return "no keys"
    rows = [[str(k["key_id"]), "enabled" if k["enabled"] else "DISABLED", str(k["versions"]),
             _when(k.get("rotated_ns")), str(k.get("description", ""))[:40]] for k in keys]
    return format_table(["KEY", "STATE", "VERSIONS", "ROTATED (UTC)", "DESCRIPTION"], rows,
                        right={2})


def format_key(doc: Mapping[str, Any]) -> str:
    k = doc["key"]
    return (f"{k['key_id']}  {'enabled' if k['enabled'] else 'DISABLED'}  "
            f"versions {k['versions']}  {k['arn']}")


def format_lifecycle(doc: Mapping[str, Any]) -> str:
    s = doc.get("lifecycle") or {}
    lines = [
        f"lifecycle: {s.get('state', '?')}, pass {s.get('passes', 0)}"
        + (f" (bucket {s['bucket']})" if s.get("bucket") else ""),
        f"  scanned: {s.get('buckets_scanned', 0)} buckets, {s.get('objects_scanned', 0)} versions",
        f"  expired: {s.get('expired', 0)} current, {s.get('noncurrent_expired', 0)} noncurrent, "
        f"{s.get('markers_removed', 0)} delete markers; uploads aborted: {s.get('uploads_aborted', 0)}",
        f"  transitioned to another storage class: {s.get('transitioned', 0)}",
        f"  kept by object lock: {s.get('locked_kept', 0)}; errors: {s.get('errors', 0)}",
        f"  last pass finished: {_when(s.get('last_pass_ns'))}; day = {s.get('day_seconds', 86400)} s",
    ]
    if s.get("last_error"):
        lines.append(f"  last error: {s['last_error']}")
    return "\n".join(lines)


def run(args: argparse.Namespace, client: AdminClient) -> str:
    as_json = bool(args.json)
    if args.command == "lifecycle":
        doc = call_json(client, "GET", "lifecycle/status")
        return json.dumps(doc, indent=2, sort_keys=True) if as_json else format_lifecycle(doc)
    action = args.action
    if action == "list":
        doc = call_json(client, "GET", "kms/keys")
        return json.dumps(doc, indent=2, sort_keys=True) if as_json else format_keys(doc)
    if action == "create":
        doc = call_json(client, "POST", "kms/keys",
                        {"description": args.description, "alias": args.alias})
    else:
        doc = call_json(client, "POST", f"kms/{action}", {"key": args.key})
    return json.dumps(doc, indent=2, sort_keys=True) if as_json else format_key(doc)
