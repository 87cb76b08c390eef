"""New blank disks become spares by themselves when every slot is served.

A blank disk pushed into a running node whose slots all have working drives
has no slot to take.  Left "available", it would wait for an operator; made a
*spare* now (formatted and labelled, unmounted, in the ledger), it takes the
next failed slot at once -- which is what the person who pushed it in wanted,
and what ``disks = "auto"`` means: every blank in-scope disk is the node's.

Invariants and why:

* The same rules as any claim: only a disk the scan shows in scope and BLANK
  (policy.classify: no partition table, no filesystem, no RAID/LVM/LUKS
  signature), re-probed right before mkfs and opened ``O_EXCL`` (the manager's
  ``_format``): a disk with data, a mounted or held disk, is never touched.
* A disk that failed to format is remembered (the manager's ``_bad``) and not
  retried until it changes, exactly as for slot fills: a bad disk must not be
  mkfs'd on every pass.
* Runs under the manager's lock, from its reconcile pass, only after every
  empty slot was offered a disk: a slot always comes before a spare.
"""

from __future__ import annotations

import logging
from typing import Protocol

from titans3.disks.errors import DiskOperationFailed, DiskRefused
from titans3.disks.ledger import DiskRecord, DiskState, Ledger
from titans3.disks.policy import DeviceInfo, Verdict, classify

log = logging.getLogger(__name__)


class Claimer(Protocol):
    """What this needs of the disk manager (manager.py), which calls it: its
    claim steps, so a spare is claimed exactly as a slot fill is.  A protocol
    rather than an import keeps the two modules from importing each other."""

    ledger: Ledger
    _bad: dict[tuple[str, int, int, int, str], str]

    def _ordered(self, devices: list[DeviceInfo]) -> list[DeviceInfo]: ...

    async def _format(self, path: str, *, force: bool) -> tuple[DeviceInfo, str, str]: ...

    def _record(self, dev: DeviceInfo, drive_id: str, fstype: str, state: DiskState,
                slot: str) -> DiskRecord: ...


async def take_blank_disks_as_spares(mgr: Claimer, devices: list[DeviceInfo]) -> list[str]:
    """Format every blank in-scope disk among ``devices`` as a spare; their drive ids."""
    taken = []
    for dev in mgr._ordered(devices):
        key = (dev.path, dev.major, dev.minor, dev.size, dev.backing_file)
        if key in mgr._bad or classify(dev)[0] is not Verdict.BLANK:
            continue
        try:
            info, drive_id, fstype = await mgr._format(dev.path, force=False)
        except (DiskRefused, DiskOperationFailed) as e:
            log.warning("not making %s a spare: %s", dev.path, e.message)
            mgr._bad[key] = str(e.message)
            continue
        mgr.ledger.add(mgr._record(info, drive_id, fstype, DiskState.SPARE, ""))
        log.warning("%s is now spare drive %s (every slot is served; it takes the next failed one)",
                    dev.path, drive_id)
        taken.append(drive_id)
    return taken
