"""Admin API calls for the appliance setup and support (registered in :mod:`titans3.s3.admin`).

=======  ===============================  ================================================
method   path (under /titans3/admin/)     what
=======  ===============================  ================================================
POST     v1/cluster/create                ``?address=HOST:PEERPORT``: a one-host cluster
POST     v1/cluster/token                 a join token for a new host (this host is a member)
POST     v1/cluster/join-token            ``?token=T&address=A[&member=M]``: join with one
GET      v1/support/bundle                the support bundle, base64 in JSON
POST     v1/web/reset-password            forget the page's admin password; a new setup code
=======  ===============================  ================================================

The same operations as the status page's setup flow and actions; the logic
lives in :mod:`titans3.cluster.bootstrap` and :mod:`titans3.cluster.supportbundle`.
The bundle travels base64-encoded inside the JSON answer so the admin API keeps
one answer type; it is a few hundred KiB.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Awaitable, Callable
from typing import Any

from titans3.cluster import bootstrap, supportbundle
from titans3.core import setupcode
from titans3.core.errors import InvalidArgument
from titans3.objects import ADMIN_PASSWORD, SystemRecords
from titans3.s3.context import S3Context


def _arg(ctx: S3Context, name: str) -> str:
    value = ctx.query.get(name)
    if not value:
        raise InvalidArgument(f"Missing query parameter {name!r}", ArgumentName=name)
    return value


async def _create(ctx: S3Context) -> dict[str, Any]:
    return await bootstrap.create_cluster(ctx.admin, _arg(ctx, "address"))


async def _token(ctx: S3Context) -> dict[str, Any]:
    return bootstrap.issue_token(ctx.admin)


async def _join(ctx: S3Context) -> dict[str, Any]:
    return await bootstrap.join_with_token(
        ctx.admin, _arg(ctx, "token"), member=ctx.query.get("member", ""),
        address=_arg(ctx, "address"), forget=(ADMIN_PASSWORD,))


async def _bundle(ctx: S3Context) -> dict[str, Any]:
    name, data = await supportbundle.build(ctx.admin)
    return {"filename": name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(),
            "content_base64": base64.b64encode(data).decode()}


async def _reset_password(ctx: S3Context) -> dict[str, Any]:
    """A lost admin password: the record is deleted (cluster-wide) and this host
    writes a fresh setup code, so the page leads through setup again."""
    host = ctx.admin
    code = setupcode.new_code()
    path = host.config.setup_code_file
    try:
        setupcode.write(path, code)
    except OSError as e:
        raise InvalidArgument(f"cannot write the setup code to {path}: {e.strerror}") from None
    records = SystemRecords(lambda: host.store.drives, lambda: host.store.clock)
    await records.put(ADMIN_PASSWORD, None)
    return {"setup_code": code, "setup_code_file": path,
            "message": "admin password removed; open the status page and enter the setup code"}


ROUTES: dict[tuple[str, str], Callable[[S3Context], Awaitable[dict[str, Any]]]] = {
    ("POST", "v1/cluster/create"): _create,
    ("POST", "v1/cluster/token"): _token,
    ("POST", "v1/cluster/join-token"): _join,
    ("GET", "v1/support/bundle"): _bundle,
    ("POST", "v1/web/reset-password"): _reset_password,
}
