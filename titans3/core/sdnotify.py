"""systemd's notify protocol: READY, STATUS, STOPPING and the watchdog.

Theory of operation
-------------------
Under ``Type=notify`` systemd passes ``NOTIFY_SOCKET`` (a unix datagram
socket path, ``@`` meaning the abstract namespace) and, with ``WatchdogSec=``,
``WATCHDOG_USEC`` (and ``WATCHDOG_PID``).  A message is one datagram of
``KEY=value`` lines.  Outside systemd every call here is a no-op, so the
daemon runs the same way from a shell or a test.

The watchdog is pinged by a task *in the event loop* (:func:`watchdog_loop`),
at half the interval systemd asked for.  That is the point: a loop stalled by
blocking code stops pinging, systemd kills the process (SIGABRT) and restarts
it under the unit's ``Restart=`` policy.  A ping from a thread would keep a
dead loop looking alive.

The datagram send is non-blocking and local; it never waits on the loop.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

import trio


class Notifier:
    """One connection to ``$NOTIFY_SOCKET`` (or none, outside systemd)."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        addr = env.get("NOTIFY_SOCKET", "")
        self.address: str | bytes | None = None
        if addr.startswith("@"):
            self.address = b"\0" + addr[1:].encode()
        elif addr.startswith("/"):
            self.address = addr
        self.watchdog_s = _watchdog_interval(env)
        self.sent = 0  # datagrams delivered (statistics, tests)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, **fields: str | int) -> bool:
        """Send one message (``ready=1`` becomes ``READY=1``); False if not under systemd
        or the socket is gone (systemd restarting is no reason to crash)."""
        if self.address is None:
            return False
        payload = "\n".join(f"{k.upper()}={v}" for k, v in fields.items()).encode()
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
            s.setblocking(False)
            try:
                s.sendto(payload, self.address)
            except OSError:
                return False
        self.sent += 1
        return True

    def ready(self, status: str = "") -> bool:
        return self.send(ready=1, status=status) if status else self.send(ready=1)

    def status(self, text: str) -> bool:
        return self.send(status=text)

    def stopping(self) -> bool:
        return self.send(stopping=1, status="stopping")

    async def watchdog_loop(self) -> None:
        """Ping ``WATCHDOG=1`` every half interval, forever (nothing to do without a watchdog)."""
        if self.watchdog_s is None or not self.enabled:
            return
        while True:
            self.send(watchdog=1)
            await trio.sleep(self.watchdog_s / 2)


def _watchdog_interval(env: Mapping[str, str]) -> float | None:
    usec = env.get("WATCHDOG_USEC", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    pid = env.get("WATCHDOG_PID", "")
    if pid and pid != str(os.getpid()):  # meant for another process of the unit
        return None
    return int(usec) / 1e6
