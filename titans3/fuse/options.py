"""Mount options: caches, timeouts, the write-back area, defaults for foreign objects."""

from __future__ import annotations

from dataclasses import dataclass

from titans3.fuse.meta import Defaults


@dataclass(frozen=True)
class MountOptions:
    attr_timeout: float = 1.0  # s the kernel (and we) trust attributes
    entry_timeout: float = 1.0  # s a name -> inode answer is trusted, negative ones too
    op_timeout: float = 30.0  # s any metadata call may take before EIO
    min_rate: float = 4 << 20  # bytes/s a transfer may not drop below before EIO
    defaults: Defaults = Defaults()
    staging_dir: str = "/var/tmp"
    write_back_max: int = 4 << 30  # bytes of dirty data staged locally before write-back
    part_size: int = 16 << 20  # multipart part size (grows for files past 160 GiB)
    read_block: int = 2 << 20  # base bytes are fetched and cached in blocks of this size
    read_ahead_blocks: int = 8  # blocks a sequential reader fetches ahead
    listing_remember: int = 10_000  # names of a listed directory kept for negative lookups
    head_concurrency: int = 32  # HEADs in flight while listing a backend without metadata
    part_concurrency: int = 4  # multipart parts in flight during a commit
    read_ahead_kb: int = 1024  # the mount's bdi read_ahead_kb (kernel read-ahead)
    writeback_cache: bool = False  # kernel write-back cache (merges small writes)
    # Upload finished parts of a file written from its start while it is
    # written (fuse/writebehind.py).  Off by default: measured on the 2-core
    # VM it shortens close() but not the whole write, and the daemon spends
    # ~30 % more CPU per MiB on parts than on one stream (bench/README.md).
    write_behind: bool = False
    # close() of a file up to this size returns before its commit is durable
    # (0: never; fuse/closecommit.py); this many such commits run at once.
    close_async_max: int = 0
    close_async_files: int = 64

    def transfer_timeout(self, size: int) -> float:
        return self.op_timeout + size / self.min_rate
