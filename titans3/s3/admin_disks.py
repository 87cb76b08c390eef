"""Admin API calls for disk management (registered in :mod:`titans3.s3.admin`).

=======  ===========================  ===============================================
method   path (under /titans3/admin/)  what
=======  ===========================  ===============================================
GET      v1/disks                     every slot, spare, retired drive, in-scope disk
POST     v1/disks/claim               ``?device=D[&force=1]``: format into a slot / spare
POST     v1/disks/drain               ``?target=DRIVE|DEVICE``: out of service, unmounted
POST     v1/disks/replace             ``?old=DRIVE|DEVICE&new=D[&force=1]``
POST     v1/disks/forget              ``?drive=DRIVE``: drop a retired drive
=======  ===========================  ===============================================

The backend (``ctx.admin``) is the daemon's ``Host``; ``host.disks`` is the
:class:`~titans3.disks.manager.DiskManager` when the daemon runs with
``--disks``.  Without it ``GET v1/disks`` still answers -- the directory
drives, ``mode: "directories"`` --, drain and replace work on the directories
(titans3/disks/directories.py), and claim/forget fail with
``DiskManagementOff`` (409).  Refusals are typed (titans3.disks.errors), so a
client gets one S3 error line that says what to do instead.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any

from titans3.core.errors import InvalidArgument
from titans3.disks import directories
from titans3.disks.errors import DiskModeOff
from titans3.s3.context import S3Context


def _arg(ctx: S3Context, name: str) -> str:
    value = ctx.query.get(name)
    if not value:
        raise InvalidArgument(f"Missing query parameter {name!r}", ArgumentName=name)
    return value


def _flag(ctx: S3Context, name: str) -> bool:
    return ctx.query.get(name, "").lower() in ("1", "true", "yes")


def _manager(ctx: S3Context) -> Any:
    disks = getattr(ctx.admin, "disks", None)
    if disks is None:
        raise DiskModeOff()
    return disks


async def _list(ctx: S3Context) -> dict[str, Any]:
    disks = getattr(ctx.admin, "disks", None)
    if disks is not None:
        return {"mode": "auto" if disks.auto else "list", "disks": await disks.list_disks(),
                "statistics": asdict(disks.statistics())}
    info = await ctx.admin.info()
    slots = getattr(getattr(ctx.admin, "store", None), "slots", None) or []
    rows = [
        {"device": "", "drive_id": d.drive_id, "slot": slots[i] if i < len(slots) else "",
         "state": d.state, "capacity": d.capacity, "used": d.used, "errors": d.errors,
         "fs": "", "backing_file": "", "reason": "", "path": d.path}
        for i, d in enumerate(info.drives)
    ]
    return {"mode": "directories", "disks": rows}


async def _claim(ctx: S3Context) -> dict[str, Any]:
    device = _arg(ctx, "device")
    return await _manager(ctx).claim(device, force=_flag(ctx, "force"))


async def _drain(ctx: S3Context) -> dict[str, Any]:
    target = _arg(ctx, "target")
    if getattr(ctx.admin, "disks", None) is None:  # a directory stands in for each disk
        return await directories.drain(ctx.admin, target)
    return await _manager(ctx).drain(target)


async def _replace(ctx: S3Context) -> dict[str, Any]:
    old, new = _arg(ctx, "old"), _arg(ctx, "new")
    if getattr(ctx.admin, "disks", None) is None:
        return await directories.replace(ctx.admin, old, new)
    return await _manager(ctx).replace(old, new, force=_flag(ctx, "force"))


async def _forget(ctx: S3Context) -> dict[str, Any]:
    drive = _arg(ctx, "drive")
    return await _manager(ctx).forget(drive)


ROUTES: dict[tuple[str, str], Callable[[S3Context], Awaitable[dict[str, Any]]]] = {
    ("GET", "v1/disks"): _list,
    ("POST", "v1/disks/claim"): _claim,
    ("POST", "v1/disks/drain"): _drain,
    ("POST", "v1/disks/replace"): _replace,
    ("POST", "v1/disks/forget"): _forget,
}
