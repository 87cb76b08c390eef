"""Typed, validated configuration.

Theory of operation
-------------------
Four sources, later wins: embedded defaults -> optional TOML file (``--config``
or ``TITANS3_CONFIG``) -> ``TITANS3_<NAME>`` environment variables -> command
line flags.  No file is ever required.  Every field is declared once in
:class:`Config` with its type; values from text sources (env, flags) are parsed
by that type, and :func:`load` reports the first bad value as a
:class:`ConfigError` naming the key and the source, so a typo never surfaces
later as a crash deep inside the daemon.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from titans3.core import storageclass
from titans3.core.errors import ConfigError


@dataclass(frozen=True)
class Config:
    data: str = "./data"
    drives: int = 6
    listen: str = "0.0.0.0:9000"
    peer_listen: str = "0.0.0.0:9100"
    web_listen: str = "127.0.0.1:9001"
    state_dir: str = ""  # default: <data>/.titans3
    region: str = "us-east-1"
    domain: str = ""  # S3 domain for virtual-hosted-style requests
    ec: str = ""  # "K+M"; default chosen by drive count (DESIGN §3)
    # Storage classes other than STANDARD, each an EC scheme (core/storageclass.py).
    storage_classes: str = ""  # "STANDARD_IA=2+2,GLACIER_IR=3+3"
    segment_size: int = 1 << 20
    inline_max: int = 128 << 10  # fragments up to this size live in LMDB
    drive_threads: int = 4
    log_level: str = "info"
    root_access_key: str = field(default="", repr=False)
    root_secret_key: str = field(default="", repr=False)
    shutdown_grace: float = 30.0  # seconds in-flight requests get on SIGTERM
    # Hostile and broken clients (core/listeners.py, core/connlimit.py, core/stall.py).
    idle_timeout: float = 75.0  # s a connection may sit between requests or sending a request head
    body_timeout: float = 60.0  # s a request body may stall before 400 RequestTimeout
    body_min_rate: int = 1024  # bytes/s a request body must average once body_timeout is spent
    send_timeout: float = 120.0  # s sent data may stay unacknowledged (TCP_USER_TIMEOUT)
    max_connections: int = 4096  # open connections per listener; idle ones are shed first
    # Cluster (issue 4): every host gets the same peer list (itself included)
    # and secret; without peers the host runs alone exactly as before.
    peers: str = ""  # "HOST:PORT,HOST:PORT,..." peer API addresses
    cluster_secret: str = field(default="", repr=False)
    cluster_wait: float = 120.0  # seconds to wait at start-up for every peer to answer
    # TLS (titans3/core/tls.py): with a certificate, S3 and peer listeners speak
    # HTTPS, the peer listener requires a client certificate from tls_ca, and
    # peer clients trust tls_ca only.  ``titanctl cluster init`` makes these files.
    tls_cert: str = ""  # PEM certificate of this host
    tls_key: str = ""  # PEM private key of tls_cert
    tls_ca: str = ""  # PEM cluster CA certificate
    http_recv_bytes: int = 1 << 20  # hypercorn socket read size (its default: 64 KiB)
    malloc_tuning: bool = True  # raise glibc mmap/trim thresholds (STACK-NOTES)
    # Memory of write streams (core/membudget.py, objects/admission.py): the host-wide
    # budget of their in-flight buffers (~12 MiB per large PUT at 4+2); streams past it
    # wait, unread, for a share (back-pressure).  0 = unbounded.
    write_memory_mb: int = 256
    # Messages hypercorn queues per request (its default: 10).  At least 2: a request
    # without a body leaves its one empty message unread, and hypercorn's disconnect
    # notice must still fit beside it (a full queue hangs the connection).
    http_body_queue: int = 2
    # Durability workers (titans3/workers/).
    scrub_rate: int = 32 << 20  # bytes/s all scrubbing may read; 0 = unthrottled
    scrub_interval: float = 7 * 86400.0  # seconds between the end of a pass and the next
    repair_concurrency: int = 4  # keys repaired at once (heal queue; per refilled drive)
    repair_grace: float = 10.0  # seconds a new version is left to its own PUT before repair
    heal_queue_max: int = 10000  # keys the persisted heal queue holds
    # s a write step waits for a slow drive once W drives finished it (or 4x what
    # the W took, if longer); 0 = wait for every drive (objects/stragglers.py)
    write_cutoff: float = 1.0
    gc_interval: float = 3600.0  # seconds between GC passes
    commit_window: float = 3600.0  # seconds before uncommitted / unreferenced data is garbage
    mpu_max_age: float = 0.0  # abort multipart uploads older than this (seconds); 0 = never
    # Tests only: drives read injected delays/EIO from <drive>/titans3-faults.json
    # (titans3/drive/faults.py).  Never on in production.
    fault_injection: bool = False
    drive_error_limit: int = 8  # I/O errors within drive_error_window that fail a drive
    drive_error_window: float = 600.0  # seconds
    # Lifecycle rules (titans3/workers/lifecycle.py).
    lifecycle_interval: float = 3600.0  # seconds between lifecycle passes
    lifecycle_day: float = 86400.0  # seconds in a lifecycle "day" (shorter for tests, as RGW's lc debug interval)
    lifecycle_rate: float = 200.0  # deletions/aborts per second a pass may make; 0 = unthrottled
    # Cluster changes (titans3/cluster/membership.py, titans3/workers/rebalance.py).
    rebalance_rate: int = 0  # bytes/s the rebalancer may move; 0 = unthrottled
    failover_after: float = 30.0  # s a ring change's coordinator may be down before another takes over
    # Raw disks (titans3/disks/): "" = directory drives (--data/--drives, the
    # default); "auto" = claim every qualifying disk; or "/dev/x,/dev/y".
    disks: str = ""
    disk_allow: str = ""  # comma-separated globs: device path, by-* link or loop backing file
    # NBD gateway (titans3/nbd/, docs/nbd.md).  Plain NBD only on 127.0.0.1 and
    # the unix socket; another address needs TLS.  "" turns a listener off.
    nbd_listen: str = "127.0.0.1:10809"
    nbd_socket: str = "auto"  # "auto": <state_dir>/nbd.sock
    nbd_memory_mb: int = 256  # per attached volume: written data held before it is folded into extents
    nbd_cache_mb: int = 512  # extent read cache, shared by the host's volumes
    nbd_lease: float = 15.0  # seconds a writer lease lasts; a crashed host's volumes free up after it
    # Status page and observability (titans3/web/, core/metrics.py, core/tracing.py).
    setup_code_file: str = "/var/lib/titans3/setup-code"  # one-time first-boot code (appliance)
    web_lockout: float = 300.0  # s logins are refused after 20 wrong passwords in a row
    web_session_idle: float = 3600.0  # s an unused login session lasts
    web_sample_interval: float = 10.0  # s between the page's history samples (an hour is kept)
    access_log: str = ""  # "" = <state>/access.log, "-" = stderr, "off"
    trace_exporter: str = ""  # OpenTelemetry: "" (off), "console" or "otlp"
    trace_endpoint: str = ""  # OTLP/HTTP traces URL; default http://127.0.0.1:4318/v1/traces
    # FUSE mounts served by the daemon (titans3/fuse/): "BUCKET[/PREFIX]:DIR,..."
    # (TOML: a string or a list of strings).
    mounts: str = ""
    fuse_staging: str = ""  # write-back staging directory; default <state_dir>/fuse-staging
    # bytes: close() of a file up to this size returns before its commit is
    # durable (fsync still waits; docs/fuse.md, "Writes"); 0 = close commits.
    fuse_close_async: int = 0
    # Access control (titans3/s3/authorize.py, titans3/accounts/).
    sigv2: bool = True  # accept Signature Version 2 (boto3's default presigned URLs in us-east-1)
    audit: bool = True  # the audit log of every request and admin action
    audit_journal: str = "auto"  # journald socket: "auto" (if present), "off", or a path
    # S3 processes per host (titans3/front/): "auto" = min(cores, 4); 1 = the daemon alone.
    s3_processes: str = "1"  # auto = min(cores, 4): measured slower on 2 cores (docs/multiprocess.md)

    # ------------------------------------------------------------ derived
    @property
    def state_path(self) -> Path:
        return Path(self.state_dir) if self.state_dir else Path(self.data) / ".titans3"

    @property
    def nbd_socket_path(self) -> Path | None:
        if not self.nbd_socket:
            return None
        return self.state_path / "nbd.sock" if self.nbd_socket == "auto" else Path(self.nbd_socket)

    @property
    def access_log_path(self) -> str:
        """Where the access log goes: a path, "-" (stderr) or "" (off)."""
        if self.access_log == "off":
            return ""
        return self.access_log or str(self.state_path / "access.log")

    def drive_paths(self) -> list[Path]:
        return [Path(self.data) / f"drive-{i}" for i in range(self.drives)]

    def peer_list(self) -> list[str]:
        return [p.strip() for p in self.peers.split(",") if p.strip()]

    def mount_list(self) -> list[str]:
        return [m.strip() for m in self.mounts.split(",") if m.strip()]

    def ec_scheme(self) -> tuple[int, int] | None:
        if not self.ec:
            return None
        k, m = self.ec.split("+")
        return int(k), int(m)


_FIELDS = {f.name: f for f in dataclasses.fields(Config)}


def parse_hostport(value: str, key: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{key}: expected HOST:PORT or :PORT, got {value!r}")
    return (host.strip("[]") or "0.0.0.0"), int(port)


def _coerce(name: str, value: Any, source: str) -> Any:
    typ = _FIELDS[name].type
    if name == "mounts" and isinstance(value, list) and all(isinstance(v, str) for v in value):
        value = ",".join(value)
    if name == "s3_processes" and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # TOML: s3_processes = 2
    try:
        if typ in ("int", int):
            if isinstance(value, bool):
                raise ValueError
            return int(value)
        if typ in ("float", float):
            return float(value)
        if typ in ("bool", bool):
            if isinstance(value, bool):
                return value
            return {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}[
                str(value).lower()
            ]
        if not isinstance(value, str):
            raise ValueError
        return value
    except (ValueError, KeyError):
        raise ConfigError(f"{name} (from {source}): {value!r} is not a valid {typ}") from None


def _validate(cfg: Config) -> None:
    for key in ("scrub_rate", "rebalance_rate", "heal_queue_max", "repair_concurrency",
                "max_connections", "drive_error_limit"):
        zero_ok = key.endswith("_rate")
        if getattr(cfg, key) < (0 if zero_ok else 1):
            raise ConfigError(f"{key}: must be {'>= 0' if zero_ok else '>= 1'}")
    for key, least in (("write_memory_mb", 0), ("http_body_queue", 2)):
        if getattr(cfg, key) < least:
            raise ConfigError(f"{key}: must be >= {least}")
    for key in ("scrub_interval", "gc_interval", "commit_window", "failover_after",
                "idle_timeout", "body_timeout", "send_timeout", "drive_error_window",
                "lifecycle_interval", "lifecycle_day"):
        if getattr(cfg, key) <= 0:
            raise ConfigError(f"{key}: must be a positive number of seconds")
    if cfg.repair_grace < 0 or cfg.mpu_max_age < 0 or cfg.write_cutoff < 0:
        raise ConfigError("repair_grace/mpu_max_age/write_cutoff: must be >= 0 seconds")
    for key in ("listen", "peer_listen", "web_listen"):
        parse_hostport(getattr(cfg, key), key)
    if cfg.s3_processes != "auto" and not (cfg.s3_processes.isdigit() and int(cfg.s3_processes) >= 1):
        raise ConfigError(f"s3_processes: expected auto or a number >= 1, got {cfg.s3_processes!r}")
    if cfg.nbd_listen:
        nbd_host, _ = parse_hostport(cfg.nbd_listen, "nbd_listen")
        if nbd_host not in ("127.0.0.1", "::1", "localhost") and not cfg.tls_cert:
            raise ConfigError(f"nbd_listen: plain NBD only on 127.0.0.1; {cfg.nbd_listen} needs TLS "
                              "(tls_cert, tls_key, tls_ca: see titanctl cluster init)")
    if cfg.nbd_memory_mb < 16 or cfg.nbd_cache_mb < 0 or cfg.nbd_lease < 3:
        raise ConfigError("nbd_memory_mb must be >= 16, nbd_cache_mb >= 0, nbd_lease >= 3 seconds")
    if not 1 <= cfg.drives <= 256:
        raise ConfigError(f"drives: must be 1..256, got {cfg.drives}")
    if cfg.ec:
        try:
            k, m = cfg.ec_scheme()  # type: ignore[misc]
        except ValueError:
            raise ConfigError(f"ec: expected K+M such as 4+2, got {cfg.ec!r}") from None
        # With --disks the drive count is known only once the disks are found
        # (the daemon checks it then).
        if k < 1 or m < 0 or (k + m > cfg.drives and not cfg.peers and not cfg.disks):
            raise ConfigError(f"ec: {cfg.ec} needs {k + m} drives, have {cfg.drives}")
    try:
        classes = storageclass.parse(cfg.storage_classes)
        k_def, m_def = cfg.ec_scheme() or (0, 0)
        width = k_def + m_def if cfg.ec else cfg.drives
        if not cfg.peers and not cfg.disks:  # else the daemon checks it against the ring
            storageclass.check_fits(classes, width)
    except storageclass.StorageClassError as e:
        raise ConfigError(f"storage_classes: {e}") from None
    if cfg.disks.strip() not in ("", "auto"):
        for dev in cfg.disks.split(","):
            if dev.strip() and not dev.strip().startswith("/"):
                raise ConfigError(f"disks: expected 'auto' or device paths such as /dev/sdb, got {dev.strip()!r}")
    if cfg.trace_exporter not in ("", "console", "otlp"):
        raise ConfigError(f"trace_exporter: expected console or otlp, got {cfg.trace_exporter!r}")
    for key in ("web_lockout", "web_session_idle", "web_sample_interval"):
        if getattr(cfg, key) <= 0:
            raise ConfigError(f"{key}: must be a positive number of seconds")
    if cfg.disk_allow and not cfg.disks:
        raise ConfigError("disk_allow: only meaningful with disks (--disks auto or a device list)")
    for spec in cfg.mount_list():
        source, sep, target = spec.rpartition(":")
        if not sep or not source or not target.startswith("/"):
            raise ConfigError(f"mounts: expected BUCKET[/PREFIX]:/ABSOLUTE/DIR, got {spec!r}")
    for peer in cfg.peer_list():
        parse_hostport(peer, "peers")
    if cfg.peers and len(cfg.cluster_secret) < 16:
        raise ConfigError("cluster_secret: a cluster (--peers) needs a secret of at least 16 characters")
    if cfg.cluster_wait <= 0:
        raise ConfigError("cluster_wait: must be positive")
    if bool(cfg.tls_cert) != bool(cfg.tls_key):
        raise ConfigError("tls_cert/tls_key: set both or neither")
    if cfg.tls_cert and not cfg.tls_ca:
        raise ConfigError("tls_ca: TLS (tls_cert) needs the cluster CA certificate to verify peers")
    if cfg.segment_size < 4096 or cfg.segment_size % 4096:
        raise ConfigError("segment_size: must be a positive multiple of 4096")
    if cfg.log_level.lower() not in ("debug", "info", "warning", "error"):
        raise ConfigError(f"log_level: unknown level {cfg.log_level!r}")
    if bool(cfg.root_access_key) != bool(cfg.root_secret_key):
        raise ConfigError("root_access_key/root_secret_key: set both or neither")
    if cfg.root_access_key and len(cfg.root_secret_key) < 8:
        raise ConfigError("root_secret_key: must be at least 8 characters")


def load(
    *,
    flags: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    config_file: str | None = None,
) -> Config:
    """Merge defaults, TOML, environment and flags (later wins) and validate."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    path = config_file or environ.get("TITANS3_CONFIG")
    if path:
        try:
            with open(path, "rb") as fh:
                doc = tomllib.load(fh)
        except OSError as e:
            raise ConfigError(f"config: cannot read {path}: {e.strerror}") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"config: {path}: {e}") from None
        for key, value in doc.items():
            name = key.replace("-", "_")
            if name not in _FIELDS:
                raise ConfigError(f"config: unknown key {key!r} in {path}")
            values[name] = _coerce(name, value, path)
    for name in _FIELDS:
        env = environ.get(f"TITANS3_{name.upper()}")
        if env is not None and env != "":
            values[name] = _coerce(name, env, f"TITANS3_{name.upper()}")
    for name, value in (flags or {}).items():
        if value is not None:
            if name not in _FIELDS:
                raise ConfigError(f"unknown option {name!r}")
            values[name] = _coerce(name, value, "--" + name.replace("_", "-"))
    cfg = Config(**values)
    _validate(cfg)
    return cfg
