"""The admin API: ``/titans3/admin/v1/...`` on the S3 port.

Theory of operation
-------------------
Admin calls ride on the S3 endpoint so that every S3 tool's SigV4 signing (and
``titanctl``, which signs the same way) works unchanged; the app authenticates
them like any S3 request and then :func:`handle` requires the *root* access
key (anyone else: 403 AccessDenied).  Answers are JSON; failures are the usual
S3 XML errors so there is one error path.

The backend (``admin=`` of ``create_s3_app``) is the daemon's ``Host``: ``info()
-> HostInfo`` here, and ``store`` / ``workers`` for the durability calls of
:mod:`titans3.s3.admin_durability` (a backend without them answers those 501).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from titans3.cluster.supportbundle import info_json
from titans3.core.errors import NotImplementedS3
from titans3.s3 import (
    admin_appliance,
    admin_cluster,
    admin_disks,
    admin_durability,
    admin_iam,
    admin_kms,
    admin_lifecycle,
    admin_mounts,
    admin_objects,
    admin_volumes,
)
from titans3.s3.context import Reply, S3Context

PREFIX = "/titans3/admin/"


host_info_json = info_json  # one shape for titanctl info --json and the support bundle


async def _info(ctx: S3Context) -> dict[str, Any]:
    return host_info_json(await ctx.admin.info())


ROUTES: dict[tuple[str, str], Callable[[S3Context], Awaitable[dict[str, Any]]]] = {
    ("GET", "v1/info"): _info,
    **admin_durability.ROUTES,  # scrub, repair status, object inspect, gc
    **admin_disks.ROUTES,  # disk list / claim / drain / replace / forget
    **admin_cluster.ROUTES,  # cluster status / join / remove
    **admin_volumes.ROUTES,  # NBD volumes, snapshots, clones
    **admin_appliance.ROUTES,  # cluster create / token / join-token, support bundle
    **admin_mounts.ROUTES,  # FUSE mounts (titans3/fuse/)
    **admin_iam.ROUTES,  # users, keys, account, audit log
    **admin_objects.ROUTES,  # object rename
    **admin_kms.ROUTES,  # built-in KMS keys (titanctl kms)
    **admin_lifecycle.ROUTES,  # lifecycle worker (titanctl lifecycle)
}


def json_reply(document: dict[str, Any], status: int = 200) -> Reply:
    body = json.dumps(document, separators=(",", ":"), sort_keys=True).encode()
    return Reply(status, [("Content-Type", "application/json")], body)


async def handle(ctx: S3Context) -> Reply:
    """Dispatch one admin call (the caller has checked it is the root key)."""
    if ctx.admin is None:
        raise NotImplementedS3("The admin API is not enabled on this endpoint.")
    path = (ctx.route.key or "").strip("/")
    method = "GET" if ctx.method == "HEAD" else ctx.method
    call = ROUTES.get((method, path))
    if call is None:
        raise NotImplementedS3(f"No admin call {ctx.method} {PREFIX}{path}.")
    return json_reply(await call(ctx))
