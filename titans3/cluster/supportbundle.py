"""The support bundle: what an operator sends when asking for help, without secrets.

Theory of operation
-------------------
A ``.tar.gz`` of small text files, built in memory from the running host:

=================  ==========================================================
``info.json``      exactly what ``titanctl info --json`` prints
``config.json``    every configuration value; secrets only as "(set)"
``cluster.json``   the cluster document summary and every peer's state
``workers.json``   every worker's ``statistics()``
``disks.json``     the disk manager's view (raw-disk mode only)
``log.txt``        the daemon's last log lines (core/logring.py)
``journal.txt``    ``journalctl -u titans3`` when the host runs under systemd
``versions.txt``   TitanS3, Python and library versions, kernel
=================  ==========================================================

plus whatever the caller adds (the status page adds its status, history and
metrics).  Secrets never go in: configuration fields marked ``repr=False``
(root keys, the cluster secret) are replaced, and as a second fence every
file is scanned for the known secret values, which are replaced by
``[redacted]`` -- a secret that reached a log line by accident stays out too.
It lives in the cluster layer because it reads cluster, object and disk state,
and both fronts (status page, admin API) build it.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import platform
import shutil
import subprocess
import tarfile
import time
from collections.abc import Mapping
from dataclasses import asdict, is_dataclass
from importlib import metadata
from typing import TYPE_CHECKING, Any

import trio

from titans3 import __version__
from titans3.core import logring

if TYPE_CHECKING:
    from titans3.cluster.host import HostServices as Host

REDACTED = "[redacted]"
_PACKAGES = ("trio", "hypercorn", "quart", "pyeclib", "lmdb", "httpx", "cryptography",
             "prometheus-client", "opentelemetry-sdk", "argon2-cffi", "pyudev")


def info_json(info: Any) -> dict[str, Any]:
    """``GET /titans3/admin/v1/info`` (``titanctl info --json``) from a HostInfo."""
    return {
        "host": info.host,
        "version": info.version,
        "ec": {"k": info.ec_k, "m": info.ec_m},
        "drives": [
            {"drive_id": d.drive_id, "path": d.path, "state": d.state, "capacity": d.capacity,
             "used": d.used, "free": d.free, "errors": d.errors}
            for d in info.drives
        ],
    }


def config_json(cfg: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        out[f.name] = value if f.repr else ("(set)" if value else "")
    return out


def secrets_of(host: Host) -> list[str]:
    cfg = host.config
    found = [host.credentials.root_secret_key, cfg.cluster_secret, cfg.root_secret_key]
    return [s for s in found if s and len(s) >= 8]


def _plain(v: Any) -> Any:
    if is_dataclass(v) and not isinstance(v, type):
        return asdict(v)
    if isinstance(v, (set, frozenset, tuple)):
        return list(v)
    if isinstance(v, bytes):
        return v.hex()
    return str(v)


def _dumps(doc: Any) -> str:
    return json.dumps(doc, indent=2, sort_keys=True, default=_plain) + "\n"


def _journal() -> str:
    if shutil.which("journalctl") is None or not os.environ.get("INVOCATION_ID"):
        return ""
    try:
        out = subprocess.run(["journalctl", "-u", "titans3", "-n", "5000", "--no-pager", "-o", "short-iso"],
                             capture_output=True, text=True, timeout=15, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout


def _versions() -> str:
    lines = [f"titans3 {__version__}", f"python {platform.python_version()}",
             f"kernel {platform.release()} {platform.machine()}"]
    for p in _PACKAGES:
        try:
            lines.append(f"{p} {metadata.version(p)}")
        except metadata.PackageNotFoundError:
            lines.append(f"{p} (not installed)")
    return "\n".join(lines) + "\n"


async def gather(host: Host) -> dict[str, str]:
    """The bundle's files (name -> text) before redaction."""
    from titans3.cluster.membership import membership_of

    files = {"info.json": _dumps(info_json(await host.info())),
             "config.json": _dumps(config_json(host.config))}
    ms = membership_of(host)
    cluster = host.workers.get("cluster")
    files["cluster.json"] = _dumps({
        "member": ms is not None,
        "document": ms.summary() if ms is not None else None,
        "self": getattr(cluster, "self_address", None),
        "peers": [p.statistics() for p in cluster.peers.values()] if cluster is not None else [],
    })
    files["workers.json"] = _dumps({name: w.statistics() for name, w in host.workers.items()
                                    if hasattr(w, "statistics")})
    if host.disks is not None:
        files["disks.json"] = _dumps({"disks": await host.disks.list_disks(),
                                      "statistics": host.disks.statistics()})
    files["log.txt"] = "\n".join(logring.lines()) + "\n"
    journal = await trio.to_thread.run_sync(_journal)
    if journal:
        files["journal.txt"] = journal
    files["versions.txt"] = _versions()
    return files


def redact(text: str, secrets: list[str]) -> str:
    for s in sorted(secrets, key=len, reverse=True):
        text = text.replace(s, REDACTED)
    return text


def pack(files: Mapping[str, str], *, prefix: str, now: float | None = None) -> bytes:
    buf = io.BytesIO()
    mtime = int(now if now is not None else time.time())
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, text in files.items():
            data = text.encode("utf-8", "replace")
            ti = tarfile.TarInfo(f"{prefix}/{name}")
            ti.size, ti.mtime, ti.mode = len(data), mtime, 0o644
            tar.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


async def build(host: Host, extra: Mapping[str, str] | None = None) -> tuple[str, bytes]:
    """``(file name, .tar.gz bytes)`` of this host's bundle, secrets redacted."""
    files = await gather(host)
    files.update(extra or {})
    hidden = secrets_of(host)
    files = {name: redact(text, hidden) for name, text in files.items()}
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    prefix = f"titans3-support-{host.host_id}-{stamp}"
    files["README.txt"] = (
        f"TitanS3 support bundle of host {host.host_id}, made {stamp}.\n"
        "Secrets (root secret key, cluster secret) are not included; the files are:\n"
        + "".join(f"  {n}\n" for n in sorted(files)))
    return prefix + ".tar.gz", await trio.to_thread.run_sync(lambda: pack(files, prefix=prefix))
