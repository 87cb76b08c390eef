"""Running one mount: ``pyfuse3`` in the caller's trio loop.

Theory of operation
-------------------
:class:`Mount` owns the filesystem core, the pyfuse3 adapter and the
counters.  :meth:`Mount.run` mounts, raises the mount's kernel read-ahead
(``read_ahead_kb`` of its bdi: the default 128 KiB caps streaming reads at a
fraction of what the backend gives), reports ``started`` and serves until the
mount goes away -- ``fusermount3 -u``/``umount`` by anyone, :meth:`unmount`
(SIGTERM in ``titans3 mount``), or cancellation (daemon shutdown).  On the
way out it commits what open files still hold and unmounts (lazily, so a
process with its cwd in the mount cannot keep the daemon from stopping).

pyfuse3 keeps one session per process: a process serves one mount.  Options
pyfuse3 rejects (``max_read``, ``big_writes``, ``max_write``,
``splice_read``: STACK-NOTES) are never passed.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import pyfuse3
import trio

from titans3.fuse.backend import Backend
from titans3.fuse.fs import FileSystem
from titans3.fuse.ops import Operations
from titans3.fuse.options import MountOptions
from titans3.fuse.paths import Namespace
from titans3.fuse.stats import Counters, MountStatistics

log = logging.getLogger(__name__)

REJECTED = frozenset({"max_read", "big_writes", "max_write", "splice_read"})
_active: list[Mount] = []


class MountError(Exception):
    pass


def active_mounts() -> list[Mount]:
    """The mounts this process serves (the status page hook)."""
    return list(_active)


class Mount:
    def __init__(self, backend: Backend, ns: Namespace, mountpoint: str,
                 opts: MountOptions | None = None, *, allow_other: bool = False,
                 extra_options: tuple[str, ...] = ()) -> None:
        self.backend = backend
        self.ns = ns
        self.mountpoint = os.path.abspath(mountpoint)
        self.opts = opts or MountOptions()
        self.fs = FileSystem(backend, ns, self.opts)
        self.counters = Counters()
        self.ops = Operations(self.fs, self.counters)
        self.allow_other = allow_other
        self.extra = tuple(o for o in extra_options if o)
        for o in self.extra:
            if o.split("=", 1)[0] in REJECTED:
                raise MountError(f"mount option {o!r} is not supported (pyfuse3 rejects it)")
        self.state = "idle"
        self._terminate = False

    def fuse_options(self) -> set[str]:
        opts = set(pyfuse3.default_options)  # default_permissions: the kernel checks modes
        where = f"{self.ns.bucket}/{self.ns.prefix}".rstrip("/")
        opts.add(f"fsname=titans3:{where}")
        opts.add("subtype=titans3")
        opts.add("noatime")
        if self.allow_other:
            opts.add("allow_other")
        opts.update(self.extra)
        return opts

    def statistics(self) -> MountStatistics:
        fs = self.fs
        state = self.state
        if state == "mounted" and not fs.healthy:
            state = "degraded"
        age = (time.time_ns() - fs.last_error_ns) / 1e9 if fs.last_error_ns else None
        return MountStatistics(
            bucket=self.ns.bucket, prefix=self.ns.prefix, mountpoint=self.mountpoint,
            backend=self.backend.name, state=state, dirty_bytes=fs.dirty_bytes(),
            open_files=len(fs.files), inodes=len(fs.inodes), ops=self.counters.ops,
            ops_per_s=round(self.counters.rate(), 1), bytes_read=self.counters.bytes_read,
            bytes_written=self.counters.bytes_written, errors=fs.errors,
            last_error=fs.last_error, last_error_age_s=round(age, 1) if age is not None else None,
        )

    def unmount(self) -> None:
        """Ask the serving loop to unmount (safe from the trio thread only)."""
        if self.state == "mounted":
            self._terminate = True
            pyfuse3.terminate()

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        if _active:
            raise MountError("this process already serves a mount (pyfuse3 allows one)")
        if not os.path.isdir(self.mountpoint):
            raise MountError(f"mount point {self.mountpoint} is not a directory")
        self.state = "mounting"
        try:
            await self.backend.list(self.ns.prefix, delimiter="/", limit=1)
        except Exception as e:
            self.state = "failed"
            raise MountError(f"cannot list {self.ns.bucket}/{self.ns.prefix} at "
                             f"{self.backend.name}: {getattr(e, 'reason', e)}") from None
        try:
            pyfuse3.init(self.ops, self.mountpoint, self.fuse_options())
        except RuntimeError as e:
            self.state = "failed"
            raise MountError(f"cannot mount on {self.mountpoint}: {e}") from None
        _active.append(self)
        try:
            async with trio.open_nursery() as nursery:
                self.fs.nursery = nursery
                # In a thread: stat() of the mount point needs this loop to answer.
                nursery.start_soon(trio.to_thread.run_sync, self._tune_read_ahead)
                self.state = "mounted"
                log.info("mounted %s/%s (%s) on %s", self.ns.bucket, self.ns.prefix,
                         self.backend.name, self.mountpoint)
                task_status.started()
                await pyfuse3.main()
                await self.fs.background.drain()  # commits still running after close
                nursery.cancel_scope.cancel()
        finally:
            self.state = "unmounting"
            with trio.CancelScope(shield=True):
                with trio.move_on_after(self.opts.op_timeout * 4):
                    await self.fs.commit_all()
                try:
                    pyfuse3.close(unmount=True)
                except Exception as e:  # noqa: BLE001 -- already gone: fusermount3 -u
                    log.debug("close: %s", e)
            _active.remove(self)
            self.state = "unmounted"
            log.info("unmounted %s", self.mountpoint)

    def _tune_read_ahead(self) -> None:
        if not self.opts.read_ahead_kb:
            return
        try:
            dev = os.stat(self.mountpoint).st_dev
            path = f"/sys/class/bdi/{os.major(dev)}:{os.minor(dev)}/read_ahead_kb"
            with open(path, "w") as f:
                f.write(str(self.opts.read_ahead_kb))
        except OSError as e:
            log.info("read_ahead_kb of %s stays at the default: %s", self.mountpoint, e)
