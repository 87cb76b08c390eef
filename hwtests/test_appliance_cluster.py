"""Three appliance VMs form a cluster with titanctl; an object written through one
is read through another; then a rolling upgrade, one node at a time, while S3
keeps answering through the nodes that are up.  Marker ``long`` (three TCG VMs
at once on a 2-core machine; the module took 10 min 19 s on a quiet machine and
25 min 14 s at load ~11, see docs/appliance.md "Tests"); run by
./scripts/test-appliance.sh.  Every failed S3 call is printed as it happens, with
its operation, key, which node was being upgraded and how long it took; set
``TITANS3_VM_JOURNALS`` to keep the guests' journals (pytest's tmp dirs rotate).

Networking stays on the host's loopback: each VM forwards its peer port to
127.0.0.1:P, and reaches the others at 10.0.2.2:P -- qemu user-mode networking's
address for the host -- so every peer address in the cluster is ``10.0.2.2:P``.
Each VM gets the shared cluster secret (and the first one its own peer address)
as first-boot settings through fw_cfg (docs/appliance.md, "Settings at first boot").
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hwtests.appliance import Build, Node, build, require_vm_tools, update
from hwtests.vm import VM, free_port, log
from titans3 import __version__

pytestmark = [pytest.mark.vm, pytest.mark.long, pytest.mark.timeout(5400)]


V1, V2 = f"{__version__}-vmc1", f"{__version__}-vmc2"


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Build:
    require_vm_tools()
    return build(tmp_path_factory.mktemp("image"), V1)


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
                keep = os.environ.get("TITANS3_VM_JOURNALS")  # pytest's tmp dirs rotate
                if keep:
                    Path(keep).mkdir(parents=True, exist_ok=True)
                    shutil.copy(n.vm.dir / "journal.txt", Path(keep) / f"{n.vm.name}-journal.txt")
                    log(f"{n.vm.name} journal kept: {Path(keep) / f'{n.vm.name}-journal.txt'}")
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
    log(f"cluster formed after {time.monotonic() - t0:.0f}s: EC {status.get('ec')}, {status.get('hosts', status)}")
    # 3 hosts x 2 drives: the join re-derives the founder's 1+1 (titans3/cluster/scheme.py).
    assert status.get("ec") == {"k": 4, "m": 2}, status

    body = os.urandom(1_500_000)
    a.s3().create_bucket(Bucket="shared")
    a.s3().put_object(Bucket="shared", Key="through-a", Body=body)
    assert c.s3().get_object(Bucket="shared", Key="through-a")["Body"].read() == body
    b.s3().put_object(Bucket="shared", Key="through-b", Body=body[::-1])
    assert a.s3().get_object(Bucket="shared", Key="through-b")["Body"].read() == body[::-1]


class Traffic:
    """S3 reads and writes, round robin over the nodes that are not being
    upgraded, counting every request that fails (after botocore's own retries)."""

    def __init__(self, nodes: list[Node], seed: dict[str, bytes]) -> None:
        self.nodes, self.objects = nodes, dict(seed)
        self.down: Node | None = None
        self.failures: list[str] = []
        self.requests = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._clients = {id(n): n.s3() for n in nodes}

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=600)

    def _run(self) -> None:
        i = 0
        while not self._stop.is_set():
            up = [n for n in self.nodes if n is not self.down]
            node = up[i % len(up)]
            s3 = self._clients[id(node)]
            key = sorted(self.objects)[i % len(self.objects)]
            new = f"rolling-{i}"
            body = os.urandom(50_000 + i)
            self._attempt(node, "GET", key, self._get, s3, key)
            if self._attempt(node, "PUT", new, s3.put_object, Bucket="shared", Key=new, Body=body):
                self.objects[new] = body
            i += 1
            self._stop.wait(2)

    def _attempt(self, node: Node, op: str, key: str, fn: Any, *args: Any, **kwargs: Any) -> bool:
        """One S3 call; a failure is recorded and printed with its operation."""
        self.requests += 1
        t0 = time.monotonic()
        try:
            fn(*args, **kwargs)
        except Exception as e:  # noqa: BLE001 -- every failure is the finding
            what = (f"{node.vm.name} {op} {key} ({'upgrading ' + self.down.vm.name if self.down else 'all up'}, "
                    f"after {time.monotonic() - t0:.1f}s): {e}")
            self.failures.append(what)
            log(f"S3 failure: {what}")
            return False
        return True

    def _get(self, s3: Any, key: str) -> None:
        got = s3.get_object(Bucket="shared", Key=key)["Body"].read()
        if got != self.objects[key]:
            raise AssertionError("wrong bytes")


def all_up(node: Node, n: int) -> bool:
    try:
        hosts = node.titanctl("cluster", "status", timeout=300).get("hosts", [])
    except (AssertionError, Exception):  # noqa: BLE001 -- a node mid-boot answers late
        return False
    return len(hosts) == n and all(h.get("online") and all(d.get("state") == "online" for d in h.get("drives", []))
                                   for h in hosts)


def test_rolling_upgrade_one_node_at_a_time_keeps_s3_answering(
    nodes: list[Node], image: Build, tmp_path_factory: pytest.TempPathFactory
) -> None:
    out: Path = tmp_path_factory.mktemp("release")
    rel = update(out, image, V2)
    log(f"release {V2}: made in {rel.seconds:.0f}s")
    a = nodes[0]
    seed = {f"seed-{i}": os.urandom(200_000 + i) for i in range(4)}
    for key, body in seed.items():
        a.s3().put_object(Bucket="shared", Key=key, Body=body)
    t_all = time.monotonic()
    with Traffic(nodes, seed) as traffic:
        for node in nodes:
            traffic.down = node
            medium = node.vm.attach_file("upd", rel.upgrade)
            mark = len(node.vm.console())
            t0 = time.monotonic()
            node.vm.hot_add(medium)
            node.ready(timeout=2400, since=mark, version=re.escape(V2))
            other = next(n for n in nodes if n is not node)
            deadline = time.monotonic() + 1200
            while not all_up(other, len(nodes)):
                assert time.monotonic() < deadline, f"{node.vm.name} did not rejoin within 1200s"
                time.sleep(10)
            log(f"{node.vm.name}: upgraded to {V2} and back in the cluster after {time.monotonic() - t0:.0f}s "
                f"({traffic.requests} requests so far, {len(traffic.failures)} failed)")
            traffic.down = None
            node.vm.hot_remove(medium)
    log(f"rolling upgrade of {len(nodes)} nodes: {time.monotonic() - t_all:.0f}s, "
        f"{traffic.requests} S3 requests, {len(traffic.failures)} failed")
    for f in traffic.failures:
        log(f"failed: {f}")
    assert traffic.failures == []
    written: dict[str, Any] = traffic.objects
    for n in nodes:  # every object, old and written during the upgrade, from every node
        s3 = n.s3()
        for key, body in written.items():
            assert s3.get_object(Bucket="shared", Key=key)["Body"].read() == body, (n.vm.name, key)
