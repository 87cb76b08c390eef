"""The owner's side of a front connection: what a front may ask of the owner.

Theory of operation
-------------------
The owner (``titans3 serve``) holds the drives and the object layer; a front
process holds only an S3 app.  Each front's connection is served by one
:class:`OwnerService`, which answers:

``hello``        the configuration, root credentials, storage classes and
                 the directory, once, when the front starts;
``store``        one ``ObjectAPI`` method (allow-listed: the protocol's
                 public methods) on the owner's *current* store -- the
                 cluster layer may replace it; a streamed body (PUT, part)
                 arrives as the call's up stream and is read only as fast
                 as the write path reads it; a result's body (GET) or a
                 walk goes back as the down stream;
``http``         a whole S3 request the front does not serve itself (admin
                 API, IAM API, copies: their handlers hand the object layer
                 callbacks, which cannot cross processes), run by the
                 owner's own S3 app;
``dir.wait``     long poll: the directory once its generation moved;
notes            ``observe`` (a finished request: the owner's counters,
                 status page history and access log count it once) and
                 ``audit`` (one audit record: the hash chain has one writer,
                 the owner).

Invariants.  A write a front acknowledges was acknowledged by the owner's
object layer first (the front answers from the call's result).  A request
forwarded here that changed the directory is answered only once every
front has loaded the new directory (or 2 s passed), so a key created
through any process signs the next request on every process.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import trio

from titans3.core import metrics
from titans3.front.limits import shared_limits
from titans3.front.rpc import UP, UpStream
from titans3.objects.api import ObjectAPI

log = logging.getLogger(__name__)

__all__ = ["CHECKSUMS", "OwnerService", "STORE_METHODS"]

CHECKSUMS = "\0checksums"  # in a store call's kwargs: "the up stream's trailer is the checksums"
STORE_METHODS = frozenset(n for n, v in vars(ObjectAPI).items() if callable(v) and not n.startswith("_"))
DIRECTORY_POLL = 0.05  # s between checks of the directory's generation (on_change wakes it sooner)
SYNC_WAIT = 2.0  # s a directory-changing request waits for the fronts to load it


class OwnerService:
    """Serves every front of one owner (one instance; one ``handler`` per connection)."""

    def __init__(self, host: Any, observer: metrics.RequestObserver) -> None:
        self.host = host
        self.s3_app: Any = None  # set by open(), when the owner is ready
        self.opened = trio.Event()
        self.serving: set[int] = set()  # fronts whose S3 listener is up
        self.observer = observer
        self.known: dict[int, str] = {}  # front index -> directory generation it has
        self._changed = trio.Event()
        self.requests: dict[int, int] = {}  # front index -> requests it served

    def open(self, s3_app: Any) -> None:
        """The owner is ready: fronts that said hello get their answer now."""
        self.s3_app = s3_app
        d = self.host.iam
        if d is not None:
            d.on_change.append(self._wake)
        self.opened.set()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    def _generation(self) -> str:
        d = self.host.iam
        return d.generation if d is not None else ""

    def _snapshot(self) -> Any:
        d = self.host.iam
        return d.snapshot() if d is not None else None

    # ------------------------------------------------------------ per connection
    def handler(self, index: int, nursery: trio.Nursery) -> Callable[..., Any]:
        async def handle(method: str, args: Any, up: UpStream | None) -> tuple[Any, AsyncIterator[Any] | None]:
            if method == "store":
                return await self._store(*args, up=up)
            if method == "http":
                return await self._http(args, up, nursery)
            if method == "dir.wait":
                return await self._dir_wait(index, args), None
            if method == "hello":
                await self.opened.wait()
                return self._hello(), None
            if method == "serving":
                self.serving.add(index)
                return None, None
            raise ValueError(f"unknown front call {method!r}")

        return handle

    def notes(self, index: int) -> Callable[[str, Any], None]:
        def note(method: str, args: Any) -> None:
            if method == "observe":
                self.requests[index] = self.requests.get(index, 0) + 1
                self.observer.record(_exchange(args))
            elif method == "audit":
                if self.host.audit is not None:
                    self.host.audit.record(args)
            else:
                log.warning("unknown note %r from front %d", method, index)

        return note

    # ------------------------------------------------------------ calls
    def _hello(self) -> dict[str, Any]:
        host = self.host
        return {"config": shared_limits(host.config), "credentials": host.credentials, "owner_pid": os.getpid(),
                "storage_classes": dict(host.store.storage_classes), "audit": host.audit is not None,
                "directory": self._snapshot()}

    async def _store(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any], *,
                     up: UpStream | None) -> tuple[Any, AsyncIterator[Any] | None]:
        if name not in STORE_METHODS:
            raise ValueError(f"{name!r} is not an object API method")
        args = tuple(up if a == UP else a for a in args)
        kwargs = {k: (up if v == UP else v) for k, v in kwargs.items()}
        if kwargs.get("checksums") == CHECKSUMS:
            assert up is not None

            def checksums() -> Any:
                if not up.done:
                    raise RuntimeError("checksums asked for before the body ended")
                return up.trailer

            kwargs["checksums"] = checksums
        result = getattr(self.host.store, name)(*args, **kwargs)
        if inspect.isawaitable(result):
            result = await result
        if hasattr(result, "__aiter__"):  # walk_objects
            return None, result
        body = getattr(result, "body", None)
        if body is not None and hasattr(body, "__aiter__"):  # GetResult
            return dataclasses.replace(result, body=None), body
        return result, None

    async def _dir_wait(self, index: int, have: str) -> Any:
        self.known[index] = have
        with trio.move_on_after(30.0):
            while self._generation() == have:
                with trio.move_on_after(DIRECTORY_POLL):
                    await self._changed.wait()
        return self._generation(), self._snapshot() if self._generation() != have else None

    async def synced(self, fronts: list[int]) -> None:
        """Wait (at most :data:`SYNC_WAIT`) until every front in ``fronts`` has the directory."""
        want = self._generation()
        with trio.move_on_after(SYNC_WAIT):
            while any(self.known.get(i) != want for i in fronts):
                await trio.sleep(0.005)

    async def _http(self, scope: dict[str, Any], up: UpStream | None, nursery: trio.Nursery
                    ) -> tuple[Any, AsyncIterator[Any] | None]:
        gen = self._generation()
        started = trio.Event()
        box: dict[str, Any] = {}
        send_body, recv_body = trio.open_memory_channel[bytes](0)
        disconnect = trio.Event()

        async def receive() -> dict[str, Any]:
            if up is not None and not up.done:
                try:
                    chunk = await up.__anext__()
                except StopAsyncIteration:
                    return {"type": "http.request", "body": b"", "more_body": False}
                except Exception:  # noqa: BLE001 -- the client's body failed at the front
                    return {"type": "http.disconnect"}
                return {"type": "http.request", "body": chunk, "more_body": True}
            await disconnect.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                box["start"] = message
                started.set()
            elif message["type"] == "http.response.body":
                if message.get("body"):
                    await send_body.send(bytes(message["body"]))
                if not message.get("more_body", False):
                    await send_body.aclose()

        async def app() -> None:
            try:
                await self.s3_app(scope, receive, send)
            except Exception as e:  # noqa: BLE001 -- the S3 app answers its own errors; this is a bug
                log.exception("forwarded request failed")
                box.setdefault("error", e)
            finally:
                started.set()
                await send_body.aclose()
                disconnect.set()

        nursery.start_soon(app)
        await started.wait()
        if "start" not in box:
            raise box.get("error") or RuntimeError("the S3 app sent no response")
        if self._generation() != gen:
            await self.synced(list(self.known))
        start = box["start"]
        note = dict(scope.get(metrics.SCOPE_KEY) or {})
        note.pop("trace_id", None)
        return (start["status"], list(start.get("headers", [])), note), _drain(recv_body, disconnect)


async def _drain(recv: trio.MemoryReceiveChannel[bytes], disconnect: trio.Event) -> AsyncIterator[bytes]:
    try:
        async for chunk in recv:
            yield chunk
    finally:
        disconnect.set()


def _exchange(d: dict[str, Any]) -> metrics.Exchange:
    ex = metrics.Exchange(d["scope"], d["started"], time.perf_counter())
    for name in ("status", "bytes_in", "bytes_out", "first_byte", "duration", "error_code", "headers_out"):
        setattr(ex, name, d[name])
    return ex


def exchange_note(ex: metrics.Exchange) -> dict[str, Any]:
    """What an ``observe`` note carries of a finished request (the front's side)."""
    scope = {k: ex.scope[k] for k in ("type", "method", "path", "raw_path", "query_string", "headers",
                                      "client", "http_version", "scheme") if k in ex.scope}
    note = dict(ex.note)
    note.pop("trace_id", None)
    scope[metrics.SCOPE_KEY] = note
    return {"scope": scope, "started": ex.started, "status": ex.status, "bytes_in": ex.bytes_in,
            "bytes_out": ex.bytes_out, "first_byte": ex.first_byte, "duration": ex.duration,
            "error_code": ex.error_code, "headers_out": dict(ex.headers_out)}
