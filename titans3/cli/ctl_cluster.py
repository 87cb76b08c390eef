"""``titanctl cluster join|remove|status``: membership through the admin API.

Theory of operation
-------------------
Each command is one signed admin call (:mod:`titans3.s3.admin_cluster`) to any
member host, with the root credentials.  ``join`` and ``remove`` then follow
``cluster/status`` on the same host until the ring change is complete (no
``old_ring`` left, a removed host gone from the member list), printing progress
-- so when ``titanctl cluster remove H`` returns 0, H's data is on the others
and H may be stopped.  ``--no-wait`` returns once the change is published.
:func:`format_status` is a pure renderer.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any

from titans3.cli.client import EXIT_USAGE, AdminClient, CtlError, call_json, format_table

POLL = 1.0


def add_actions(actions: Any, add_common: Callable[..., None]) -> None:
    join = actions.add_parser("join", help="add a running host (same --cluster-secret) to the cluster")
    add_common(join, top=False)
    join.add_argument("address", metavar="HOST:PEERPORT", help="the new host's --peer-listen address")
    remove = actions.add_parser("remove", help="move a host's data off, then drop it from the cluster")
    add_common(remove, top=False)
    remove.add_argument("host", metavar="HOST:PEERPORT|HOST_ID")
    for p in (join, remove):
        p.add_argument("--no-wait", action="store_true", help="return once the new ring is published")
        p.add_argument("--timeout", type=float, default=3600.0, help="seconds to wait for the move")
    status = actions.add_parser("status", help="hosts, drives, health, ring version, rebalance progress")
    add_common(status, top=False)


def _rebalance_line(reb: dict[str, Any] | None) -> str:
    if not reb:
        return "rebalance: -"
    if reb.get("state") == "idle":
        return f"rebalance: idle ({reb.get('epochs_completed', 0)} epochs completed here)"
    eta = reb.get("eta_seconds")
    return (f"rebalance: {reb.get('state')} ring {reb.get('from_version')} -> {reb.get('ring_version')}: "
            f"{100 * float(reb.get('progress') or 0):.1f}% ({reb.get('keys_scanned')}/{reb.get('keys_total')}"
            f" keys, {reb.get('keys_moved')} moved, {reb.get('fragments_moved')} fragments, "
            f"{reb.get('errors')} errors)" + (f", ETA {eta:.0f}s" if eta is not None else ""))


def format_status(doc: dict[str, Any]) -> str:
    d = doc.get("document") or {}
    head = [f"ring version: {doc.get('ring_version')}"
            + (f" (moving from {d.get('old_version')}, coordinator {d.get('coordinator')})"
               if d.get("moving") else "")]
    if doc.get("ec"):
        head.append(f"erasure: {doc['ec']['k']}+{doc['ec']['m']}")
    head.append(_rebalance_line(doc.get("rebalance")))
    rows = []
    for h in doc.get("hosts", []):
        states = [x.get("state", "?") for x in h.get("drives", [])]
        health = "online" if h.get("online") else "DOWN"
        rows.append([h.get("address") or "-", str(h.get("host_id", ""))[:16], health,
                     f"{states.count('online')}/{len(states)}",
                     ("this host " if h.get("self") else "") + ("leaving" if h.get("leaving") else "")])
    table = format_table(["ADDRESS", "HOST", "HEALTH", "DRIVES", "NOTE"], rows, right=set())
    return "\n".join(head) + "\n\n" + table


def _done(doc: dict[str, Any], removed: str | None) -> bool:
    d = doc.get("document") or {}
    if d.get("moving"):
        return False
    if removed is not None:
        return all(removed not in (h.get("address"), h.get("host_id")) for h in doc.get("hosts", []))
    return True


def _wait(client: AdminClient, removed: str | None, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    last = ""
    while True:
        doc = call_json(client, "GET", "cluster/status")
        if _done(doc, removed):
            return doc
        line = _rebalance_line(doc.get("rebalance"))
        if line != last:
            print(line, file=sys.stderr, flush=True)
            last = line
        if time.monotonic() > deadline:
            raise CtlError(f"the ring change did not complete within {timeout:.0f}s; see titanctl cluster status")
        time.sleep(POLL)


def run(args: Any, client: AdminClient) -> str:
    action, as_json = args.action, bool(args.json)
    if action == "status":
        doc = call_json(client, "GET", "cluster/status")
        return json.dumps(doc, indent=2, sort_keys=True) if as_json else format_status(doc)
    if action == "join":
        doc = call_json(client, "POST", "cluster/join", {"address": args.address})
        removed = None
    elif action == "remove":
        doc = call_json(client, "POST", "cluster/remove", {"host": args.host})
        removed = args.host
    else:
        raise CtlError(f"unknown command cluster {action}", EXIT_USAGE)
    if not args.no_wait:
        doc = _wait(client, removed, args.timeout)
    if as_json:
        return json.dumps(doc, indent=2, sort_keys=True)
    return f"ring version {doc.get('ring_version', doc.get('version'))}: {action} complete" \
        if not args.no_wait else f"ring version {doc.get('version')} published; rebalancing"
