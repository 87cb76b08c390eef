"""Shipping records to journald over its native protocol (no library needed).

Theory of operation
-------------------
systemd-journald reads datagrams on ``/run/systemd/journal/socket``; each is
a list of ``FIELD=value`` lines, and a value that contains a newline is sent
as ``FIELD\\n`` + its length as a little-endian 64-bit integer + the bytes +
``\\n`` (systemd's "Native Journal Protocol").  Field names are upper-case
letters, digits and underscores and must not start with an underscore.
:func:`encode_entry` is that encoding, pure; :class:`Journal` sends one
datagram per entry, never blocks (a full socket buffer drops the entry and
counts it: the cluster copy of the audit log is the durable one), and keeps
working when journald restarts (the socket is connected per send).
"""

from __future__ import annotations

import errno
import os
import re
import socket
import struct
from collections.abc import Mapping

__all__ = ["DEFAULT_SOCKET", "Journal", "encode_entry", "resolve_socket"]

DEFAULT_SOCKET = "/run/systemd/journal/socket"
_FIELD = re.compile(r"[A-Z0-9][A-Z0-9_]*")


def encode_entry(fields: Mapping[str, str | bytes | int]) -> bytes:
    out = bytearray()
    for name, value in fields.items():
        if not _FIELD.fullmatch(name):
            raise ValueError(f"invalid journal field name {name!r}")
        raw = value if isinstance(value, bytes) else str(value).encode("utf-8")
        if b"\n" in raw:
            out += name.encode() + b"\n" + struct.pack("<Q", len(raw)) + raw + b"\n"
        else:
            out += name.encode() + b"=" + raw + b"\n"
    return bytes(out)


def resolve_socket(setting: str) -> str | None:
    """``auto``: journald's socket if it exists; ``off``/empty: none; else a path."""
    if setting in ("", "off", "none"):
        return None
    if setting == "auto":
        return DEFAULT_SOCKET if os.path.exists(DEFAULT_SOCKET) else None
    return setting


class Journal:
    def __init__(self, path: str, *, identifier: str = "titans3-audit") -> None:
        self.path = path
        self.identifier = identifier
        self.sent = 0
        self.dropped = 0
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.setblocking(False)

    def send(self, message: str, fields: Mapping[str, str | bytes | int], *, priority: int = 6) -> None:
        entry = encode_entry({"MESSAGE": message, "PRIORITY": priority,
                              "SYSLOG_IDENTIFIER": self.identifier, **fields})  # fmt: skip
        try:
            self._sock.sendto(entry, self.path)
            self.sent += 1
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.ENOENT, errno.ECONNREFUSED, errno.ENOBUFS, errno.EMSGSIZE):
                raise
            self.dropped += 1

    def close(self) -> None:
        self._sock.close()
