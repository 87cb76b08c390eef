"""write_buffer (titans3/objects/bufwriter.py): a body already in memory is
staged with one call per drive, under write_stream's contract."""

from __future__ import annotations

import os
from collections.abc import Sequence

import pytest
import trio

from titans3.core.errors import DriveFull, DriveOffline, QuorumError, StorageFull
from titans3.erasure.codec import Codec, ECScheme
from titans3.objects.bufwriter import WholeBody, write_buffer
from titans3.objects.stragglers import Cutoff, Phases
from titans3.objects.writer import write_stream

from .memdrive import MemDrive, _Writer

SEG = 64 << 10
SCHEME = ECScheme(4, 2, SEG)


class WholeDrive(MemDrive):
    """A MemDrive with the one-call staging LocalDrive has; counts the calls."""

    def __init__(self, drive_id: str, fail: Exception | None = None, gate: trio.Event | None = None) -> None:
        super().__init__(drive_id)
        self.whole_calls = self.stream_calls = 0
        self.fail, self.gate = fail, gate

    async def create_fragment(self, data_id: str, frag_index: int) -> _Writer:
        self.stream_calls += 1
        return await super().create_fragment(data_id, frag_index)

    async def write_fragment(self, data_id: str, frag_index: int, parts: Sequence[bytes]) -> int:
        self.whole_calls += 1
        if self.gate is not None:
            await self.gate.wait()
        self._check()
        if self.fail is not None:
            raise self.fail
        self.staging[data_id] = b"".join(parts)
        await trio.lowlevel.checkpoint()
        return len(self.staging[data_id])


def test_a_whole_body_is_staged_with_one_call_per_drive_and_the_same_bytes_as_a_stream():
    data = os.urandom(3 * SEG + 1234)

    async def main() -> None:
        codec = Codec(SCHEME)
        whole = [WholeDrive(f"d{i}") for i in range(6)]
        w = await write_buffer(data, whole, SCHEME, codec, write_quorum=5, inline_max=0)
        assert [d.whole_calls for d in whole] == [1] * 6 and [d.stream_calls for d in whole] == [0] * 6
        assert sorted(w.ok) == list(range(6)) and w.size == len(data)
        streamed = [MemDrive(f"s{i}") for i in range(6)]
        s = await write_stream(WholeBody(data), streamed, SCHEME, codec, write_quorum=5, inline_max=0)
        assert [d.staging[w.data_id] for d in whole] == [d.staging[s.data_id] for d in streamed]
        assert w.md5 == s.md5

    trio.run(main)


def test_a_small_body_still_goes_inline_and_a_drive_without_write_fragment_streams_its_part():
    data = os.urandom(2 * SEG + 7)

    async def main() -> None:
        codec = Codec(SCHEME)
        whole = [WholeDrive(f"d{i}") for i in range(6)]
        w = await write_buffer(b"x" * 100, whole, SCHEME, codec, write_quorum=5, inline_max=4096)
        assert w.inline is not None and sum(d.whole_calls + d.stream_calls for d in whole) == 0
        mixed: list[MemDrive] = [WholeDrive(f"d{i}") for i in range(5)] + [MemDrive("plain")]
        w = await write_buffer(data, mixed, SCHEME, codec, write_quorum=5, inline_max=0)
        assert sorted(w.ok) == list(range(6))
        assert [(d.whole_calls, d.stream_calls) for d in mixed[:5]] == [(1, 0)] * 5  # type: ignore[attr-defined]
        frags = {i: d.staging[w.data_id] for i, d in enumerate(mixed)}
        assert codec.decode({i: frags[i][:codec.fragment_size(SEG)] for i in (1, 2, 3, 5)}) == data[:SEG]

    trio.run(main)


def test_a_failing_drive_is_dropped_while_the_quorum_holds():
    async def main() -> None:
        drives = [WholeDrive("d0", DriveOffline("d0", "I/O failure"))] + [WholeDrive(f"d{i}") for i in range(1, 6)]
        w = await write_buffer(os.urandom(2 * SEG), drives, SCHEME, Codec(SCHEME), write_quorum=5, inline_max=0)
        assert sorted(w.ok) == [1, 2, 3, 4, 5]

    trio.run(main)


def test_a_streaming_drive_that_fails_mid_fragment_is_aborted():
    class Failing(MemDrive):
        async def create_fragment(self, data_id: str, frag_index: int) -> _Writer:
            w = await super().create_fragment(data_id, frag_index)
            self.aborted = False

            async def write(data: bytes | memoryview) -> None:
                raise DriveOffline(self.drive_id, "I/O failure")

            async def abort() -> None:
                self.aborted = True

            w.write, w.abort = write, abort  # type: ignore[method-assign]
            return w

    async def main() -> None:
        bad = Failing("bad")
        drives: list[MemDrive] = [WholeDrive(f"d{i}") for i in range(5)] + [bad]
        w = await write_buffer(os.urandom(2 * SEG), drives, SCHEME, Codec(SCHEME), write_quorum=5, inline_max=0)
        assert sorted(w.ok) == [0, 1, 2, 3, 4] and bad.aborted

    trio.run(main)


@pytest.mark.parametrize(("error", "raised"), [
    (DriveOffline("x", "I/O failure"), QuorumError), (DriveFull("x", "no space"), StorageFull)])
def test_below_the_quorum_the_write_fails_typed_and_leaves_nothing_staged(error, raised):
    async def main() -> None:
        drives = [WholeDrive(f"d{i}", error if i < 2 else None) for i in range(6)]
        with pytest.raises(raised):
            await write_buffer(os.urandom(2 * SEG), drives, SCHEME, Codec(SCHEME), write_quorum=5, inline_max=0)
        assert all(not d.staging for d in drives)

    trio.run(main)


def test_a_straggler_is_cut_and_what_it_staged_is_removed_once_its_call_returns():
    async def main() -> None:
        gate = trio.Event()
        drives = [WholeDrive("slow", gate=gate)] + [WholeDrive(f"d{i}") for i in range(1, 6)]
        async with trio.open_nursery() as nursery:
            phases = Phases(nursery.start_soon, Cutoff(0.05, 1.0))
            with trio.fail_after(5):
                w = await write_buffer(os.urandom(2 * SEG), drives, SCHEME, Codec(SCHEME), write_quorum=5,
                                       inline_max=0, phases=phases)
            assert sorted(w.ok) == [1, 2, 3, 4, 5] and phases.cut == {0}
            gate.set()  # the straggler's call returns, then its fragment goes
        assert drives[0].whole_calls == 1 and not drives[0].staging
        assert all(w.data_id in d.staging for d in drives[1:])

    trio.run(main)


def test_a_body_over_whole_max_streams(monkeypatch: pytest.MonkeyPatch):
    import titans3.objects.bufwriter as bw

    monkeypatch.setattr(bw, "WHOLE_MAX", SEG)

    async def main() -> None:
        drives = [WholeDrive(f"d{i}") for i in range(6)]
        w = await write_buffer(os.urandom(2 * SEG), drives, SCHEME, Codec(SCHEME), write_quorum=5, inline_max=0)
        assert sorted(w.ok) == list(range(6))
        assert [(d.whole_calls, d.stream_calls) for d in drives] == [(0, 1)] * 6

    trio.run(main)
