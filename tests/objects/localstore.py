"""A store over six real LocalDrive directories (EC 4+2), for tests that need
what only real drives do: LMDB records, fragment files, a drive taken away."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import trio

from titans3.drive.local import LocalDrive
from titans3.erasure.codec import ECScheme
from titans3.objects.store import ObjectStore
from titans3.ring.builder import Member, build_ring


def run_on_local_drives(tmp_path: Path, bucket: str,
                        test: Callable[[ObjectStore, list[LocalDrive]], Awaitable[None]], *,
                        segment: int = 64 << 10, inline_max: int) -> None:
    """Run ``test(store, drives)`` with ``bucket`` created; drives closed after."""
    async def main() -> None:
        drives = [LocalDrive(tmp_path / f"d{i}", create=True) for i in range(6)]
        for d in drives:
            await d.open()
        ring = build_ring([Member(d.drive_id, "h") for d in drives], 6, partition_power=4)
        store = ObjectStore(drives, ring, ECScheme(4, 2, segment), inline_max=inline_max)
        async with trio.open_nursery() as n:
            await n.start(store.run)
            await store.create_bucket(bucket)
            await test(store, drives)
            n.cancel_scope.cancel()
        for d in drives:
            await d.close()

    trio.run(main)
