"""Admin API calls for cluster membership (registered in :mod:`titans3.s3.admin`).

=======  =============================  =============================================
method   path (under /titans3/admin/)    what
=======  =============================  =============================================
GET      v1/cluster/status              hosts, drives, health, ring version, rebalance
POST     v1/cluster/join                ``?address=HOST:PEERPORT``: add a running host
POST     v1/cluster/remove              ``?host=HOST:PEERPORT|HOST_ID``: drain, then drop
=======  =============================  =============================================

Join and remove answer as soon as the new ring is published (the rebalance runs
in the background on the answering host); ``titanctl`` then follows
``cluster/status`` until the move is complete.  The logic lives in
:mod:`titans3.cluster.membership`; this module only translates.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any

from titans3.core.errors import InvalidArgument
from titans3.s3.context import S3Context


def _arg(ctx: S3Context, name: str) -> str:
    value = ctx.query.get(name)
    if not value:
        raise InvalidArgument(f"Missing query parameter {name!r}", ArgumentName=name)
    return value


def _membership(ctx: S3Context) -> Any:
    from titans3.cluster.membership import ClusterChangeRefused, membership_of

    ms = membership_of(ctx.admin)
    if ms is None:
        raise ClusterChangeRefused("this host is not part of a cluster (start it with --peers)")
    return ms


async def _status(ctx: S3Context) -> dict[str, Any]:
    from titans3.cluster.membership import membership_of

    host = ctx.admin
    ms = membership_of(host)
    reb = host.workers.get("rebalance") if hasattr(host, "workers") else None
    rebalance = asdict(reb.statistics()) if reb is not None else None
    store = host.store
    if ms is None:
        info = await host.info()
        return {"clustered": False, "host_id": getattr(host, "host_id", ""),
                "ring_version": store.ring.version, "rebalance": rebalance,
                "hosts": [{"address": "", "host_id": getattr(host, "host_id", ""), "online": True,
                           "self": True, "leaving": False,
                           "drives": [{"drive_id": d.drive_id, "state": d.state} for d in info.drives]}]}
    cluster = ms.cluster
    leaving = {h["host_id"] for h in ms.doc.get("leaving", [])}
    hosts = []
    for h in ms.doc["hosts"]:
        me = h["host_id"] == host.host_id
        peer = cluster.peers.get(h["address"])
        drives = []
        for i in range(int(h["drives"])):
            pos = store._by_id.get(f"{h['host_id']}/drive-{i}")
            d = store.drives[pos] if pos is not None else None
            drives.append({"index": i, "drive_id": d.drive_id if d is not None else "",
                           "state": d.state.value if d is not None else "unknown"})
        hosts.append({"address": h["address"], "host_id": h["host_id"], "self": me,
                      "online": True if me else bool(peer is not None and peer.online),
                      "leaving": h["host_id"] in leaving, "drives": drives})
    return {"clustered": True, "host_id": host.host_id, "self": cluster.self_address,
            "ring_version": store.ring.version, "document": ms.summary(), "hosts": hosts,
            "ec": {"k": store.scheme.k, "m": store.scheme.m}, "rebalance": rebalance}


async def _join(ctx: S3Context) -> dict[str, Any]:
    return await _membership(ctx).join(_arg(ctx, "address"))


async def _remove(ctx: S3Context) -> dict[str, Any]:
    return await _membership(ctx).remove(_arg(ctx, "host"))


ROUTES: dict[tuple[str, str], Callable[[S3Context], Awaitable[dict[str, Any]]]] = {
    ("GET", "v1/cluster/status"): _status,
    ("POST", "v1/cluster/join"): _join,
    ("POST", "v1/cluster/remove"): _remove,
}
