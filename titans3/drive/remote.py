"""RemoteDrive: the Drive protocol over the peer API of another host.

Theory of operation
-------------------
A :class:`PeerClient` stands for one peer *host*: one pooled ``httpx``
connection pool (keep-alive, so a small call is one round trip), the request
signer, and the host's liveness.  Each of the host's drives is a
:class:`RemoteDrive` that turns protocol calls into signed HTTP calls
(``titans3.peer.app`` documents the routes) and answers with the same typed
errors a :class:`~titans3.drive.local.LocalDrive` raises -- the object layer
cannot tell them apart (DESIGN §2).

Failure handling -- no call ever hangs on a dead host:

* every request has bounded connect / read / write / pool timeouts;
* a transport failure (refused, reset, timed out) marks the whole host down:
  its drives report ``OFFLINE`` and every later call raises ``DriveOffline`` at
  once, without touching the network, until a heartbeat
  (:meth:`PeerClient.heartbeat`, run by the cluster's failure detector or by
  :meth:`RemoteDrive.check`) sees the host again.  One failed call costs one
  timeout, not one per call;
* a remote ``DriveOffline`` (the peer is up, its disk is not) marks just that
  drive offline, again until a heartbeat reports it online;
* a body cut short after a 200 (the peer died mid-stream, or hit a corrupt
  block after the first piece) is a plain ``DriveError``: the reader moves on
  to another fragment, and the next call finds out whether the host is gone.

Fragment upload: ``write()`` buffers; every ``CHUNK`` bytes (and on
``finish``) one signed PUT carries the chunk with its offset.  Chunks are
bounded so the receiver authenticates every byte before it reaches a drive,
and the per-drive round trip per MiB is cheap against the erasure-coding and
disk work around it.  Fragment download streams the response into one buffer
of at most the requested length.

Calls to one host made in the same scheduling round (``_gather`` asking the
placement drives of one key, a commit on all of them) are coalesced by
:meth:`PeerClient.call` into one ``/peer/v1/batch`` request: the first caller
yields once so its siblings can queue, then sends them all, shielded from its
own cancellation because the others' calls ride on it (the peer timeouts and
the mark-down still bound it).  A single call uses the plain route.

Small objects ride along (one round trip per drive, not two):

* ``put_inline`` sends nothing: the blob waits in the drive's outbox and
  travels inside the ``commit_version`` / ``put_meta`` call that promotes it;
  the peer stages it and commits in that one call.  A blob never committed
  ages out of the outbox (``OUTBOX_TTL``), as it would out of the peer's
  staging.
* ``read_versions`` answers with the inline fragment of the newest readable
  record as well (the peer reads it through its checksum); the blob waits in
  a small, short-lived read cache and the GET's ``read_fragment`` takes it from
  there instead of calling again.  Data ids are never reused, so a cached blob
  cannot be the wrong bytes for its id.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx
import trio

from titans3.core import tracing
from titans3.core.errors import DriveError, DriveOffline, FragmentMissing
from titans3.drive import wire
from titans3.drive.blobs import CARRIED_MAX, CARRIED_TTL, OUTBOX_MAX, OUTBOX_TTL, Blobs
from titans3.drive.protocol import INLINE_MAX, DriveStat, DriveState, ListEntry
from titans3.drive.records import VersionRecord
from titans3.peer.auth import Signer

log = logging.getLogger(__name__)

CHUNK = 1 << 20  # upload chunk: flush the writer's buffer at this size
CHUNK_MAX = 4 << 20  # never send more than this in one request (peer MAX_BODY is 8 MiB)
ABORT_TIMEOUT = 2.0


@dataclass(frozen=True, slots=True)
class Timeouts:
    connect: float = 2.0
    read: float = 15.0  # longest silence inside one response (an fsync'd commit under load)
    write: float = 15.0
    pool: float = 5.0
    heartbeat: float = 2.0  # the whole heartbeat call

    def httpx(self) -> httpx.Timeout:
        return httpx.Timeout(connect=self.connect, read=self.read, write=self.write, pool=self.pool)


@dataclass(frozen=True, slots=True)
class PeerStatistics:
    address: str
    host_id: str
    online: bool
    requests: int
    failures: int  # transport failures (each marked the host down)
    last_seen: float  # time.time() of the last successful heartbeat, 0 if never


class PeerClient:
    """One peer host: connection pool, signer, liveness, its RemoteDrives."""

    def __init__(
        self,
        address: str,
        signer: Signer,
        *,
        timeouts: Timeouts | None = None,
        max_connections: int = 64,
        tls: ssl.SSLContext | None = None,
        local_address: str | None = None,
    ) -> None:
        # ``tls``: speak HTTPS, trusting what the context trusts (the cluster CA,
        # titans3.core.tls).  ``local_address``: the source address of our
        # connections -- this host's peer address, so a peer (and a firewall rule)
        # sees which host is calling, not whichever address the kernel picked.
        self.address = address
        self.base_url = f"{'https' if tls is not None else 'http'}://{address}"
        self.signer = signer
        self.timeouts = timeouts or Timeouts()
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=16)
        self._http = httpx.AsyncClient(
            timeout=self.timeouts.httpx(),
            limits=limits,
            trust_env=False,
            transport=httpx.AsyncHTTPTransport(
                verify=tls if tls is not None else True, limits=limits, local_address=local_address,
            ),
        )
        self.host_id = ""
        self.online = False
        self.last_seen = 0.0
        self.info: dict[str, Any] = {}
        self.drives: dict[int, RemoteDrive] = {}
        self._requests = self._failures = 0
        # Requests in flight, cancelled when the host is marked down (_abandon_if_down).
        self._inflight: set[trio.CancelScope] = set()
        # Called when the host comes back after being down (repairs waiting for it).
        self.on_up: list[Callable[[], None]] = []
        # Drive calls waiting to go out together (call()); a flush is under way
        # while _collecting is set.
        self._queue: list[_Call] = []
        self._collecting = False
        self.batches = 0  # requests that carried more than one call

    # ------------------------------------------------------------ liveness
    def mark_down(self, why: str) -> None:
        if self.online:
            log.warning("peer %s (%s) is down: %s", self.address, self.host_id or "?", why)
        self.online = False
        for cs in list(self._inflight):
            cs.cancel()

    @contextlib.contextmanager
    def _abandon_if_down(self) -> Iterator[None]:
        """A request still waiting when the host is marked down (a heartbeat
        timed out, another request failed) is given up as ``DriveOffline``: a
        hung host costs every caller the failure detector's delay, not a full
        read timeout each."""
        cs = trio.CancelScope()
        self._inflight.add(cs)
        try:
            with cs:
                yield
        finally:
            self._inflight.discard(cs)
        if cs.cancelled_caught:
            raise DriveOffline(self.address, "host marked down while the request waited")

    async def heartbeat(self, gossip: Mapping[str, str] | None = None) -> dict[str, Any]:
        """Ask the host who it is; update its drives' states.  Raises
        ``DriveOffline`` (host unreachable) or ``DriveError``.  ``gossip``:
        what this host tells the other on the way (query parameters)."""
        target = "/peer/v1/heartbeat" + ("?" + urlencode(gossip) if gossip else "")
        try:
            with trio.fail_after(self.timeouts.heartbeat):
                resp = await self._send("GET", target, b"", timeout=self.timeouts.heartbeat)
        except trio.TooSlowError:
            self._failed("heartbeat timed out")
            raise DriveOffline(self.address, "heartbeat timed out") from None
        if resp.status_code != 200:
            raise DriveError(self.address, f"heartbeat answered HTTP {resp.status_code}")
        info = wire.unpack(resp.content)
        hid = str(info["host_id"])
        if self.host_id and hid != self.host_id:
            # Another daemon now answers at this address: never mix its drives up
            # with the ones the ring knows.
            self.mark_down(f"host id changed from {self.host_id} to {hid}")
            raise DriveError(self.address, f"expected host {self.host_id}, found {hid}")
        self.host_id = hid
        self.info = info
        for d in info["drives"]:
            drive = self.drive(int(d["index"]))
            drive.drive_id = d["drive_id"] or drive.drive_id
            drive._remote_state = DriveState(d["state"])
        came_back = not self.online
        self.online = True
        if came_back:
            log.info("peer %s (%s) is up", self.address, hid)
            for cb in self.on_up:
                cb()
        self.last_seen = time.time()
        return info

    def drive(self, index: int) -> RemoteDrive:
        d = self.drives.get(index)
        if d is None:
            d = self.drives[index] = RemoteDrive(self, index)
        return d

    def statistics(self) -> PeerStatistics:
        return PeerStatistics(self.address, self.host_id, self.online, self._requests,
                              self._failures, self.last_seen)

    async def aclose(self) -> None:
        await self._http.aclose()

    # ------------------------------------------------------------ drive calls
    async def call(self, index: int, op: str, args: dict[str, Any]) -> tuple[int, Any]:
        """Drive ``index``'s ``op``: (status, result or error document).  Calls
        made to this host in the same scheduling round go out as one request."""
        me = _Call(index, op, args)
        self._queue.append(me)
        if self._collecting:
            await me.done.wait()
        else:
            self._collecting = True
            # Shielded: the calls of other tasks ride on this one, so a
            # cancelled first caller must still send them (timeouts bound it).
            with trio.CancelScope(shield=True):
                try:
                    await trio.lowlevel.checkpoint()  # let the sibling tasks queue theirs
                finally:
                    batch, self._queue = self._queue, []
                    self._collecting = False
                await self._flush(batch)
        if me.error is not None:
            raise me.error
        return me.status, me.value

    async def _flush(self, batch: list[_Call]) -> None:
        try:
            if not self.online:  # marked down while the calls were being collected
                raise DriveOffline(self.address, f"host {self.address} is down")
            if len(batch) == 1:
                c = batch[0]
                resp = await self._send("POST", f"/peer/v1/drive/{c.index}/rpc/{c.op}", wire.pack(c.args))
                c.status, c.value = resp.status_code, _unpack_or_none(resp.content)
                return
            self.batches += 1
            body = wire.pack([[c.index, c.op, c.args] for c in batch])
            resp = await self._send("POST", "/peer/v1/batch", body)
            if resp.status_code != 200:
                doc = _unpack_or_none(resp.content)
                for c in batch:
                    c.status, c.value = resp.status_code, doc
                return
            results = wire.unpack(resp.content)
            if not isinstance(results, list) or len(results) != len(batch):
                raise DriveError(self.address, "malformed batch answer")
            for c, (status, value) in zip(batch, results, strict=True):
                c.status, c.value = int(status), value
        except DriveError as e:
            for c in batch:
                c.error = e
        finally:
            for c in batch:
                c.done.set()

    # ------------------------------------------------------------ transport
    def _failed(self, why: str) -> None:
        self._failures += 1
        self.mark_down(why)

    async def _send(self, method: str, target: str, body: bytes, *, timeout: float | None = None) -> httpx.Response:
        """One signed request, body read in full.  Transport failures mark the
        host down and raise ``DriveOffline``."""
        self._requests += 1
        headers = tracing.inject(self.signer.headers(method, target, body))  # W3C traceparent
        try:
            with self._abandon_if_down():
                return await self._http.request(
                    method, self.base_url + target, content=body, headers=headers,
                    timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
                )
        except httpx.TransportError as e:
            self._failed(f"{type(e).__name__}: {e}")
            raise DriveOffline(self.address, f"peer unreachable: {type(e).__name__}") from e


@dataclass(slots=True, eq=False)
class _Call:
    index: int
    op: str
    args: dict[str, Any]
    done: trio.Event = field(default_factory=trio.Event)
    status: int = 0
    value: Any = None
    error: DriveError | None = None


def _unpack_or_none(raw: bytes) -> Any:
    try:
        return wire.unpack(raw)
    except Exception:  # noqa: BLE001 -- not our body (a proxy's error page): raise_doc says so
        return None


class RemoteDrive:
    """Implements :class:`~titans3.drive.protocol.Drive` for drive ``index`` of a peer."""

    def __init__(self, peer: PeerClient, index: int, drive_id: str = "") -> None:
        self.peer = peer
        self.index = index
        self.drive_id = drive_id or f"{peer.address}/drive-{index}"
        self._remote_state = DriveState.OFFLINE  # as the peer's last heartbeat reported it
        self._prefix = f"/peer/v1/drive/{index}"
        self._outbox = Blobs(OUTBOX_TTL, OUTBOX_MAX)  # put_inline blobs awaiting their commit
        self._carried = Blobs(CARRIED_TTL, CARRIED_MAX)  # inline blobs read_versions brought

    # ================================================================ state
    @property
    def state(self) -> DriveState:
        return self._remote_state if self.peer.online else DriveState.OFFLINE

    def _require_online(self) -> None:
        if not self.peer.online:
            raise DriveOffline(self.drive_id, f"host {self.peer.address} is down")
        if self._remote_state is not DriveState.ONLINE:
            raise DriveOffline(self.drive_id, self._remote_state.value)

    async def check(self) -> DriveState:
        """Heartbeat the host (the health loop's probe)."""
        with contextlib.suppress(DriveError):
            await self.peer.heartbeat()
        return self.state

    async def _request(self, method: str, target: str, body: bytes = b"") -> httpx.Response:
        self._require_online()
        try:
            resp = await self.peer._send(method, target, body)
        except DriveOffline as e:
            raise DriveOffline(self.drive_id, str(e)) from e
        if resp.status_code != 200:
            try:
                wire.raise_error(resp.status_code, resp.content, self.drive_id)
            except DriveOffline:
                self._remote_state = DriveState.OFFLINE
                raise
        return resp

    async def _rpc(self, op: str, args: dict[str, Any]) -> Any:
        self._require_online()
        try:
            status, value = await self.peer.call(self.index, op, args)
        except DriveOffline as e:
            raise DriveOffline(self.drive_id, str(e)) from e
        if status != 200:
            try:
                wire.raise_doc(status, value, self.drive_id)
            except DriveOffline:
                self._remote_state = DriveState.OFFLINE
                raise
        return value

    async def stat(self) -> DriveStat:
        """An unreachable drive reports zeros, not an error (like LocalDrive)."""
        path = f"{self.peer.address}#{self.index}"
        try:
            return wire.stat_in(await self._rpc("stat", {}), path=path)
        except DriveError:
            return DriveStat(self.drive_id, path, self.state, 0, 0, 0, 0, 0)

    # ================================================================ data
    async def create_fragment(self, data_id: str, frag_index: int) -> RemoteFragmentWriter:
        await self._request("POST", f"{self._prefix}/frag/{_safe(data_id)}/open?index={int(frag_index)}")
        return RemoteFragmentWriter(self, data_id)

    async def read_fragment(self, data_id: str, offset: int, length: int) -> bytes:
        if offset < 0 or length < 0:
            raise ValueError("negative offset or length")
        self._require_online()
        carried = self._carried.take(data_id)
        if carried is not None:
            return carried[offset : offset + length]
        try:
            _safe(data_id)
        except ValueError:  # as LocalDrive: a malformed id names no fragment here
            raise FragmentMissing(self.drive_id, f"no fragment {data_id!r} (malformed id)") from None
        target = f"{self._prefix}/frag/{data_id}?offset={int(offset)}&length={int(length)}"
        peer = self.peer
        peer._requests += 1
        headers = tracing.inject(peer.signer.headers("GET", target, b""))
        try:
            with peer._abandon_if_down():
                return await self._read_stream(peer, target, headers, length)
        except DriveOffline as e:
            raise DriveOffline(self.drive_id, str(e)) from e

    async def _read_stream(self, peer: PeerClient, target: str, headers: dict[str, str],
                           length: int) -> bytes:
        try:
            async with peer._http.stream("GET", peer.base_url + target, headers=headers) as resp:
                if resp.status_code != 200:
                    body = await resp.aread()
                    try:
                        wire.raise_error(resp.status_code, body, self.drive_id)
                    except DriveOffline:
                        self._remote_state = DriveState.OFFLINE
                        raise
                buf = bytearray()
                try:
                    async for piece in resp.aiter_raw():
                        buf += piece
                        if len(buf) > length:
                            raise DriveError(self.drive_id, "peer sent more than was asked")
                except httpx.TransportError as e:
                    raise DriveError(self.drive_id, f"fragment read cut short: {type(e).__name__}") from e
                return bytes(buf)
        except httpx.TransportError as e:
            peer._failed(f"{type(e).__name__}: {e}")
            raise DriveOffline(self.drive_id, f"peer unreachable: {type(e).__name__}") from e

    async def fragment_size(self, data_id: str) -> int:
        return int(await self._rpc("fragment_size", {"id": data_id}))

    async def put_inline(self, data_id: str, data: bytes) -> None:
        self._require_online()
        _safe(data_id)
        if len(data) > INLINE_MAX:  # as LocalDrive, before anything is queued
            raise ValueError(f"inline fragment of {len(data)} bytes exceeds {INLINE_MAX}")
        self._outbox.put(data_id, bytes(data))  # sent with the commit that promotes it

    # ================================================================ versions
    async def commit_version(
        self, bucket_id: bytes, key: bytes, record: VersionRecord, *, promote: Sequence[str] = ()
    ) -> bool:
        args: dict[str, Any] = {"b": bucket_id, "k": key, "r": record.to_dict(), "p": list(promote)}
        async with self._carrying(promote, args):
            return bool(await self._rpc("commit_version", args))

    @contextlib.asynccontextmanager
    async def _carrying(self, promote: Sequence[str], args: dict[str, Any]) -> AsyncIterator[None]:
        """Put the outbox blobs ``promote`` names into ``args``; back into the
        outbox if the call fails (a retry of the commit still needs them)."""
        inline = self._outbox.take_all(promote)
        if inline:
            args["inl"] = inline
        try:
            yield
        except BaseException:
            for data_id, blob in inline.items():
                self._outbox.put(data_id, blob)
            raise

    async def read_versions(self, bucket_id: bytes, key: bytes) -> list[VersionRecord]:
        out = await self._rpc("read_versions", {"b": bucket_id, "k": key, "carry": True})
        for data_id, blob in out.get("inl", {}).items():
            self._carried.put(data_id, blob)
        return wire.records_in(out["r"])

    async def list_versions(
        self,
        bucket_id: bytes,
        *,
        prefix: bytes = b"",
        start_after: bytes | None = None,
        delimiter: bytes | None = None,
        limit: int = 1000,
        live: bool = False,
    ) -> list[ListEntry]:
        args = {"b": bucket_id, "prefix": prefix, "after": start_after, "delim": delimiter, "limit": limit}
        if live:  # an older peer ignores it: the gateway's resolve still hides dead keys
            args["live"] = True
        return wire.entries_in(await self._rpc("list_versions", args))

    async def delete_data(self, data_ids: Sequence[str]) -> None:
        await self._rpc("delete_data", {"ids": list(data_ids)})

    # ================================================================ tables
    async def put_meta(
        self, table: str, key: bytes, value: bytes | None, *, promote: Sequence[str] = ()
    ) -> None:
        args: dict[str, Any] = {"t": table, "k": key, "v": value, "p": list(promote)}
        async with self._carrying(promote, args):
            await self._rpc("put_meta", args)

    async def swap_meta(
        self, table: str, key: bytes, value: bytes | None, expect: bytes | None
    ) -> bool:
        return bool(await self._rpc("swap_meta", {"t": table, "k": key, "v": value, "e": expect}))

    async def get_meta(self, table: str, key: bytes) -> bytes | None:
        return await self._rpc("get_meta", {"t": table, "k": key})  # type: ignore[no-any-return]

    async def list_meta(
        self, table: str, *, prefix: bytes = b"", start_after: bytes | None = None, limit: int = 1000
    ) -> list[tuple[bytes, bytes]]:
        rows = await self._rpc("list_meta", {"t": table, "prefix": prefix, "after": start_after,
                                             "limit": limit})
        return [(k, v) for k, v in rows]

    async def close(self) -> None:
        """The connection pool belongs to the PeerClient; nothing to do per drive."""
        await trio.lowlevel.checkpoint()

    def __repr__(self) -> str:
        return f"<RemoteDrive {self.drive_id} at {self.peer.address}#{self.index} {self.state.value}>"


class RemoteFragmentWriter:
    """Implements :class:`~titans3.drive.protocol.FragmentWriter` over chunk requests.
    Single-task, like every fragment writer."""

    def __init__(self, drive: RemoteDrive, data_id: str) -> None:
        self._drive = drive
        self.data_id = data_id
        self._buf = bytearray()
        self._sent = 0
        self._length: int | None = None
        self._closed = False
        self._aborted = False
        self._base = f"{drive._prefix}/frag/{_safe(data_id)}"

    async def write(self, data: bytes | memoryview | bytearray) -> None:
        if self._closed or self._length is not None:
            raise RuntimeError(f"fragment writer {self.data_id} is closed")
        self._buf += data
        while len(self._buf) >= CHUNK:
            await self._flush(min(len(self._buf), CHUNK_MAX), finish=False)
        await trio.lowlevel.checkpoint()

    async def _flush(self, n: int, *, finish: bool) -> int:
        body = bytes(self._buf[:n])
        target = f"{self._base}/write?offset={self._sent}" + ("&finish=1" if finish else "")
        try:
            resp = await self._drive._request("PUT", target, body)
        except BaseException:
            self._closed = True  # the peer dropped (or never had) the session
            raise
        del self._buf[:n]
        self._sent += n
        return int(wire.unpack(resp.content)["length"])

    async def finish(self) -> int:
        if self._length is not None:
            return self._length
        if self._closed:
            raise RuntimeError(f"fragment writer {self.data_id} is closed")
        while len(self._buf) > CHUNK_MAX:
            await self._flush(CHUNK_MAX, finish=False)
        self._length = await self._flush(len(self._buf), finish=True)
        return self._length

    async def abort(self) -> None:
        """Best effort and bounded: a dead peer's staging is its own GC's job."""
        if self._aborted:
            await trio.lowlevel.checkpoint()
            return
        self._aborted = self._closed = True
        self._buf.clear()
        with trio.CancelScope(shield=True), trio.move_on_after(ABORT_TIMEOUT), contextlib.suppress(DriveError):
            await self._drive._request("POST", f"{self._base}/abort")


def _safe(data_id: str) -> str:
    """Data ids are lowercase hex; anything else never reaches a URL."""
    if not data_id or not all(c in "0123456789abcdef" for c in data_id) or len(data_id) > 64:
        raise ValueError(f"bad data id {data_id!r}")
    return data_id


__all__ = ["PeerClient", "PeerStatistics", "RemoteDrive", "RemoteFragmentWriter", "Timeouts"]
