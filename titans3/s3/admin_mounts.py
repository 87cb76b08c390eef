"""Admin API: ``GET /titans3/admin/v1/mounts`` -- the FUSE mounts this daemon serves.

The daemon registers each mount in ``host.workers`` as ``mount:DIR``
(:mod:`titans3.fuse.daemon_mounts`); this answers their ``statistics()``.
"""

from __future__ import annotations

from dataclasses import asdict, is_dataclass
from typing import Any

from titans3.s3.context import S3Context


async def _mounts(ctx: S3Context) -> dict[str, Any]:
    workers = getattr(ctx.admin, "workers", None) or {}
    out = []
    for name in sorted(workers):
        if name.startswith("mount:"):
            s = workers[name].statistics()
            out.append({"name": name, "dir": name[len("mount:"):],
                        **(asdict(s) if is_dataclass(s) else dict(s))})
    return {"mounts": out}


ROUTES = {("GET", "v1/mounts"): _mounts}
