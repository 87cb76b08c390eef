"""Helpers for hostile-client tests: raw sockets, a daemon's RSS and descriptors from /proc.

Figures (RSS and open descriptors before, at the worst moment, and after) are
collected in :data:`FIGURES` and printed as a table when the module's daemon
stops; with ``TITANS3_FIGURES=FILE`` they are appended to FILE as JSON lines
(the torture script gathers them for docs/durability.md).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import asdict, dataclass

from .cluster import HOST, Daemon
from .rawhttp import Response, parse_raw_response, sign

MiB = 1 << 20


@dataclass(frozen=True)
class ProcStats:
    rss: int  # bytes
    fds: int

    def __str__(self) -> str:
        return f"{self.rss / MiB:.0f} MiB / {self.fds} fds"


def proc_stats(pid: int) -> ProcStats:
    rss = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) * 1024
    return ProcStats(rss, len(os.listdir(f"/proc/{pid}/fd")))


@dataclass
class Figure:
    case: str
    before: ProcStats
    worst: ProcStats
    after: ProcStats
    note: str = ""


FIGURES: list[Figure] = []


class Watch:
    """Samples a daemon's RSS/fds while a test runs; ``worst`` is the peak of each."""

    def __init__(self, d: Daemon, case: str) -> None:
        self.d = d
        self.case = case
        self.before = proc_stats(d.pid)
        self.peak_rss = self.before.rss
        self.peak_fds = self.before.fds

    def sample(self) -> ProcStats:
        s = proc_stats(self.d.pid)
        self.peak_rss = max(self.peak_rss, s.rss)
        self.peak_fds = max(self.peak_fds, s.fds)
        return s

    @property
    def worst(self) -> ProcStats:
        return ProcStats(self.peak_rss, self.peak_fds)

    def settle(self, max_fds_over: int = 8, timeout: float = 20.0) -> ProcStats:
        """Wait until the daemon's descriptors are back near the start; record the figure."""
        deadline = time.monotonic() + timeout
        while True:
            s = self.sample()
            if s.fds <= self.before.fds + max_fds_over or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        FIGURES.append(Figure(self.case, self.before, self.worst, s))
        return s


def table() -> str:
    rows = ["| case | before | worst | after | note |", "|---|---|---|---|---|"]
    rows += [f"| {f.case} | {f.before} | {f.worst} | {f.after} | {f.note} |" for f in FIGURES]
    return "\n".join(rows)


def dump(path: str | None = os.environ.get("TITANS3_FIGURES")) -> None:
    if not path:
        return
    with open(path, "a") as f:
        for fig in FIGURES:
            f.write(json.dumps({"kind": "hostile", **asdict(fig)}) + "\n")


# ---------------------------------------------------------------- sockets
def connect(d: Daemon, timeout: float = 10.0) -> socket.socket:
    s = socket.create_connection((HOST, d.s3_port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def signed_head(d: Daemon, method: str, path: str, headers: dict[str, str] | None = None,
                payload: str = "UNSIGNED-PAYLOAD") -> bytes:
    """A SigV4-signed request head (botocore signs), ready to write to a socket."""
    hdrs = sign(method, d.endpoint + path, d.credentials, headers or {}, payload)
    lines = [f"{method} {path} HTTP/1.1"] + [f"{k}: {v}" for k, v in hdrs.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def read_response(s: socket.socket, timeout: float = 30.0) -> tuple[Response | None, bool]:
    """(the response the server sent, whether it then closed the connection).

    Reads until the server closes or ``timeout``; a reset counts as a close.
    """
    s.settimeout(timeout)
    raw = b""
    closed = False
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                closed = True
                break
            raw += chunk
            head, sep, rest = raw.partition(b"\r\n\r\n")
            if sep and b"content-length:" in head.lower():
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                if len(rest) >= length and not head.startswith(b"HTTP/1.1 100"):
                    # the whole response is here; see whether the close follows
                    s.settimeout(2.0)
    except TimeoutError:
        pass
    except (ConnectionResetError, BrokenPipeError):
        closed = True
    return (parse_raw_response(raw) if raw.startswith(b"HTTP/") else None), closed


def wait_until(what: str, fn: Callable[[], bool], timeout: float, every: float = 0.1) -> float:
    """Seconds it took for ``fn()`` to be true (AssertionError after ``timeout``)."""
    t0 = time.monotonic()
    while not fn():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"not within {timeout:.0f}s: {what}")
        time.sleep(every)
    return time.monotonic() - t0


def is_closed_by_peer(s: socket.socket) -> bool:
    """True once the server has closed ``s`` (EOF or reset), without blocking."""
    s.setblocking(False)
    try:
        data = s.recv(65536, socket.MSG_PEEK)
        if data:
            s.recv(len(data))  # an error answer; the close may follow
            return False
        return True
    except BlockingIOError:
        return False
    except (ConnectionResetError, BrokenPipeError, OSError):
        return True
    finally:
        with contextlib.suppress(OSError):
            s.setblocking(True)


def server_side_open(server_port: int, client: socket.socket) -> bool:
    """True while the kernel still has the server's end of ``client``'s connection
    (any state but CLOSE/TIME_WAIT): /proc/net/tcp, matched by both ports."""
    cport = client.getsockname()[1]
    want = (f"{server_port:04X}", f"{cport:04X}")
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            parts = line.split()
            local, remote, state = parts[1], parts[2], parts[3]
            if (local.split(":")[1], remote.split(":")[1]) == want and state not in ("06", "07"):
                return True
    return False


def object_path(bucket: str, key: str) -> str:
    return "/" + bucket + "/" + urllib.parse.quote(key, safe="/~")
