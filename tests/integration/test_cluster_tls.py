"""A TLS cluster: certificates from ``titanctl cluster init``, HTTPS for S3 and peers.

Three hosts on 127.0.0.1..3 with two drives each (6 drives -> EC 4+2), every
host started with the certificate ``titanctl cluster init`` made for it.  The
S3 API is used over HTTPS (boto3 verifying against the cluster CA); the peer
API is mutual TLS, so a caller holding a certificate from another CA is turned
away in the handshake even when its HMAC signature is valid.
"""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import httpx
import pytest
import trio

from titans3.core.errors import DriveOffline
from titans3.drive.remote import PeerClient, Timeouts
from titans3.peer.auth import Signer

from . import cluster
from .cluster import MiB
from .peerhosts import SECRET, ClusterHost, free_port_on, plan, running, s3_client

HOSTS = 3
BUCKET = "secure"
BIG = os.urandom(2 * MiB + 777)
SMALL = os.urandom(1500)


def cluster_init(out: Path, hosts: str) -> None:
    proc = subprocess.run([str(cluster.TITANCTL), "cluster", "init", "--out", str(out), "--hosts", hosts],
                          capture_output=True, text=True, env=cluster.clean_env(), timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("tls")
    cluster_init(base / "ca", ",".join(f"host{i + 1}=127.0.0.{i + 1}" for i in range(HOSTS)))
    # Another CA, issuing a certificate for an address of the cluster: what an
    # outsider with a valid-looking certificate would hold.
    cluster_init(base / "rogue", "rogue=127.0.0.1;127.0.0.4")
    return base


@pytest.fixture(scope="module")
def hosts(certs: Path) -> Iterator[list[ClusterHost]]:
    addrs, ports, peers = plan(HOSTS)
    ca = certs / "ca"
    made = [
        ClusterHost(a, certs, i + 1, peers, p, drives=2, ca=ca / "ca.pem", extra=[
            "--tls-cert", str(ca / f"host{i + 1}.pem"), "--tls-key", str(ca / f"host{i + 1}-key.pem"),
            "--tls-ca", str(ca / "ca.pem")])
        for i, (a, p) in enumerate(zip(addrs, ports, strict=True))
    ]
    with running(made) as hs:
        yield hs


def test_s3_over_https_puts_and_reads_back_through_every_host(hosts: list[ClusterHost]) -> None:
    with closing(s3_client(hosts[0])) as s3:
        s3.create_bucket(Bucket=BUCKET)
        s3.put_object(Bucket=BUCKET, Key="big", Body=BIG)
        s3.put_object(Bucket=BUCKET, Key="small", Body=SMALL)
    for h in hosts:
        with closing(s3_client(h)) as s3:
            assert s3.get_object(Bucket=BUCKET, Key="big")["Body"].read() == BIG, h.name
            assert s3.get_object(Bucket=BUCKET, Key="small")["Body"].read() == SMALL, h.name
            assert [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]] == ["big", "small"]
    # EC 4+2 over 3 hosts x 2 drives: the fragments went over the (TLS) peer API.
    assert sorted(len(h.fragment_files()) for h in hosts) == [2, 2, 2]


def test_the_s3_port_does_not_speak_plain_http(hosts: list[ClusterHost]) -> None:
    h = hosts[1]
    with httpx.Client(trust_env=False, timeout=5) as c, pytest.raises(httpx.HTTPError):
        c.get(f"http://{h.addr}:{h.s3_port}/")


def _peer_heartbeat(h: ClusterHost, ctx: ssl.SSLContext) -> int:
    target = "/peer/v1/heartbeat"
    headers = Signer(SECRET, "test").headers("GET", target, b"")
    with httpx.Client(trust_env=False, timeout=5, verify=ctx) as c:
        return c.get(f"https://{h.peer_address}{target}", headers=headers).status_code


def _ctx(ca: Path, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(ca))
    if cert is not None:
        ctx.load_cert_chain(str(cert), str(key))
    return ctx


def test_the_peer_port_refuses_a_certificate_from_another_ca(hosts: list[ClusterHost], certs: Path) -> None:
    h, ca, rogue = hosts[2], certs / "ca", certs / "rogue"
    # A cluster member's certificate with a valid signature: accepted.
    assert _peer_heartbeat(h, _ctx(ca / "ca.pem", ca / "host1.pem", ca / "host1-key.pem")) == 200
    # The same signed request with another CA's certificate, or with none:
    # the handshake fails before any HTTP is read.
    with pytest.raises(httpx.HTTPError):
        _peer_heartbeat(h, _ctx(ca / "ca.pem", rogue / "rogue.pem", rogue / "rogue-key.pem"))
    with pytest.raises(httpx.HTTPError):
        _peer_heartbeat(h, _ctx(ca / "ca.pem"))


def test_a_peer_client_refuses_a_server_with_a_certificate_from_another_ca(certs: Path) -> None:
    """The other direction: a host does not talk to an impostor at a peer address."""
    ca, rogue = certs / "ca", certs / "rogue"
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(str(rogue / "rogue.pem"), str(rogue / "rogue-key.pem"))
    sock = socket.socket()
    sock.bind(("127.0.0.4", free_port_on("127.0.0.4")))
    sock.listen()
    sock.settimeout(10)
    handshakes: list[str] = []

    def serve() -> None:
        try:
            conn, _ = sock.accept()
        except OSError:
            return
        with conn:
            try:
                server_ctx.wrap_socket(conn, server_side=True).close()
                handshakes.append("completed")
            except (ssl.SSLError, OSError) as e:
                handshakes.append(f"failed: {e}")

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    address = f"127.0.0.4:{sock.getsockname()[1]}"

    async def probe() -> None:
        client_ctx = _ctx(ca / "ca.pem", ca / "host1.pem", ca / "host1-key.pem")
        peer = PeerClient(address, Signer(SECRET, "test"), timeouts=Timeouts(connect=3, heartbeat=5),
                          tls=client_ctx)
        try:
            with pytest.raises(DriveOffline):
                await peer.heartbeat()
            assert not peer.online
        finally:
            await peer.aclose()

    try:
        trio.run(probe)
        t.join(10)
    finally:
        sock.close()
    assert handshakes and handshakes[0].startswith("failed"), handshakes


def test_titanctl_reaches_a_tls_host_trusting_the_cluster_ca(hosts: list[ClusterHost], certs: Path) -> None:
    h = hosts[0]
    env = cluster.clean_env({"TITANS3_ROOT_ACCESS_KEY": h.credentials.access_key,
                             "TITANS3_ROOT_SECRET_KEY": h.credentials.secret_key,
                             "SSL_CERT_FILE": str(certs / "ca" / "ca.pem")})
    proc = subprocess.run([str(cluster.TITANCTL), "--endpoint", h.endpoint, "info", "--json"],
                          capture_output=True, text=True, env=env, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    # Without the CA the certificate is not trusted: refused, not silently accepted.
    del env["SSL_CERT_FILE"]
    proc = subprocess.run([str(cluster.TITANCTL), "--endpoint", h.endpoint, "info"],
                          capture_output=True, text=True, env=env, timeout=60, check=False)
    assert proc.returncode != 0
