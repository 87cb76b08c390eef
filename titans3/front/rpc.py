"""Calls with streamed bodies over one connection: the trio adapter of ``frames``.

Theory of operation
-------------------
:class:`Peer` runs one connection, symmetric: either side may
:meth:`Peer.call` the other (many calls in flight, each its own trio task
on the serving side) and serve the other's calls through a ``handler``.
A call may carry one *up* stream (the caller's async iterator, e.g. a PUT
body) and its result one *down* stream (the callee's async iterator, e.g.
a GET body or a listing walk).  An up stream moves one chunk per PULL; a
down stream keeps :data:`DOWN_WINDOW` chunks in flight, one more per PULL
(frames.py: bounded memory, back-pressure to the producer).

The up stream's END carries a *trailer*: what the caller computed once the
body was read (the S3 front's checksums), or the exception its body raised
(a client that went away, a stalled upload) -- raised inside the callee's
reader of the body, so the callee's write fails as it would have locally.

A call whose connection is lost raises :class:`PeerGone`; the callee's
tasks for a lost connection are cancelled and their streams closed.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import trio

from titans3.front.frames import Frame, FrameError, FrameReader, Kind, dumps, header, loads

log = logging.getLogger(__name__)

__all__ = ["DownStream", "Handler", "Peer", "PeerGone", "UpStream"]


class PeerGone(Exception):
    """The other process closed the connection (or sent garbage)."""


class _Trailer:
    __slots__ = ("error", "value")

    def __init__(self, value: Any = None, error: BaseException | None = None) -> None:
        self.value = value
        self.error = error


class UpStream:
    """The callee's view of the caller's body: an async iterator of chunks."""

    def __init__(self, peer: Peer, call: int) -> None:
        self._peer = peer
        self._call = call
        self._inbox_send, self._inbox = trio.open_memory_channel[Frame](math.inf)
        self.done = False
        self.trailer: Any = None  # what the caller sent with the end of the body

    def __aiter__(self) -> UpStream:
        return self

    async def __anext__(self) -> bytes:
        if self.done:
            raise StopAsyncIteration
        await self._peer._send(Kind.PULL, self._call)
        try:
            frame = await self._inbox.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            raise PeerGone("the front went away during the body") from None
        if frame.kind is Kind.DATA:
            return bytes(frame.payload)
        self.done = True
        trailer = loads(frame.payload)
        if isinstance(trailer, _Trailer) and trailer.error is not None:
            raise trailer.error
        self.trailer = trailer.value if isinstance(trailer, _Trailer) else trailer
        raise StopAsyncIteration


class DownStream:
    """The caller's view of the callee's result stream (bytes or pickled items)."""

    def __init__(self, peer: Peer, call: int, inbox: trio.MemoryReceiveChannel[Frame],
                 push_up: Callable[[], Awaitable[None]] | None = None) -> None:
        self._peer = peer
        self._call = call
        self._inbox = inbox
        self._push_up = push_up  # the callee may still read the call's up stream (a forwarded request)
        self.done = False

    def __aiter__(self) -> DownStream:
        return self

    async def __anext__(self) -> Any:
        if self.done:
            raise StopAsyncIteration
        while True:
            try:
                frame = await self._inbox.receive()
            except (trio.EndOfChannel, trio.ClosedResourceError):
                self.done = True
                raise PeerGone("the owner went away during a stream") from None
            if frame.kind is not Kind.PULL:
                break
            if self._push_up is not None:
                await self._push_up()
        if frame.kind in (Kind.DATA, Kind.ITEM):
            await self._peer._send(Kind.PULL, self._call)  # taken: the callee may send one more
            return bytes(frame.payload) if frame.kind is Kind.DATA else loads(frame.payload)
        self.done = True
        self._peer._calls.pop(self._call, None)
        end = loads(frame.payload)
        if isinstance(end, BaseException):
            raise end
        raise StopAsyncIteration

    def __del__(self) -> None:
        # A result body nobody read to the end nor closed: free the callee's task.
        if not self.done and not self._peer.closed.is_set() and self._peer._nursery is not None:
            self.done = True
            with contextlib.suppress(Exception):
                self._peer._nursery.start_soon(self._peer._send_quietly, Kind.CANCEL, self._call)

    async def aclose(self) -> None:
        if not self.done:
            self.done = True
            self._peer._calls.pop(self._call, None)
            with trio.CancelScope(shield=True), contextlib.suppress(PeerGone):
                await self._peer._send(Kind.CANCEL, self._call)


# handler(method, args, up) -> (value, down stream or None)
Handler = Callable[[str, Any, UpStream | None], Awaitable[tuple[Any, AsyncIterator[Any] | None]]]
UP = "\0up"  # in a call's args: "the up stream goes here"
# Chunks of a result stream the callee sends before being asked: a small GET's
# body and its end come with the answer (one round trip, not three); memory per
# stream stays bounded (two chunks).  Up streams (request bodies) get no such
# window: the owner pulls a body only once its write memory budget admitted it.
DOWN_WINDOW = 2


class Peer:
    """One connection (see module doc).  ``odd``: this side numbers its calls odd."""

    def __init__(self, stream: trio.abc.Stream, handler: Handler | None, *, odd: bool,
                 notes: Callable[[str, Any], None] | None = None) -> None:
        self.stream = stream
        self.handler = handler
        self.notes = notes
        self._next = 1 if odd else 2
        self._odd = odd
        self._send_lock = trio.StrictFIFOLock()
        self._calls: dict[int, trio.MemorySendChannel[Frame]] = {}  # calls we made: their inbox
        self._served: dict[int, _Served] = {}  # calls we serve
        self.closed = trio.Event()
        self._nursery: trio.Nursery | None = None

    # ------------------------------------------------------------ sending
    async def _send(self, kind: Kind, call: int, payload: bytes | memoryview = b"") -> None:
        if self.closed.is_set():
            raise PeerGone("connection closed")
        try:
            async with self._send_lock:
                # Shielded: a send_all cancelled half-way would leave half a frame
                # on the wire and every later frame misread (calls are cancelled
                # whenever a client goes away).  The other side always reads.
                with trio.CancelScope(shield=True):
                    head = header(kind, call, len(payload))
                    if len(payload) <= 1 << 16:  # one syscall for the small frames most calls are
                        await self.stream.send_all(head + payload)
                    else:
                        await self.stream.send_all(head)
                        await self.stream.send_all(payload)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as e:
            self._lost()
            raise PeerGone(f"connection lost: {e}") from None

    async def _send_quietly(self, kind: Kind, call: int) -> None:
        with contextlib.suppress(PeerGone):
            await self._send(kind, call)

    async def _send_chunk(self, call: int, chunk: bytes | memoryview) -> None:
        # One chunk per PULL, whole (a segment or one socket read: MiBs, under MAX_FRAME).
        await self._send(Kind.DATA, call, memoryview(chunk))

    # ------------------------------------------------------------ calling
    def _new_id(self) -> int:
        call = self._next
        self._next = (self._next + 2) % (1 << 32) or (1 if self._odd else 2)
        return call

    async def call(self, method: str, args: Any, *, up: AsyncIterator[Any] | None = None,
                   on_chunk: Callable[[memoryview], None] | None = None,
                   trailer: Callable[[], Any] | None = None) -> tuple[Any, DownStream | None]:
        """Call ``method`` on the other side; ``(value, down stream or None)``.

        ``up``: the body the callee pulls; ``on_chunk`` sees each chunk before
        it is sent; ``trailer()`` runs after the body's last chunk and its
        value (or exception) goes with the END frame."""
        call = self._new_id()
        send, inbox = trio.open_memory_channel[Frame](math.inf)
        self._calls[call] = send
        streaming = False
        try:
            await self._send(Kind.CALL, call, dumps((method, args)))
            while True:
                try:
                    frame = await inbox.receive()
                except trio.EndOfChannel:
                    raise PeerGone("connection lost during a call") from None
                if frame.kind is Kind.PULL:
                    await self._push_up(call, up, on_chunk, trailer)
                elif frame.kind is Kind.RESULT:
                    value, has_down = loads(frame.payload)
                    if has_down:
                        streaming = True
                        return value, DownStream(self, call, inbox,
                                                 lambda: self._push_up(call, up, on_chunk, trailer))
                    return value, None
                elif frame.kind is Kind.ERROR:
                    self._calls.pop(call, None)  # finished: nothing to cancel
                    raise loads(frame.payload)
        except BaseException:
            if call in self._calls and not self.closed.is_set():
                with trio.CancelScope(shield=True), contextlib.suppress(PeerGone):
                    await self._send(Kind.CANCEL, call)
            raise
        finally:
            if not streaming:
                self._calls.pop(call, None)
            aclose = getattr(up, "aclose", None)
            if aclose is not None and not streaming:  # a body the callee did not read to the end
                with trio.CancelScope(shield=True), contextlib.suppress(Exception):
                    await aclose()

    async def _push_up(self, call: int, up: AsyncIterator[Any] | None,
                       on_chunk: Callable[[memoryview], None] | None,
                       trailer: Callable[[], Any] | None) -> None:
        if up is None:
            await self._send(Kind.END, call, dumps(_Trailer()))
            return
        try:
            chunk = await up.__anext__()
        except StopAsyncIteration:
            try:
                end = _Trailer(trailer() if trailer is not None else None)
            except Exception as e:  # noqa: BLE001 -- the callee's write raises it
                end = _Trailer(error=e)
            await self._send(Kind.END, call, _dump_or_internal(end))
            return
        except Exception as e:  # noqa: BLE001 -- the body failed: the callee's write fails with it
            await self._send(Kind.END, call, _dump_or_internal(_Trailer(error=e)))
            return
        if on_chunk is not None:
            on_chunk(memoryview(chunk))
        await self._send_chunk(call, chunk)

    async def notify(self, method: str, args: Any) -> None:
        """A call without an answer (nothing comes back, not even an error)."""
        await self._send(Kind.NOTE, 0, dumps((method, args)))

    # ------------------------------------------------------------ running
    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Read frames until the connection ends; serve calls in tasks."""
        reader = FrameReader()
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                task_status.started()
                while True:
                    try:
                        data = await self.stream.receive_some(1 << 20)
                    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                        data = b""
                    if not data:
                        break
                    try:
                        frames = reader.feed(data)
                    except FrameError as e:
                        log.error("front connection: %s; dropping it", e)
                        break
                    for frame in frames:
                        self._dispatch(frame, nursery)
                nursery.cancel_scope.cancel()
        finally:
            self._lost()
            with trio.CancelScope(shield=True), contextlib.suppress(Exception):
                await self.stream.aclose()

    def _lost(self) -> None:
        if self.closed.is_set():
            return
        self.closed.set()
        for send in list(self._calls.values()):
            send.close()
        self._calls.clear()
        for served in list(self._served.values()):
            served.cancel()
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()

    def _mine(self, call: int) -> bool:
        return bool(call & 1) == self._odd

    def _dispatch(self, frame: Frame, nursery: trio.Nursery) -> None:
        if frame.kind is Kind.NOTE:
            if self.notes is not None:
                method, args = loads(frame.payload)
                try:
                    self.notes(method, args)
                except Exception:  # noqa: BLE001 -- a note must never take the connection down
                    log.exception("handling %s from a front failed", method)
            return
        if self._mine(frame.call):  # an answer or a stream frame of a call we made
            send = self._calls.get(frame.call)
            if send is not None:
                send.send_nowait(frame)
            return
        if frame.kind is Kind.CALL:
            served = _Served(self, frame.call)
            self._served[frame.call] = served
            nursery.start_soon(served.run, frame.payload)
            return
        served = self._served.get(frame.call)
        if served is None:
            return  # a call that already finished (late CANCEL / PULL)
        if frame.kind is Kind.CANCEL:
            served.cancel()
        elif frame.kind is Kind.PULL:
            served.pulled()
        else:  # DATA / END of the up stream
            served.up_inbox.send_nowait(frame)


class _Served:
    """A call the other side made, being served."""

    def __init__(self, peer: Peer, call: int) -> None:
        self.peer = peer
        self.call = call
        self.scope = trio.CancelScope()
        self.up: UpStream | None = None
        send, self._up_recv = trio.open_memory_channel[Frame](math.inf)
        self.up_inbox = send
        self._pulls = trio.Semaphore(DOWN_WINDOW, max_value=1 << 20)

    def cancel(self) -> None:
        self.scope.cancel()

    def pulled(self) -> None:
        self._pulls.release()

    async def run(self, payload: bytes) -> None:
        peer = self.peer
        down: AsyncIterator[Any] | None = None
        try:
            with self.scope:
                try:
                    method, args = loads(payload)
                    up = UpStream(peer, self.call)
                    up._inbox_send, up._inbox = self.up_inbox, self._up_recv
                    self.up = up
                    assert peer.handler is not None
                    value, down = await peer.handler(method, args, up)
                    await peer._send(Kind.RESULT, self.call, dumps((value, down is not None)))
                except PeerGone:
                    raise
                except Exception as e:  # noqa: BLE001 -- the caller gets the exception
                    if isinstance(e, trio.Cancelled):
                        raise
                    await peer._send(Kind.ERROR, self.call, _dump_or_internal(e))
                    return
                if down is not None:
                    await self._serve_down(down)
        except PeerGone:
            pass
        finally:
            peer._served.pop(self.call, None)
            aclose = getattr(down, "aclose", None)
            if aclose is not None:
                with trio.CancelScope(shield=True), contextlib.suppress(Exception):
                    await aclose()

    async def _serve_down(self, down: AsyncIterator[Any]) -> None:
        peer = self.peer
        while True:
            await self._pulls.acquire()
            try:
                item = await down.__anext__()
            except StopAsyncIteration:
                await peer._send(Kind.END, self.call, dumps(None))
                return
            except Exception as e:  # noqa: BLE001 -- ends the caller's stream with it
                await peer._send(Kind.END, self.call, _dump_or_internal(e))
                return
            if isinstance(item, (bytes, bytearray, memoryview)):
                await peer._send_chunk(self.call, item)
            else:
                await peer._send(Kind.ITEM, self.call, dumps(item))


def _dump_or_internal(value: Any) -> bytes:
    """``value`` pickled; an exception that does not pickle becomes InternalError."""
    try:
        return dumps(value)
    except Exception as e:  # noqa: BLE001
        from titans3.core.errors import InternalError

        log.error("cannot send %r to the other process: %s", value, e)
        err: BaseException = InternalError()
        return dumps(_Trailer(error=err) if isinstance(value, _Trailer) else err)
