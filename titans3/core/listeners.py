"""The daemon's listening sockets, bound before any server starts.

Theory of operation
-------------------
hypercorn binds its own sockets deep inside ``serve``; a port that is
already taken then surfaces as an ``OSError`` wrapped in exception groups --
a traceback, after the drives were opened and (in a cluster) the handshake
began.  Instead the daemon binds every listener itself, right after the
drives are locked (so a second daemon on the same data is told about the
drive first), and hands hypercorn the bound sockets as ``fd://N``.  A failure
is one :class:`~titans3.core.errors.ConfigError` line naming the listener
and the address.

The sockets are bound but not listening: hypercorn calls ``listen()`` when
that server starts, so a client that connects while the cluster forms is
refused rather than left hanging in the backlog.

Connection-level protections set here are inherited by every accepted socket
(Linux copies socket options on ``accept``):

* ``TCP_USER_TIMEOUT`` -- sent data that stays unacknowledged (a peer that
  vanished, or one that stopped reading so the window is zero) fails the
  connection after ``send_timeout`` seconds.  hypercorn writes with a shielded
  ``send_all``, so without this a client that stops reading a large GET would
  pin that request, its buffers and its descriptor forever.
* ``SO_KEEPALIVE`` -- an idle peer that is gone (power loss, cable) is found
  by the kernel, not only by the idle timeout.
"""

from __future__ import annotations

import errno
import os
import resource
import socket

from titans3.core.config import parse_hostport
from titans3.core.errors import ConfigError

_WHY = {
    errno.EADDRINUSE: "address already in use (another titans3 or another program listens there)",
    errno.EADDRNOTAVAIL: "address not available on this host",
    errno.EACCES: "permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE)",
}


def bind(address: str, name: str, *, send_timeout: float = 0.0, reuse_port: bool = False,
         probe: bool = False) -> socket.socket:
    """A TCP socket bound to ``address`` (HOST:PORT) for listener ``name``.

    ``reuse_port``: with ``SO_REUSEPORT``, so this daemon's S3 front processes
    can bind the same address (titans3/front/); ``probe`` first binds without
    it, so an address another program (or another titans3) holds is still
    refused rather than shared."""
    if probe:
        bind(address, name).close()
    host, port = parse_hostport(address, name)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        if send_timeout > 0 and hasattr(socket, "TCP_USER_TIMEOUT"):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, int(send_timeout * 1000))
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        why = _WHY.get(e.errno or 0, e.strerror or str(e))
        shown = f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"
        raise ConfigError(f"cannot listen for {name} on {shown}: {why}") from None
    return sock


def hypercorn_bind(sock: socket.socket) -> str:
    """The ``bind`` entry that makes hypercorn adopt ``sock`` (it owns it from then on)."""
    return f"fd://{sock.detach()}"


def raise_fd_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; returns the new soft limit.

    Every connection and every open fragment file is a descriptor; Debian's
    default soft limit (1024) would let a few hundred idle clients starve
    the drives of descriptors.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if want > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
            soft = want
        except (ValueError, OSError):
            pass
    return soft


def open_fds() -> int:
    """Descriptors this process has open now (Linux: /proc/self/fd)."""
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return -1
