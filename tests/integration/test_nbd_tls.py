"""NBD beyond 127.0.0.1 only over TLS, and only with a client certificate or the volume's secret.

The gateway listens on 127.0.0.2 (any address but 127.0.0.1 counts as
"another address") with the certificates ``titanctl cluster init`` made.
libnbd is the client (``nbds://``, GnuTLS): plain NBD is refused before any
export is named; over TLS, a volume opens for a client certificate of the
cluster CA, or for ``NAME/SECRET`` without one.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from . import cluster
from .nbdtools import run, titanctl
from .peerhosts import LoneHost, free_port_on

ADDR = "127.0.0.2"


class TlsHost(LoneHost):
    def __init__(self, base: Path, certs: Path) -> None:
        ports = (free_port_on(ADDR), free_port_on(ADDR), free_port_on(ADDR))
        self.nbd_port = free_port_on(ADDR)
        super().__init__(ADDR, base, 1, [], ports, drives=6, ca=certs / "ca.pem", extra=[
            "--tls-cert", str(certs / "node1.pem"), "--tls-key", str(certs / "node1-key.pem"),
            "--tls-ca", str(certs / "ca.pem"), "--nbd-listen", f"{ADDR}:{self.nbd_port}"])

    def uri(self, export: str, tls_dir: Path | None = None) -> str:
        if tls_dir is None:
            return f"nbd://{ADDR}:{self.nbd_port}/{export}"
        return f"nbds://{ADDR}:{self.nbd_port}/{export}?tls-certificates={tls_dir}"


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TlsHost, Path, Path]]:
    base = tmp_path_factory.mktemp("nbdtls")
    certs = base / "certs"
    subprocess.run([str(cluster.TITANCTL), "cluster", "init", "--out", str(certs),
                    "--hosts", f"node1={ADDR},client1=127.0.0.9"], check=True, capture_output=True)
    # libnbd (GnuTLS) looks for these names in a directory.
    ca_only, with_cert = base / "ca-only", base / "client"
    for d in (ca_only, with_cert):
        d.mkdir()
        shutil.copy(certs / "ca.pem", d / "ca-cert.pem")
    shutil.copy(certs / "client1.pem", with_cert / "client-cert.pem")
    shutil.copy(certs / "client1-key.pem", with_cert / "client-key.pem")
    host = TlsHost(base, certs)
    cluster.LIVE.append(host)
    try:
        host.start()
        env_ctl = {"SSL_CERT_FILE": str(certs / "ca.pem")}
        titanctl(host, "volume", "create", "secure", "--size", "32M", "--secret", "s3cr3t-word", env=env_ctl)
        yield host, ca_only, with_cert
    finally:
        host.stop()
        cluster.LIVE.remove(host)


def test_plain_nbd_is_refused_on_another_address(tls: tuple[TlsHost, Path, Path]) -> None:
    host, _, _ = tls
    res = run(["nbdinfo", host.uri("secure")], check=False, env_extra={"LIBNBD_DEBUG": "1"})
    assert res.returncode != 0 and "requires TLS" in res.stderr


def test_tls_without_a_certificate_needs_the_volume_secret(tls: tuple[TlsHost, Path, Path]) -> None:
    host, ca_only, _ = tls
    res = run(["nbdinfo", host.uri("secure", ca_only)], check=False, env_extra={"LIBNBD_DEBUG": "1"})
    assert res.returncode != 0 and "NAME/SECRET" in res.stderr
    bad = run(["nbdinfo", host.uri("secure/wrong", ca_only)], check=False)
    assert bad.returncode != 0
    ok = run(["nbdinfo", "--size", host.uri("secure/s3cr3t-word", ca_only)])
    assert ok.stdout.strip() == str(32 << 20)


def test_a_client_certificate_of_the_cluster_ca_opens_every_volume(tls: tuple[TlsHost, Path, Path],
                                                                   tmp_path: Path) -> None:
    host, _, with_cert = tls
    src = tmp_path / "data.img"
    src.write_bytes(b"tls!" * (1 << 20))
    run(["nbdcopy", "--flush", str(src), host.uri("secure", with_cert)])
    out = tmp_path / "out.img"
    run(["nbdcopy", host.uri("secure", with_cert), str(out)])
    assert out.read_bytes()[: 4 << 20] == src.read_bytes()
    listed = run(["nbdinfo", "--list", f"nbds://{ADDR}:{host.nbd_port}/?tls-certificates={with_cert}"])
    assert "secure" in listed.stdout


def test_plain_nbd_on_another_address_without_tls_does_not_start(tmp_path: Path) -> None:
    res = subprocess.run([str(cluster.TITANS3), "serve", "--data", str(tmp_path / "d"), "--drives", "1",
                          "--nbd-listen", f"{ADDR}:10809"], capture_output=True, text=True, timeout=60,
                         env=cluster.clean_env())
    assert res.returncode == 2 and "nbd_listen" in res.stderr and "TLS" in res.stderr
