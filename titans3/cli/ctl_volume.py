"""``titanctl volume ...``: NBD block volumes, their snapshots and clones.

Theory of operation
-------------------
Each command is one admin call (:mod:`titans3.s3.admin_volumes`) through
the shared signed transport; the logic here is pure: :func:`parse_size`
(``100G`` -> bytes, binary units as ``qemu-img`` reads them) and the table
renderers.  Refusals print as one line (``titanctl: VolumeInUse: volume db
is attached for writing on ...``) with exit status 1.

Attach a volume with any NBD client: ``nbd://HOST:10809/NAME`` (or the unix
socket ``nbd+unix:///NAME?socket=STATE_DIR/nbd.sock``); snapshots are the
read-only exports ``NAME@SNAPSHOT``.  docs/nbd.md has the recipes.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import secrets
from collections.abc import Callable, Mapping
from typing import Any

from titans3.cli.client import (
    EXIT_USAGE,
    AdminClient,
    CtlError,
    call_json,
    format_table,
    human_bytes,
)

COMMANDS = ("volume",)
SLOW = 3600.0  # s: deleting or rolling back a large volume touches every extent

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtpe]?)(i?b?)\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50, "e": 1 << 60}


def parse_size(text: str) -> int:
    """``"100G"``, ``"512MiB"``, ``"1.5T"``, ``"4096"`` -> bytes (units are powers of 1024)."""
    m = _SIZE.match(text)
    if not m or (m.group(3) and not m.group(2) and m.group(3).lower() != "b"):
        raise CtlError(f"bad size {text!r}: use a number with an optional K, M, G, T or P (powers of 1024)",
                       EXIT_USAGE)
    value = float(m.group(1)) * _UNITS[m.group(2).lower()]
    if value != int(value):
        raise CtlError(f"bad size {text!r}: not a whole number of bytes", EXIT_USAGE)
    return int(value)


def add_commands(sub: Any, add_common: Callable[..., None]) -> None:
    vol = sub.add_parser("volume", help="NBD block volumes: create, list, snapshot, clone, rollback")
    add_common(vol, top=False)
    v = vol.add_subparsers(dest="action", metavar="ACTION", required=True)

    def cmd(name: str, help_: str) -> argparse.ArgumentParser:
        p = v.add_parser(name, help=help_)
        add_common(p, top=False)
        return p

    p = cmd("create", "a new thin volume (all zeroes, no space used)")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--size", required=True, help="e.g. 100G (powers of 1024)")
    p.add_argument("--extent-size", default="4M", help="object size the volume is cut into (default 4M)")
    p.add_argument("--secret", default="", help="secret NBD clients give as NAME/SECRET on TLS listeners")
    p.add_argument("--generate-secret", action="store_true", help="make up a secret and print it")
    cmd("list", "every volume: size, allocated, where it is attached, ops/s")
    cmd("info", "one volume: record, snapshots, clones, statistics").add_argument("name", metavar="NAME")
    p = cmd("resize", "grow a volume")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--size", required=True)
    cmd("delete", "delete a volume and its snapshots").add_argument("name", metavar="NAME")
    p = cmd("snapshot", "snapshots: create VOLUME SNAP | list VOLUME | delete VOLUME SNAP")
    p.add_argument("op", choices=["create", "list", "delete"])
    p.add_argument("name", metavar="VOLUME")
    p.add_argument("snapshot", metavar="SNAPSHOT", nargs="?")
    p = cmd("clone", "a writable volume from a snapshot (copy-on-write): clone VOLUME@SNAP NEW")
    p.add_argument("source", metavar="VOLUME@SNAPSHOT")
    p.add_argument("new", metavar="NEW")
    p = cmd("rollback", "make a volume what it was at a snapshot (no client may be attached)")
    p.add_argument("name", metavar="VOLUME")
    p.add_argument("snapshot", metavar="SNAPSHOT")


def _when(ns: Any) -> str:
    import time

    if not isinstance(ns, int) or ns <= 0:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ns / 1e9))


def format_volumes(doc: Mapping[str, Any]) -> str:
    rows = doc.get("volumes") or []
    if not rows:
        return "no volumes"
    table = [[str(r.get("name")), human_bytes(r.get("size")), human_bytes(r.get("allocated")),
              str(r.get("attached") or "-"), str(r.get("snapshots", 0)), str(r.get("parent") or "-"),
              f"{r.get('ops_per_s', 0):.0f}" if r.get("here") else "-"] for r in rows]
    return format_table(["NAME", "SIZE", "ALLOCATED", "ATTACHED", "SNAPSHOTS", "PARENT", "OPS/S"], table,
                        right={1, 2, 4, 6})


def format_info(doc: Mapping[str, Any]) -> str:
    lines = [
        f"volume:     {doc.get('name')}  (id {doc.get('id')})",
        f"size:       {human_bytes(doc.get('size'))} ({doc.get('size')} bytes), "
        f"{human_bytes(doc.get('extent_size'))} extents",
        f"allocated:  {human_bytes(doc.get('allocated'))}",
        f"attached:   {doc.get('attached') or '-'}",
        f"parent:     {doc.get('parent') or '-'}",
        f"clones:     {', '.join(doc.get('clones') or []) or '-'}",
        f"secret:     {'set' if doc.get('secret') else 'none'}",
        f"log:        {doc.get('log_segments', 0)} segments",
        f"created:    {_when(doc.get('created_ns'))}",
    ]
    snaps = doc.get("snapshots") or []
    if snaps:
        lines += ["", format_table(["SNAPSHOT", "CREATED"], [[s["name"], _when(s.get("created_ns"))]
                                                             for s in snaps], right=set())]
    return "\n".join(lines)


def run(args: argparse.Namespace, client: AdminClient) -> str:
    """Run ``titanctl volume ACTION``; returns the text to print."""
    action, as_json = args.action, bool(args.json)
    slow = dataclasses.replace(client, timeout=max(client.timeout, SLOW))

    def show(doc: Any, text: Callable[[Any], str]) -> str:
        return json.dumps(doc, indent=2, sort_keys=True) if as_json else text(doc)

    if action == "list":
        return show(call_json(client, "GET", "volumes"), format_volumes)
    if action == "info":
        return show(call_json(client, "GET", "volumes/info", {"name": args.name}), format_info)
    if action == "create":
        secret = secrets.token_urlsafe(18) if args.generate_secret else args.secret
        query = {"name": args.name, "size": str(parse_size(args.size)),
                 "extent_size": str(parse_size(args.extent_size))} | ({"secret": secret} if secret else {})
        doc = call_json(client, "POST", "volumes/create", query)
        note = f"\nsecret: {secret} (TLS clients attach NBD export {args.name}/{secret})" if secret else ""
        return show(doc, lambda d: f"volume {d['name']} created: {human_bytes(d['size'])}" + note)
    if action == "resize":
        doc = call_json(client, "POST", "volumes/resize", {"name": args.name, "size": str(parse_size(args.size))})
        return show(doc, lambda d: f"volume {d['name']} is now {human_bytes(d['size'])}")
    if action == "delete":
        doc = call_json(slow, "POST", "volumes/delete", {"name": args.name})
        return show(doc, lambda d: f"volume {d['deleted']} deleted ({d['objects']} objects)")
    if action == "snapshot":
        if args.op == "list":
            doc = call_json(client, "GET", "volumes/snapshots", {"name": args.name})
            return show(doc, lambda d: format_table(
                ["SNAPSHOT", "CREATED"], [[s["name"], _when(s.get("created_ns"))] for s in d["snapshots"]],
                right=set()) if d["snapshots"] else "no snapshots")
        if not args.snapshot:
            raise CtlError(f"snapshot {args.op} needs VOLUME and SNAPSHOT", EXIT_USAGE)
        if args.op == "create":
            call_json(slow, "POST", "volumes/snapshot", {"name": args.name, "snapshot": args.snapshot})
            return f"snapshot {args.name}@{args.snapshot} created (read-only NBD export {args.name}@{args.snapshot})"
        doc = call_json(slow, "POST", "volumes/snapshot-delete", {"name": args.name, "snapshot": args.snapshot})
        return show(doc, lambda d: f"snapshot {args.name}@{args.snapshot} deleted")
    if action == "clone":
        vol, at, snap = args.source.partition("@")
        if not at or not snap:
            raise CtlError(f"clone source {args.source!r}: give it as VOLUME@SNAPSHOT", EXIT_USAGE)
        doc = call_json(client, "POST", "volumes/clone", {"name": vol, "snapshot": snap, "new": args.new})
        return show(doc, lambda d: f"volume {d['name']} cloned from {args.source}")
    if action == "rollback":
        doc = call_json(slow, "POST", "volumes/rollback", {"name": args.name, "snapshot": args.snapshot})
        return show(doc, lambda d: f"volume {args.name} rolled back to {args.snapshot} "
                                   f"({d['extents_restored']} extents restored)")
    raise CtlError(f"unknown command volume {action}", EXIT_USAGE)
