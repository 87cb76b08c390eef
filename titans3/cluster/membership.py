"""Membership changes: the replicated cluster document, join and remove.

Theory of operation
-------------------
**The cluster document** is one small JSON value: ``version`` (= the ring's
version), ``hosts`` (address, host id, drive count), ``ring`` (the full table,
:func:`titans3.ring.evolve.ring_to_doc`), ``old_ring`` (the previous ring while
a move runs, else ``null``), ``ec`` (the cluster's erasure scheme, so a joined
host uses the same one whatever its own drive count says), ``leaving`` (hosts
being drained) and ``coordinator`` (the host that made the change and runs its
rebalance).  It is saved in ``<state>/cluster.json`` under ``"document"``; once
it exists it -- not ``--peers`` -- says who the cluster is, also after a
restart.  A cluster formed from ``--peers`` has no document until its first
change: its ring is the pure function of the membership, version 1.

Why a document pushed to every host and not a quorum system record: a ring
change is rare and made by one operator command on one host, which builds the
next ring (pure, from the current one) and pushes it to every host over the
peer API (``POST /peer/v1/cluster/ring``); a host adopts a document only if its
version is newer, so a repeated or reordered push is harmless.  Every host
saves it before it is used.

**A change** (join or remove) publishes ``version + 1`` with ``old_ring`` =
the current ring.  Writes go to the new ring at once; reads also ask the old
ring's drives (``ObjectStore.old_ring``).  The coordinator's rebalancer
(:mod:`titans3.workers.rebalance`) copies fragments and records of every key
whose partition changed; when it reports the epoch done, the coordinator
publishes the next epoch if the target is not reached (at most ``m`` fragments
of a partition move per epoch), else a final document: ``old_ring = null``,
the leaving hosts dropped.  A removed host keeps running until stopped, but a
restart refuses to serve (it is not in the document).

**Joining.**  The new host runs with the cluster's ``--cluster-secret`` and no
``--peers`` (or only its own address): it serves only its own drives to signed
peers.  ``titanctl cluster join ADDR`` on any member heartbeats ``ADDR`` (who,
which drives, which erasure settings), builds the next ring and publishes it
to every member *and* the new host.  The new host turns its running store into
the cluster's in place (the S3 front and the workers hold that store object):
its drives get cluster slot names, the others' RemoteDrives are appended, and
ring, scheme and bucket table switch.

**One change at a time.**  Every new document (join, remove, next epoch,
retirement, takeover) is built only under a majority lease on the current
version (:mod:`titans3.cluster.changelock`), so two operators running ``join`` on
two hosts at once get one change and one ``ClusterChangeRefused``, never two
documents with the same version.  A refusal from a host that already has a
newer document carries that document, and the asking host adopts it.

**Coordinator failover.**  If the coordinator of a running change has been
unreachable for ``failover_after`` seconds, the first host (by address) of
the remaining members that is up takes the change over: under a lease it
publishes the same rings as version ``v + 1`` with itself as coordinator, and
its rebalancer walks the keys again (moving is idempotent; keys already moved
are skipped).  A coordinator that restarts re-confirms its document with a
lease before its rebalancer moves anything; if someone took over it learns
the newer document from the refusals instead.

Known gap: a host that misses a push (down at that moment) learns the change
when the coordinator's retry loop reaches it, or when it asks for a lease.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import trio

from titans3.cluster.leases import ClusterChangeRefused, Leases
from titans3.cluster.scheme import default_scheme, survives_host_down
from titans3.core import storageclass
from titans3.core.crypto import write_atomic
from titans3.core.errors import ConfigError, DriveError
from titans3.drive.protocol import Drive
from titans3.drive.wire import pack, unpack
from titans3.erasure.codec import ECScheme
from titans3.objects.buckets import BucketTable
from titans3.ring.builder import Member, Ring
from titans3.ring.evolve import converged, next_ring, ring_from_doc, ring_to_doc

if TYPE_CHECKING:
    from titans3.cluster.host import HostServices as Host
    from titans3.cluster.peers import Cluster, HostEntry
    from titans3.objects.store import ObjectStore

log = logging.getLogger(__name__)

DOC_KEY = "document"
PUSH_TARGET = "/peer/v1/cluster/ring"
RETRY_PUSH = 5.0  # s between pushes to hosts that missed the current document


# ------------------------------------------------------------------ document helpers
def hosts_of(doc: dict[str, Any]) -> list[HostEntry]:
    from titans3.cluster.peers import HostEntry

    return [HostEntry(h["address"], h["host_id"], int(h["drives"])) for h in doc["hosts"]]


def hosts_doc(entries: Sequence[HostEntry]) -> list[dict[str, Any]]:
    return [{"address": e.address, "host_id": e.host_id, "drives": e.drives}
            for e in sorted(entries, key=lambda e: e.host_id)]


def members_of(entries: Sequence[HostEntry]) -> list[Member]:
    from titans3.cluster.peers import slot

    return [Member(slot(h.host_id, i), h.host_id) for h in entries for i in range(h.drives)]


def load_doc(state_path: Any) -> dict[str, Any] | None:
    from titans3.cluster.peers import MEMBERSHIP_FILE

    try:
        saved = json.loads((state_path / MEMBERSHIP_FILE).read_text())
    except (OSError, ValueError):
        return None
    doc = saved.get(DOC_KEY)
    return doc if isinstance(doc, dict) else None


def save_doc(state_path: Any, doc: dict[str, Any]) -> None:
    from titans3.cluster.peers import MEMBERSHIP_FILE

    path = state_path / MEMBERSHIP_FILE
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        saved = {}
    saved[DOC_KEY] = doc
    saved["peers"] = sorted(h["address"] for h in doc["hosts"])
    saved["hosts"] = doc["hosts"]
    state_path.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(saved).encode() + b"\n", mode=0o644)


def scheme_of(doc: dict[str, Any]) -> ECScheme:
    k, m, seg = doc["ec"]
    return ECScheme(int(k), int(m), int(seg))


def rederive(current: ECScheme, hosts: Sequence[HostEntry], *, explicit: bool, ring_n: int) -> ECScheme:
    """The scheme after a join: ``current`` while it keeps the cluster readable
    and writable with one host down (so a grown cluster can shrink back and old
    data is not re-laid), else the default for the new hosts -- unless the
    operator set ``ec``, or the default is narrower than the ring (a ring never
    narrows, and a narrower scheme would use only a prefix of each row, whose
    spread over hosts moves do not keep).  Only new writes use it; objects keep
    the scheme in their records (titans3.cluster.scheme)."""
    drives = [e.drives for e in hosts]
    if explicit or survives_host_down(current, drives):
        return current
    new = default_scheme(drives, current.segment_size)
    if new.n < ring_n:
        log.warning("EC %d+%d cannot survive a host down on %d hosts, and the default %d+%d is "
                    "narrower than the ring: kept (add hosts, or set ec)", current.k, current.m,
                    len(drives), new.k, new.m)
        return current
    return new


# ------------------------------------------------------------------ wiring a store
def wire_store(cluster: Cluster, store: ObjectStore, doc: dict[str, Any]) -> None:
    """Make ``store`` (in place) the cluster's store for ``doc``."""
    from titans3.cluster.peers import slot

    host = cluster.host
    entries = hosts_of(doc)
    local = len(host.drives)
    mine = [slot(host.host_id, i) for i in range(local)]
    if store.slots[:local] != mine:  # a standalone store joining: local drives get cluster slots
        store.slots[:local] = mine
        store._by_id = {s: i for i, s in enumerate(store.slots)}
    store.scheme = scheme_of(doc)  # the cluster's, whatever this host's drive count says
    drives: list[Drive] = []
    slots: list[str] = []
    for e in entries:
        if e.address not in cluster.peers:
            cluster.peers[e.address] = cluster.new_peer(e.address)
        if e.host_id == host.host_id:
            cluster.self_address = e.address
            continue
        peer = cluster.peers[e.address]
        peer.host_id = peer.host_id or e.host_id
        for i in range(e.drives):
            if slot(e.host_id, i) not in store._by_id:
                drives.append(peer.drive(i))
                slots.append(slot(e.host_id, i))
    members = {e.address for e in entries}
    for address in [a for a in cluster.peers if a not in members]:
        # A host that left: no more heartbeats; its drives (kept in the list so
        # positions stay stable) refuse calls at once instead of timing out.
        cluster.peers.pop(address).mark_down("removed from the cluster")
    cluster.addresses = sorted(cluster.peers)
    if drives:
        store.add_drives(drives, slots)
        store.buckets = BucketTable(store.drives, store.clock, cache=False)
    new_ring = ring_from_doc(doc["ring"])
    store.old_ring = ring_from_doc(doc["old_ring"]) if doc.get("old_ring") else None
    store.ring = new_ring
    cluster.ring = new_ring
    cluster.members = entries


def initial_doc(cluster: Cluster, store: ObjectStore) -> dict[str, Any]:
    sch = store.scheme
    return {
        "version": store.ring.version, "hosts": hosts_doc(cluster.members),
        "ring": ring_to_doc(store.ring), "old_ring": None, "ec": [sch.k, sch.m, sch.segment_size],
        "leaving": [], "coordinator": None,
    }


async def resume(cluster: Cluster, doc: dict[str, Any]) -> ObjectStore:
    """Start-up with a saved document: the store it describes (no handshake)."""
    import socket

    from titans3 import __version__
    from titans3.objects.store import ObjectStore
    from titans3.objects.versionid import HybridClock

    host = cluster.host
    if not any(h["host_id"] == host.host_id for h in doc["hosts"]):
        raise ConfigError("this host was removed from the cluster (see <state>/cluster.json)")
    if any(h["host_id"] == host.host_id for h in doc.get("leaving", [])) and not doc.get("old_ring"):
        raise ConfigError("this host was removed from the cluster")
    for p in cluster.peers.values():  # --peers' clients: the document names the hosts now
        await p.aclose()
    cluster.peers = {}
    store = ObjectStore(
        list(host.drives), ring_from_doc(doc["ring"]), scheme_of(doc), clock=HybridClock(),
        inline_max=cluster.cfg.inline_max, host=socket.gethostname(), version=__version__,
        slots=[d.drive_id for d in host.drives],
    )
    store.healing = set(host.store.healing)
    store.admission = host.store.admission  # one budget per host (objects/admission.py)
    store.storage_classes = storageclass.for_placement(cluster.cfg.storage_classes,
                                                       store.ring.n)
    store.committer.cutoff = host.store.committer.cutoff
    wire_store(cluster, store, doc)
    store.buckets = BucketTable(store.drives, store.clock, cache=False)
    return store


# ------------------------------------------------------------------ the manager
class Membership:
    """This host's view of the document; join/remove when it coordinates."""

    def __init__(self, cluster: Cluster, doc: dict[str, Any]) -> None:
        self.cluster = cluster
        self.host = cluster.host
        self.doc = doc
        self.lock = trio.Lock()
        self.changed = trio.Event()  # set on every adopted document (the rebalancer waits)
        self.push_errors: list[str] = []
        # The rebalancer starts only once every reachable host has the document:
        # until then some host still reads only the old placement, whose copies
        # the rebalancer frees.  A saved document was published before it was saved.
        self.published = int(doc["version"])
        self.leases = Leases(cluster, self)  # the change lease (cluster/leases.py)
        # The version this process built or re-confirmed: a coordinator's
        # rebalancer runs only then (a restarted one may have been replaced).
        self.confirmed = -1
        self._coordinator_down_since: float | None = None
        self.takeovers = 0

    @property
    def version(self) -> int:
        return int(self.doc["version"])

    @property
    def me(self) -> str:
        return self.cluster.self_address or self.host.host_id

    @property
    def coordinating(self) -> bool:
        return (bool(self.doc.get("old_ring")) and self.published == self.version
                and self.confirmed == self.version and self.doc.get("coordinator") == self.me)

    def _notify(self) -> None:
        self.changed.set()
        self.changed = trio.Event()

    async def adopt(self, doc: dict[str, Any]) -> bool:
        """Take ``doc`` if it is newer than ours; True if it was."""
        async with self.lock:
            if int(doc["version"]) <= self.version:
                return False
            base = doc.get("base")
            if base is not None and not self.leases.change_lock.admits(doc.get("made_by"), int(base),
                                                                trio.current_time()):
                lease = self.leases.change_lock.lease
                raise ValueError(f"version {base} is leased to {lease.holder if lease else '?'}, "
                                 f"not to {doc.get('made_by')}")
            ring_from_doc(doc["ring"])  # validate before anything changes
            save_doc(self.host.config.state_path, doc)
            wire_store(self.cluster, self.host.store, doc)
            self.doc = doc
        log.info("cluster document version %d adopted: %d hosts%s", self.version, len(doc["hosts"]),
                 ", moving" if doc.get("old_ring") else "")
        self._notify()
        return True

    async def publish(self, doc: dict[str, Any], also: Sequence[str] = ()) -> list[str]:
        """Adopt ``doc`` here and push it to every host; the addresses that failed.
        Call it only under ``leases.changing()`` (the lease)."""
        await self.adopt(doc)
        self.confirmed = int(doc["version"])
        targets = sorted({h["address"] for h in doc["hosts"]} | set(also)
                         | {h["address"] for h in doc.get("leaving", [])}
                         - {self.cluster.self_address or ""})
        self.push_errors = await self._push(doc, targets)
        self.published = max(self.published, int(doc["version"]))
        return self.push_errors

    async def _push(self, doc: dict[str, Any], targets: Sequence[str]) -> list[str]:
        failed: list[str] = []
        body = pack(doc)

        async def push(address: str) -> None:
            peer = self.cluster.peers.get(address)
            temporary = peer is None  # a host that left: one call, then close
            if peer is None:
                peer = self.cluster.new_peer(address)
            try:
                resp = await peer._send("POST", PUSH_TARGET, body)
                if resp.status_code != 200:
                    raise DriveError(address, f"HTTP {resp.status_code}")
            except DriveError as e:
                log.warning("cluster document %d not delivered to %s: %s", doc["version"], address, e)
                failed.append(address)
            finally:
                if temporary:
                    await peer.aclose()

        async with trio.open_nursery() as nursery:
            for a in targets:
                nursery.start_soon(push, a)
        return failed

    async def run(self) -> None:
        """Push the current document again to hosts that missed it (down at the
        time), until each has taken it -- also the retirement of an old ring;
        re-confirm or take over a running change (module notes)."""
        while True:
            await trio.sleep(RETRY_PUSH if not self.doc.get("old_ring") else 1.0)
            if self.push_errors:
                missed = list(self.push_errors)
                self.push_errors = await self._push(self.doc, missed)
                for a in sorted(set(missed) - set(self.push_errors)):
                    log.info("cluster document %d delivered to %s", self.version, a)
            try:
                await self._watch_change()
            except ClusterChangeRefused as e:
                log.info("ring change %d: %s", self.version, e)

    async def _watch_change(self) -> None:
        doc = self.doc
        if not doc.get("old_ring"):
            self._coordinator_down_since = None
            return
        coordinator = doc.get("coordinator")
        if coordinator == self.me:
            if self.confirmed != self.version:  # restarted mid-change: still ours?
                version = self.version
                await self.leases.confirm()
                self.confirmed = version
                log.info("ring change %d: re-confirmed as its coordinator", version)
            return
        peer = self.cluster.peers.get(coordinator or "")
        now = trio.current_time()
        if peer is not None and peer.online:
            self._coordinator_down_since = None
            return
        if self._coordinator_down_since is None:
            self._coordinator_down_since = now
        if now - self._coordinator_down_since < self.host.config.failover_after:
            return
        leaving = {h["address"] for h in doc.get("leaving", [])}
        candidates = sorted(
            h["address"] for h in doc["hosts"]
            if h["address"] not in leaving and h["address"] != coordinator and (
                h["address"] == self.me or getattr(self.cluster.peers.get(h["address"]), "online", False))
        )
        if not candidates or candidates[0] != self.me:
            return
        async with self.leases.changing():
            ring = ring_from_doc(self.doc["ring"])
            ring = replace(ring, version=ring.version + 1)
            log.warning("ring change %d: coordinator %s unreachable for %.0f s; %s takes over",
                        self.version, coordinator, now - self._coordinator_down_since, self.me)
            await self.publish({**self.doc, "version": ring.version, "ring": ring_to_doc(ring),
                                "coordinator": self.me, **self._stamp()})
            self.takeovers += 1
            self._coordinator_down_since = None

    def _stamp(self) -> dict[str, Any]:
        """Who built the next document, on which version (checked by adopters)."""
        return {"base": self.version, "made_by": self.me}

    def _moves(self) -> int:
        """Fragment positions a partition may move per epoch: the smallest ``m``
        the cluster has written with (``move_m``, kept when the scheme changed)."""
        return int(self.doc.get("move_m") or self.doc["ec"][1]) or 1

    def _next(self, ring: Ring, target: Sequence[HostEntry], n: int | None = None,
              **extra: Any) -> dict[str, Any]:
        new = next_ring(ring, members_of(target), max_moves=self._moves(), n=n)
        return {**self.doc, "version": new.version, "ring": ring_to_doc(new),
                "old_ring": ring_to_doc(ring), "coordinator": self.me, **self._stamp(), **extra}

    def _check_idle(self) -> None:
        if self.doc.get("old_ring"):
            raise ClusterChangeRefused(
                f"ring version {self.version} is still being rebalanced; wait until it completes")

    async def join(self, address: str) -> dict[str, Any]:
        from titans3.cluster.peers import HostEntry

        self._check_idle()
        if any(h["address"] == address for h in self.doc["hosts"]):
            raise ClusterChangeRefused(f"{address} is already a member")
        probe = self.cluster.peers.get(address) or self.cluster.new_peer(address)
        try:
            info = await probe.heartbeat()
        except DriveError as e:
            await probe.aclose()
            raise ClusterChangeRefused(f"{address} does not answer signed heartbeats: {e}") from e
        if info.get("segment_size") != self.host.config.segment_size:
            raise ClusterChangeRefused(f"{address} runs with another segment_size")
        if any(h["host_id"] == info["host_id"] for h in self.doc["hosts"]):
            raise ClusterChangeRefused(f"{address} answers as host {info['host_id']}, already a member")
        if not info.get("drives"):
            raise ClusterChangeRefused(f"{address} has no drives")
        self.cluster.peers[address] = probe
        async with self.leases.changing():
            self._check_idle()
            if any(h["address"] == address for h in self.doc["hosts"]):
                raise ClusterChangeRefused(f"{address} is already a member")
            hosts = [*hosts_of(self.doc), HostEntry(address, info["host_id"], len(info["drives"]))]
            ring = ring_from_doc(self.doc["ring"])
            scheme = rederive(scheme_of(self.doc), hosts, explicit=bool(self.host.config.ec),
                              ring_n=ring.n)
            extra: dict[str, Any] = {}
            if scheme != scheme_of(self.doc):
                log.info("cluster scheme %d+%d -> %d+%d for %d hosts (new writes; objects keep theirs)",
                         *self.doc["ec"][:2], scheme.k, scheme.m, len(hosts))
                extra = {"ec": [scheme.k, scheme.m, scheme.segment_size],
                         "move_m": min(self._moves(), scheme.m or 1)}
            doc = self._next(ring, hosts, scheme.n, hosts=hosts_doc(hosts),
                             leaving=[], **extra)
            await self.publish(doc)
        return self.summary()

    async def remove(self, ref: str) -> dict[str, Any]:
        self._check_idle()
        async with self.leases.changing():
            self._check_idle()
            entries = hosts_of(self.doc)
            gone = [e for e in entries if ref in (e.address, e.host_id)]
            if not gone:
                raise ClusterChangeRefused(f"{ref} is not a member (give its peer address or host id)")
            rest = [e for e in entries if e not in gone]
            need = int(self.doc["ring"]["n"])
            if sum(e.drives for e in rest) < need or len(rest) < 1:
                raise ClusterChangeRefused(f"without {ref} the cluster has fewer than {need} drives")
            doc = self._next(ring_from_doc(self.doc["ring"]), rest, leaving=hosts_doc(gone))
            await self.publish(doc)
        return self.summary()

    async def epoch_done(self, version: int) -> None:
        """The rebalancer moved everything of ring ``version``: next epoch, or retire."""
        if version != self.version or not self.doc.get("old_ring"):
            return
        try:
            async with self.leases.changing():
                if version != self.version:
                    return
                await self._next_epoch()
        except ClusterChangeRefused as e:  # the rebalancer runs the epoch again and retries
            log.warning("ring change %d: next epoch not published: %s", version, e)

    async def _next_epoch(self) -> None:
        leaving = {h["host_id"] for h in self.doc.get("leaving", [])}
        target = [e for e in hosts_of(self.doc) if e.host_id not in leaving]
        ring = ring_from_doc(self.doc["ring"])
        if not converged(ring, members_of(target), max_moves=self._moves()):
            await self.publish(self._next(ring, target))
            return
        final = replace(ring, version=ring.version + 1)
        doc = {**self.doc, "version": final.version, "ring": ring_to_doc(final), "old_ring": None,
               "hosts": hosts_doc(target), "leaving": [], "coordinator": None, **self._stamp()}
        await self.publish(doc, also=[h["address"] for h in self.doc.get("leaving", [])])
        log.info("ring change complete: version %d, %d hosts", final.version, len(target))

    def summary(self) -> dict[str, Any]:
        d = self.doc
        return {"version": d["version"], "moving": bool(d.get("old_ring")),
                "old_version": d["old_ring"]["version"] if d.get("old_ring") else None,
                "hosts": d["hosts"], "leaving": d.get("leaving", []),
                "coordinator": d.get("coordinator"), "ec": d["ec"], "push_errors": self.push_errors,
                "takeovers": self.takeovers}


def membership_of(host: Host) -> Membership | None:
    cluster = host.workers.get("cluster")
    return getattr(cluster, "membership", None)


def lease_request(host: Host, raw: bytes) -> dict[str, Any]:
    """The peer route: a change-lease request (refused by a host outside a cluster)."""
    ms = membership_of(host)
    if ms is None:
        raise ValueError("this host is not a cluster member")
    return ms.leases.grant(raw)


async def receive(host: Host, raw: bytes) -> dict[str, Any]:
    """The peer route: a pushed document.  A standalone host becomes a member."""
    doc = unpack(raw)
    if not isinstance(doc, dict) or "ring" not in doc or "hosts" not in doc:
        raise ValueError("not a cluster document")
    ms = membership_of(host)
    if ms is None:
        ms = await _become_member(host, doc)
    adopted = await ms.adopt(doc)
    return {"version": ms.version, "adopted": adopted}


async def _become_member(host: Host, doc: dict[str, Any]) -> Membership:
    from titans3.cluster.peers import Cluster

    if not any(h["host_id"] == host.host_id for h in doc["hosts"]):
        raise ValueError("the document does not name this host")
    store = host.store
    if await store.buckets.list():
        raise ValueError("a host that holds buckets cannot join a cluster")
    cluster = Cluster(host.config, host)
    for p in cluster.peers.values():
        await p.aclose()
    cluster.peers = {}
    seed_doc = {**doc, "version": 0}
    ms = Membership(cluster, seed_doc)
    cluster.membership = ms  # type: ignore[attr-defined]
    host.workers["cluster"] = cluster
    nursery = store._background
    if nursery is not None:  # heartbeats: the store's own long-lived nursery
        nursery.start_soon(cluster.run)
        nursery.start_soon(ms.run)
    log.info("joining the cluster as %s", host.host_id)
    return ms
