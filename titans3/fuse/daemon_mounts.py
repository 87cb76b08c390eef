"""The daemon's mounts: ``titans3 serve --mount BUCKET[/PREFIX]:DIR``.

Theory of operation
-------------------
Each mount runs in the daemon's nursery, over :class:`StoreBackend` (the
object layer, no HTTP), and is registered in ``host.workers`` as
``mount:DIR``: its ``statistics()`` record then appears on the status page,
in ``/metrics`` summaries, in the cluster heartbeat and in ``titanctl
mounts`` without those knowing about FUSE.  A mount that fails to start is
logged and shown as ``failed``; it does not stop the daemon.  pyfuse3 serves
one mount per process, so a daemon serves the first mount and refuses the
others with that reason (use ``titans3 mount`` against this daemon's S3 port
for more).  A mount of a bucket that does not exist creates it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from titans3.fuse.meta import Defaults
from titans3.fuse.mount import Mount, MountError
from titans3.fuse.options import MountOptions
from titans3.fuse.paths import Namespace
from titans3.fuse.store_backend import StoreBackend

if TYPE_CHECKING:
    from titans3.cluster.host import HostServices as Host

log = logging.getLogger(__name__)


class FailedMount:
    """A configured mount that is not served, with the reason (for the status page)."""

    def __init__(self, spec: str, reason: str) -> None:
        self.spec, self.reason = spec, reason

    def statistics(self) -> dict[str, Any]:
        return {"state": "failed", "spec": self.spec, "last_error": self.reason}


async def _ensure_bucket(host: Host, bucket: str) -> None:
    """A daemon mount of a bucket that does not exist yet creates it (logged)."""
    from titans3.core.errors import BucketAlreadyOwnedByYou, NoSuchBucket, S3Error

    try:
        await host.store.head_bucket(bucket)
    except NoSuchBucket:
        try:
            await host.store.create_bucket(bucket)
            log.info("created bucket %s for its mount", bucket)
        except BucketAlreadyOwnedByYou:
            pass
        except S3Error as e:
            log.error("cannot create bucket %s for its mount: %s", bucket, e)


def parse_spec(spec: str) -> tuple[Namespace, str]:
    source, _, target = spec.rpartition(":")
    return Namespace.parse(source), target


async def start_mounts(host: Host, nursery: trio.Nursery) -> None:
    cfg = host.config
    staging = cfg.fuse_staging or str(Path(cfg.state_path) / "fuse-staging")
    for i, spec in enumerate(cfg.mount_list()):
        ns, target = parse_spec(spec)
        name = f"mount:{target}"
        if i > 0:
            reason = "pyfuse3 serves one mount per process; this daemon serves the first"
            log.error("mount %s not served: %s", spec, reason)
            host.workers[name] = FailedMount(spec, reason)
            continue
        await _ensure_bucket(host, ns.bucket)
        opts = MountOptions(defaults=Defaults(uid=os.getuid(), gid=os.getgid()),
                            staging_dir=staging, close_async_max=cfg.fuse_close_async)
        mount = Mount(StoreBackend(lambda: host.store, ns.bucket), ns, target, opts,
                      allow_other=os.geteuid() == 0)
        try:
            await nursery.start(mount.run)
        except MountError as e:
            log.error("mount %s not served: %s", spec, e)
            host.workers[name] = FailedMount(spec, str(e))
            continue
        host.workers[name] = mount
