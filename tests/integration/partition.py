"""Network partitions between cluster hosts on 127.0.0.x, with nftables.

Each test host binds its own loopback address and (``PeerClient``'s
``local_address``) calls its peers *from* that address, so the source address
of a peer connection says which host made it.  A partition between groups A
and B is one nftables table dropping, on the output hook, every packet from an
address of A to a *peer port* of a host of B, and the reverse.  That cuts new
connections and the established keep-alive ones alike, and leaves the S3 ports
alone, so the test client can still reach every host.

Only loopback addresses are involved (checked with ``ip route get`` before any
rule is added), only the cluster's own peer ports are matched (other tests on
this machine are untouched), and the table is deleted on exit whatever
happened.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from .peerhosts import ClusterHost


def unavailable() -> str | None:
    """Why partitions cannot be made here (or None)."""
    if shutil.which("nft") is None:
        return "nft not installed (scripts/setup.sh installs nftables)"
    if os.geteuid() != 0:
        return "nftables rules need root"
    probe = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        return f"nft does not work here: {probe.stderr.strip()}"
    return None


def _nft(*args: str, stdin: str | None = None) -> None:
    subprocess.run(["nft", *args], input=stdin, text=True, capture_output=True, check=True, timeout=10)


def _assert_local(addr: str) -> None:
    route = subprocess.run(["ip", "route", "get", addr], capture_output=True, text=True, check=True).stdout
    assert route.startswith("local ") and " dev lo " in route, f"{addr} is not a loopback address: {route}"


def ruleset(table: str, a: Sequence[ClusterHost], b: Sequence[ClusterHost]) -> str:
    """The nft script of a partition between ``a`` and ``b``."""
    lines = [f"table inet {table} {{", "  chain out {",
             "    type filter hook output priority 0; policy accept;"]
    for src, dst in ((a, b), (b, a)):
        saddrs = ", ".join(h.addr for h in src)
        for h in dst:
            lines.append(f"    ip saddr {{ {saddrs} }} ip daddr {h.addr} tcp dport {h.peer_port} drop")
    lines += ["  }", "}"]
    return "\n".join(lines) + "\n"


@contextmanager
def partitioned(a: Sequence[ClusterHost], b: Sequence[ClusterHost]) -> Iterator[None]:
    """Cut peer traffic between host groups ``a`` and ``b`` for the ``with`` block."""
    for h in (*a, *b):
        _assert_local(h.addr)
    table = f"titans3_partition_{os.getpid()}"
    _nft("-f", "-", stdin=ruleset(table, a, b))
    try:
        yield
    finally:
        _nft("delete", "table", "inet", table)
