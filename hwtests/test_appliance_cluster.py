"""Three appliance VMs form a cluster with titanctl; an object written through one
is read through another.  Marker ``long`` (three TCG boots at once on a 2-core
machine: ~10-20 minutes); run by ./scripts/test-appliance.sh.

Networking stays on the host's loopback: each VM forwards its peer port to
127.0.0.1:P, and reaches the others at 10.0.2.2:P -- qemu user-mode networking's
address for the host -- so every peer address in the cluster is ``10.0.2.2:P``.
Each VM gets the shared cluster secret (and the first one its own peer address)
as first-boot settings through fw_cfg (docs/appliance.md, "Settings at first boot").
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from collections.abc import Iterator

import pytest

from hwtests.appliance import Build, Node, build, require_vm_tools
from hwtests.vm import VM, free_port, log
from titans3 import __version__

pytestmark = [pytest.mark.vm, pytest.mark.long, pytest.mark.timeout(5400)]


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Build:
    require_vm_tools()
    return build(tmp_path_factory.mktemp("image"), f"{__version__}-vmc1")


@pytest.fixture(scope="module")
def nodes(image: Build, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Node]]:
    work = tmp_path_factory.mktemp("cluster")
    secret = secrets.token_hex(16)
    out: list[Node] = []
    for i in range(3):
        peer_port = free_port()
        env = f"TITANS3_CLUSTER_SECRET={secret}\n"
        if i == 0:  # the founder: a cluster of itself, addressed the way the others reach it
            env += f"TITANS3_PEERS=10.0.2.2:{peer_port}\n"
        vm = VM(work, image.raw, name=f"node{i}", memory_mib=1280, cpus=1,
                forwards={9100: peer_port}, seed_env=env)
        for j in range(2):
            vm.new_disk(f"d{j}")
        out.append(Node(vm))
    try:
        yield out
    finally:
        for n in out:
            n.vm.kill()
            with contextlib.suppress(Exception):  # post-mortem: each guest's journal
                (n.vm.dir / "journal.txt").write_text(n.vm.journal())
                log(f"{n.vm.name} journal: {n.vm.dir / 'journal.txt'}")
        for p in work.rglob("*"):
            if p.suffix in (".raw", ".qcow2"):
                p.unlink()


def test_three_vms_form_a_cluster_and_serve_each_others_objects(nodes: list[Node]) -> None:
    t0 = time.monotonic()
    for n in nodes:
        n.vm.start()
    for n in nodes:
        n.ready(timeout=2400)
    log(f"three first boots: all ready after {time.monotonic() - t0:.0f}s")
    a, b, c = nodes
    t0 = time.monotonic()
    for other in (b, c):
        a.titanctl("cluster", "join", f"10.0.2.2:{other.vm.forwards[9100]}", timeout=1800)
    status = a.titanctl("cluster", "status")
    log(f"cluster formed after {time.monotonic() - t0:.0f}s: {status.get('hosts', status)}")

    body = os.urandom(1_500_000)
    a.s3().create_bucket(Bucket="shared")
    a.s3().put_object(Bucket="shared", Key="through-a", Body=body)
    assert c.s3().get_object(Bucket="shared", Key="through-a")["Body"].read() == body
    b.s3().put_object(Bucket="shared", Key="through-b", Body=body[::-1])
    assert a.s3().get_object(Bucket="shared", Key="through-b")["Body"].read() == body[::-1]
