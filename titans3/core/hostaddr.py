"""This host's own network address, as other machines on its network reach it.

Used where a page or command must *suggest* the address peers should use
(the status page's "this node's peer address" field): the name a browser used
to reach the page is right when it is a real address, but behind a port
forward or an SSH tunnel it is ``127.0.0.1`` -- right for the browser, wrong
for every peer.  Then the address of the interface that carries the default
route is the best guess: it is what the appliance's console shows as the
node's address (appliance/titans3-console).

Nothing is sent: the routing table and interface addresses are read from the
kernel (``/proc/net/route``, ``SIOCGIFADDR``).  Parsing is pure
(:func:`default_route_interface`); :func:`primary_address` is the thin shell.
"""

from __future__ import annotations

import fcntl
import ipaddress
import socket
import struct

SIOCGIFADDR = 0x8915
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def is_loopback_name(name: str) -> bool:
    """``localhost``, ``127.x.y.z``, ``::1`` (and an empty name: nothing known)."""
    name = name.strip("[]").lower()
    if not name or name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def default_route_interface(route_table: str) -> str | None:
    """The interface of the lowest-metric default route in ``/proc/net/route`` text."""
    best: tuple[int, str] | None = None
    for line in route_table.splitlines()[1:]:
        f = line.split()
        if len(f) < 8 or f[1] != "00000000" or f[7] != "00000000":
            continue
        try:
            flags, metric = int(f[3], 16), int(f[6])
        except ValueError:
            continue
        if flags & 0x1 and (best is None or metric < best[0]):  # RTF_UP
            best = (metric, f[0])
    return best[1] if best else None


def interface_address(ifname: str) -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            raw = fcntl.ioctl(s.fileno(), SIOCGIFADDR, struct.pack("256s", ifname.encode()[:15]))
        except OSError:
            return None
    return socket.inet_ntoa(raw[20:24])


def primary_address(route_file: str = "/proc/net/route") -> str | None:
    """The IPv4 address of the default route's interface, else of the first
    interface that has a non-loopback one; None when there is none."""
    try:
        with open(route_file) as f:
            iface = default_route_interface(f.read())
    except OSError:
        iface = None
    candidates = ([iface] if iface else []) + [n for _, n in socket.if_nameindex() if n != iface]
    for name in candidates:
        addr = interface_address(name)
        if addr and not ipaddress.ip_address(addr).is_loopback:
            return addr
    return None
