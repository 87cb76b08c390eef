"""TLS configuration: validation, listener settings, peer client options."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from titans3.cli.ctl_cluster_init import init, parse_hosts
from titans3.core import tls
from titans3.core.config import load
from titans3.core.errors import ConfigError


def test_tls_needs_key_and_ca_with_the_certificate() -> None:
    with pytest.raises(ConfigError, match="tls_cert/tls_key"):
        load(flags={"tls_cert": "c.pem"}, environ={})
    with pytest.raises(ConfigError, match="tls_ca"):
        load(flags={"tls_cert": "c.pem", "tls_key": "k.pem"}, environ={})


def test_without_a_certificate_everything_stays_plain() -> None:
    cfg = load(flags={"peer_listen": "0.0.0.0:9100"}, environ={})
    assert tls.scheme(cfg) == "http"
    assert tls.server_settings(cfg, peer=True) == {}
    assert tls.peer_client_options(cfg) == {"tls": None, "local_address": None}


def test_the_peer_listener_requires_client_certificates_the_s3_one_does_not(tmp_path: Path) -> None:
    init(tmp_path, parse_hosts("h1=127.0.0.5"))
    cfg = load(flags={"tls_cert": str(tmp_path / "h1.pem"), "tls_key": str(tmp_path / "h1-key.pem"),
                      "tls_ca": str(tmp_path / "ca.pem"), "peer_listen": "127.0.0.5:9100"}, environ={})
    assert tls.server_settings(cfg, peer=True)["verify_mode"] == ssl.CERT_REQUIRED
    assert "verify_mode" not in tls.server_settings(cfg, peer=False)
    opts = tls.peer_client_options(cfg)
    assert opts["local_address"] == "127.0.0.5"
    assert opts["tls"].verify_mode == ssl.CERT_REQUIRED and opts["tls"].check_hostname


def test_unreadable_certificate_files_are_a_config_error(tmp_path: Path) -> None:
    cfg = load(flags={"tls_cert": str(tmp_path / "no.pem"), "tls_key": str(tmp_path / "no-key.pem"),
                      "tls_ca": str(tmp_path / "ca.pem")}, environ={})
    with pytest.raises(ConfigError, match="tls_cert/tls_key/tls_ca"):
        tls.check(cfg)
