"""A front process's stand-ins for the owner's objects: store, directory, audit, metrics.

Theory of operation
-------------------
The S3 app (``titans3/s3/app.py``) runs unchanged in a front: it is handed
a :class:`StoreProxy` as its ``store``, a mirror of the owner's directory
(``Directory.mirror``, kept current by :class:`DirectoryFollower`), and an
:class:`AuditProxy`; every request it finishes is reported to the owner by
:class:`Notes` (the owner counts it and writes its access-log line).

:class:`StoreProxy` implements the ``ObjectAPI`` contract by calling the
owner (``titans3/front/service.py``): a body argument becomes the call's up
stream, ``on_data`` runs here on each chunk as it is sent (the bytes the
owner's store reads are exactly these), ``checksums()`` runs here after the
last chunk and its value -- or the exception it raised, which aborts the
write with nothing visible -- travels with the end of the body.  A result's
body (``GetResult.body``) and ``walk_objects`` are down streams.  Errors
arrive as the owner raised them (frames.py), so handlers map them exactly
as in the owner.  A lost owner is ``ServiceUnavailable`` (503: retry; a
write the owner did not confirm was not acknowledged).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
from collections.abc import AsyncIterator, Mapping
from typing import Any

import trio

from titans3.accounts.directory import Directory
from titans3.core import recvgate
from titans3.core.errors import ServiceUnavailable
from titans3.front.rpc import UP, Peer, PeerGone
from titans3.front.service import CHECKSUMS, STORE_METHODS

log = logging.getLogger(__name__)

__all__ = ["AuditProxy", "DirectoryFollower", "Notes", "StoreProxy"]


def _is_stream(v: Any) -> bool:
    return hasattr(v, "__aiter__") and not isinstance(v, (bytes, bytearray, memoryview, str))


def _gone(e: PeerGone) -> ServiceUnavailable:
    return ServiceUnavailable(f"The storage process is not answering ({e}); retry.")


class StoreProxy:
    """``ObjectAPI`` over the owner connection (see module doc)."""

    def __init__(self, peer: Peer, storage_classes: Mapping[str, tuple[int, int]]) -> None:
        self._peer = peer
        self.storage_classes = dict(storage_classes)

    def __getattr__(self, name: str) -> Any:
        if name == "walk_objects":
            return self._walk
        if name not in STORE_METHODS:
            raise AttributeError(name)

        async def method(*args: Any, **kwargs: Any) -> Any:
            value, down = await self._call(name, args, kwargs)
            if down is not None:
                value = dataclasses.replace(value, body=down)
            return value

        method.__name__ = name
        return method

    async def _call(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, Any]:
        up = None
        on_data = kwargs.pop("on_data", None)
        checksums = kwargs.get("checksums")
        out = []
        for a in args:
            if _is_stream(a):
                up, a = a, UP
            out.append(a)
        for k, v in list(kwargs.items()):
            if _is_stream(v):
                up, kwargs[k] = v, UP
        if callable(checksums) and up is not None:  # a body's checksums: computed here after it
            kwargs["checksums"] = CHECKSUMS
        else:
            checksums = None
        if up is not None:
            up = _widen_on_pull(up, recvgate.current())
        try:
            return await self._peer.call("store", (name, tuple(out), kwargs), up=up, on_chunk=on_data,
                                         trailer=checksums if callable(checksums) else None)  # fmt: skip
        except PeerGone as e:
            raise _gone(e) from None

    async def _walk(self, bucket: str, **kwargs: Any) -> AsyncIterator[Any]:
        _, down = await self._call("walk_objects", (bucket,), kwargs)
        assert down is not None
        try:
            async for item in down:
                yield item
        except PeerGone as e:
            raise _gone(e) from None
        finally:
            await down.aclose()


async def _widen_on_pull(body: AsyncIterator[bytes], window: recvgate.RecvWindow | None) -> AsyncIterator[bytes]:
    """``body``, reading the client's socket at full size from the owner's first
    pull on: the owner pulls only once its write memory budget admitted the
    stream (objects/admission.py widens the same way in one process)."""
    if window is None:
        async for chunk in body:
            yield chunk
        return
    with window.widened():
        async for chunk in body:
            yield chunk


class Notes:
    """One-way messages to the owner, sent in order by one task (``run``)."""

    def __init__(self, peer: Peer) -> None:
        self._peer = peer
        self._send, self._recv = trio.open_memory_channel[tuple[str, Any]](math.inf)
        self._busy = False

    def put(self, method: str, args: Any) -> None:
        with contextlib.suppress(trio.ClosedResourceError):
            self._send.send_nowait((method, args))

    async def run(self) -> None:
        async for method, args in self._recv:
            self._busy = True
            try:
                await self._peer.notify(method, args)
            except PeerGone:
                return
            finally:
                self._busy = False

    async def flushed(self) -> None:
        """Return once every note put so far was handed to the connection."""
        for _ in range(3):  # let requests that just finished reach put()
            await trio.lowlevel.checkpoint()
        while self._busy or self._recv.statistics().current_buffer_used:
            await trio.sleep(0.001)


class AuditProxy:
    """``AuditLog.record`` of the owner's audit log (one writer for the hash chain)."""

    def __init__(self, notes: Notes) -> None:
        self._notes = notes

    def record(self, fields: Mapping[str, Any]) -> None:
        self._notes.put("audit", dict(fields))


class DirectoryFollower:
    """Keeps a directory mirror at the owner's generation (long poll ``dir.wait``)."""

    def __init__(self, peer: Peer, mirror: Directory) -> None:
        self._peer = peer
        self.mirror = mirror

    async def run(self) -> None:
        while True:
            try:
                (gen, snap), _ = await self._peer.call("dir.wait", self.mirror.generation)
            except PeerGone:
                return
            if snap is not None:
                self.mirror.restore(snap)
