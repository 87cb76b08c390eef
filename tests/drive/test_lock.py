"""The per-drive flock: exclusive across processes, released on close or death."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from titans3.drive import lock
from titans3.drive.local import LocalDrive

HOLD = """
import sys, time
from pathlib import Path
from titans3.drive import lock
held = lock.acquire(Path(sys.argv[1]))
print("held", flush=True)
sys.stdin.read()
"""


def test_a_second_process_is_refused_with_the_holders_pid(tmp_path: Path) -> None:
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(lock.DriveInUse) as info:
            lock.acquire(tmp_path)
        assert info.value.holder == holder.pid
        assert str(holder.pid) in str(info.value) and str(tmp_path) in str(info.value)
    finally:
        holder.kill()
        holder.wait()
    lock.acquire(tmp_path).release()  # a dead holder's lock is gone


def test_release_lets_the_next_one_in(tmp_path: Path) -> None:
    first = lock.acquire(tmp_path)
    with pytest.raises(lock.DriveInUse):
        lock.acquire(tmp_path)  # another open file description conflicts, same process too
    first.release()
    first.release()  # idempotent
    lock.acquire(tmp_path).release()


def test_still_held_notices_a_replaced_lock_file(tmp_path: Path) -> None:
    held = lock.acquire(tmp_path)
    assert lock.still_held(held, tmp_path)
    os.unlink(tmp_path / lock.LOCK_FILE)
    assert not lock.still_held(held, tmp_path)
    held.release()
    assert not lock.still_held(held, tmp_path)


def test_local_drive_holds_its_root_until_closed(tmp_path: Path) -> None:
    async def main() -> None:
        d = LocalDrive(tmp_path / "d")
        await d.open()
        with pytest.raises(lock.DriveInUse):
            await LocalDrive(tmp_path / "d").open()
        await d.close()
        again = LocalDrive(tmp_path / "d")
        await again.open()
        assert again.drive_id == d.drive_id
        await again.close()

    trio.run(main)
