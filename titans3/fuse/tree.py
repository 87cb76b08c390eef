"""Renaming a directory: every key below one prefix moves below another.

Theory of operation
-------------------
Object stores have no directories, so ``rename(a, b)`` of a directory
renames each key ``a/...`` to ``b/...``, page by page (never the whole tree
in memory), a few keys at a time.  Markers (``.../`` objects) move after
every key of their page, and the top marker ``a/`` last of all, so that
until the very end ``a`` still exists and a rerun of the same rename finishes
the job.  A crash in the middle leaves some keys under ``b/`` and the rest
under ``a/`` -- nothing lost, nothing duplicated (each key's own rename
is atomic in the daemon's backend, and over S3 completes the copy before it
deletes the source).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import trio

from titans3.fuse.backend import Backend

CONCURRENCY = 8


async def rename_tree(backend: Backend, src: str, dst: str, *,
                      call: Callable[..., Awaitable[Any]],
                      timeout: Callable[[int], float]) -> int:
    """Move every key under ``src`` to ``dst`` (both prefixes end in ``/``).
    Returns the number of keys moved."""
    moved = 0
    after = ""
    top_marker = False
    limiter = trio.CapacityLimiter(CONCURRENCY)

    async def move(key: str, size: int) -> None:
        async with limiter:
            await call(f"RENAME {key}", backend.rename, key, dst + key[len(src):],
                       timeout=timeout(0 if backend.atomic_rename else size))

    while True:
        page = await call(f"LIST {src}", backend.list, src, delimiter="", start_after=after,
                          limit=1000)
        entries = [e for e in page.entries if e.key > after]
        markers = []
        async with trio.open_nursery() as nursery:
            for e in entries:
                if e.key == src:
                    top_marker = True
                elif e.key.endswith("/"):
                    markers.append(e)
                else:
                    nursery.start_soon(move, e.key, e.size)
        for e in markers:
            await move(e.key, e.size)
        moved += len(entries)
        if not page.truncated or not entries:
            break
        after = entries[-1].key
    if top_marker:
        await move(src, 0)
    return moved
