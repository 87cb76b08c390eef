"""After every round: what the daemons show must be what the model allows.

Theory of operation
-------------------
:meth:`Checker.check` reads everything back through a live node (a
different one each round in a cluster) while no workload runs:

* every plain key by GET: the bytes' SHA-256, the length and the ETag must be
  one of the key's possibilities (``PlainKey.observe`` collapses it);
* the whole plain bucket by ListObjectsV2 with a small random page size:
  exactly the keys that exist, with their sizes and ETags, nothing else;
* every versioned key by ListObjectVersions: the rows must fit the key's
  history (``VersionedKey.observe``); GET without a version id must return
  the newest row (404 when it is a delete marker); with ``deep`` every
  version is read back by id and compared;
* multipart uploads by ListMultipartUploads: every acknowledged open upload
  is listed and nothing else is; then all are aborted, so none accumulates.

:meth:`Checker.gc_check` runs when the topology is whole and quiet: it waits
out the daemons' commit window, runs a GC pass on every node, and then the
disks must hold no staging file and no fragment file whose data id no
visible version references (``object inspect`` lists the data ids) -- what
crashes, pulled drives and failed writes leave behind must not outlive GC.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from tests.torture.hosts import Node, Topology
from tests.torture.model import Listed, Violation
from tests.torture.workload import (
    PLAIN,
    TRANSPORT,
    VERSIONED,
    World,
    list_plain,
    observe_listing,
    outcome_of,
    read_value,
)


@dataclass
class CheckTally:
    checks: int = 0
    keys_read: int = 0
    bytes_verified: int = 0
    versions_verified: int = 0
    listings: int = 0
    uploads_aborted: int = 0
    gc_checks: int = 0
    orphans: int = 0  # must stay 0
    staging_left: int = 0  # must stay 0
    retried: Counter[str] = field(default_factory=Counter)


class Checker:
    def __init__(self, world: World, rng: random.Random) -> None:
        self.w = world
        self.rng = rng
        self.tally = CheckTally()

    # ----------------------------------------------------------- reads
    def _node(self) -> Node:
        live = self.w.topo.live()
        if not live:
            raise AssertionError("no node is up to check through")
        return self.rng.choice(live)

    def _retry(self, what: str, fn: Any, *args: Any, tries: int = 6, **kw: Any) -> Any:
        """A read the checker needs: retried on transport errors or 5xx (the daemon may
        still be settling after a restart), never on a wrong answer."""
        for attempt in range(tries):
            try:
                return fn(*args, **kw)
            except TRANSPORT as e:
                if outcome_of(e).value == "failed" or attempt == tries - 1:
                    raise AssertionError(f"check: {what} failed: {e!r}") from e
                self.tally.retried[type(e).__name__] += 1
                time.sleep(1.0 + attempt)
        raise AssertionError("unreachable")

    def check(self, *, deep: bool) -> None:
        node = self._node()
        s3 = self.w.topo.client(node)
        t = self.tally
        t.checks += 1
        for key, model in sorted(self.w.plain.items()):
            seen = self._retry(f"GET {PLAIN}/{key} via {node.name}", read_value, s3, PLAIN, key)
            model.observe(seen, f"check GET via {node.name}")
            t.keys_read += 1
            t.bytes_verified += seen.size if seen else 0
        rows = self._retry("LIST", list_plain, s3, PLAIN, "", page=self.rng.choice([3, 7, 1000]))
        observe_listing(self.w.plain, sorted(self.w.plain), rows, f"check LIST via {node.name}")
        t.listings += 1
        self._check_versions(s3, node, deep)
        self._check_uploads(s3, node)

    def _check_versions(self, s3: Any, node: Node, deep: bool) -> None:
        listed = self._retry("LIST versions", list_versions, s3, VERSIONED)
        unknown = set(listed) - set(self.w.versioned)
        if unknown:
            raise Violation(f"versions listed for keys never written: {sorted(unknown)[:5]}")
        t = self.tally
        t.listings += 1
        for key, model in sorted(self.w.versioned.items()):
            rows = listed.get(key, [])
            matched = model.observe(rows)
            latest = self._retry(f"GET {VERSIONED}/{key}", read_value, s3, VERSIONED, key)
            top = matched[0] if matched else None
            want = None if top is None or top.value is None else top.value
            if (latest is None) != (want is None) or (latest and want and not want.same(latest)):
                raise Violation(f"{key}: GET shows {latest.short() if latest else 'absent'} but "
                                f"the newest version listed is {top.short() if top else 'none'}")
            t.keys_read += 1
            t.bytes_verified += latest.size if latest else 0
            if not deep:
                continue
            for e in matched[1:]:
                if e.value is None:
                    continue
                got = self._retry(f"GET {key}?versionId={e.vid}", read_value, s3, VERSIONED, key,
                                  e.vid)
                if got is None or not e.value.same(got):
                    raise Violation(f"{key} version {e.vid}: reads "
                                    f"{got.short() if got else 'absent'}, wrote {e.value.short()}")
                t.versions_verified += 1
                t.bytes_verified += got.size

    def _check_uploads(self, s3: Any, node: Node) -> None:
        listed = self._retry("LIST uploads", list_uploads, s3, PLAIN)
        for wid, uploads in self.w.uploads.items():
            mine = {u: k for u, k in listed.items() if k.startswith(f"w{wid}/")}
            uploads.observe(mine)
        for uid, key in listed.items():
            self._retry(f"abort {uid[:12]}", s3.abort_multipart_upload, Bucket=PLAIN, Key=key,
                        UploadId=uid)
            self.tally.uploads_aborted += 1
        for uploads in self.w.uploads.values():
            uploads.certain.clear()
            uploads.maybe_ids.clear()
            uploads.maybe_keys.clear()

    # ---------------------------------------------------------------- GC
    def gc_check(self, window: float) -> dict[str, int]:
        """See module doc; the topology must be whole and no workload running."""
        topo = self.w.topo
        wait_whole(topo)
        time.sleep(window + 1.0)
        before = {n.name: gc_passes(topo, n) for n in topo.nodes}
        for n in topo.nodes:
            topo.admin(n, "POST", "gc/start")
        deadline = time.monotonic() + 180
        for n in topo.nodes:
            while gc_passes(topo, n) <= before[n.name]:
                if time.monotonic() > deadline:
                    raise AssertionError(f"GC pass on {n.name} did not finish in 180 s")
                time.sleep(0.3)
        referenced = self.referenced()
        files = topo.fragment_files()
        orphans = [p for p in files if p.name not in referenced]
        staging = topo.staging_files()
        self.tally.gc_checks += 1
        self.tally.orphans += len(orphans)
        self.tally.staging_left += len(staging)
        if orphans or staging:
            raise Violation(
                f"after GC (window {window:.0f}s): {len(orphans)} fragment files no version "
                f"references, e.g. {[str(p) for p in orphans[:3]]}; {len(staging)} staging "
                f"files left, e.g. {[str(p) for p in staging[:3]]}")
        return {"files": len(files), "referenced": len(referenced)}

    def referenced(self) -> set[str]:
        topo = self.w.topo
        node = topo.live()[0]
        ids: set[str] = set()
        for bucket, keys in ((PLAIN, self.w.plain), (VERSIONED, self.w.versioned)):
            for key in sorted(keys):
                doc = topo.admin(node, "GET", "object/inspect", bucket=bucket, key=key)
                for v in doc["versions"]:
                    ids.update(s["data_id"] for s in v["streams"])
        return ids


# ------------------------------------------------------------- helpers
def list_versions(s3: Any, bucket: str) -> dict[str, list[Listed]]:
    """key -> its versions and delete markers, newest first (all pages)."""
    out: dict[str, list[Listed]] = {}
    kw: dict[str, Any] = {"Bucket": bucket, "MaxKeys": 50}
    while True:
        r = s3.list_object_versions(**kw)
        for v in r.get("Versions", []):
            out.setdefault(v["Key"], []).append(
                Listed(v["VersionId"], False, v["Size"], v["ETag"].strip('"')))
        for m in r.get("DeleteMarkers", []):
            out.setdefault(m["Key"], []).append(Listed(m["VersionId"], True, 0, ""))
        if not r.get("IsTruncated"):
            break
        kw["KeyMarker"] = r["NextKeyMarker"]
        kw["VersionIdMarker"] = r["NextVersionIdMarker"]
    for rows in out.values():
        rows.sort(key=lambda r: r.vid, reverse=True)  # version ids are time-ordered hex
        if len({r.vid for r in rows}) != len(rows):
            raise Violation(f"a version id is listed twice: {[r.vid for r in rows]}")
    return out


def list_uploads(s3: Any, bucket: str) -> dict[str, str]:
    out: dict[str, str] = {}
    kw: dict[str, Any] = {"Bucket": bucket}
    while True:
        r = s3.list_multipart_uploads(**kw)
        for u in r.get("Uploads", []):
            out[u["UploadId"]] = u["Key"]
        if not r.get("IsTruncated"):
            return out
        kw["KeyMarker"] = r["NextKeyMarker"]
        kw["UploadIdMarker"] = r["NextUploadIdMarker"]


def gc_passes(topo: Topology, n: Node) -> int:
    return int(topo.admin(n, "GET", "repair/status")["workers"]["gc"]["passes_completed"])


def wait_whole(topo: Topology, timeout: float = 120.0) -> None:
    """Every node up and every drive online (the health loop re-probes every 5 s)."""
    deadline = time.monotonic() + timeout
    while True:
        states = []
        for n in topo.nodes:
            if not n.up:
                states.append(f"{n.name} down")
                continue
            try:
                info = topo.admin(n, "GET", "info")
            except Exception as e:  # noqa: BLE001 -- still starting: try again
                states.append(f"{n.name}: {e}")
                continue
            states += [f"{n.name}/{d.get('path')}: {d.get('state')}" for d in info.get("drives", [])
                       if d.get("state") != "online"]
        if not states:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"topology not whole after {timeout:.0f}s: {states[:6]}")
        time.sleep(0.5)
