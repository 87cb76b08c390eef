"""Cluster settings in titans3/core/config.py: --peers, --cluster-secret, --cluster-wait."""

from __future__ import annotations

import pytest

from titans3.core.config import load
from titans3.core.errors import ConfigError

SECRET = "a-cluster-secret-of-some-length"


def test_without_peers_the_host_runs_alone() -> None:
    cfg = load(environ={})
    assert cfg.peers == "" and cfg.peer_list() == [] and cfg.cluster_secret == ""


def test_peers_are_a_comma_separated_list_of_host_ports() -> None:
    cfg = load(flags={"peers": "127.0.0.1:9100, 127.0.0.2:9100,", "cluster_secret": SECRET}, environ={})
    assert cfg.peer_list() == ["127.0.0.1:9100", "127.0.0.2:9100"]
    assert SECRET not in repr(cfg)


def test_the_secret_can_come_from_the_environment() -> None:
    cfg = load(flags={"peers": "127.0.0.1:9100"}, environ={"TITANS3_CLUSTER_SECRET": SECRET})
    assert cfg.cluster_secret == SECRET


@pytest.mark.parametrize(
    ("flags", "key"),
    [
        ({"peers": "127.0.0.1:9100"}, "cluster_secret"),
        ({"peers": "127.0.0.1:9100", "cluster_secret": "short"}, "cluster_secret"),
        ({"peers": "127.0.0.1", "cluster_secret": SECRET}, "peers"),
        ({"peers": "127.0.0.1:9100", "cluster_secret": SECRET, "cluster_wait": "0"}, "cluster_wait"),
    ],
)
def test_bad_cluster_settings_name_the_key(flags: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        load(flags=flags, environ={})


def test_an_ec_wider_than_this_hosts_drives_is_allowed_in_a_cluster() -> None:
    with pytest.raises(ConfigError, match="ec"):
        load(flags={"drives": 1, "ec": "4+2"}, environ={})
    cfg = load(flags={"drives": 1, "ec": "4+2", "peers": "127.0.0.1:9100", "cluster_secret": SECRET},
               environ={})
    assert cfg.ec_scheme() == (4, 2)
