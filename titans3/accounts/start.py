"""Starting the access state of one host: the directory and the audit log.

Called by the daemon once the store is final (after the cluster formed), so
both system tables span every drive of the cluster.  The directory is loaded
before the S3 listener starts: a host that was down serves its first request
with the current users and keys.  In a cluster, a change to the directory
triggers an immediate heartbeat round, which carries the new generation to
every peer (``titans3.cluster.peers.Cluster.beat_now``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Protocol

import trio

from titans3.accounts.audit import TABLE as AUDIT_TABLE
from titans3.accounts.audit import AuditLog
from titans3.accounts.directory import TABLE as IAM_TABLE
from titans3.accounts.directory import Directory, seal_key_for
from titans3.accounts.journal import Journal, resolve_socket
from titans3.accounts.register import SystemTable
from titans3.core.crypto import load_or_create_master_key
from titans3.core.errors import TitanError

if TYPE_CHECKING:
    from titans3.core.config import Config
    from titans3.core.credentials import Credentials


class Host(Protocol):
    """What starting the access state needs of a host (the daemon's ``Host``;
    typed here because the daemon is above this layer)."""

    config: Config
    credentials: Credentials
    host_id: str
    store: Any  # the object store: its ``drives`` and ``clock``
    workers: dict[str, Any]
    iam: Any
    audit: Any

log = logging.getLogger(__name__)

__all__ = ["start_access"]


def _owner_id(root_access_key: str) -> str:
    import hashlib

    # The owner id single hosts showed before there were users (s3/app.py owner_for).
    return hashlib.sha256(b"titans3-owner\0" + root_access_key.encode()).hexdigest()


async def start_access(host: Host, nursery: trio.Nursery) -> tuple[Directory, AuditLog | None]:
    cfg = host.config
    def drives() -> Any:
        return host.store.drives

    def clock() -> Any:
        return host.store.clock
    # Sealed under the cluster key whenever the host has a cluster secret (a lone
    # host waiting to be joined too), so every member opens what any member sealed.
    master = load_or_create_master_key(cfg.state_path)
    own = seal_key_for(cluster_secret="", master_key=master)
    seal_key = seal_key_for(cluster_secret=cfg.cluster_secret, master_key=master) if cfg.cluster_secret else own
    creds = host.credentials
    directory = Directory(SystemTable(drives, clock, IAM_TABLE), seal_key=seal_key,
                          older_seal_keys=(own,) if own != seal_key else (),
                          root_access_key=creds.root_access_key, root_secret_key=creds.root_secret_key,
                          default_canonical=_owner_id(creds.root_access_key))  # fmt: skip
    try:
        await directory.open()
        directory.loaded = True
    except TitanError as e:  # too few drives answer now: keep trying in the background
        log.warning("iam: directory not loaded at start (%s); retrying in the background", e)
    host.iam = directory
    cluster = host.workers.get("cluster")
    if cluster is not None:
        directory.on_change.append(cluster.beat_now)
    await nursery.start(directory.run)
    audit: AuditLog | None = None
    if cfg.audit:
        path = resolve_socket(cfg.audit_journal)
        journal = Journal(path) if path else None
        audit = AuditLog(SystemTable(drives, clock, AUDIT_TABLE), host.host_id, journal=journal)
        try:
            await audit.open()
        except TitanError as e:
            log.warning("audit: chain not found at start (%s); retrying in the background", e)
        await nursery.start(audit.run)
        host.audit = audit
        host.workers["audit"] = audit
    log.info("access: account %s, %d users, audit log %s", directory.account.id, len(directory.users()),
             "on" if audit else "off")  # fmt: skip
    return directory, audit
