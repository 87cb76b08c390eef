"""Cluster hosts for integration tests: each daemon on its own 127.0.0.x address.

Shared by the TLS and partition tests: a :class:`ClusterHost` is a real
``titans3 serve`` with ``--peers`` and optional extra flags (TLS), and
:func:`start_cluster` starts them together (each waits for the others) and
always stops them.
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from pathlib import Path

import httpx

from . import cluster
from .cluster import Daemon, DaemonError

SECRET = "cluster-test-secret-0123456789abcdef"


def free_port_on(addr: str) -> int:
    """A port that binds on ``addr`` now and was not handed out before in this run."""
    for _ in range(200):
        port = cluster.free_port()
        with socket.socket() as s:
            try:
                s.bind((addr, port))
            except OSError:
                continue
        return port
    raise RuntimeError(f"no free port on {addr}")


class ClusterHost(Daemon):
    """A daemon on its own loopback address, one of a ``--peers`` cluster."""

    def __init__(self, addr: str, base: Path, n: int, peers: list[str], ports: tuple[int, int, int],
                 *, drives: int = 1, extra: Sequence[str] = (), ca: Path | None = None,
                 env: dict[str, str] | None = None) -> None:
        super().__init__(base / f"host{n}", base / f"host{n}.log", drives=drives, name=f"host{n}",
                         ports=ports, env=env)
        self.addr = addr
        self.peers = peers
        self.extra = list(extra)
        self.ca = ca  # set: the S3 port speaks HTTPS with a certificate from this CA

    @property
    def endpoint(self) -> str:
        return f"{'https' if self.ca else 'http'}://{self.addr}:{self.s3_port}"

    @property
    def peer_address(self) -> str:
        return f"{self.addr}:{self.peer_port}"

    def argv(self) -> list[str]:
        return [
            str(cluster.TITANS3), "serve",
            "--data", str(self.data_dir), "--drives", str(self.drives),
            "--listen", f"{self.addr}:{self.s3_port}",
            "--peer-listen", self.peer_address,
            "--web-listen", f"{self.addr}:{self.web_port}",
            "--peers", ",".join(self.peers),
            "--cluster-secret", SECRET,
            *self.extra,
        ]  # fmt: skip

    def answers(self) -> bool:
        verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=str(self.ca)) if self.ca else True
        try:
            with httpx.Client(trust_env=False, timeout=1.0, verify=verify) as c:
                c.get(f"{self.endpoint}/")
            return True
        except httpx.HTTPError:
            return False

    def wait_ready(self, timeout: float | None = None) -> None:
        deadline = time.monotonic() + (timeout or self.start_timeout)
        while not self.answers():
            self._check_alive("while starting")
            if time.monotonic() > deadline:
                raise DaemonError(f"{self.name}: S3 port not answering\n{self.log_tail()}")
            time.sleep(0.1)


class LoneHost(ClusterHost):
    """Same secret, no ``--peers``: a running host waiting to be joined."""

    def argv(self) -> list[str]:
        argv = super().argv()
        i = argv.index("--peers")
        return argv[:i] + argv[i + 2:]


def read_all(host: ClusterHost, bucket: str, objects: dict[str, bytes]) -> None:
    """Every object reads back through ``host`` with its bytes."""
    with closing(s3_client(host)) as s3:
        for key, body in objects.items():
            assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == body, (host.name, key)


def plan(n: int) -> tuple[list[str], list[tuple[int, int, int]], list[str]]:
    """Addresses 127.0.0.1..n, their (s3, peer, web) ports and the ``--peers`` list."""
    addrs = [f"127.0.0.{i + 1}" for i in range(n)]
    ports = [(free_port_on(a), free_port_on(a), free_port_on(a)) for a in addrs]
    peers = [f"{a}:{p[1]}" for a, p in zip(addrs, ports, strict=True)]
    return addrs, ports, peers


@contextmanager
def running(hosts: list[ClusterHost], timeout: float = 90) -> Iterator[list[ClusterHost]]:
    """Start ``hosts`` together, yield them, always stop them."""
    cluster.LIVE.extend(hosts)
    try:
        for h in hosts:
            h.start(wait=False)  # together: each waits for all the others
        for h in hosts:
            h.wait_ready(timeout)
        yield hosts
    finally:
        for h in hosts:
            try:
                h.stop()
            finally:
                cluster.LIVE.remove(h)


def s3_client(host: ClusterHost, *, connect_timeout: float = 10, read_timeout: float = 60):
    """boto3 for ``host`` (HTTPS verified against its CA when it has one); no retries."""
    import boto3
    from botocore.config import Config

    cfg = Config(region_name=cluster.REGION, s3={"addressing_style": "path"},
                 retries={"total_max_attempts": 1}, connect_timeout=connect_timeout,
                 read_timeout=read_timeout)
    creds = host.credentials
    return boto3.session.Session().client(
        "s3", endpoint_url=host.endpoint, aws_access_key_id=creds.access_key,
        aws_secret_access_key=creds.secret_key, region_name=cluster.REGION, config=cfg,
        verify=str(host.ca) if host.ca else None,
    )
