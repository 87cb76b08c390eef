"""``titanctl user|key|account|audit``: users, access keys and the audit log.

Theory of operation
-------------------
Each command is one admin call (:mod:`titans3.s3.admin_iam`) through the
shared signed transport (``ctl_repair.call_json``); the formatting below is
pure.  ``--json`` prints the admin API's document as is.

* ``titanctl user create NAME [--email ADDR]`` / ``list`` / ``show NAME`` /
  ``disable NAME`` / ``enable NAME`` / ``delete NAME [--force]``;
  ``titanctl user policy put USER POLICY FILE`` (``-``: stdin) /
  ``policy delete USER POLICY``;
* ``titanctl key create USER`` (prints the secret, the only time it is
  shown) / ``list [USER]`` / ``rotate USER`` / ``disable ID`` /
  ``enable ID`` / ``delete ID``;
* ``titanctl account show`` / ``account public-access-block
  [--block-public-acls] [--ignore-public-acls] [--block-public-policy]
  [--restrict-public-buckets] | --delete``;
* ``titanctl audit tail [--limit N] [--host HOST]`` / ``audit verify`` (exit
  status 1 and every problem named -- host, drive, sequence number -- when a
  record was edited, removed or reordered).
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from titans3.cli.client import EXIT_USAGE, AdminClient, CtlError, call_json, format_table

COMMANDS = ("user", "key", "account", "audit")


def add_commands(sub: Any, add_common: Callable[..., None]) -> None:
    def parser(group: Any, name: str, help_: str) -> Any:
        p = group.add_parser(name, help=help_)
        add_common(p, top=False)
        return p

    user = parser(sub, "user", "users of the account: create, list, disable, delete, policies")
    u = user.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = parser(u, "create", "a new user (no keys yet: titanctl key create USER)")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--email", default="", help="address for ACL grants by e-mail")
    parser(u, "list", "every user with keys and policies")
    for action, help_ in (("show", "one user"), ("disable", "every key of the user stops working"),
                          ("enable", "the user's keys work again")):  # fmt: skip
        parser(u, action, help_).add_argument("name", metavar="NAME")
    p = parser(u, "delete", "delete a user")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--force", action="store_true", help="delete its keys and policies too")
    pol = parser(u, "policy", "inline identity policies").add_subparsers(dest="policy_action", metavar="ACTION",
                                                                          required=True)  # fmt: skip
    p = parser(pol, "put", "attach (or replace) an inline policy")
    p.add_argument("user", metavar="USER")
    p.add_argument("policy", metavar="POLICY")
    p.add_argument("file", metavar="FILE", help="policy document (JSON); - for stdin")
    p = parser(pol, "delete", "remove an inline policy")
    p.add_argument("user", metavar="USER")
    p.add_argument("policy", metavar="POLICY")

    key = parser(sub, "key", "access keys: create, list, rotate, disable, delete")
    k = key.add_subparsers(dest="action", metavar="ACTION", required=True)
    parser(k, "create", "a new key (at most two per user); prints the secret once").add_argument("user")
    parser(k, "list", "keys of one user or of everyone").add_argument("user", nargs="?")
    parser(k, "rotate", "a new key; the user's previous active key is deactivated").add_argument("user")
    for action, help_ in (("disable", "the key stops working on every host"), ("enable", "it works again"),
                          ("delete", "remove the key")):  # fmt: skip
        parser(k, action, help_).add_argument("id", metavar="ACCESS_KEY_ID")

    account = parser(sub, "account", "the account: ids and account-wide Block Public Access")
    a = account.add_subparsers(dest="action", metavar="ACTION", required=True)
    parser(a, "show", "account id, canonical id, Block Public Access")
    p = parser(a, "public-access-block", "set (or --delete) the account's Block Public Access")
    for flag in ("block-public-acls", "ignore-public-acls", "block-public-policy", "restrict-public-buckets"):
        p.add_argument(f"--{flag}", action="store_true")
    p.add_argument("--delete", action="store_true", help="no account-level block")

    audit = parser(sub, "audit", "the audit log: tail, verify")
    au = audit.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = parser(au, "tail", "the last records of a host's chain")
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--host", default="", help="host id (default: the host answering)")
    parser(au, "verify", "check every copy of every chain; exit 1 and say where when damaged")


# ------------------------------------------------------------------ formatting
def _when(ns: Any) -> str:
    if not isinstance(ns, int) or ns <= 0:
        return "-"
    return dt.datetime.fromtimestamp(ns / 1e9, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def format_users(users: Sequence[Mapping[str, Any]]) -> str:
    rows = [[u["name"], "disabled" if u.get("disabled") else "enabled",
             ", ".join(f"{k['id']} ({k['status']})" for k in u.get("keys", [])) or "-",
             ", ".join(u.get("policies", [])) or "-", u.get("email") or "-", _when(u.get("created_ns"))]
            for u in users]  # fmt: skip
    return format_table(["USER", "STATE", "KEYS", "POLICIES", "EMAIL", "CREATED"], rows, right=set())


def format_user(u: Mapping[str, Any]) -> str:
    lines = [f"user:        {u['name']}", f"state:       {'disabled' if u.get('disabled') else 'enabled'}",
             f"arn:         {u.get('arn', '')}", f"user id:     {u.get('user_id', '')}",
             f"canonical:   {u.get('canonical_id', '')}", f"email:       {u.get('email') or '-'}",
             f"created:     {_when(u.get('created_ns'))}"]  # fmt: skip
    for k in u.get("keys", []):
        lines.append(f"key:         {k['id']} {k['status']} (created {_when(k.get('created_ns'))})")
    for name, doc in sorted((u.get("policy_documents") or {}).items()):
        lines.append(f"policy {name}: {doc}")
    return "\n".join(lines)


def format_key(doc: Mapping[str, Any]) -> str:
    k = doc["key"]
    lines = [f"user: {k['user']}", f"AWS_ACCESS_KEY_ID={k['id']}"]
    if "secret" in k:
        lines.append(f"AWS_SECRET_ACCESS_KEY={k['secret']}")
        lines.append("(the secret is shown only now: keep it)")
    if doc.get("deactivated"):
        lines.append("deactivated: " + ", ".join(doc["deactivated"]))
    return "\n".join(lines)


def format_account(a: Mapping[str, Any]) -> str:
    pab = a.get("public_access_block") or {}
    on = [n for n, v in pab.items() if v]
    return "\n".join([f"account:     {a.get('account_id')}", f"arn:         {a.get('arn')}",
                      f"canonical:   {a.get('canonical_id')}", f"users:       {a.get('users')}",
                      f"public access block: {', '.join(on) or 'none (bucket settings decide)'}"])  # fmt: skip


def format_records(records: Sequence[Mapping[str, Any]]) -> str:
    rows = []
    for r in records:
        where = r.get("bucket") or r.get("admin") or ""
        if r.get("object"):
            where += "/" + str(r["object"])
        rows.append([str(r.get("seq", "")), str(r.get("time", "")), str(r.get("user", "")), str(r.get("op", "")),
                     where or "-", str(r.get("status", "")), str(r.get("src") or "-")])  # fmt: skip
    return format_table(["SEQ", "TIME", "USER", "OP", "RESOURCE", "STATUS", "FROM"], rows, right={0, 5})


def verify_problems(doc: Mapping[str, Any]) -> list[str]:
    out = [f"unreadable: {p}" for p in doc.get("unreadable_drives") or []]
    for host, r in sorted((doc.get("hosts") or {}).items()):
        out += [f"host {host}: {p}" for p in r.get("problems", [])]
    return out


def format_verify(doc: Mapping[str, Any]) -> str:
    hosts = doc.get("hosts") or {}
    return "\n".join(f"host {h}: {r.get('records', 0)} records verified, last seq {r.get('last_seq', 0)}"
                     for h, r in sorted(hosts.items())) or "no audit records yet"  # fmt: skip


# ------------------------------------------------------------------ running
def _read_document(path: str) -> str:
    try:
        return sys.stdin.read() if path == "-" else open(path, encoding="utf-8").read()  # noqa: SIM115
    except OSError as e:
        raise CtlError(f"cannot read {path}: {e.strerror}", EXIT_USAGE) from None


def run(args: Any, client: AdminClient) -> str:
    as_json = bool(args.json)

    def out(doc: Any, text: Callable[[Any], str]) -> str:
        return json.dumps(doc, indent=2, sort_keys=True) if as_json else text(doc)

    cmd, action = args.command, args.action
    if cmd == "user":
        if action == "list":
            return out(call_json(client, "GET", "users"), lambda d: format_users(d["users"]))
        if action == "create":
            doc = call_json(client, "POST", "users/create", {"name": args.name, "email": args.email})
        elif action == "show":
            doc = call_json(client, "GET", "users/show", {"name": args.name})
        elif action in ("disable", "enable"):
            doc = call_json(client, "POST", f"users/{action}", {"name": args.name})
        elif action == "delete":
            doc = call_json(client, "POST", "users/delete", {"name": args.name, "force": "1" if args.force else "0"})
            return out(doc, lambda d: f"deleted user {d['deleted']}")
        elif action == "policy" and args.policy_action == "put":
            doc = call_json(client, "POST", "users/policy/put",
                            {"user": args.user, "name": args.policy, "document": _read_document(args.file)})  # fmt: skip
        elif action == "policy":
            doc = call_json(client, "POST", "users/policy/delete", {"user": args.user, "name": args.policy})
        else:
            raise CtlError(f"unknown command user {action}", EXIT_USAGE)
        return out(doc, lambda d: format_user(d["user"]))
    if cmd == "key":
        if action == "list":
            doc = call_json(client, "GET", "users")
            users = [u for u in doc["users"] if not args.user or u["name"].lower() == args.user.lower()]
            if args.user and not users:
                raise CtlError(f"NoSuchEntity: The user with name {args.user} cannot be found.")
            rows = [[u["name"], k["id"], k["status"], _when(k.get("created_ns"))] for u in users for k in u["keys"]]
            return out({"keys": [{"user": r[0], "id": r[1], "status": r[2]} for r in rows]},
                       lambda _d: format_table(["USER", "ACCESS KEY ID", "STATUS", "CREATED"], rows, right=set()))  # fmt: skip
        if action in ("create", "rotate"):
            return out(call_json(client, "POST", f"keys/{action}", {"user": args.user}), format_key)
        if action in ("disable", "enable", "delete"):
            doc = call_json(client, "POST", f"keys/{action}", {"id": args.id})
            return out(doc, lambda d: f"key {args.id}: " + ("deleted" if action == "delete" else d["key"]["status"]))
        raise CtlError(f"unknown command key {action}", EXIT_USAGE)
    if cmd == "account":
        if action == "show":
            return out(call_json(client, "GET", "account"), lambda d: format_account(d["account"]))
        if args.delete:
            doc = call_json(client, "POST", "account/public-access-block/delete")
        else:
            flags = {"BlockPublicAcls": args.block_public_acls, "IgnorePublicAcls": args.ignore_public_acls,
                     "BlockPublicPolicy": args.block_public_policy,
                     "RestrictPublicBuckets": args.restrict_public_buckets}  # fmt: skip
            doc = call_json(client, "POST", "account/public-access-block",
                            {k: "true" if v else "false" for k, v in flags.items()})  # fmt: skip
        return out(doc, lambda d: format_account(d["account"]))
    if cmd == "audit":
        if action == "tail":
            query = {"limit": str(args.limit)}
            if args.host:
                query["host"] = args.host
            return out(call_json(client, "GET", "audit/tail", query), lambda d: format_records(d["records"]))
        doc = call_json(client, "GET", "audit/verify")
        problems = verify_problems(doc)
        if problems:
            if as_json:
                print(json.dumps(doc, indent=2, sort_keys=True))
            raise CtlError("audit log verification FAILED:\n  " + "\n  ".join(problems))
        return out(doc, format_verify)
    raise CtlError(f"unknown command {cmd}", EXIT_USAGE)
