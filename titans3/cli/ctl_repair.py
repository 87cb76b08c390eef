"""``titanctl scrub|repair|object|gc``: the durability workers from the command line.

Theory of operation
-------------------
Commands (registered in :mod:`titans3.cli.titanctl` through :func:`add_commands`):

* ``titanctl scrub start [--wait]`` -- start a full scrub pass; ``--wait``
  follows it with a progress line until it completes;
* ``titanctl scrub rate RATE`` -- change the scrub throttle at run time
  (``64MiB``, ``500M``, ``0`` = unthrottled; per second);
* ``titanctl repair status [--json]`` -- every worker's progress: scrub,
  heal queue, repair, drive refills, GC;
* ``titanctl object inspect BUCKET KEY [--deep] [--json]`` -- an object's
  versions, EC scheme and, per fragment, drive, host and health;
* ``titanctl gc start`` -- start a GC pass.

Like the rest of titanctl: formatting is pure (values in, text out), every
failure is one ``titanctl: ...`` line with an exit status, never a traceback.
The admin client of titanctl only GETs, so signed POST/PUT live here
(:func:`call_json`).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

from titans3.cli.client import (  # noqa: F401 -- call_json: its old home
    EXIT_ERROR,
    EXIT_USAGE,
    AdminClient,
    CtlError,
    call_json,
    format_table,
    human_bytes,
)

COMMANDS = ("scrub", "repair", "object", "gc")


# ------------------------------------------------------------------ transport
# ------------------------------------------------------------------ parsing
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?)b?(?:/s)?\s*$", re.IGNORECASE)


def parse_rate(text: str) -> int:
    """``"64MiB"`` -> 67108864, ``"500M"`` -> 500000000, ``"0"`` -> 0 (bytes per second)."""
    m = _RATE.match(text)
    if not m:
        raise CtlError(f"bad rate {text!r}: want bytes per second such as 64MiB, 500M or 0",
                       EXIT_USAGE)
    number, unit, binary = float(m.group(1)), m.group(2).lower(), bool(m.group(3))
    if not unit:
        return int(number)
    return int(number * (1024 if binary else 1000) ** ("kmgt".index(unit) + 1))


# ------------------------------------------------------------------ formatting
def _n(v: Any) -> float | None:
    return v if isinstance(v, int | float) and not isinstance(v, bool) else None


def human_duration(s: Any) -> str:
    v = _n(s)
    if v is None:
        return "-"
    v = int(v)
    if v < 60:
        return f"{v}s"
    if v < 3600:
        return f"{v // 60}m{v % 60:02d}s"
    if v < 86400:
        return f"{v // 3600}h{v % 3600 // 60:02d}m"
    return f"{v // 86400}d{v % 86400 // 3600:02d}h"


def human_rate(v: Any) -> str:
    n = _n(v)
    return "-" if n is None else f"{human_bytes(n)}/s"


def _when(t: Any) -> str:
    v = _n(t)
    return "-" if not v else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(v))


def scrub_progress(s: Mapping[str, Any]) -> str:
    """One line: percent, bytes, rate, ETA, findings."""
    scanned, total = _n(s.get("bytes_scanned")) or 0, _n(s.get("bytes_total")) or 0
    pct = f"{min(100.0, 100.0 * scanned / total):.0f}%" if total else "-"
    return (f"scrub {s.get('state', '?')}: {pct} {human_bytes(scanned)} of ~{human_bytes(total)}, "
            f"{s.get('objects_checked', 0)} objects, {human_rate(s.get('rate'))} "
            f"(limit {'none' if not s.get('rate_limit') else human_rate(s.get('rate_limit'))}), "
            f"ETA {human_duration(s.get('eta_s'))}; {s.get('corrupt', 0)} corrupt, "
            f"{s.get('missing', 0)} missing, {s.get('records_missing', 0)} records missing, "
            f"{s.get('queued_for_repair', 0)} queued for repair")


def format_status(doc: Mapping[str, Any]) -> str:
    w = doc.get("workers") or {}
    lines = [f"host: {doc.get('host', '?')}"]
    scrub = w.get("scrubber")
    if scrub:
        lines.append(scrub_progress(scrub))
        lines.append(f"  last pass finished {_when(scrub.get('last_pass_finished'))}, "
                     f"next due {_when(scrub.get('next_pass_due'))}")
    q = w.get("heal-queue")
    if q:
        lines.append(f"heal queue: {q.get('queue_depth', 0)} of {q.get('capacity', '?')} keys "
                     f"({q.get('in_flight', 0)} in flight), {q.get('done', 0)} done, "
                     f"{q.get('dropped_full', 0)} dropped (full), "
                     f"{q.get('dropped_attempts', 0)} given up")
    r = w.get("repair")
    if r:
        lines.append(f"repair {r.get('state', '?')}: {r.get('objects_repaired', 0)} objects repaired "
                     f"of {r.get('objects_checked', 0)} checked, {r.get('fragments_rebuilt', 0)} "
                     f"fragments / {human_bytes(_n(r.get('bytes_rebuilt')) or 0)} rebuilt, "
                     f"{human_rate(r.get('rate'))}, ETA {human_duration(r.get('eta_s'))}; "
                     f"{r.get('lost', 0)} lost, {r.get('errors', 0)} errors")
        if r.get("last_error"):
            lines.append(f"  last error: {r['last_error']}")
    f = w.get("refill")
    if f:
        healing = doc.get("healing") or []
        lines.append(f"refill {f.get('state', '?')}: "
                     f"{len(healing)} drive(s) healing"
                     + (" (" + ", ".join(h.get("slot", "?") for h in healing) + ")" if healing else ""))
        rows = [[str(d.get("slot", "?")), str(d.get("drive_id", "?"))[:8], str(d.get("state", "?")),
                 str(d.get("objects_checked", 0)), str(d.get("objects_repaired", 0)),
                 human_bytes(_n(d.get("bytes_rebuilt")) or 0), human_rate(d.get("rate")),
                 str(d.get("retry_pending", 0)), str(d.get("lost", 0))]
                for d in f.get("drives") or []]
        if rows:
            lines.append(format_table(
                ["  SLOT", "DRIVE", "STATE", "OBJECTS", "REPAIRED", "REBUILT", "RATE", "RETRY",
                 "LOST"], [["  " + r[0], *r[1:]] for r in rows], right={3, 4, 5, 6, 7, 8}))
            for d in f.get("drives") or []:
                for k in d.get("lost_keys") or []:
                    lines.append(f"  lost: {k}")
    sp = w.get("spares")
    if sp and sp.get("drives"):
        lines.append(f"spare rebuild {sp.get('state', '?')}: failed drives' fragments on spare drives")
        rows = [["  " + str(d.get("slot", "?")), str(d.get("drive_id", "?"))[:8], str(d.get("state", "?")),
                 str(d.get("objects_checked", 0)), str(d.get("objects_rebuilt", 0)),
                 human_bytes(_n(d.get("bytes_rebuilt")) or 0), human_rate(d.get("rate")),
                 str(d.get("retry_pending", 0)), str(d.get("no_spare", 0))]
                for d in sp["drives"]]
        lines.append(format_table(
            ["  SLOT", "DRIVE", "STATE", "OBJECTS", "REBUILT", "BYTES", "RATE", "RETRY", "NO SPARE"],
            rows, right={3, 4, 5, 6, 7, 8}))
    g = w.get("gc")
    if g:
        lines.append(f"gc {g.get('state', '?')}: {g.get('passes_completed', 0)} passes, "
                     f"{g.get('staging_removed', 0)} staging files, "
                     f"{g.get('orphan_chunks_removed', 0)} orphan chunks "
                     f"({human_bytes(_n(g.get('orphan_bytes_removed')) or 0)}), "
                     f"{g.get('versions_removed', 0)} stale versions removed; "
                     f"next {_when(g.get('next_pass_due'))}")
    return "\n".join(lines)


def format_inspect(doc: Mapping[str, Any]) -> str:
    lines = [f"object:   {doc.get('bucket', '?')}/{doc.get('key', '?')}",
             f"health:   {'healthy' if doc.get('healthy') else 'DEGRADED'}"
             + (" (deep check: every block read)" if doc.get("deep") else " (headers checked)")]
    versions = doc.get("versions") or []
    if not versions:
        lines.append("versions: none visible")
    for v in versions:
        ec = v.get("ec")
        scheme = f"EC {ec['k']}+{ec['m']}, segment {human_bytes(ec['segment_size'])}" if ec else "-"
        if ec and v.get("storage_class"):
            scheme += f", {v['storage_class']}"
        kind = "delete marker" if v.get("delete_marker") else (
            f"{human_bytes(_n(v.get('size')) or 0)}, {scheme}"
            + (", inline" if v.get("inline") else "")
            + (f", {v['parts']} parts" if v.get("parts") else ""))
        lines += ["", f"version {v.get('version_id', '?')}{' (latest)' if v.get('latest') else ''}: "
                  f"{kind}; {v.get('healthy_fragments', 0)}/{v.get('fragments_total', 0)} fragments ok"]
        rows = [[str(f.get("index", "?")) + ("p" if f.get("parity") else ""),
                 str(f.get("drive_id", "?"))[:8], str(f.get("host", "?")), str(f.get("slot", "?")),
                 str(f.get("health", "?")).upper() if f.get("health") != "ok" else "ok",
                 str(f.get("detail", ""))[:80]]
                for f in v.get("fragments") or []]
        lines.append(format_table(["FRAG", "DRIVE", "HOST", "SLOT", "HEALTH", "DETAIL"], rows,
                                  right=set()))
    if doc.get("invisible_versions"):
        lines += ["", "invisible (garbage for GC): " + ", ".join(doc["invisible_versions"])]
    return "\n".join(lines)


# ------------------------------------------------------------------ commands
def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def add_commands(sub: Any, add_common: Callable[..., None]) -> None:
    scrub = sub.add_parser("scrub", help="start a scrub pass or change its rate")
    add_common(scrub, top=False)
    s = scrub.add_subparsers(dest="action", metavar="ACTION", required=True)
    st = s.add_parser("start", help="start a full scrub pass now")
    add_common(st, top=False)
    st.add_argument("--wait", action="store_true", help="follow the pass until it completes")
    rt = s.add_parser("rate", help="set the scrub rate (e.g. 64MiB, 0 = unthrottled)")
    add_common(rt, top=False)
    rt.add_argument("rate", metavar="RATE")

    repair = sub.add_parser("repair", help="durability workers' progress")
    add_common(repair, top=False)
    r = repair.add_subparsers(dest="action", metavar="ACTION", required=True)
    add_common(r.add_parser("status", help="scrub, heal queue, repair, refill and GC progress"),
               top=False)

    obj = sub.add_parser("object", help="look at one object's fragments")
    add_common(obj, top=False)
    o = obj.add_subparsers(dest="action", metavar="ACTION", required=True)
    ins = o.add_parser("inspect", help="versions, EC scheme and per-fragment health")
    add_common(ins, top=False)
    ins.add_argument("bucket", metavar="BUCKET")
    ins.add_argument("key", metavar="KEY")
    ins.add_argument("--deep", action="store_true", help="read every block (slow for big objects)")
    ren = o.add_parser("rename", help="give an object a new name without copying its data")
    add_common(ren, top=False)
    ren.add_argument("bucket", metavar="BUCKET")
    ren.add_argument("key", metavar="KEY")
    ren.add_argument("new_key", metavar="NEW_KEY")
    ren.add_argument("--no-replace", action="store_true", help="fail if NEW_KEY exists")

    gc = sub.add_parser("gc", help="garbage collection")
    add_common(gc, top=False)
    g = gc.add_subparsers(dest="action", metavar="ACTION", required=True)
    add_common(g.add_parser("start", help="start a GC pass now"), top=False)


def run(args: argparse.Namespace, client: AdminClient, *,
        out: Callable[[str], None] | None = None, sleep: Callable[[float], None] = time.sleep) -> str:
    """Run one of :data:`COMMANDS`; returns the text to print last."""
    cmd, action, as_json = args.command, getattr(args, "action", None), bool(args.json)
    if cmd == "scrub" and action == "start":
        doc = call_json(client, "POST", "scrub/start")
        if not args.wait:
            return json.dumps(doc, indent=2, sort_keys=True) if as_json else doc.get("message", "")
        return _follow_scrub(client, doc, out or _progress, sleep, as_json)
    if cmd == "scrub" and action == "rate":
        doc = call_json(client, "PUT", "scrub/rate",
                        {"bytes_per_second": str(parse_rate(args.rate))})
        if as_json:
            return json.dumps(doc, indent=2, sort_keys=True)
        rate = doc.get("rate_limit")
        return f"scrub rate: {'unthrottled' if not rate else human_rate(rate)}"
    if cmd == "repair" and action == "status":
        doc = call_json(client, "GET", "repair/status")
        return json.dumps(doc, indent=2, sort_keys=True) if as_json else format_status(doc)
    if cmd == "object" and action == "inspect":
        query = {"bucket": args.bucket, "key": args.key}
        if args.deep:
            query["deep"] = "1"
        doc = call_json(client, "GET", "object/inspect", query)
        if not doc.get("versions"):  # nothing to inspect: say so and fail, never "DEGRADED"
            left = doc.get("invisible_versions") or []
            raise CtlError(f"no such key: {args.bucket}/{args.key}" + (
                f" (drives still hold {len(left)} invisible version(s) for GC)" if left else ""),
                EXIT_ERROR)  # fmt: skip
        return json.dumps(doc, indent=2, sort_keys=True) if as_json else format_inspect(doc)
    if cmd == "object" and action == "rename":
        query = {"bucket": args.bucket, "src": args.key, "dst": args.new_key}
        if args.no_replace:
            query["noreplace"] = "1"
        doc = call_json(client, "POST", "object/rename", query)
        return json.dumps(doc, indent=2, sort_keys=True) if as_json else (
            f"renamed {args.bucket}/{args.key} -> {args.new_key} "
            f"({doc.get('size')} bytes, no data moved, {doc.get('seconds', 0) * 1e3:.1f} ms)")
    if cmd == "gc" and action == "start":
        doc = call_json(client, "POST", "gc/start")
        if as_json:
            return json.dumps(doc, indent=2, sort_keys=True)
        return "gc pass started" if doc.get("started") else "a gc pass is already running"
    raise CtlError(f"unknown command {cmd} {action}", EXIT_USAGE)


def _follow_scrub(client: AdminClient, first: Mapping[str, Any], out: Callable[[str], None],
                  sleep: Callable[[float], None], as_json: bool) -> str:
    """Poll until the pass that is running now completes, showing progress."""
    out(first.get("message", ""))
    passes = (first.get("scrubber") or {}).get("passes_completed", 0)
    while True:
        sleep(1.0)
        s = call_json(client, "GET", "repair/status").get("workers", {}).get("scrubber") or {}
        if s.get("passes_completed", 0) > passes and s.get("state") != "running":
            return json.dumps(s, indent=2, sort_keys=True) if as_json else (
                "scrub pass complete: " + scrub_progress(s).split(": ", 1)[1])
        out(scrub_progress(s))

