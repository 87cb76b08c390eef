"""``titanctl disk ...``: the operator's view of and hands on the raw disks.

Theory of operation
-------------------
Thin: each command is one admin call (:mod:`titans3.s3.admin_disks`) through
the shared signed transport (``ctl_repair.call_json``), and the only logic
here is :func:`format_disks`, a pure table renderer.  Refusals arrive as typed
S3 errors (``DiskRefused: /dev/sdb has an ext4 filesystem; ...``) and are
printed as that one line with exit status 1, never a traceback.  Changing
calls (claim, replace) may run mkfs, so they get a long timeout.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from titans3.cli.client import (
    EXIT_USAGE,
    AdminClient,
    CtlError,
    call_json,
    format_table,
    human_bytes,
)

COMMANDS = ("disk",)
CHANGE_TIMEOUT = 600.0  # s: mkfs of a large disk


def add_commands(sub: Any, add_common: Callable[..., None]) -> None:
    disk = sub.add_parser("disk", help="raw disks: list, claim, drain, replace, forget")
    add_common(disk, top=False)
    d = disk.add_subparsers(dest="action", metavar="ACTION", required=True)
    add_common(d.add_parser(
        "list", help="slots, spares and disks in scope: device, drive, state, capacity, errors"
    ), top=False)
    claim = d.add_parser("claim", help="format a blank disk into a free slot (or as a spare)")
    add_common(claim, top=False)
    claim.add_argument("--force", action="store_true",
                       help="erase a disk that has a partition table or filesystem")
    claim.add_argument("device", metavar="DEVICE")
    drain = d.add_parser("drain", help="take a drive out of service and unmount it (safe to pull)")
    add_common(drain, top=False)
    drain.add_argument("target", metavar="DEVICE|DRIVE_ID")
    rep = d.add_parser("replace", help="put disk NEW into the slot of drive/disk OLD")
    add_common(rep, top=False)
    rep.add_argument("--force", action="store_true", help="erase NEW even if it holds data")
    rep.add_argument("old", metavar="OLD")
    rep.add_argument("new", metavar="NEW")
    forget = d.add_parser("forget", help="drop a failed, drained or spare drive from the records")
    add_common(forget, top=False)
    forget.add_argument("drive", metavar="DRIVE_ID")


def _size(v: Any) -> str:
    return human_bytes(v) if isinstance(v, int) and not isinstance(v, bool) and v > 0 else "-"


def format_disks(doc: Mapping[str, Any]) -> str:
    """The human view of ``GET /titans3/admin/v1/disks``."""
    rows: Sequence[Mapping[str, Any]] = doc.get("disks") or []
    counts: dict[str, int] = {}
    for r in rows:
        counts[str(r.get("state", "?"))] = counts.get(str(r.get("state", "?")), 0) + 1
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    head = f"mode: {doc.get('mode', '?')}" + (f" ({summary})" if summary else "")
    if not rows:
        return head + "\nno disks"
    table = [
        [
            str(r.get("device") or r.get("path") or "-"),
            str(r.get("drive_id") or "-")[:12],
            str(r.get("slot") or "-").rsplit("/", 1)[-1],
            str(r.get("state", "?")),
            _size(r.get("capacity")),
            _size(r.get("used")),
            "-" if r.get("errors") is None else str(r.get("errors")),
            str(r.get("reason") or ""),
        ]
        for r in rows
    ]
    header = ["DEVICE", "DRIVE", "SLOT", "STATE", "CAPACITY", "USED", "ERRORS", "NOTE"]
    return head + "\n\n" + format_table(header, table, right={4, 5, 6})


def run(args: argparse.Namespace, client: AdminClient) -> str:
    """Run ``titanctl disk ACTION``; returns the text to print."""
    action, as_json = getattr(args, "action", None), bool(args.json)
    if action == "list":
        doc = call_json(client, "GET", "disks")
        return json.dumps(doc, indent=2, sort_keys=True) if as_json else format_disks(doc)
    slow = dataclasses.replace(client, timeout=max(client.timeout, CHANGE_TIMEOUT))
    if action == "claim":
        query = {"device": args.device} | ({"force": "1"} if args.force else {})
        doc = call_json(slow, "POST", "disks/claim", query)
    elif action == "drain":
        doc = call_json(slow, "POST", "disks/drain", {"target": args.target})
    elif action == "replace":
        query = {"old": args.old, "new": args.new} | ({"force": "1"} if args.force else {})
        doc = call_json(slow, "POST", "disks/replace", query)
    elif action == "forget":
        doc = call_json(slow, "POST", "disks/forget", {"drive": args.drive})
    else:
        raise CtlError(f"unknown command disk {action}", EXIT_USAGE)
    return json.dumps(doc, indent=2, sort_keys=True) if as_json else str(doc.get("message", "done"))
