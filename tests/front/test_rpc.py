"""titans3.front.rpc: calls with streamed bodies over one connection, both ways."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio
import trio.testing

from titans3.core.errors import BadDigest, NoSuchKey
from titans3.front.frames import Kind, encode
from titans3.front.rpc import Peer, PeerGone, UpStream


def _peers(handler: Any) -> tuple[Peer, Peer]:
    a, b = trio.testing.memory_stream_pair()
    return Peer(a, None, odd=True), Peer(b, handler, odd=False)


def test_up_stream_is_pulled_one_chunk_at_a_time_and_carries_its_trailer() -> None:
    trio.run(_test_up_stream_is_pulled_one_chunk_at_a_time_and_carries_its_trailer)


async def _test_up_stream_is_pulled_one_chunk_at_a_time_and_carries_its_trailer() -> None:
    produced: list[int] = []
    consumed: list[int] = []
    ahead: list[int] = []

    async def body() -> AsyncIterator[bytes]:
        for i in range(20):
            produced.append(i)
            yield bytes([i]) * 1000

    async def handler(method: str, args: Any, up: UpStream | None) -> tuple[Any, Any]:
        assert up is not None
        async for chunk in up:
            consumed.append(chunk[0])
            ahead.append(len(produced) - len(consumed))
            await trio.sleep(0.001)
        return (method, args, up.trailer), None

    front, owner = _peers(handler)
    seen: list[int] = []
    async with trio.open_nursery() as n:
        await n.start(front.run)
        await n.start(owner.run)
        value, down = await front.call("put", {"k": 1}, up=body(), on_chunk=lambda m: seen.append(m[0]),
                                       trailer=lambda: {"crc32": "abc"})
        n.cancel_scope.cancel()
    assert value == ("put", {"k": 1}, {"crc32": "abc"}) and down is None
    assert consumed == list(range(20)) and seen == list(range(20))
    assert max(ahead) == 0  # nothing was read from the body before the callee asked for it


def test_trailer_exception_and_callee_errors_arrive_as_their_types() -> None:
    trio.run(_test_trailer_exception_and_callee_errors_arrive_as_their_types)


async def _test_trailer_exception_and_callee_errors_arrive_as_their_types() -> None:
    async def body() -> AsyncIterator[bytes]:
        yield b"abc"

    async def handler(method: str, args: Any, up: UpStream | None) -> tuple[Any, Any]:
        assert up is not None
        if method == "missing":
            raise NoSuchKey(Key=args)
        async for _ in up:
            pass
        return None, None

    def bad() -> Any:
        raise BadDigest()

    front, owner = _peers(handler)
    async with trio.open_nursery() as n:
        await n.start(front.run)
        await n.start(owner.run)
        with pytest.raises(BadDigest):
            await front.call("put", None, up=body(), trailer=bad)
        with pytest.raises(NoSuchKey) as e:
            await front.call("missing", "k1")
        assert e.value.extra == {"Key": "k1"}
        n.cancel_scope.cancel()


def test_down_stream_many_calls_in_flight_and_early_close() -> None:
    trio.run(_test_down_stream_many_calls_in_flight_and_early_close)


async def _test_down_stream_many_calls_in_flight_and_early_close() -> None:
    closed: list[int] = []

    async def handler(method: str, args: Any, up: UpStream | None) -> tuple[Any, Any]:
        async def gen() -> AsyncIterator[Any]:
            try:
                for i in range(args):
                    await trio.sleep(0)
                    yield f"{args}:{i}".encode() if method == "bytes" else {"i": i}
            finally:
                closed.append(args)

        return {"n": args}, gen()

    front, owner = _peers(handler)
    results: dict[int, list[Any]] = {}
    async with trio.open_nursery() as n:
        await n.start(front.run)
        await n.start(owner.run)

        async def one(count: int) -> None:
            value, down = await front.call("bytes" if count % 2 else "items", count)
            assert value == {"n": count} and down is not None
            results[count] = [x async for x in down]

        async with trio.open_nursery() as calls:
            for c in range(1, 12):
                calls.start_soon(one, c)
        _, down = await front.call("bytes", 1000)
        assert await down.__anext__() == b"1000:0"
        await down.aclose()
        with trio.fail_after(5):
            while 1000 not in closed:
                await trio.sleep(0.01)
        n.cancel_scope.cancel()
    for c in range(1, 12):
        want = [f"{c}:{i}".encode() if c % 2 else {"i": i} for i in range(c)]
        assert results[c] == want


def test_lost_connection_fails_calls_in_flight() -> None:
    trio.run(_test_lost_connection_fails_calls_in_flight)


async def _test_lost_connection_fails_calls_in_flight() -> None:
    started = trio.Event()

    async def handler(method: str, args: Any, up: UpStream | None) -> tuple[Any, Any]:
        started.set()
        await trio.sleep_forever()
        raise AssertionError

    a, b = trio.testing.memory_stream_pair()
    front, owner = Peer(a, None, odd=True), Peer(b, handler, odd=False)
    async with trio.open_nursery() as n:
        await n.start(front.run)
        n.start_soon(owner.run)

        async def close_later() -> None:
            await started.wait()
            await b.aclose()

        n.start_soon(close_later)
        with pytest.raises(PeerGone), trio.fail_after(5):
            await front.call("hang", None)
        n.cancel_scope.cancel()


def test_garbage_from_the_peer_drops_the_connection() -> None:
    trio.run(_test_garbage_from_the_peer_drops_the_connection)


async def _test_garbage_from_the_peer_drops_the_connection() -> None:
    a, b = trio.testing.memory_stream_pair()
    owner = Peer(b, None, odd=False)
    async with trio.open_nursery() as n:
        n.start_soon(owner.run)
        await a.send_all(encode(Kind.PULL, 1)[:5] + b"\xff" * 20)
        with trio.fail_after(5):
            await owner.closed.wait()
        n.cancel_scope.cancel()


def test_callee_may_read_the_up_stream_after_its_answer_started() -> None:
    trio.run(_test_callee_may_read_the_up_stream_after_its_answer_started)


async def _test_callee_may_read_the_up_stream_after_its_answer_started() -> None:
    # A forwarded request answered before its body was read (an early error):
    # the owner's app drains the body while the front reads the answer.
    async def body() -> AsyncIterator[bytes]:
        for i in range(5):
            yield b"%d" % i

    async def handler(method: str, args: Any, up: UpStream | None) -> tuple[Any, Any]:
        assert up is not None

        async def answer() -> AsyncIterator[bytes]:
            got = [c async for c in up]
            yield b"".join(got)

        return "started", answer()

    front, owner = _peers(handler)
    async with trio.open_nursery() as n:
        await n.start(front.run)
        await n.start(owner.run)
        with trio.fail_after(5):
            value, down = await front.call("http", None, up=body())
            assert value == "started" and down is not None
            assert [c async for c in down] == [b"01234"]
        n.cancel_scope.cancel()


def test_a_result_stream_runs_at_most_its_window_ahead_of_the_reader() -> None:
    trio.run(_test_a_result_stream_runs_at_most_its_window_ahead_of_the_reader)


async def _test_a_result_stream_runs_at_most_its_window_ahead_of_the_reader() -> None:
    from titans3.front.rpc import DOWN_WINDOW

    produced = [0]
    ahead: list[int] = []

    async def handler(method: str, args: Any, up: UpStream | None) -> tuple[Any, Any]:
        async def gen() -> AsyncIterator[bytes]:
            for _ in range(30):
                produced[0] += 1
                yield b"x" * 100_000

        return None, gen()

    front, owner = _peers(handler)
    async with trio.open_nursery() as n:
        await n.start(front.run)
        await n.start(owner.run)
        _, down = await front.call("get", None)
        assert down is not None
        taken = 0
        await trio.sleep(0.05)  # a reader that is slow to start
        async for _ in down:
            taken += 1
            await trio.sleep(0.002)
            ahead.append(produced[0] - taken)
        n.cancel_scope.cancel()
    assert taken == 30 and max(ahead) <= DOWN_WINDOW


def test_calls_cancelled_mid_send_never_tear_a_frame() -> None:
    trio.run(_test_calls_cancelled_mid_send_never_tear_a_frame)


async def _test_calls_cancelled_mid_send_never_tear_a_frame() -> None:
    # A client that goes away cancels its call while the owner streams the
    # answer: the connection must stay usable for every other call.
    async def handler(method: str, args: Any, up: UpStream | None) -> tuple[Any, Any]:
        async def gen() -> AsyncIterator[bytes]:
            for _ in range(50):
                yield b"y" * 300_000

        return None, gen()

    a, b = trio.testing.lockstep_stream_pair()  # every send_all blocks until read: cancels land mid-send
    front, owner = Peer(a, None, odd=True), Peer(b, handler, odd=False)
    async with trio.open_nursery() as n:
        await n.start(front.run)
        await n.start(owner.run)

        async def reader(i: int) -> None:
            with trio.move_on_after(0.001 * (i % 7)):
                _, down = await front.call("get", i)
                assert down is not None
                async for _ in down:
                    await trio.sleep(0)

        async with trio.open_nursery() as calls:
            for i in range(40):
                calls.start_soon(reader, i)
        with trio.fail_after(10):
            _, down = await front.call("get", "after")
            assert down is not None
            total = 0
            async for c in down:
                total += len(c)
            assert total == 50 * 300_000
        assert not front.closed.is_set() and not owner.closed.is_set()
        n.cancel_scope.cancel()
