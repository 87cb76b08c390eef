"""The status page (titans3/web/), rendered by headless Chromium, and /metrics.

Chromium loads ``/`` from the real daemon, runs the page's script (which
fetches ``/api/status``) and dumps the resulting DOM; the test reads the tables
the way an operator would.  ``--virtual-time-budget`` lets the page's fetch and
first render finish before the dump.

* One host: six online drives and a row for every worker.
* A 3-host cluster: host 1's page lists all three hosts and every host's
  workers (they travel in heartbeats); after host 3 is SIGKILLed the page says
  it is down.
* ``/metrics`` parses with prometheus-client's own parser and carries the
  worker gauges.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from .cluster import Daemon
from .peerhosts import ClusterHost, plan, running

WORKERS = {"scrubber", "heal-queue", "repair", "refill", "gc", "handoff", "rebalance"}


def chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.fail("chromium is not installed: run ./scripts/setup.sh (apt-get install chromium)")
    return exe


def render(url: str, profile: Path) -> str:
    """The page's DOM after its script ran, as headless Chromium sees it."""
    out = subprocess.run(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         f"--user-data-dir={profile}", "--virtual-time-budget=5000", "--dump-dom", url],
        capture_output=True, text=True, timeout=90, check=False,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


class Tables(HTMLParser):
    """Rows of every ``<table id=...>``: {table id: [[cell text, ...], ...]}."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.text: dict[str, str] = {}
        self.attrs: dict[str, dict[str, str | None]] = {}  # by element id
        self._table: str | None = None
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self._id_stack: list[str | None] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if a.get("id"):
            self.attrs[str(a["id"])] = a
        if tag == "table":
            self._table = a.get("id")
            self.tables.setdefault(self._table or "", [])
        elif tag == "tr" and self._table is not None:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []
        self._id_stack.append(a.get("id"))

    def handle_endtag(self, tag: str) -> None:
        if self._id_stack:
            self._id_stack.pop()
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None and self._table is not None:
            self.tables[self._table].append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        for ident in self._id_stack:
            if ident:
                self.text[ident] = self.text.get(ident, "") + data

    def body(self, table: str) -> list[list[str]]:
        return [r for r in self.tables.get(table, [])[1:]]  # without the header row


def web_url(d: Daemon, addr: str = "127.0.0.1") -> str:
    return f"http://{addr}:{d.web_port}/"


def test_a_host_page_shows_its_drives_and_every_worker(daemon: Daemon, tmp_path: Path) -> None:
    page = Tables(render(web_url(daemon), tmp_path / "profile"))
    assert "EC 4+2" in page.text["summary"] and "6/6 drives online" in page.text["summary"]
    assert "write memory 0 B of 256.0 MiB" in page.text["summary"], page.text["summary"]
    drives = page.body("drives")
    assert len(drives) == 6 and all(r[2] == "online" for r in drives), drives
    workers = page.body("workers")
    assert {r[1] for r in workers} >= WORKERS, workers
    assert "hidden" in page.attrs["cluster-section"]  # a single host has no cluster section
    assert page.body("hosts") == []
    assert not page.text.get("error")


def test_metrics_parse_and_carry_the_workers(daemon: Daemon) -> None:
    text = httpx.get(f"{web_url(daemon)}metrics", timeout=10).text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    online = [s for s in families["titans3_drive_online"].samples]
    assert len(online) == 6 and all(s.value == 1.0 for s in online)
    busy = {s.labels["worker"] for s in families["titans3_worker_busy"].samples}
    assert busy >= WORKERS
    assert "titans3_partial_writes" in families  # the counter (exposed as ..._total)
    cap = families["titans3_write_memory_capacity_bytes"].samples[0].value
    assert cap == 256 * 2**20  # the default write_memory_mb
    assert families["titans3_write_streams_waiting"].samples[0].value == 0


@pytest.fixture(scope="module")
def trio_hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[ClusterHost]]:
    base = tmp_path_factory.mktemp("statuspage")
    addrs, ports, peers = plan(3)
    made = [ClusterHost(a, base, i + 1, peers, p, extra=["--ec", "2+1"])
            for i, (a, p) in enumerate(zip(addrs, ports, strict=True))]
    with running(made) as hs:
        yield hs


def test_a_cluster_page_shows_every_host_and_their_workers(
    trio_hosts: list[ClusterHost], tmp_path: Path,
) -> None:
    first = trio_hosts[0]
    url = web_url(first, first.addr)
    ids = {h.addr: httpx.get(f"http://{h.addr}:{h.web_port}/api/status", timeout=10).json()
           for h in trio_hosts}
    assert all(s["cluster"] is not None for s in ids.values())

    def page_now() -> Tables:
        return Tables(render(url, tmp_path / "profile"))

    # Heartbeats bring the peers' workers within a second or two of start-up.
    deadline = time.monotonic() + 30
    while True:
        page = page_now()
        hosts = page.body("hosts")
        per_host = {}
        for r in page.body("workers"):
            per_host.setdefault(r[0], set()).add(r[1])
        if (len(hosts) == 3 and len(per_host) == 3
                and all(w >= WORKERS for w in per_host.values())) or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert len(hosts) == 3, hosts
    assert all(r[2] == "online" and r[3] == "1/1" for r in hosts), hosts
    assert "hidden" not in page.attrs["cluster-section"]
    assert "ring version 1" in page.text["ring"]
    assert len(per_host) == 3 and all(w >= WORKERS for w in per_host.values()), per_host
    assert "(this host)" in " ".join(r[0] for r in hosts)

    dead = trio_hosts[2]
    dead.kill()
    deadline = time.monotonic() + 30
    while True:
        rows = {r[1]: r for r in page_now().body("hosts")}
        if rows[dead.peer_address][2] == "down" or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert rows[dead.peer_address][2] == "down", rows
    assert rows[trio_hosts[1].peer_address][2] == "online"
    assert "ago" in rows[dead.peer_address][5]
