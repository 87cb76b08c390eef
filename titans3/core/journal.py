"""Structured log records for journald (its native protocol), when run by systemd.

Theory of operation
-------------------
journald's native socket (``/run/systemd/journal/socket``) takes one datagram
per entry: ``FIELD=value\\n`` lines, or for a value with a newline
``FIELD\\n<le64 length><bytes>\\n``.  Each record carries ``MESSAGE``,
``PRIORITY`` (syslog levels), ``SYSLOG_IDENTIFIER``, ``LOGGER``, the code
location and, for exceptions, ``TRACEBACK``, so ``journalctl -u titans3
LOGGER=titans3.disks`` or ``-o json`` needs no text parsing.  Any
``extra={"t3_<name>": value}`` on a log call becomes field ``T3_<NAME>``.

:func:`wanted` says whether to use it: systemd sets ``JOURNAL_STREAM`` to the
device:inode of the stream it gave us as stderr; only when stderr is still
that stream do we switch (a redirect means someone wants the text).  A record
too large for one datagram is cut, never dropped; a send that fails falls
back to stderr so nothing is lost silently.
"""

from __future__ import annotations

import logging
import os
import socket
import struct
import sys
import traceback

SOCKET = "/run/systemd/journal/socket"
_MAX = 200 * 1024  # below the socket's default send buffer; longer messages are cut
_PRIORITY = {logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4, logging.INFO: 6, logging.DEBUG: 7}


def wanted(environ: dict[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    dev_ino = env.get("JOURNAL_STREAM", "")
    if not dev_ino or not os.path.exists(SOCKET):
        return False
    try:
        st = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError):
        return False
    return dev_ino == f"{st.st_dev}:{st.st_ino}"


def encode(fields: dict[str, str]) -> bytes:
    out = bytearray()
    for key, value in fields.items():
        data = value.encode("utf-8", "replace")
        if b"\n" in data:
            out += key.encode() + b"\n" + struct.pack("<Q", len(data)) + data + b"\n"
        else:
            out += key.encode() + b"=" + data + b"\n"
    return bytes(out)


class JournalHandler(logging.Handler):
    def __init__(self, identifier: str = "titans3", path: str = SOCKET) -> None:
        super().__init__()
        self.identifier = identifier
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    def fields(self, record: logging.LogRecord) -> dict[str, str]:
        f = {
            "MESSAGE": record.getMessage()[:_MAX],
            "PRIORITY": str(_PRIORITY.get(record.levelno, 6)),
            "SYSLOG_IDENTIFIER": self.identifier,
            "LOGGER": record.name,
            "CODE_FILE": record.pathname,
            "CODE_LINE": str(record.lineno),
            "CODE_FUNC": record.funcName,
            "THREAD_NAME": record.threadName or "",
        }
        if record.exc_info:
            f["TRACEBACK"] = "".join(traceback.format_exception(*record.exc_info))[:_MAX]
        for key, value in record.__dict__.items():
            if key.startswith("t3_") and value is not None:
                f[key.upper()] = str(value)[:_MAX]
        return f

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.sock.sendto(encode(self.fields(record)), self.path)
        except OSError:
            sys.stderr.write(f"{record.levelname} {record.name}: {record.getMessage()}\n")
        except Exception:  # noqa: BLE001 -- logging must never raise into the caller
            self.handleError(record)

    def close(self) -> None:
        self.sock.close()
        super().close()
