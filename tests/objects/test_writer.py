"""write_stream (titans3/objects/writer.py): receiving overlaps writing; errors stay typed."""

from __future__ import annotations

import hashlib
import os

import pytest
import trio

from titans3.core.errors import DriveFull, DriveOffline, QuorumError, StorageFull
from titans3.erasure.codec import Codec, ECScheme
from titans3.objects.writer import DIR_RUN, new_data_id, write_stream

from .memdrive import MemDrive, _Writer

SEG = 64 << 10
SCHEME = ECScheme(4, 2, SEG)


class GatedDrive(MemDrive):
    """Its first fragment write waits until ``gate`` is set."""

    def __init__(self, drive_id: str, gate: trio.Event) -> None:
        super().__init__(drive_id)
        self.gate = gate

    async def create_fragment(self, data_id: str, frag_index: int) -> _Writer:
        w = await super().create_fragment(data_id, frag_index)
        inner, gate = w.write, self.gate

        async def write(data: bytes | memoryview) -> None:
            await gate.wait()
            await inner(data)

        w.write = write  # type: ignore[method-assign]
        return w


def test_the_next_segment_is_received_while_the_previous_one_is_written():
    data = os.urandom(3 * SEG)

    async def main() -> None:
        received_second = trio.Event()
        drives = [GatedDrive("d0", received_second)] + [MemDrive(f"d{i}") for i in range(1, 6)]

        async def body():
            yield data[:SEG]  # segment 1: its flush blocks on drive 0 ...
            received_second.set()  # ... until the writer has asked for segment 2
            yield data[SEG:]

        with trio.fail_after(5):  # one segment at a time would wait here forever
            w = await write_stream(body(), drives, SCHEME, Codec(SCHEME), write_quorum=5,
                                   inline_max=0)
        assert w.size == len(data) and w.md5 == hashlib.md5(data).digest()
        assert sorted(w.ok) == list(range(6))

    trio.run(main)


def test_a_quorum_lost_in_a_background_flush_is_a_plain_quorum_error_and_cleans_up():
    async def main() -> None:
        drives = [MemDrive(f"d{i}") for i in range(6)]

        async def body():
            yield os.urandom(SEG)
            for d in drives[:2]:
                d.offline = True  # two lost mid-stream: 4 left, W = 5
            for _ in range(4):
                yield os.urandom(SEG)
                await trio.sleep(0)

        with pytest.raises(QuorumError):
            await write_stream(body(), drives, SCHEME, Codec(SCHEME), write_quorum=5, inline_max=0)
        assert all(not d.staging and not d.data for d in drives[2:])

    trio.run(main)


class FullDrive(MemDrive):
    """Refuses new fragments for space, as LocalDrive does on ENOSPC."""

    async def create_fragment(self, data_id: str, frag_index: int) -> _Writer:
        raise DriveFull(self.drive_id, "no space: [Errno 28] No space left on device")


class GoneDrive(MemDrive):
    async def create_fragment(self, data_id: str, frag_index: int) -> _Writer:
        raise DriveOffline(self.drive_id, "I/O failure")


@pytest.mark.parametrize(("bad", "expected"), [
    ([FullDrive, FullDrive], StorageFull),  # full drives made the difference: 507
    ([FullDrive, GoneDrive], StorageFull),  # 4 take it + 1 full would reach W = 5
    ([GoneDrive, GoneDrive], QuorumError),  # drives are missing: 503
])
def test_a_stream_short_of_quorum_says_whether_the_drives_are_full(bad, expected) -> None:
    data = os.urandom(2 * SEG)

    async def main() -> None:
        drives = [cls(f"bad{i}") for i, cls in enumerate(bad)] + [MemDrive(f"d{i}") for i in range(4)]

        async def body():
            yield data

        with pytest.raises(expected):
            await write_stream(body(), drives, SCHEME, Codec(SCHEME), write_quorum=5, inline_max=0)
        assert expected is not StorageFull or expected.status == 507

    trio.run(main)


def test_consecutive_data_ids_share_their_chunk_directory_in_runs_and_stay_unique():
    ids = [new_data_id() for _ in range(3 * DIR_RUN)]
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
    dirs = [i[:4] for i in ids]  # chunks/xx/yy (titans3/drive/chunks.py)
    assert 3 <= len(set(dirs)) <= 4  # three runs, the first one possibly begun earlier
    assert max(dirs.count(x) for x in set(dirs)) == DIR_RUN
