"""What the cluster layer, the fronts and the workers' wiring need of a host.

The daemon's ``Host`` (``titans3/daemon.py``) is the one implementation: it
builds the drives and the object store and starts everything in one nursery.
Code below the daemon is handed a host and types it with :class:`HostServices`
instead of importing the daemon, so imports keep pointing down and the
daemon stays the only module that knows how a host is put together.

``store`` is reassigned once while a cluster forms (``cluster/peers.py``
replaces the local store with the cluster's), so holders read ``host.store``
when they need it rather than keeping the first one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from titans3.core.config import Config
    from titans3.core.credentials import Credentials
    from titans3.disks.roster import Roster
    from titans3.drive.local import LocalDrive
    from titans3.objects.store import ObjectStore
    from titans3.objects.types import HostInfo


class HostServices(Protocol):
    config: Config
    credentials: Credentials
    drives: list[LocalDrive]  # this host's own drives
    store: ObjectStore  # over this host's drives, or the cluster's
    started_ns: int
    roster: Roster | None
    workers: dict[str, Any]  # by name: the durability workers, "cluster"
    host_id: str
    disks: Any  # titans3.disks.manager.DiskManager with --disks, else None
    nbd: Any  # titans3.nbd.service.VolumeService while the NBD gateway runs (status page)
    volumes: Any  # titans3.nbd.operations.VolumeOperations, the same (admin API)

    async def info(self) -> HostInfo:
        """``HostInfo`` for the admin API."""
        ...
