"""The page's actions, each the same operation a ``titanctl`` command runs.

========================  ===============================  =========================================
form action               titanctl                         operation
========================  ===============================  =========================================
``/actions/drain``        ``disk drain DRIVE``             disks/directories.py or the disk manager
``/actions/replace``      ``disk replace OLD NEW``         same; a blank directory / disk takes the slot
``/actions/claim``        ``disk claim DEVICE``            the disk manager (raw-disk mode)
``/actions/join-token``   ``cluster token``                cluster/bootstrap.py: a join token
``/actions/support-bundle``  ``support bundle``            cluster/supportbundle.py
========================  ===============================  =========================================

Directory mode (the default) has no disk manager: a directory stands in for
a disk and :mod:`titans3.disks.directories` does drain and replace; with
``--disks`` the :class:`~titans3.disks.manager.DiskManager` does them.  Both
raise typed errors whose message the page shows.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from titans3.cluster import bootstrap
from titans3.core.errors import InvalidArgument
from titans3.disks import directories

if TYPE_CHECKING:
    from titans3.cluster.host import HostServices as Host
    from titans3.web.auth import Session


def _index(host: Host, form: dict[str, Any]) -> int:
    try:
        i = int(form["index"])
    except ValueError:
        raise InvalidArgument("index: not a number") from None
    if not 0 <= i < len(host.drives):
        raise InvalidArgument(f"index: this host has no drive {i}")
    return i


async def available_disks(host: Host) -> list[dict[str, Any]]:
    """Raw-disk mode: blank in-scope disks an operator may claim (none in directory mode)."""
    if host.disks is None:
        return []
    return [r for r in await host.disks.list_disks() if r.get("state") == "available"]


async def run(host: Host, name: str, form: dict[str, Any], session: Session) -> str:
    """Run action ``name``; the message to show (errors raise S3Error)."""
    disks = host.disks
    if name == "drain":
        i = _index(host, form)
        if disks is None:
            doc = await directories.drain(host, str(i))
        else:
            doc = await disks.drain(host.drives[i].drive_id)
        return str(doc.get("message", "drained"))
    if name == "replace":
        i = _index(host, form)
        if disks is None:
            doc = await directories.replace(host, str(i))
        else:
            device = str(form.get("device", ""))
            if not device:
                raise InvalidArgument("device: choose the new disk")
            doc = await disks.replace(host.drives[i].drive_id, device)
        return str(doc.get("message", "replaced"))
    if name == "claim":
        if disks is None:
            raise InvalidArgument("claim: this host runs on directories, not raw disks")
        doc = await disks.claim(str(form["device"]))
        return str(doc.get("message", "claimed"))
    if name == "join-token":
        tok = bootstrap.issue_token(host)
        tok["expires_text"] = time.strftime("%H:%M:%S UTC", time.gmtime(tok["expires"]))
        session.token = tok  # shown on the next render of this session's page
        return ""
    raise InvalidArgument(f"no action {name!r}")
