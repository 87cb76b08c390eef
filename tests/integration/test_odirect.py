"""Fragment data is written with O_DIRECT (DESIGN section 5), seen from outside via /proc.

While a large PUT streams in, the daemon's open files under a drive's
``staging/`` or ``chunks/`` are sampled from ``/proc/<pid>/fd`` and their open
flags read from ``/proc/<pid>/fdinfo/<fd>`` (the ``flags:`` field is octal).
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import psutil
import pytest

from .cluster import Daemon, MiB, s3_client
from .rawhttp import pattern_chunks, sha256_of, stream_put

# O_DIRECT differs by architecture; os.O_DIRECT is the running kernel's value.
O_DIRECT = getattr(os, "O_DIRECT", 0o40000)

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="/proc/<pid>/fdinfo is Linux-only"
)


def open_drive_files(pids: list[int], data_dir: Path) -> dict[str, int]:
    """path -> open flags for every fd of ``pids`` on a file in staging/ or chunks/."""
    root = str(data_dir) + os.sep
    found: dict[str, int] = {}
    for pid in pids:
        fd_dir = f"/proc/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except (FileNotFoundError, ProcessLookupError):
            continue
        for fd in fds:
            try:
                target = os.readlink(f"{fd_dir}/{fd}")
                if not target.startswith(root):
                    continue
                if "/staging/" not in target and "/chunks/" not in target:
                    continue
                with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                    for line in f:
                        if line.startswith("flags:"):
                            flags = int(line.split()[1], 8)
                            found[target] = found.get(target, 0) | flags
                            break
            except (FileNotFoundError, ProcessLookupError):
                continue  # fd closed between listdir and readlink/open
    return found


def test_large_upload_writes_fragments_with_o_direct(daemon: Daemon) -> None:
    s3_client(daemon).create_bucket(Bucket="odirect")
    total = 500 * MiB
    sha = sha256_of(pattern_chunks(total, 5))
    result: list[object] = []

    def upload() -> None:
        try:
            body = pattern_chunks(total, 5)
            result.append(stream_put(daemon, "odirect", "big", body, total, payload_sha256=sha))
        except Exception as e:  # reported by the main thread
            result.append(e)

    th = threading.Thread(target=upload, daemon=True)
    th.start()
    seen: dict[str, int] = {}
    proc = psutil.Process(daemon.pid)
    while th.is_alive():
        try:
            pids = [proc.pid, *(c.pid for c in proc.children(recursive=True))]
        except psutil.NoSuchProcess:
            break
        for path, flags in open_drive_files(pids, daemon.data_dir).items():
            seen[path] = seen.get(path, 0) | flags
        if any(f & O_DIRECT for f in seen.values()):
            break
        th.join(0.002)
    th.join(300)
    assert result, "upload thread did not finish"
    r = result[0]
    assert not isinstance(r, Exception), f"upload failed: {r!r}"
    assert r.status == 200, f"PUT {r.status}: {r.body[:500]!r}"
    assert seen, "never saw an open file under a drive's staging/ or chunks/ during a 500 MiB PUT"
    direct = [p for p, f in seen.items() if f & O_DIRECT]
    assert direct, "no drive file was open with O_DIRECT; seen (octal flags):\n" + "\n".join(
        f"  {oct(f)} {p}" for p, f in sorted(seen.items())
    )
