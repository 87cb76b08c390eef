"""Admin API calls for NBD volumes (registered in :mod:`titans3.s3.admin`).

=======  ==============================  ==========================================================
method   path (under /titans3/admin/)     what
=======  ==============================  ==========================================================
GET      v1/volumes                      every volume: size, allocated, attached where, ops/s
POST     v1/volumes/create               ``?name=N&size=BYTES[&extent_size=BYTES][&secret=S]``
GET      v1/volumes/info                 ``?name=N``: record, snapshots, clones, statistics
POST     v1/volumes/resize               ``?name=N&size=BYTES`` (grow only)
POST     v1/volumes/delete               ``?name=N``
GET      v1/volumes/snapshots            ``?name=N``
POST     v1/volumes/snapshot             ``?name=N&snapshot=S``
POST     v1/volumes/snapshot-delete      ``?name=N&snapshot=S``
POST     v1/volumes/clone                ``?name=N&snapshot=S&new=M``
POST     v1/volumes/rollback             ``?name=N&snapshot=S`` (no client attached)
=======  ==============================  ==========================================================

The host's ``volumes`` attribute is the NBD gateway's operations
(:class:`titans3.nbd.operations.VolumeOperations`, set by the gateway; the
S3 front does not import the NBD front, so :class:`VolumeAdmin` names what it
calls).  Refusals are typed S3 errors (``NoSuchVolume``, ``VolumeInUse``,
``ServiceUnavailable`` when the cluster cannot serve it now), so ``titanctl``
prints one line.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from titans3.core.errors import InvalidArgument, ServiceUnavailable
from titans3.s3.context import S3Context

DEFAULT_EXTENT = 4 << 20


class VolumeAdmin(Protocol):
    """The volume operations this API calls; each returns a JSON-ready document."""

    async def list(self) -> dict[str, Any]: ...
    async def create(self, name: str, size: int, *, extent_size: int = DEFAULT_EXTENT,
                     secret: str = "") -> dict[str, Any]: ...
    async def info(self, name: str) -> dict[str, Any]: ...
    async def resize(self, name: str, size: int) -> dict[str, Any]: ...
    async def delete(self, name: str) -> dict[str, Any]: ...
    async def snapshots(self, name: str) -> dict[str, Any]: ...
    async def snapshot(self, name: str, snap: str) -> dict[str, Any]: ...
    async def delete_snapshot(self, name: str, snap: str) -> dict[str, Any]: ...
    async def clone(self, source: str, snap: str, new: str) -> dict[str, Any]: ...
    async def rollback(self, name: str, snap: str) -> dict[str, Any]: ...


def _arg(ctx: S3Context, name: str) -> str:
    value = ctx.query.get(name)
    if not value:
        raise InvalidArgument(f"Missing query parameter {name!r}", ArgumentName=name)
    return value


def _int(ctx: S3Context, name: str, default: int | None = None) -> int:
    raw = ctx.query.get(name)
    if not raw:
        if default is None:
            raise InvalidArgument(f"Missing query parameter {name!r}", ArgumentName=name)
        return default
    if not raw.isdigit():
        raise InvalidArgument(f"{name} must be a number of bytes", ArgumentName=name, ArgumentValue=raw)
    return int(raw)


def _ops(ctx: S3Context) -> VolumeAdmin:
    ops: VolumeAdmin | None = getattr(ctx.admin, "volumes", None)
    if ops is None:
        raise ServiceUnavailable("The NBD gateway is not running on this host.")
    return ops


def _call(fn: Callable[[VolumeAdmin, S3Context], Awaitable[dict[str, Any]]]
          ) -> Callable[[S3Context], Awaitable[dict[str, Any]]]:
    async def route(ctx: S3Context) -> dict[str, Any]:
        return await fn(_ops(ctx), ctx)

    return route


ROUTES: dict[tuple[str, str], Callable[[S3Context], Awaitable[dict[str, Any]]]] = {
    ("GET", "v1/volumes"): _call(lambda o, c: o.list()),
    ("POST", "v1/volumes/create"): _call(lambda o, c: o.create(
        _arg(c, "name"), _int(c, "size"), extent_size=_int(c, "extent_size", DEFAULT_EXTENT),
        secret=c.query.get("secret", ""))),
    ("GET", "v1/volumes/info"): _call(lambda o, c: o.info(_arg(c, "name"))),
    ("POST", "v1/volumes/resize"): _call(lambda o, c: o.resize(_arg(c, "name"), _int(c, "size"))),
    ("POST", "v1/volumes/delete"): _call(lambda o, c: o.delete(_arg(c, "name"))),
    ("GET", "v1/volumes/snapshots"): _call(lambda o, c: o.snapshots(_arg(c, "name"))),
    ("POST", "v1/volumes/snapshot"): _call(lambda o, c: o.snapshot(_arg(c, "name"), _arg(c, "snapshot"))),
    ("POST", "v1/volumes/snapshot-delete"): _call(
        lambda o, c: o.delete_snapshot(_arg(c, "name"), _arg(c, "snapshot"))),
    ("POST", "v1/volumes/clone"): _call(
        lambda o, c: o.clone(_arg(c, "name"), _arg(c, "snapshot"), _arg(c, "new"))),
    ("POST", "v1/volumes/rollback"): _call(lambda o, c: o.rollback(_arg(c, "name"), _arg(c, "snapshot"))),
}
