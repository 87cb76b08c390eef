"""``titans3 serve``: one trio process per host, everything in one nursery.

Theory of operation
-------------------
Start-up order matters and is linear: allocator tuning (before any large
buffer exists), configuration, drives (opened, never silently skipped: a drive
that cannot open is kept and marked offline so the operator sees it), ring and
erasure scheme, object store, then the listeners.  Every listener is a
hypercorn ``serve`` in the same nursery with one shared shutdown trigger.

Shutdown: SIGTERM or SIGINT sets the trigger; hypercorn stops accepting new
connections, and in-flight requests get up to ``shutdown_grace`` seconds.  We
count in-flight requests ourselves (:class:`Inflight`) and stop the servers as
soon as none is left: hypercorn 0.18 would otherwise hold an idle keep-alive
connection open for the whole grace period.  Then the drives close (LMDB
synced and closed) and the process exits 0.  A second signal cancels what is
left at once.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio
from hypercorn.config import Config as HyperConfig
from hypercorn.trio import serve

from titans3 import __version__
from titans3.accounts.register import SYSTEM, SystemTable
from titans3.core import connlimit, gctune, http11, journal, listeners, recvgate, storageclass, tls
from titans3.core.alloc import patch_hypercorn_recv, tune_malloc
from titans3.core.config import Config, parse_hostport
from titans3.core.credentials import Credentials, load_root_credentials
from titans3.core.crypto import cluster_sealing_keys, load_or_create_master_key, write_atomic
from titans3.core.errors import ConfigError, DriveError
from titans3.core.sdnotify import Notifier
from titans3.disks import directories
from titans3.disks.policy import FailureWatch
from titans3.disks.roster import Roster
from titans3.drive.local import LocalDrive
from titans3.drive.protocol import DriveState
from titans3.erasure.codec import ECScheme
from titans3.front.supervisor import Fronts, owner_service, process_count, shared_limits
from titans3.objects.admission import from_config as write_admission
from titans3.objects.kms import BuiltinKMS
from titans3.objects.store import ObjectStore
from titans3.objects.stragglers import Cutoff
from titans3.objects.versionid import HybridClock
from titans3.ring.builder import Member, build_ring
from titans3.runtime import run_workers

log = logging.getLogger("titans3")

HEALTH_INTERVAL = 5.0


class Inflight:
    """Counts HTTP requests being served, across every listener."""

    def __init__(self) -> None:
        self.active = 0
        self.also: list[Callable[[], int]] = []  # more to wait for (S3 front processes alive)

    def wrap(self, app: Any) -> Callable[..., Any]:
        async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            self.active += 1
            try:
                await app(scope, receive, send)
            finally:
                self.active -= 1

        return asgi

    async def drain(self, shutdown: trio.Event, scope: trio.CancelScope, grace: float) -> None:
        """After ``shutdown``: wait for in-flight requests (at most ``grace``
        seconds), then cancel ``scope`` -- the servers and their idle connections."""
        await shutdown.wait()
        with trio.move_on_after(grace):
            while self.active or any(n() for n in self.also):
                await trio.sleep(0.05)
        if self.active:
            log.warning("%d requests still running after %.0fs; stopping anyway", self.active, grace)
        scope.cancel()


@dataclass
class Host:
    """Everything one daemon runs; what the fronts and workers are handed."""

    config: Config
    credentials: Credentials
    drives: list[LocalDrive]
    store: ObjectStore
    started_ns: int
    roster: Roster | None = None
    workers: dict[str, Any] = field(default_factory=dict)
    host_id: str = ""
    disks: Any = None  # titans3.disks.manager.DiskManager with --disks
    nbd: Any = None  # titans3.nbd.service.VolumeService once the NBD gateway runs
    volumes: Any = None  # titans3.nbd.operations.VolumeOperations (the admin API calls it)
    peer_service: Any = None  # the peer listener's state (set by create_peer_app)
    iam: Any = None  # titans3.accounts.directory.Directory: users and keys
    audit: Any = None  # titans3.accounts.audit.AuditLog
    kms: Any = None  # the key manager (objects/kms.py); every store the host builds gets it
    fronts: Any = None  # titans3.front.supervisor.Fronts with s3_processes > 1

    def __setattr__(self, name: str, value: Any) -> None:
        # The cluster layer replaces the store when a cluster forms or changes:
        # the new one must encrypt and decrypt with the same key manager.
        object.__setattr__(self, name, value)
        if name == "store" and getattr(self, "kms", None) is not None:
            value.kms = self.kms
        elif name == "kms" and getattr(self, "store", None) is not None:
            self.store.kms = value

    async def info(self) -> Any:
        """``HostInfo`` for the admin API, whose backend is the host (it needs the workers too)."""
        return await self.store.info()


def hyper_config(bind: str, *, grace: float, name: str, tls_settings: dict[str, Any] | None = None,
                 sock: socket.socket | None = None, cfg: Config | None = None) -> HyperConfig:
    """``sock``: a socket :func:`bind_listeners` bound; ``cfg``: its limits (timeouts, connections)."""
    host, port = parse_hostport(bind, name)
    hc = HyperConfig()
    for key, value in (tls_settings or {}).items():  # certfile/keyfile/ca_certs/verify_mode (core/tls.py)
        setattr(hc, key, value)
    hc.bind = [listeners.hypercorn_bind(sock) if sock is not None
               else f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    hc.graceful_timeout = grace
    hc.keep_alive_timeout = cfg.idle_timeout if cfg else 75.0  # also bounds a request head
    if cfg is not None:
        hc.titans3_gate = connlimit.ConnectionGate(cfg.max_connections, name)  # type: ignore[attr-defined]
    hc.accesslog = None
    hc.errorlog = logging.getLogger(f"titans3.http.{name}")
    hc.h11_max_incomplete_size = 64 * 1024
    if cfg is not None:  # what a body not yet admitted may hold (objects/admission.py)
        hc.max_app_queue_size = cfg.http_body_queue
        if name == "s3":
            hc.titans3_recv_narrow = recvgate.NARROW_RECV  # type: ignore[attr-defined]
    hc.read_timeout = None
    hc.backlog = 1024
    hc.include_server_header = False  # the S3 app sends "Server: TitanS3"
    return hc


LISTENERS = {"peer": "the peer API", "s3": "the S3 API", "web": "the status page"}


def bind_listeners(cfg: Config) -> dict[str, socket.socket]:
    """Every listener's socket, bound now: a taken port is one ConfigError line."""
    socks: dict[str, socket.socket] = {}
    try:
        shared = process_count(cfg.s3_processes) > 1  # front processes bind it too (titans3/front/)
        for name, addr in (("peer", cfg.peer_listen), ("s3", cfg.listen), ("web", cfg.web_listen)):
            socks[name] = listeners.bind(addr, LISTENERS[name], send_timeout=cfg.send_timeout,
                                         reuse_port=shared and name == "s3", probe=shared and name == "s3")
    except ConfigError:
        for s in socks.values():
            s.close()
        raise
    return socks


def guarded(app: Any, cfg: Config) -> Any:
    """The ASGI chain's outermost layer: a stalled request body gets 400 RequestTimeout."""
    from titans3.core.stall import StallGuard

    return StallGuard(app, cfg.body_timeout, cfg.body_min_rate)


def scheme_for(cfg: Config) -> ECScheme:
    ec = cfg.ec_scheme()
    # In a cluster, --ec counts every host's drives; the local store built
    # before the cluster forms (and replaced by it) uses what this host has.
    if ec and not (cfg.peers and ec[0] + ec[1] > cfg.drives):
        return ECScheme(ec[0], ec[1], cfg.segment_size)
    return ECScheme.for_drive_count(cfg.drives, segment_size=cfg.segment_size)


async def open_drives(cfg: Config) -> list[LocalDrive]:
    """Open every configured drive.  One that cannot open stays in the list,
    offline, so it is visible to the operator and re-probed by the health loop."""
    drives: list[LocalDrive] = []
    if cfg.fault_injection:
        log.warning("fault injection is on: drives obey <drive>/titans3-faults.json (tests only)")
    for path in cfg.drive_paths():
        d = LocalDrive(path, create=True, threads=cfg.drive_threads,
                       fault_injection=cfg.fault_injection)
        try:
            await d.open()
        except DriveError as e:
            log.error("drive %s cannot be opened, keeping it offline: %s", path, e)
        drives.append(d)
    return drives


def host_id(state_dir: Path) -> str:
    """A stable id for this host (ring slots are named after it, not the hostname)."""
    path = state_dir / "host-id"
    if path.exists():
        return path.read_text().strip()
    hid = secrets.token_hex(6)
    state_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(path, hid.encode() + b"\n", mode=0o644)
    return hid


async def build_host(cfg: Config) -> Host:
    creds = load_root_credentials(cfg.state_path, cfg.root_access_key, cfg.root_secret_key)
    hid = host_id(cfg.state_path)
    disks = None
    if cfg.disks:  # raw disks (titans3/disks/): as many drives as disks were found
        from titans3.disks.manager import open_disks

        disks, drives, cfg = await open_disks(cfg, hid)
    else:
        drives = await open_drives(cfg)
    scheme = scheme_for(cfg)
    slots = [f"{hid}/drive-{i}" for i in range(len(drives))]
    roster = Roster(cfg.state_path)
    healing: set[int] = set()
    for i, d in enumerate(drives):
        if d.drive_id and roster.observe(slots[i], str(d.root), d.drive_id).healing:
            healing.add(i)
    roster.save()
    ring = build_ring([Member(s, hid) for s in slots], scheme.n)
    store = ObjectStore(
        drives, ring, scheme, clock=HybridClock(), inline_max=cfg.inline_max,
        host=socket.gethostname(), version=__version__, slots=slots,
    )
    store.healing = healing
    store.storage_classes = storageclass.for_placement(cfg.storage_classes, scheme.n)
    store.committer.cutoff = Cutoff(cfg.write_cutoff)  # slow drives (objects/stragglers.py)
    store.admission = write_admission(cfg)
    host = Host(cfg, creds, drives, store, time.time_ns(), roster=roster, host_id=hid, disks=disks)
    master = load_or_create_master_key(cfg.state_path)
    host.kms = BuiltinKMS(
        SystemTable(lambda: host.store.drives, lambda: host.store.clock, SYSTEM),
        lambda: cluster_sealing_keys(host.config.cluster_secret, master), region=cfg.region,
    )
    if disks is not None:
        disks.attach(host)  # hot replacements go into host.drives / host.store
    return host


async def _health_loop(host: Host) -> None:
    """Re-probe drives so one that comes back (or goes away) is noticed.

    In directory mode this is also where a failing drive is given up on (the
    disk manager watches its own): too many I/O errors in a window -- an EIO
    marks a drive offline and the next probe, which only checks identity and
    writability, brings it back, so without a count a drive with bad sectors
    would flap forever.  Offline time alone never fails a directory drive: a
    directory that went away (unmounted, renamed) comes back when returned."""
    cfg = host.config
    watches: dict[str, FailureWatch] = {}
    while True:
        await trio.sleep(HEALTH_INTERVAL)
        for i, d in enumerate(list(host.drives)):
            try:
                await d.check()
                if host.disks is not None or d.state is DriveState.FAILED or not d.drive_id:
                    continue
                watch = watches.setdefault(d.drive_id, FailureWatch(
                    error_limit=cfg.drive_error_limit, window=cfg.drive_error_window,
                    offline_limit=float("inf")))
                st = d.statistics()
                # EIO and kin only: a directory renamed away or fenced is not a failing disk.
                reason = watch.observe(time.monotonic(), online=d.state is DriveState.ONLINE,
                                       io_errors=st.medium_errors)
                if reason is not None:
                    await directories.fail(host, i, reason)
            except Exception as e:  # noqa: BLE001 -- a probe must never kill the host
                log.warning("health check of %s failed: %s", d.drive_id, e)


def print_credentials(creds: Credentials, cfg: Config, out: Callable[[str], None]) -> None:
    from titans3.core.shell_exports import endpoint, export_lines

    out("TitanS3 root credentials (generated once; the secret is stored sealed in "
        f"{cfg.state_path}/root-credentials.json); paste these lines into your shell:")
    for line in export_lines(creds, cfg):
        out(line)
    out(f"S3 endpoint: {endpoint(cfg)}")


def _joined(cfg: Config) -> bool:
    """A host that joined a cluster (``titanctl cluster join``) without --peers."""
    from titans3.cluster.membership import load_doc

    return load_doc(cfg.state_path) is not None


async def run(cfg: Config) -> int:
    from titans3.cluster.bootstrap import with_saved_secret
    from titans3.peer.app import create_peer_app
    from titans3.s3.app import create_s3_app
    from titans3.web.app import create_web_app

    tls.check(cfg)  # unreadable certificate files stop start-up with the keys named
    cfg = with_saved_secret(cfg)  # a cluster created or joined from the status page
    host = await build_host(cfg)
    observed, access = observers(host)
    if host.credentials.generated:
        print_credentials(host.credentials, cfg, lambda s: print(s, flush=True))
    shutdown = trio.Event()
    notifier = Notifier()  # systemd Type=notify: READY, STOPPING, WATCHDOG (no-op elsewhere)
    peer_app = create_peer_app(host)
    inflight = Inflight()
    rc = 0
    try:
        socks = bind_listeners(cfg)  # after the drives are locked, before anything serves
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_health_loop, host)
            if access is not None:
                nursery.start_soon(access.run)
            nursery.start_soon(_signals, shutdown, nursery.cancel_scope, notifier)
            async with trio.open_nursery() as servers:
                servers.start_soon(inflight.drain, shutdown, servers.cancel_scope, cfg.shutdown_grace)
                if process_count(cfg.s3_processes) > 1:  # more S3 processes (titans3/front/)
                    host.fronts = Fronts(process_count(cfg.s3_processes), owner_service(host, access),
                                         grace=cfg.shutdown_grace)  # started now, serving once we are ready
                    await servers.start(host.fronts.run, shutdown)
                    inflight.also.append(host.fronts.alive)
                # The peer listener comes first: in a cluster, the handshake
                # needs every host's peer API (this one's included) answering.
                hc = hyper_config(cfg.peer_listen, grace=cfg.shutdown_grace, name="peer",
                                  tls_settings=tls.server_settings(cfg, peer=True),
                                  sock=socks["peer"], cfg=cfg)
                await servers.start(_serve, guarded(inflight.wrap(observed["peer"](peer_app)), cfg),
                                    hc, shutdown.wait)
                if cfg.peers or _joined(cfg):
                    from titans3.cluster.formation import form

                    try:
                        await form(host, nursery)  # replaces host.store with the cluster's
                    except ConfigError as e:
                        log.error("cannot form the cluster: %s", e)
                        rc = 2
                        nursery.cancel_scope.cancel()
                        await trio.lowlevel.checkpoint()
                await nursery.start(host.store.run)
                if host.disks is not None:  # hot-plug: failed disks out, new disks in
                    await nursery.start(host.disks.run)
                await nursery.start(run_workers, host)
                from titans3.accounts.start import start_access

                await start_access(host, nursery)  # users, keys and the audit log, on the cluster
                from titans3.nbd.gateway import run_gateway

                await servers.start(run_gateway, host)  # NBD: cancelled with the other listeners
                if cfg.mounts:  # FUSE mounts over this store (titans3/fuse/daemon_mounts.py)
                    from titans3.fuse.daemon_mounts import start_mounts

                    await start_mounts(host, nursery)
                s3_app = create_s3_app(
                    store=host.store, credentials=host.credentials, region=cfg.region,
                    domain=cfg.domain or None, admin=host, directory=host.iam, audit=host.audit,
                    sigv2=cfg.sigv2, lifecycle_day=cfg.lifecycle_day,
                )
                web_app = create_web_app(host)
                for app, bind, name in (
                    (s3_app, cfg.listen, "s3"),
                    (web_app, cfg.web_listen, "web"),
                ):
                    hc = hyper_config(bind, grace=cfg.shutdown_grace, name=name,
                                      tls_settings=tls.server_settings(cfg, peer=False),
                                      sock=socks[name], cfg=shared_limits(cfg) if name == "s3" else cfg)
                    await servers.start(_serve, guarded(inflight.wrap(observed.get(name, _same)(app)), cfg),
                                        hc, shutdown.wait)
                if host.fronts is not None:
                    await host.fronts.open(s3_app)
                log.info("TitanS3 %s ready: S3 on %s, peer on %s, status page on %s; %d drives, EC %d+%d",
                         __version__, cfg.listen, cfg.peer_listen, cfg.web_listen,
                         len(host.drives), host.store.scheme.k, host.store.scheme.m)
                notifier.ready(f"serving S3 on {cfg.listen}, {len(host.drives)} drives")
                gctune.tune_for_serving()  # start-up's objects out of the collector's way (core/gctune.py)
                nursery.start_soon(notifier.watchdog_loop)  # a stalled loop stops pinging
            # All servers returned: graceful shutdown is complete.
            nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            if access is not None:
                access.close()
            cluster = host.workers.get("cluster")
            if cluster is not None:
                await cluster.aclose()
            for d in host.drives:
                try:
                    await d.close()
                except Exception as e:  # noqa: BLE001
                    log.warning("closing %s: %s", d.drive_id, e)
    log.info("TitanS3 stopped cleanly" if rc == 0 else "TitanS3 stopped")
    return rc


def _same(app: Any) -> Any:
    return app


def observers(host: Host) -> tuple[dict[str, Callable[[Any], Any]], Any]:
    """Per face, what wraps its ASGI app (metrics, access log, trace spans:
    core/metrics.py), and the access log (None when off)."""
    from titans3.core.accesslog import AccessLog
    from titans3.core.metrics import RequestObserver

    target = host.config.access_log_path
    from titans3.s3.app import owner_for

    owner = owner_for(host.credentials.root_access_key).id  # the canonical id S3 listings show
    access = AccessLog(target, owner=owner) if target else None
    return {"s3": lambda app: RequestObserver(app, "s3", on_done=access),
            "peer": lambda app: RequestObserver(app, "peer")}, access


async def _serve(app: Any, hc: HyperConfig, trigger: Callable[[], Any], *, task_status: Any) -> None:
    await serve(app, hc, shutdown_trigger=trigger, task_status=task_status)


async def _signals(shutdown: trio.Event, scope: trio.CancelScope, notifier: Notifier) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            if not shutdown.is_set():
                log.info("received %s: finishing in-flight requests", signal.Signals(signum).name)
                notifier.stopping()
                shutdown.set()
            else:
                log.warning("second signal: stopping now")
                scope.cancel()
                return


def main(cfg: Config) -> int:
    from titans3.s3 import wire_errors

    if cfg.malloc_tuning:
        tune_malloc()
    patch_hypercorn_recv(cfg.http_recv_bytes)
    connlimit.install()  # per-listener connection bound (core/connlimit.py)
    listeners.raise_fd_limit()  # connections must not starve the drives of descriptors
    http11.install()
    wire_errors.install()
    fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    # Under systemd, records go to journald as structured fields (core/journal.py).
    logging.basicConfig(
        level=getattr(logging, cfg.log_level.upper()), format=fmt,
        **({"handlers": [journal.JournalHandler()]} if journal.wanted() else {"stream": sys.stderr}),
    )
    from titans3.core import logring, tracing

    logring.install(fmt)  # the support bundle's log
    tracing.setup(cfg.trace_exporter, endpoint=cfg.trace_endpoint,
                  attributes={"host.name": socket.gethostname()})
    # httpx logs every request at INFO: in a cluster that is one line per peer
    # RPC (~20 per small GET), a measurable share of the CPU and of the log.
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.root.level))
    os.umask(0o077)
    try:
        return trio.run(run, cfg)
    finally:
        tracing.shutdown()
