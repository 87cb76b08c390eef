"""NBD helpers for integration tests: a daemon with the gateway, volumes, real clients.

Everything here drives tools nobody on this project wrote: ``titanctl`` is
ours, but the data path is ``nbdinfo``, ``nbdcopy``, ``qemu-img``, ``nbdfuse``
(+ ``losetup``, ``mkfs.ext4``, ``mount``), ``fio`` and libnbd's Python binding
(Debian's ``python3-libnbd``, run by the system ``/usr/bin/python3``).

Cleanup is by what a test made: FUSE mounts under its tmp dir, loop devices
it attached (``losetup -f``, never a fixed number), processes by pid.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from . import cluster
from .cluster import Daemon

SYSTEM_PYTHON = "/usr/bin/python3"  # has libnbd's binding (python3-libnbd)
PATH_ENV = {"PATH": f"/usr/bin:{os.environ.get('PATH', '')}"}  # nbdsh & co. want Debian's python first


class NbdDaemon(Daemon):
    """``titans3 serve`` with the NBD gateway on its own free port."""

    def __init__(self, *args: object, lease: float = 15.0, **kwargs: object) -> None:
        env = dict(kwargs.pop("env", None) or {})  # type: ignore[arg-type]
        env.setdefault("TITANS3_NBD_LEASE", str(lease))
        super().__init__(*args, env=env, **kwargs)  # type: ignore[arg-type]
        self.nbd_port = cluster.free_port()

    def argv(self) -> list[str]:
        return [*super().argv(), "--nbd-listen", f"{cluster.HOST}:{self.nbd_port}"]

    def uri(self, export: str) -> str:
        return f"nbd://{cluster.HOST}:{self.nbd_port}/{export}"

    @property
    def socket_path(self) -> Path:
        return self.data_dir / ".titans3" / "nbd.sock"

    def titanctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return titanctl(self, *args, check=check)

    def volume_json(self, *args: str) -> dict:
        return titanctl_json(self, "volume", *args)

    def create_volume(self, name: str, size: str) -> None:
        self.titanctl("volume", "create", name, "--size", size)


def module_daemon(tmp_path_factory: object, name: str) -> Iterator[NbdDaemon]:
    """A started NbdDaemon (6 drives) for a module's tests, stopped afterwards (a fixture's body)."""
    base = tmp_path_factory.mktemp(name)  # type: ignore[attr-defined]
    d = NbdDaemon(base / "data", base / "titans3.log", drives=6, name=f"titans3-{name}")
    cluster.LIVE.append(d)
    try:
        d.start()
        yield d
    finally:
        d.stop()
        cluster.LIVE.remove(d)


def titanctl(d: Daemon, *args: str, check: bool = True,
             env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``titanctl ARGS`` against daemon ``d`` (root credentials, its S3 endpoint)."""
    env = cluster.clean_env({"TITANS3_ROOT_ACCESS_KEY": d.credentials.access_key,
                             "TITANS3_ROOT_SECRET_KEY": d.credentials.secret_key,
                             "TITANS3_ENDPOINT": d.endpoint, **(env or {})})
    res = subprocess.run([str(cluster.TITANCTL), *args], capture_output=True, text=True, env=env, timeout=600)
    if check and res.returncode:
        raise AssertionError(f"titanctl {' '.join(args)} -> {res.returncode}: {res.stderr}")
    return res


def titanctl_json(d: Daemon, *args: str) -> dict:
    return json.loads(titanctl(d, *args, "--json").stdout)


def run(argv: list[str], *, timeout: float = 600, check: bool = True, env_extra: dict[str, str] | None = None,
        **kw: object) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                         env={**os.environ, **PATH_ENV, **(env_extra or {})}, **kw)  # type: ignore[call-overload]
    if check and res.returncode:
        raise AssertionError(f"{' '.join(argv)} -> {res.returncode}\n{res.stdout[-2000:]}\n{res.stderr[-2000:]}")
    return res


def libnbd(script: str, *args: str, timeout: float = 600, check: bool = True,
           input: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``script`` (a file in tests/integration/nbdclients/) with libnbd's Python."""
    path = Path(__file__).parent / "nbdclients" / script
    return run([SYSTEM_PYTHON, str(path), *args], timeout=timeout, check=check, input=input)


def wait_detached(d: NbdDaemon, name: str, timeout: float = 60) -> None:
    """Until no host holds the volume's writer lease (its clients left, it lingered, detached)."""
    deadline = time.monotonic() + timeout
    while d.volume_json("info", name)["attached"]:
        if time.monotonic() > deadline:
            raise AssertionError(f"volume {name} still attached after {timeout}s")
        time.sleep(0.2)


def write_random(path: Path, size: int, seed: int = 0) -> None:
    import random

    rng = random.Random(seed)
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 8 << 20)
            f.write(rng.randbytes(n))
            left -= n


@contextlib.contextmanager
def nbdfuse(uri: str, mountpoint: Path) -> Iterator[Path]:
    """The export as a file ``mountpoint/disk`` (nbdfuse), unmounted and its process gone afterwards."""
    mountpoint.mkdir(parents=True, exist_ok=True)
    pidfile = mountpoint.parent / f"{mountpoint.name}.pid"
    pidfile.unlink(missing_ok=True)
    log = open(mountpoint.parent / f"{mountpoint.name}.log", "ab")  # noqa: SIM115
    proc = subprocess.Popen(["nbdfuse", "-P", str(pidfile), str(mountpoint / "disk"), uri],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while not pidfile.exists():
            if proc.poll() is not None:
                raise AssertionError(f"nbdfuse exited with {proc.returncode}: "
                                     f"{(mountpoint.parent / f'{mountpoint.name}.log').read_text()}")
            if time.monotonic() > deadline:
                raise AssertionError("nbdfuse did not come up")
            time.sleep(0.05)
        yield mountpoint / "disk"
    finally:
        subprocess.run(["fusermount3", "-u", str(mountpoint)], capture_output=True)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
            subprocess.run(["fusermount3", "-uz", str(mountpoint)], capture_output=True)
        log.close()


@contextlib.contextmanager
def loop_device(path: Path) -> Iterator[str]:
    dev = run(["losetup", "-f", "--show", str(path)]).stdout.strip()
    try:
        yield dev
    finally:
        for _ in range(20):
            if subprocess.run(["losetup", "-d", dev], capture_output=True).returncode == 0:
                break
            time.sleep(0.25)


@contextlib.contextmanager
def mounted(dev: str, where: Path, options: str = "") -> Iterator[Path]:
    where.mkdir(parents=True, exist_ok=True)
    run(["mount", *(["-o", options] if options else []), dev, str(where)])
    try:
        yield where
    finally:
        for _ in range(20):
            if subprocess.run(["umount", str(where)], capture_output=True).returncode == 0:
                break
            time.sleep(0.25)


def tree_digest(root: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under ``root`` (lost+found aside)."""
    import hashlib

    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and "lost+found" not in p.parts:
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def make_tree(root: Path, seed: int, files: int = 60) -> None:
    """Files of assorted sizes in a few directories."""
    import random

    rng = random.Random(seed)
    for i in range(files):
        d = root / f"dir{i % 7}" / f"sub{i % 3}"
        d.mkdir(parents=True, exist_ok=True)
        size = rng.choice([0, 1, 100, 4096, 5000, 65536, 300_000, 2_000_000])
        (d / f"file{i}.bin").write_bytes(rng.randbytes(size))
