"""What the status page, ``/api/status`` and ``/metrics`` show, read at request time.

Theory of operation
-------------------
Everything is read from the host's own objects (drive ``stat()`` and
``statistics()``, store counters, worker ``statistics()``), so the page can
never disagree with the daemon.  In a cluster the page also shows every
member and *its* workers: each host summarises its workers into one shape
(:mod:`titans3.core.observe`) that rides on its heartbeat answer, so this host
renders the last summary it heard from each peer (and how long ago that was)
without an extra call per page load.

**Stored versus filesystem.**  A drive's ``stat()`` is its filesystem's
statvfs: for directory drives that share one filesystem every drive showed
the whole host filesystem as "used".  Each row therefore shows what TitanS3
itself stores on the drive (fragment files and inline blobs: the drive's
``bytes_stored``, plus the on-disk size of its LMDB index) next to what the
filesystem holds, and says when several drives share one filesystem (same
``st_dev``), whose free space then counts once in the capacity summary.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from titans3 import __version__
from titans3.core.observe import worker_summaries

if TYPE_CHECKING:
    from titans3.cluster.host import HostServices as Host


def _asdict(s: Any) -> dict[str, Any]:
    return asdict(s) if is_dataclass(s) else dict(s)


def _on_disk(path: Path) -> int:
    try:
        return os.stat(path).st_blocks * 512
    except OSError:
        return 0


def _device(path: Path) -> int | None:
    try:
        return os.stat(path).st_dev
    except OSError:
        return None


def _refills(host: Host) -> dict[int, dict[str, Any]]:
    refill = host.workers.get("refill")
    if refill is None:
        return {}
    return {d["position"]: d for d in _asdict(refill.statistics()).get("drives", ())}


async def drive_rows(host: Host) -> list[dict[str, Any]]:
    """This host's drives, one row per slot, with stored-vs-filesystem bytes."""
    store = host.store
    position = {id(d): i for i, d in enumerate(store.drives)}
    refills = _refills(host)
    rows = []
    for index, d in enumerate(host.drives):
        st = await d.stat()
        pos = position.get(id(d), index)
        root = Path(getattr(d, "root", st.path))
        io = _asdict(d.statistics()) if hasattr(d, "statistics") else {}
        stored = int(io.get("bytes_stored", 0) or 0)
        index_bytes = _on_disk(root / "index.lmdb" / "data.mdb")
        state = st.state.value
        healing = pos in store.healing and state == "online"
        shown = "full" if state == "online" and st.full else "healing" if healing else state
        rows.append({
            "index": index, "position": pos,
            "slot": store.slots[pos] if pos < len(store.slots) else f"drive-{index}",
            "drive_id": st.drive_id, "path": st.path, "state": shown,
            "online": state == "online",
            "capacity": st.capacity, "used": st.used, "free": st.free, "errors": st.errors,
            "quarantined": st.fragments_quarantined,
            "stored": stored + index_bytes, "stored_fragments": stored, "stored_index": index_bytes,
            "device": _device(root) if state == "online" else None,
            "refill": refills.get(pos),
            "io": io,
        })
    shared: dict[int, int] = {}
    for r in rows:
        if r["device"] is not None:
            shared[r["device"]] = shared.get(r["device"], 0) + 1
    for r in rows:
        r["fs_shared"] = shared.get(r["device"], 1) if r["device"] is not None else 1
    return rows


def capacity(rows: list[dict[str, Any]], k: int, m: int) -> dict[str, Any]:
    """This host's totals; a filesystem shared by several drives counts once."""
    seen: set[int] = set()
    cap = free = 0
    for r in rows:
        if not r["online"]:
            continue
        if r["device"] is not None and r["device"] in seen:
            continue
        seen.add(r["device"])
        cap += r["capacity"]
        free += r["free"]
    stored = sum(r["stored"] for r in rows)
    usable = int(free * k / (k + m)) if k + m else free
    return {"stored": stored, "capacity": cap, "free": free, "usable_free": usable,
            "drives_online": sum(1 for r in rows if r["online"]), "drives": len(rows)}


async def host_status(host: Host) -> dict[str, Any]:
    fronts = getattr(host, "fronts", None)  # S3 front processes (titans3/front/supervisor.py)
    if fronts is not None:
        await fronts.sync()  # their finished requests are in the counters read below
    drives = await drive_rows(host)
    workers = []
    for name, w in host.workers.items():
        workers.append({"name": name, **_asdict(w.statistics())})
    store = host.store
    own = worker_summaries(host.workers)
    disks = getattr(host, "disks", None)
    return {
        "host": store.host,
        "host_id": host.host_id,
        "version": __version__,
        "uptime_s": round((time.time_ns() - host.started_ns) / 1e9, 1),
        "ec": {"k": store.scheme.k, "m": store.scheme.m},
        "mode": "directories" if disks is None else ("auto" if disks.auto else "list"),
        "drives": drives,
        "capacity": capacity(drives, store.scheme.k, store.scheme.m),
        "workers": workers,
        "store": {"degraded_reads": store.degraded_reads,
                  "partial_writes": store.partial_writes,
                  "write_stragglers": store.committer.stragglers,
                  # the host's write memory budget (objects/admission.py): streams
                  # waiting for admission are what a saturated node shows first
                  "write_memory": _asdict(store.admission.budget.stats())},
        "summaries": own,
        "cluster": cluster_status(host, own),
        "volumes": _asdict(host.nbd.statistics()) if getattr(host, "nbd", None) is not None else None,
        "s3_processes": _processes(fronts),
    }


def _processes(fronts: Any) -> list[dict[str, Any]]:
    """This host's S3 processes: the owner (index 0) and its fronts."""
    from titans3.core.metrics import TOTALS

    rows = fronts.rows() if fronts is not None else []
    served = TOTALS.requests - sum(r["requests"] for r in rows)
    return [{"index": 0, "pid": os.getpid(), "state": "owner", "requests": served}, *rows]


def cluster_status(host: Host, own: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Every member as this host sees it, with its workers (from its last
    heartbeat; this host's own now).  ``None`` on a single host."""
    cluster = host.workers.get("cluster")
    ms = getattr(cluster, "membership", None)
    if cluster is None or ms is None:
        return None
    doc = ms.doc
    leaving = {h["address"] for h in doc.get("leaving", [])}
    now = time.time()
    hosts = []
    for h in sorted(doc["hosts"], key=lambda h: h["address"]):
        me = h["address"] == cluster.self_address
        peer = cluster.peers.get(h["address"])
        info = {} if me or peer is None else peer.info
        if me:
            drives = [d.state.value for d in host.drives]
        else:
            drives = [str(d.get("state", "unknown")) for d in info.get("drives", [])]
        hosts.append({
            "address": h["address"], "host_id": h["host_id"], "self": me,
            "online": True if me else bool(peer is not None and peer.online),
            "leaving": h["address"] in leaving,
            "last_seen_s": 0.0 if me else (round(now - peer.last_seen, 1)
                                           if peer is not None and peer.last_seen else None),
            "ring_version": host.store.ring.version if me else info.get("ring_version"),
            "drives": len(drives) or int(h.get("drives", 0)),
            "drives_online": sum(1 for d in drives if d == "online"),
            "workers": own if me else list(info.get("workers", [])),
        })
    summary = ms.summary()
    return {"self": cluster.self_address, "ring_version": summary["version"],
            "moving": summary["moving"], "coordinator": summary["coordinator"],
            "takeovers": summary["takeovers"], "hosts": hosts}
