"""``titanctl cluster create|token|join-token``, ``support bundle``, ``web reset-password``.

Theory of operation
-------------------
The shell-less setup and support actions of the status page, as commands
(each one signed admin call, :mod:`titans3.s3.admin_appliance`):

* ``cluster create --address HOST:PEERPORT`` -- this standalone host becomes
  a one-host cluster (it keeps its data);
* ``cluster token`` -- on a member: a short-lived, single-use join token;
* ``cluster join-token TOKEN --address HOST:PEERPORT [--member HOST:PEERPORT]``
  -- on the new (empty) host: join the cluster the token is for;
* ``support bundle [-o FILE]`` -- download the support bundle (logs, config
  without secrets, ``titanctl info --json``, cluster and worker state);
* ``web reset-password`` -- a lost admin password: forgotten cluster-wide, and a
  new setup code (printed, and written to this host's ``setup_code_file``)
  lets the page lead through setup again.
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import hashlib
import json
import os
import time
from collections.abc import Callable
from typing import Any

from titans3.cli.client import EXIT_USAGE, AdminClient, CtlError, call_json, human_bytes

COMMANDS = ("support", "web")
CLUSTER_ACTIONS = ("create", "token", "join-token")
SLOW = 120.0  # s: a join waits for the member's ring change to be published


def add_cluster_actions(actions: Any, add_common: Callable[..., None]) -> None:
    create = actions.add_parser("create", help="make this standalone host a one-host cluster")
    add_common(create, top=False)
    create.add_argument("--address", required=True, metavar="HOST:PEERPORT",
                        help="this host's peer address as other hosts reach it")
    add_common(actions.add_parser("token", help="on a member: a join token for a new host "
                                                "(single use, 15 minutes)"), top=False)
    join = actions.add_parser("join-token", help="on a new, empty host: join the cluster of TOKEN")
    add_common(join, top=False)
    join.add_argument("token", metavar="TOKEN")
    join.add_argument("--address", required=True, metavar="HOST:PEERPORT",
                      help="this host's peer address as the members reach it")
    join.add_argument("--member", default="", metavar="HOST:PEERPORT",
                      help="the member to ask (default: the one that made the token)")


def add_commands(sub: Any, add_common: Callable[..., None]) -> None:
    support = sub.add_parser("support", help="support bundle for a bug report")
    add_common(support, top=False)
    s = support.add_subparsers(dest="action", metavar="ACTION", required=True)
    bundle = s.add_parser("bundle", help="logs, config without secrets, info, cluster and worker state")
    add_common(bundle, top=False)
    bundle.add_argument("-o", "--output", default="", metavar="FILE",
                        help="where to write the .tar.gz (default: its own name, here)")
    _add_web(sub, add_common)


def _add_web(sub: Any, add_common: Callable[..., None]) -> None:
    web = sub.add_parser("web", help="the status page")
    add_common(web, top=False)
    w = web.add_subparsers(dest="action", metavar="ACTION", required=True)
    add_common(w.add_parser("reset-password", help="forget the admin password (every host); "
                                                   "prints a new setup code for this host's page"),
               top=False)


def run_cluster(args: argparse.Namespace, client: AdminClient) -> str:
    slow = dataclasses.replace(client, timeout=max(client.timeout, SLOW))
    if args.action == "create":
        doc = call_json(slow, "POST", "cluster/create", {"address": args.address})
        text = f"cluster created: this host is its first member at {args.address}"
    elif args.action == "token":
        doc = call_json(client, "POST", "cluster/token")
        left = int(doc["expires"] - time.time())
        text = (f"{doc['token']}\n\non the new host (once, within {left // 60} minutes):\n"
                f"  titanctl cluster join-token {doc['token']} --address NEWHOST:PEERPORT"
                f" --member {doc['address']}")
    elif args.action == "join-token":
        query = {"token": args.token, "address": args.address}
        if args.member:
            query["member"] = args.member
        doc = call_json(slow, "POST", "cluster/join-token", query)
        text = (f"joined: ring version {doc.get('version')}; data moves in the background "
                "(titanctl cluster status)")
    else:
        raise CtlError(f"unknown command cluster {args.action}", EXIT_USAGE)
    return json.dumps(doc, indent=2, sort_keys=True) if args.json else text


def run(args: argparse.Namespace, client: AdminClient) -> str:
    if args.command == "web":
        if args.action != "reset-password":
            raise CtlError(f"unknown command web {args.action}", EXIT_USAGE)
        doc = call_json(client, "POST", "web/reset-password")
        return json.dumps(doc, indent=2, sort_keys=True) if args.json else (
            f"admin password removed. setup code: {doc['setup_code']}\n"
            "open the status page of this host and enter it to set a new password")
    if args.action != "bundle":
        raise CtlError(f"unknown command support {args.action}", EXIT_USAGE)
    slow = dataclasses.replace(client, timeout=max(client.timeout, SLOW))
    doc = call_json(slow, "GET", "support/bundle")
    try:
        data = base64.b64decode(doc["content_base64"], validate=True)
    except (KeyError, ValueError):
        raise CtlError("the support bundle answer is damaged") from None
    if hashlib.sha256(data).hexdigest() != doc.get("sha256"):
        raise CtlError("the support bundle arrived damaged (checksum mismatch)")
    path = args.output or os.path.basename(str(doc.get("filename") or "titans3-support.tar.gz"))
    try:
        with open(path, "wb") as f:
            f.write(data)
    except OSError as e:
        raise CtlError(f"cannot write {path}: {e.strerror}") from None
    if args.json:
        return json.dumps({"path": path, "bytes": len(data), "sha256": doc["sha256"]}, indent=2)
    return f"{path}: {human_bytes(len(data))}"
