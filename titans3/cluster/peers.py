"""Cluster formation from ``--peers`` and the heartbeat failure detector.

Theory of operation
-------------------
Every host is started with the same ``--peers A,B,C,...`` (peer API addresses,
its own included) and the same ``--cluster-secret``.  Start-up, after this
host's peer listener is up (``cluster/formation.py: form``):

1. **Handshake.**  Heartbeat every address, itself included, until all have
   answered (or ``cluster_wait`` runs out).  A heartbeat says who answers there
   (host id), which drives it has, and its erasure settings.  The address that
   answers with *our* host id is us; its drives are our LocalDrives.
2. **Agreement without a coordinator.**  The ring is a pure function of the
   member list (``titans3.ring.builder``): members are every host's drive slots
   ``<host id>/drive-<i>``, failure domain = host.  Every host sees the same
   answers, so every host builds the same ring -- no election, no ring
   exchange.  Hosts whose erasure settings differ refuse to form (a mixed
   cluster would write stripes the others cannot read).
3. **Membership is remembered** (``<state>/cluster.json``).  A host restarted
   while some peers are down cannot learn their drives from them, so it
   rebuilds the ring from the saved membership after a short wait instead of
   refusing to start; a host that never formed waits for everyone, because
   building a ring from a partial view would place data on a different ring
   from the others'.
4. **Store.**  An ObjectStore over LocalDrives + RemoteDrives, local first (so
   the roster's "healing" positions stay valid), with an uncached bucket table:
   other hosts write bucket records too (see ``objects/buckets.py``).

After start-up, :meth:`Cluster.run` heartbeats every peer each
``HEARTBEAT_INTERVAL``: a host that stops answering is marked down by its
:class:`~titans3.drive.remote.PeerClient` (its drives refuse calls at once),
and one that answers again comes back.  A call that fails between heartbeats
marks the host down on its own.

Join/remove of a running cluster, ring versions beyond 1 and the saved
cluster document that then replaces ``--peers``: :mod:`titans3.cluster.membership`.
"""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from titans3 import __version__
from titans3.cluster.scheme import default_scheme
from titans3.core import storageclass, tls
from titans3.core.config import Config
from titans3.core.crypto import write_atomic
from titans3.core.errors import ConfigError, DriveError
from titans3.drive.protocol import Drive
from titans3.drive.remote import PeerClient, Timeouts
from titans3.erasure.codec import ECScheme
from titans3.objects.buckets import BucketTable
from titans3.objects.store import ObjectStore
from titans3.objects.stragglers import Cutoff
from titans3.objects.versionid import HybridClock
from titans3.peer.auth import Signer
from titans3.ring.builder import Member, Ring, build_ring

if TYPE_CHECKING:
    from titans3.cluster.host import HostServices as Host

log = logging.getLogger(__name__)

HEARTBEAT_INTERVAL = 1.0
HANDSHAKE_POLL = 0.5
RESTART_WAIT = 10.0  # s a host with saved membership waits for absent peers
MEMBERSHIP_FILE = "cluster.json"


@dataclass(frozen=True, slots=True)
class HostEntry:
    address: str
    host_id: str
    drives: int


@dataclass(frozen=True, slots=True)
class ClusterStatistics:
    hosts: int
    hosts_online: int
    drives: int
    ring_version: int
    peers: tuple[Any, ...]  # PeerStatistics of every other host


def slot(host_id: str, index: int) -> str:
    return f"{host_id}/drive-{index}"


def ring_for(hosts: Sequence[HostEntry], n: int) -> Ring:
    """The ring every host derives from the same membership."""
    members = [Member(slot(h.host_id, i), h.host_id) for h in hosts for i in range(h.drives)]
    return build_ring(members, n)


def scheme_for(cfg: Config, host_drives: Sequence[int]) -> ECScheme:
    """``--ec`` if given, else the default for these hosts' drive counts
    (host failure as the unit: titans3.cluster.scheme)."""
    total_drives = sum(host_drives)
    ec = cfg.ec_scheme()
    if ec:
        if ec[0] + ec[1] > total_drives:
            raise ConfigError(f"ec: {cfg.ec} needs {ec[0] + ec[1]} drives, the cluster has {total_drives}")
        return ECScheme(ec[0], ec[1], cfg.segment_size)
    return default_scheme(host_drives, cfg.segment_size)


class Cluster:
    def __init__(self, cfg: Config, host: Host, *, timeouts: Timeouts | None = None) -> None:
        self.cfg = cfg
        self.host = host
        self.signer = Signer(cfg.cluster_secret, host.host_id)
        self.addresses = sorted(set(cfg.peer_list()))
        self._timeouts = timeouts
        # Called whenever any peer host comes back up (set before new_peer runs).
        self.on_peer_up: list[Callable[[], None]] = []
        self.peers: dict[str, PeerClient] = {a: self.new_peer(a) for a in self.addresses}
        self.self_address: str | None = None
        self.members: list[HostEntry] = []
        self.ring: Ring | None = None
        self._beat_now = trio.Event()

    def new_peer(self, address: str) -> PeerClient:
        """A client for the host at ``address``: make every PeerClient here, so
        each gets the cluster CA (TLS) and this host's source address."""
        peer = PeerClient(address, self.signer, timeouts=self._timeouts,
                          **tls.peer_client_options(self.cfg))
        peer.on_up.append(self._peer_up)
        return peer

    def _peer_up(self) -> None:
        for cb in self.on_peer_up:
            cb()

    @property
    def others(self) -> list[PeerClient]:
        return [p for a, p in self.peers.items() if a != self.self_address]

    # ------------------------------------------------------------ handshake
    async def handshake(self) -> list[HostEntry]:
        """Heartbeat every peer until all answered; then the membership."""
        saved = self._load_membership()
        wait = min(self.cfg.cluster_wait, RESTART_WAIT) if saved else self.cfg.cluster_wait
        deadline = trio.current_time() + wait
        answered: dict[str, dict[str, Any]] = {}
        last_log = 0.0
        while True:
            async with trio.open_nursery() as nursery:
                for a, p in self.peers.items():
                    if a not in answered:
                        nursery.start_soon(self._probe, p, answered)
            if len(answered) == len(self.peers):
                return self._membership(answered)
            missing = sorted(set(self.peers) - set(answered))
            if trio.current_time() >= deadline:
                if saved:
                    log.warning("peers %s did not answer; using the saved membership", ", ".join(missing))
                    self._identify_self(answered, saved)
                    return saved
                raise ConfigError(
                    f"peers: {', '.join(missing)} did not answer within {wait:.0f}s "
                    "(every host of a new cluster must be up to form it)"
                )
            if time.monotonic() - last_log > 10:
                log.info("waiting for peers %s", ", ".join(missing))
                last_log = time.monotonic()
            await trio.sleep(HANDSHAKE_POLL)

    async def _probe(self, peer: PeerClient, answered: dict[str, dict[str, Any]]) -> None:
        try:
            answered[peer.address] = await peer.heartbeat()
        except DriveError as e:
            log.debug("peer %s: %s", peer.address, e)

    def _identify_self(self, answered: dict[str, dict[str, Any]], entries: Sequence[HostEntry]) -> None:
        mine = [a for a, info in answered.items() if info["host_id"] == self.host.host_id]
        if not mine:
            mine = [e.address for e in entries if e.host_id == self.host.host_id]
        if len(mine) != 1:
            raise ConfigError(
                f"peers: this host ({self.host.host_id}) must appear exactly once in --peers "
                f"(its --peer-listen address); found {len(mine)}"
            )
        self.self_address = mine[0]

    def _membership(self, answered: dict[str, dict[str, Any]]) -> list[HostEntry]:
        self._identify_self(answered, [])
        ids = [info["host_id"] for info in answered.values()]
        if len(set(ids)) != len(ids):
            raise ConfigError("peers: two addresses answer with the same host id (copied state dir?)")
        for a, info in answered.items():
            theirs = (info.get("segment_size"), info.get("ec", ""))
            ours = (self.cfg.segment_size, self.cfg.ec)
            if theirs != ours:
                raise ConfigError(
                    f"peers: {a} runs with segment_size/ec {theirs}, this host with {ours}; "
                    "every host of a cluster needs the same erasure settings"
                )
        entries = sorted(
            (HostEntry(a, info["host_id"], len(info["drives"])) for a, info in answered.items()),
            key=lambda e: e.host_id,
        )
        self._save_membership(entries)
        return entries

    # ------------------------------------------------------------ membership file
    @property
    def _membership_path(self) -> Path:
        return self.cfg.state_path / MEMBERSHIP_FILE

    def _load_membership(self) -> list[HostEntry] | None:
        try:
            doc = json.loads(self._membership_path.read_text())
        except (OSError, ValueError):
            return None
        if sorted(doc.get("peers", [])) != self.addresses:
            return None  # a different --peers: the saved view does not apply
        return [HostEntry(h["address"], h["host_id"], int(h["drives"])) for h in doc["hosts"]]

    def _save_membership(self, entries: Sequence[HostEntry]) -> None:
        doc = {"peers": self.addresses, "hosts": [
            {"address": e.address, "host_id": e.host_id, "drives": e.drives} for e in entries]}
        self.cfg.state_path.mkdir(parents=True, exist_ok=True)
        write_atomic(self._membership_path, json.dumps(doc, indent=1).encode() + b"\n", mode=0o644)

    # ------------------------------------------------------------ store
    def build_store(self, members: Sequence[HostEntry]) -> ObjectStore:
        """ObjectStore over this host's LocalDrives and every peer's RemoteDrives."""
        host = self.host
        local: list[Drive] = list(host.drives)
        drives: list[Drive] = list(local)
        slots = [slot(host.host_id, i) for i in range(len(local))]
        for e in members:
            if e.host_id == host.host_id:
                if e.drives != len(local):
                    raise ConfigError(f"drives: this host has {len(local)} drives, the cluster "
                                      f"membership says {e.drives}")
                continue
            peer = self.peers[e.address]
            peer.host_id = peer.host_id or e.host_id
            for i in range(e.drives):
                drives.append(peer.drive(i))
                slots.append(slot(e.host_id, i))
        scheme = scheme_for(self.cfg, [e.drives for e in members])
        self.members = list(members)
        self.ring = ring_for(members, scheme.n)
        clock = HybridClock()
        store = ObjectStore(
            drives, self.ring, scheme, clock=clock, inline_max=self.cfg.inline_max,
            host=socket.gethostname(), version=__version__, slots=slots,
        )
        store.healing = set(host.store.healing)  # local positions: unchanged
        store.admission = host.store.admission  # one budget per host (objects/admission.py)
        store.storage_classes = storageclass.for_placement(self.cfg.storage_classes, scheme.n)
        store.committer.cutoff = Cutoff(self.cfg.write_cutoff)
        store.buckets = BucketTable(store.drives, clock, cache=False)
        return store

    # ------------------------------------------------------------ failure detector
    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Heartbeat every other host forever."""
        task_status.started()
        while True:
            async with trio.open_nursery() as nursery:
                for p in self.others:
                    nursery.start_soon(self._beat, p)
            with trio.move_on_after(HEARTBEAT_INTERVAL):
                await self._beat_now.wait()
            self._beat_now = trio.Event()

    def beat_now(self) -> None:
        """Heartbeat every peer at once (a directory change to spread)."""
        self._beat_now.set()

    async def _beat(self, peer: PeerClient) -> None:
        iam = self.host.iam
        try:
            await peer.heartbeat({"iam": iam.generation} if iam is not None and iam.generation else None)
        except DriveError as e:
            peer.mark_down(str(e))
            return
        if iam is not None:  # the answer carries the peer's generation: the other direction
            iam.observe(str((peer.info or {}).get("iam", "")))

    def statistics(self) -> ClusterStatistics:
        others = self.others
        return ClusterStatistics(
            hosts=len(self.peers),
            hosts_online=1 + sum(p.online for p in others),
            drives=sum(e.drives for e in self.members),
            ring_version=self.ring.version if self.ring else 0,
            peers=tuple(p.statistics() for p in others),
        )

    async def aclose(self) -> None:
        for p in self.peers.values():
            await p.aclose()
