"""The status page lists volumes: size, allocated bytes, where attached, ops/s (headless Chromium)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from . import cluster
from .nbdtools import PATH_ENV, SYSTEM_PYTHON, NbdDaemon
from .test_status_page import Tables, render


def test_the_status_page_lists_volumes_and_where_they_are_attached(tmp_path: Path) -> None:
    d = NbdDaemon(tmp_path / "data", tmp_path / "titans3.log", drives=6, name="titans3-web")
    cluster.LIVE.append(d)
    holder = None
    try:
        d.start()
        d.create_volume("web-vol", "64M")
        d.create_volume("idle-vol", "16M")
        holder = subprocess.Popen([SYSTEM_PYTHON, str(Path(__file__).parent / "nbdclients" / "hold.py"),
                                   d.uri("web-vol"), "3"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  text=True, env=PATH_ENV)
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        time.sleep(4.5)  # two samples of the volume statistics
        page = Tables(render(f"http://127.0.0.1:{d.web_port}/", tmp_path / "profile"))
        rows = {r[0]: r for r in page.body("volumes")}
        assert set(rows) == {"web-vol", "idle-vol"}, rows
        name, size, allocated, attached, ops, rate, snaps, parent = rows["web-vol"]
        assert size == "64.0 MiB" and allocated.endswith(("B", "KiB", "MiB")) and "(this host)" in attached
        assert ops and snaps == "0"
        assert rows["idle-vol"][3] == "-" and rows["idle-vol"][2] == "0 B"
    finally:
        if holder is not None:
            holder.kill()
            holder.wait()
        d.stop()
        cluster.LIVE.remove(d)
