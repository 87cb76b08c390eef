"""Real FUSE mounts for tests: the daemon's own mount and ``titans3 mount``.

Invariants the helpers keep:

* every mount is under the test's tmp dir and is unmounted in teardown --
  ``fusermount3 -u``, then ``umount -l`` as the last resort (a daemon killed
  with SIGKILL leaves a dead mount that only a lazy unmount removes);
* processes are stopped by pid (their own session), never by name;
* a mount is "up" when the kernel lists it in /proc/self/mountinfo, so a
  test never races the daemon's start-up.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.integration.cluster import BIN, ROOT, TITANS3, Credentials, Daemon, clean_env

MiB = 1 << 20


def mounted(path: Path | str) -> bool:
    target = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == target for line in f)


def wait_mounted(path: Path, timeout: float = 30.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not mounted(path):
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"mount process exited with {proc.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{path} not mounted after {timeout:.0f}s")
        time.sleep(0.05)


def unmount(path: Path | str) -> None:
    """Unmount ``path`` if it is mounted: fusermount3 -u, then umount -l."""
    for argv in (["fusermount3", "-u", str(path)], ["fusermount3", "-uz", str(path)],
                 ["umount", "-l", str(path)]):
        if not mounted(path):
            return
        with contextlib.suppress(subprocess.TimeoutExpired):
            subprocess.run(argv, capture_output=True, timeout=20, check=False)
    if mounted(path):
        raise RuntimeError(f"{path} is still mounted after fusermount3 -u and umount -l")


class MountDaemon(Daemon):
    """``titans3 serve ... --mount BUCKET[/PREFIX]:DIR``."""

    def __init__(self, *args: object, mount_spec: str, mountpoint: Path, **kw: object) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self.mount_spec = mount_spec
        self.mountpoint = Path(mountpoint)

    def argv(self) -> list[str]:
        return [*super().argv(), "--mount", f"{self.mount_spec}:{self.mountpoint}"]

    def start(self, *, wait: bool = True) -> MountDaemon:
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        unmount(self.mountpoint)  # a dead mount of a killed run
        super().start(wait=wait)
        if wait:
            wait_mounted(self.mountpoint, proc=self.proc)
        return self

    def stop(self, timeout: float = 60.0, sig: int = signal.SIGTERM) -> int | None:
        try:
            return super().stop(timeout, sig)
        finally:
            unmount(self.mountpoint)

    def kill(self) -> int:
        try:
            return super().kill()
        finally:
            unmount(self.mountpoint)


class RemoteMount:
    """``titans3 mount -f`` against an endpoint, as its own process."""

    def __init__(self, endpoint: str, source: str, mountpoint: Path, log_path: Path, *,
                 credentials: Credentials = ROOT, extra: tuple[str, ...] = (),
                 staging: Path | None = None) -> None:
        self.endpoint, self.source = endpoint, source
        self.mountpoint = Path(mountpoint)
        self.log_path = Path(log_path)
        self.credentials = credentials
        self.extra = extra
        self.staging = staging or self.mountpoint.parent / (self.mountpoint.name + ".staging")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> RemoteMount:
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        env = clean_env({"AWS_ACCESS_KEY_ID": self.credentials.access_key,
                         "AWS_SECRET_ACCESS_KEY": self.credentials.secret_key,
                         "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull})
        argv = [str(TITANS3), "mount", "-f", "--endpoint", self.endpoint, "--cache-dir",
                str(self.staging), *self.extra, self.source, str(self.mountpoint)]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, env=env,
                                         start_new_session=True)
        wait_mounted(self.mountpoint, proc=self.proc)
        return self

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(30)
        unmount(self.mountpoint)
        return self.proc.returncode


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(4 * MiB):
            h.update(chunk)
    return h.hexdigest()


def source_tree(limit: int = 2000) -> list[Path]:
    """At least ``limit`` real source files: the venv's standard library, then
    its site-packages (sorted, no __pycache__, nothing over 4 MiB)."""
    import sysconfig

    ver = f"python{sys.version_info.major}.{sys.version_info.minor}"
    roots = [Path(sysconfig.get_paths()["stdlib"]), BIN.parent / "lib" / ver / "site-packages"]
    files: list[Path] = []
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if d not in ("__pycache__", "site-packages",
                                                                 "dist-packages"))
            for name in sorted(filenames):
                p = Path(dirpath) / name
                if p.is_file() and not p.is_symlink() and p.stat().st_size <= 4 * MiB:
                    files.append(p)
            if len(files) >= limit:
                return files
    return files


def build_tree(dest: Path, limit: int = 2000) -> int:
    """Copy the source files into ``dest`` (relative layout kept); returns the count."""
    import shutil

    files = source_tree(limit)
    for p in files:
        out = dest / _rel(p)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(p, out)
    return len(files)


def _rel(p: Path) -> Path:
    parts = p.parts
    for anchor in ("site-packages", f"python{sys.version_info.major}.{sys.version_info.minor}"):
        if anchor in parts:
            i = len(parts) - 1 - parts[::-1].index(anchor)
            return Path(anchor, *parts[i + 1:])
    return Path(*parts[1:])


def tree_digests(root: Path) -> dict[str, str]:
    out = {}
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            p = Path(dirpath) / name
            if not p.is_symlink():
                out[str(p.relative_to(root))] = sha256_file(p)
    return out


def big_file(path: Path, size: int) -> str:
    """A file of ``size`` incompressible bytes; returns its sha256."""
    block = os.urandom(64 * MiB)
    h = hashlib.sha256()
    with open(path, "wb") as f:
        done = 0
        while done < size:
            chunk = (done.to_bytes(8, "little") + block[8:])[: size - done]
            f.write(chunk)
            h.update(chunk)
            done += len(chunk)
    return h.hexdigest()
