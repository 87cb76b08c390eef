"""``titanctl mounts``: the FUSE mounts a daemon serves (bucket, dir, state,
dirty bytes, ops/s, errors) from ``GET /titans3/admin/v1/mounts``."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from titans3.cli.client import AdminClient, CtlError, format_table, human_bytes

COMMANDS = ("mounts",)


def add_commands(sub: Any, common: Callable[..., None]) -> None:
    p = sub.add_parser("mounts", help="FUSE mounts served by the node (titans3 serve --mount)")
    common(p, top=False)


def format_mounts(doc: dict[str, Any]) -> str:
    mounts = doc.get("mounts") or []
    if not mounts:
        return "no mounts"
    header = ["DIR", "BUCKET", "STATE", "DIRTY", "OPEN", "OPS/S", "ERRORS", "LAST ERROR"]
    rows = [[str(m.get("dir", "?")), f"{m.get('bucket', '?')}/{m.get('prefix', '')}".rstrip("/"),
             str(m.get("state", "?")), human_bytes(m.get("dirty_bytes")),
             str(m.get("open_files", "-")), str(m.get("ops_per_s", "-")),
             str(m.get("errors", "-")), str(m.get("last_error", ""))[:60]] for m in mounts]
    return format_table(header, rows, right={3, 4, 5, 6})


def run(args: argparse.Namespace, client: AdminClient) -> str:
    doc = client.get_json("/titans3/admin/v1/mounts")
    if not isinstance(doc, dict):
        raise CtlError("unexpected answer: not a JSON object")
    return json.dumps(doc, indent=2, sort_keys=True) if args.json else format_mounts(doc)
