"""The daemons a torture run works against: one host with six drives, or six hosts.

Both are real ``titans3 serve`` processes started by the integration harness
(:mod:`tests.integration.cluster`, :mod:`tests.integration.peerhosts`); this
module only gives them one shape the workload, the faults and the checker
share: nodes that can be SIGKILLed and restarted, drives (directories) that
can be pulled and returned, and a boto3 client per node and thread.
"""

from __future__ import annotations

import abc
import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.integration import cluster, peerhosts
from tests.integration.cluster import Daemon
from tests.integration.durability import admin

# Daemon settings for torture: the commit window is short so the GC check can
# run every few rounds (GC passes are started by the checker, only while the
# workload is quiet), repair starts at once, scrubbing is unthrottled.
ENV = {
    "TITANS3_COMMIT_WINDOW": "6",
    "TITANS3_GC_INTERVAL": "86400",
    "TITANS3_REPAIR_GRACE": "0",
    "TITANS3_SCRUB_RATE": "0",
}


@dataclass(eq=False)
class Node:
    daemon: Daemon
    name: str

    @property
    def up(self) -> bool:
        return self.daemon.running


@dataclass(eq=False)
class DriveRef:
    node: Node
    index: int  # drive index on its node

    @property
    def path(self) -> Path:
        return self.node.daemon.drive_dir(self.index)

    @property
    def pulled_path(self) -> Path:
        return self.path.with_name(self.path.name + ".pulled")

    @property
    def pulled(self) -> bool:
        return self.pulled_path.exists() and not self.path.exists()

    def __str__(self) -> str:
        return f"{self.node.name}/drive-{self.index}"


def s3_client(d: Daemon) -> Any:
    """boto3 for ``d``: path-style, no retries (an error is an outcome to record)."""
    import boto3
    from botocore.config import Config

    cfg = Config(region_name=cluster.REGION, s3={"addressing_style": "path"},
                 retries={"total_max_attempts": 1}, connect_timeout=5, read_timeout=90,
                 max_pool_connections=4)
    return boto3.session.Session().client(
        "s3", endpoint_url=d.endpoint, aws_access_key_id=d.credentials.access_key,
        aws_secret_access_key=d.credentials.secret_key, region_name=cluster.REGION, config=cfg)


class Topology(abc.ABC):
    """Nodes and drives of one run; subclasses start them."""

    name = "?"
    k, m = 4, 2

    def __init__(self, base: Path) -> None:
        self.base = base
        self.nodes: list[Node] = []
        self.drives: list[DriveRef] = []
        self._local = threading.local()

    # -- lifecycle
    @abc.abstractmethod
    def running(self) -> contextlib.AbstractContextManager[Topology]:
        """Start every node; stop them all when the block ends."""

    def kill(self, node: Node) -> None:
        node.daemon.kill()

    def restart(self, node: Node) -> None:
        if not node.up:
            node.daemon.start(wait=False)
        node.daemon.wait_ready(120)
        self._local.__dict__.pop(id(node), None)

    def live(self) -> list[Node]:
        return [n for n in self.nodes if n.up]

    # -- clients
    def client(self, node: Node) -> Any:
        """This thread's boto3 client for ``node`` (no retries: an error is an outcome)."""
        c = self._local.__dict__.get(id(node))
        if c is None:
            c = s3_client(node.daemon)
            self._local.__dict__[id(node)] = c
        return c

    def forget_clients(self) -> None:
        for c in list(self._local.__dict__.values()):
            with contextlib.suppress(Exception):
                c.close()
        self._local.__dict__.clear()

    def admin(self, node: Node, method: str, path: str, **query: str) -> dict[str, Any]:
        return admin(node.daemon, method, path, **query)

    def fragment_files(self) -> list[Path]:
        out: list[Path] = []
        for d in self.drives:
            chunks = d.path / "chunks"
            if chunks.is_dir():
                out.extend(p for p in chunks.rglob("*") if p.is_file())
        return sorted(out)

    def staging_files(self) -> list[Path]:
        out: list[Path] = []
        for d in self.drives:
            st = d.path / "staging"
            if st.is_dir():
                out.extend(p for p in st.iterdir() if p.is_file())
        return out


class SingleHost(Topology):
    name = "single"

    def __init__(self, base: Path, drives: int = 6) -> None:
        super().__init__(base)
        d = Daemon(base / "data", base / "titans3.log", drives=drives, env=ENV, name="host")
        node = Node(d, "host")
        self.nodes = [node]
        self.drives = [DriveRef(node, i) for i in range(drives)]

    @contextlib.contextmanager
    def running(self) -> Iterator[Topology]:
        d = self.nodes[0].daemon
        cluster.LIVE.append(d)
        try:
            d.start()
            yield self
        finally:
            self.forget_clients()
            try:
                d.stop()
            finally:
                cluster.LIVE.remove(d)


class Cluster(Topology):
    name = "cluster"

    def __init__(self, base: Path, hosts: int = 6) -> None:
        super().__init__(base)
        addrs, ports, peers = peerhosts.plan(hosts)
        for i, (a, p) in enumerate(zip(addrs, ports, strict=True)):
            h = peerhosts.ClusterHost(a, base, i + 1, peers, p, env=ENV)
            node = Node(h, f"host{i + 1}")
            self.nodes.append(node)
            self.drives.append(DriveRef(node, 0))

    @contextlib.contextmanager
    def running(self) -> Iterator[Topology]:
        hosts = [n.daemon for n in self.nodes]
        with peerhosts.running(hosts, timeout=180):  # type: ignore[arg-type]
            try:
                yield self
            finally:
                self.forget_clients()
