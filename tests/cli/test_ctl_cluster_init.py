"""titanctl cluster init: a CA and per-host certificates that TLS stacks accept."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from pathlib import Path

import pytest
from cryptography import x509

from titans3.cli.ctl_cluster_init import HostSpec, InitError, init, issue_host, make_ca, parse_hosts
from titans3.cli.titanctl import main

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def test_hosts_parse_with_several_ips_per_host() -> None:
    hosts = parse_hosts("a=10.0.0.1, b=10.0.0.2;fd00::2")
    assert hosts == [
        HostSpec("a", (ipaddress.ip_address("10.0.0.1"),)),
        HostSpec("b", (ipaddress.ip_address("10.0.0.2"), ipaddress.ip_address("fd00::2"))),
    ]


@pytest.mark.parametrize("bad", ["", "a", "a=", "a=10.0.0.300", "a=10.0.0.1,a=10.0.0.2", "-x=10.0.0.1"])
def test_bad_host_lists_are_refused(bad: str) -> None:
    with pytest.raises(InitError):
        parse_hosts(bad)


def test_a_host_certificate_names_its_ips_and_chains_to_the_ca() -> None:
    ca_pem, ca_key = make_ca("test CA", NOW)
    cert_pem, _ = issue_host(ca_pem, ca_key, parse_hosts("h1=127.0.0.1;10.1.2.3")[0], NOW)
    cert, ca = x509.load_pem_x509_certificate(cert_pem), x509.load_pem_x509_certificate(ca_pem)
    cert.verify_directly_issued_by(ca)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1"),
                                                          ipaddress.ip_address("10.1.2.3")]
    assert sans.get_values_for_type(x509.DNSName) == ["h1"]
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_the_files_load_into_ssl_contexts_and_the_keys_are_private(tmp_path: Path) -> None:
    init(tmp_path, parse_hosts("h1=127.0.0.1"))
    ctx = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
    ctx.load_cert_chain(str(tmp_path / "h1.pem"), str(tmp_path / "h1-key.pem"))
    assert (tmp_path / "h1-key.pem").stat().st_mode & 0o077 == 0
    assert (tmp_path / "ca-key.pem").stat().st_mode & 0o077 == 0


def test_a_second_run_reuses_the_ca_and_never_overwrites_a_host(tmp_path: Path) -> None:
    init(tmp_path, parse_hosts("h1=127.0.0.1"))
    ca_before = (tmp_path / "ca.pem").read_bytes()
    init(tmp_path, parse_hosts("h2=127.0.0.2"))
    assert (tmp_path / "ca.pem").read_bytes() == ca_before
    h2 = x509.load_pem_x509_certificate((tmp_path / "h2.pem").read_bytes())
    h2.verify_directly_issued_by(x509.load_pem_x509_certificate(ca_before))
    h1_before = (tmp_path / "h1.pem").read_bytes()
    with pytest.raises(InitError):
        init(tmp_path, parse_hosts("h1=127.0.0.1"))
    assert (tmp_path / "h1.pem").read_bytes() == h1_before


def test_titanctl_cluster_init_needs_no_credentials(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cluster", "init", "--out", str(tmp_path), "--hosts", "h1=127.0.0.1"], env={}) == 0
    assert "--tls-cert" in capsys.readouterr().out
    assert main(["cluster", "init", "--out", str(tmp_path), "--hosts", "h1=bad"], env={}) == 2
    assert "titanctl: --hosts" in capsys.readouterr().err
