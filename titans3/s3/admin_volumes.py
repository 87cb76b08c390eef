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

The backend's ``nbd`` attribute is the daemon's
:class:`~titans3.nbd.service.VolumeService`; refusals are the typed volume
errors (``NoSuchVolume``, ``VolumeInUse``, ...) so ``titanctl`` prints one line.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from titans3.core.errors import InvalidArgument, ServiceUnavailable
from titans3.nbd.backend import BackendError
from titans3.nbd.operations import VolumeOperations
from titans3.s3.context import S3Context


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


def _ops(ctx: S3Context) -> VolumeOperations:
    service = getattr(ctx.admin, "nbd", None)
    if service is None:
        raise ServiceUnavailable("The NBD gateway is not running on this host.")
    return VolumeOperations(service)


def _call(fn: Callable[[VolumeOperations, S3Context], Awaitable[dict[str, Any]]]
          ) -> Callable[[S3Context], Awaitable[dict[str, Any]]]:
    async def route(ctx: S3Context) -> dict[str, Any]:
        try:
            return await fn(_ops(ctx), ctx)
        except BackendError as e:
            raise ServiceUnavailable(f"The cluster cannot do this now: {e}") from e

    return route


ROUTES: dict[tuple[str, str], Callable[[S3Context], Awaitable[dict[str, Any]]]] = {
    ("GET", "v1/volumes"): _call(lambda o, c: o.list()),
    ("POST", "v1/volumes/create"): _call(lambda o, c: o.create(
        _arg(c, "name"), _int(c, "size"), extent_size=_int(c, "extent_size", 4 << 20),
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
