"""This host's own address, read from the kernel: what the status page suggests as the peer address."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from titans3.core.hostaddr import default_route_interface, is_loopback_name, primary_address

ROUTES = """Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
wlan0\t00000000\t0101A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0
eth0\t00000000\t010200C0\t0003\t0\t0\t100\t00000000\t0\t0\t0
eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
tun0\t00000000\t00000000\t0000\t0\t0\t1\t00000000\t0\t0\t0
"""


def test_the_default_route_with_the_lowest_metric_names_the_interface():
    assert default_route_interface(ROUTES) == "eth0"  # tun0's route is down (no RTF_UP)


def test_no_default_route_means_no_interface():
    assert default_route_interface(ROUTES.splitlines()[0] + "\neth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n") is None
    assert default_route_interface("") is None


@pytest.mark.parametrize("name", ["", "localhost", "127.0.0.1", "127.3.2.1", "::1", "[::1]", "LOCALHOST"])
def test_loopback_names_are_recognised(name):
    assert is_loopback_name(name)


@pytest.mark.parametrize("name", ["10.0.2.15", "node1.example", "fe80::1", "192.0.2.7"])
def test_real_addresses_are_not_loopback(name):
    assert not is_loopback_name(name)


@pytest.mark.skipif(shutil.which("ip") is None, reason="needs iproute2 to cross-check")
def test_primary_address_is_one_the_kernel_lists_for_a_global_interface(tmp_path):
    listed = subprocess.run(["ip", "-4", "-o", "addr", "show", "scope", "global"], capture_output=True,
                            text=True, check=True).stdout
    addrs = [f.split("/")[0] for line in listed.splitlines() for f in line.split()[3:4]]
    got = primary_address()
    if not addrs:
        assert got is None
    else:
        assert got in addrs
    # Without a routing table it still finds an interface address.
    fallback = primary_address(str(tmp_path / "no-route-file"))
    assert (fallback in addrs) if addrs else fallback is None
