"""Block-device uevents as trio wake-ups.

Theory of operation
-------------------
The kernel announces every block device change on a netlink socket; pyudev
wraps it.  Without udevd only the ``kernel`` source delivers (attaching or
detaching a loop device is a ``change`` event, a hot-plugged disk ``add`` /
``remove``); with udevd the ``udev`` source delivers the same events *after*
udev has probed the device, with its ``ID_FS_*`` properties -- so that is the
one to use when udevd runs.

Events are hints, not state: the disk manager re-reads the truth (sysfs,
mounts, signatures) whenever one arrives, and also every few seconds without
one, so a lost or coalesced event costs latency, never correctness.  Hence
the interface is a single callback per burst, and no event content is trusted.

The socket is non-blocking and read on the event loop
(``trio.lowlevel.wait_readable`` on its descriptor): no thread, nothing to
join on shutdown.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import pyudev
import trio

from titans3.disks.probe import udevd_running

log = logging.getLogger(__name__)


def open_monitor(context: pyudev.Context | None = None) -> tuple[pyudev.Monitor, str]:
    source = "udev" if udevd_running() else "kernel"
    monitor = pyudev.Monitor.from_netlink(context or pyudev.Context(), source=source)
    monitor.filter_by("block")
    monitor.start()
    return monitor, source


async def watch_block_events(on_event: Callable[[str, str], None]) -> None:
    """Call ``on_event(action, device node)`` for every block uevent, forever.

    Returns at once (after logging why) if uevents cannot be received here,
    e.g. in a container without netlink access; periodic rescans still work.
    """
    try:
        monitor, source = open_monitor()
    except (OSError, pyudev.DeviceNotFoundError, ValueError) as e:
        log.warning("block device events unavailable (%s); relying on periodic rescans", e)
        return
    log.info("watching block device events (%s source)", source)
    fd = monitor.fileno()
    while True:
        await trio.lowlevel.wait_readable(fd)
        while True:
            try:
                dev = monitor.poll(timeout=0)
            except OSError as e:  # ENOBUFS after a burst: events were lost, rescan anyway
                log.debug("uevent socket: %s", e)
                on_event("overflow", "")
                break
            if dev is None:
                break
            on_event(dev.action or "?", dev.device_node or dev.sys_name)
