"""One writer per volume across a cluster: a second writer is refused, a crashed writer's lease expires.

Four real hosts on 127.0.0.1..4 (drives 2, 2, 1, 1: six drives, EC 4+2),
each with its NBD gateway.  A libnbd client holds a volume attached through
host 4; host 1 must refuse to attach it for writing (and say who holds it)
but serve its snapshots.  Then host 4 is SIGKILLed: until its lease runs out
host 1 still refuses; once it has, host 1 attaches, finds every flushed
byte, and writes (five drives are still up: the write quorum).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .nbdtools import PATH_ENV, SYSTEM_PYTHON, run, titanctl, titanctl_json
from .peerhosts import ClusterHost, free_port_on, plan, running

LEASE = 5.0
SKEW = 2.0  # titans3.nbd.lease.SKEW


class NbdHost(ClusterHost):
    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, env={"TITANS3_NBD_LEASE": str(LEASE)}, **kwargs)  # type: ignore[arg-type]
        self.nbd_port = free_port_on(self.addr)
        self.extra += ["--nbd-listen", f"127.0.0.1:{self.nbd_port}"]

    def uri(self, export: str) -> str:
        return f"nbd://127.0.0.1:{self.nbd_port}/{export}"


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[NbdHost]]:
    base = tmp_path_factory.mktemp("nbdcluster")
    addrs, ports, peers = plan(4)
    made = [NbdHost(a, base, i + 1, peers, p, drives=d)
            for i, (a, p, d) in enumerate(zip(addrs, ports, (2, 2, 1, 1), strict=True))]
    with running(made) as hs:
        yield hs


def nbdinfo(uri: str) -> subprocess.CompletedProcess[str]:
    return run(["nbdinfo", uri], check=False, env_extra={"LIBNBD_DEBUG": "1"})


def test_a_second_writer_is_refused_and_takes_over_after_the_lease(hosts: list[NbdHost], tmp_path: Path) -> None:
    a, b = hosts[3], hosts[0]
    titanctl_json(b, "volume", "create", "shared", "--size", "64M")
    holder = subprocess.Popen([SYSTEM_PYTHON, str(Path(__file__).parent / "nbdclients" / "hold.py"),
                               a.uri("shared"), "7"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True, env={**PATH_ENV})
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        # Operations that write go to the host the volume is attached to.
        busy = titanctl(b, "volume", "snapshot", "create", "shared", "s", check=False)
        assert busy.returncode == 1 and "VolumeInUse" in busy.stderr and a.peer_address in busy.stderr
        titanctl(a, "volume", "snapshot", "create", "shared", "s")
        refused = nbdinfo(b.uri("shared"))
        assert refused.returncode != 0 and "attached for writing on" in refused.stderr
        assert a.peer_address in titanctl_json(b, "volume", "info", "shared")["attached"]
        # Snapshots are read-only: any host serves them while the volume is attached elsewhere.
        assert run(["nbdinfo", "--size", b.uri("shared@s")]).stdout.strip() == str(64 << 20)

        a.kill()
        killed = time.monotonic()
        assert nbdinfo(b.uri("shared")).returncode != 0  # the lease is still running
        while True:
            res = nbdinfo(b.uri("shared"))
            if res.returncode == 0:
                break
            assert time.monotonic() - killed < LEASE + SKEW + 20, res.stderr[-500:]
            time.sleep(0.5)
        took = time.monotonic() - killed
        assert took >= LEASE - 2, f"attached {took:.1f}s after the crash: before the lease could run out"
    finally:
        holder.kill()
        holder.wait()
    out = tmp_path / "back.img"
    run(["nbdcopy", b.uri("shared"), str(out)])
    assert out.read_bytes()[: 1 << 20] == bytes([7]) * (1 << 20)
    (tmp_path / "new.img").write_bytes(bytes([9]) * (1 << 20))
    run(["nbdcopy", "--flush", str(tmp_path / "new.img"), b.uri("shared")])
    run(["nbdcopy", b.uri("shared"), str(out)])
    assert out.read_bytes()[: 1 << 20] == bytes([9]) * (1 << 20)
