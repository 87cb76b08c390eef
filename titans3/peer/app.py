"""Peer listener: serves this host's drives to the other hosts of the cluster.

Theory of operation
-------------------
Hosts talk to each other on this port (DESIGN §1, §8).  Every request must
carry the cluster-secret HMAC (:mod:`titans3.peer.auth`); the check runs in
``before_request``, *before* routing to a handler and before the body is read,
so a request without valid credentials gets 403 and touches nothing -- no
drive call, no body buffered, no nonce remembered.  A host without a cluster
secret (single-host mode) refuses every request: nothing can authenticate.

The API is one HTTP call per Drive protocol call (``titans3.drive.remote`` is
the client), addressed by the drive's *index on this host*:

=====================================================  =========================
``GET  /peer/v1/heartbeat``                            host id, drives, ring
``POST /peer/v1/cluster/ring``                         a pushed cluster document
``POST /peer/v1/cluster/lease``                        the change lease (leases.py)
``POST /peer/v1/join/redeem``                          join token (unsigned; cluster/jointoken.py)
``POST /peer/v1/cluster/join-request``                 "join me", after a redeem (bootstrap.py)
``POST /peer/v1/drive/<i>/rpc/<op>``                   msgpack args -> msgpack
``POST /peer/v1/batch``                                ``[[i, op, args], ...]`` at once
``POST /peer/v1/drive/<i>/frag/<id>/open?index=F``     create_fragment
``PUT  /peer/v1/drive/<i>/frag/<id>/write?offset=N``   append a chunk (``&finish=1``)
``POST /peer/v1/drive/<i>/frag/<id>/abort``            abort the writer
``GET  /peer/v1/drive/<i>/frag/<id>?offset=&length=``  read_fragment, streamed
=====================================================  =========================

Drive calls that a client makes to one host at the same moment (the
placement drives of one key that live on the same host) travel as one
``batch`` request and run concurrently here (:class:`~titans3.drive.remote.PeerClient`
coalesces them), so a key costs one round trip per *host*, not per drive.

Two calls carry small objects along so a small PUT or GET is one call per
drive: ``commit_version`` and ``put_meta`` take the inline blobs they promote
(``inl``), staged here just before the commit; ``read_versions`` with
``carry`` answers ``{"r": records, "inl": {data id: newest inline fragment}}``.

Fragment uploads are a *session* of bounded chunk requests, each signed with
its own body digest (see auth.py for why not one long streamed request).  The
session holds the LocalDrive's writer; each chunk names the offset it starts
at, so a duplicated or reordered chunk is refused (409) instead of corrupting
the fragment.  A session idle for ``SESSION_TTL`` or the commit window,
whichever is shorter (its client died), is aborted -- checked on every
request, at most once a second; anything it left in staging is the drive's
staging GC's.

Fragment reads stream back: the first piece is read *before* the status line
is sent, so a missing or corrupt fragment still gets its typed error status;
a failure after that closes the connection without the final chunk, which
the client sees as a truncated body (a ``DriveError``), never as short data.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgpack
import trio
from quart import Response, g, request
from quart_trio import QuartTrio

from titans3.core.asgi import ClosingQuartTrio
from titans3.core.errors import DriveError, S3Error
from titans3.core.observe import worker_summaries
from titans3.drive import wire
from titans3.drive.protocol import Drive, FragmentWriter
from titans3.drive.records import VersionRecord
from titans3.peer.auth import AuthError, Verifier

if TYPE_CHECKING:
    from titans3.cluster.host import HostServices as Host

log = logging.getLogger(__name__)

MAX_BODY = 8 << 20  # a chunk request; clients send at most remote.CHUNK_MAX
READ_PIECE = 4 << 20  # bytes read from the drive per streamed piece
SESSION_TTL = 300.0  # s an upload session may sit idle
BATCH_MAX = 256  # drive calls in one /peer/v1/batch request
CARRY_MAX = 1 << 20  # bound on an inline fragment sent along with read_versions
REDEEM_PATH = "/peer/v1/join/redeem"
REDEEM_MAX = 4096  # a join token redeem request is ~200 bytes


@dataclass(eq=False)
class _Session:
    writer: FragmentWriter
    length: int = 0
    finished: bool = False
    used: float = field(default_factory=time.monotonic)
    lock: trio.Lock = field(default_factory=trio.Lock)


class PeerService:
    """What the peer app serves: local drives, the verifier, a host description."""

    def __init__(
        self,
        drives: Sequence[Drive],
        *,
        secret: str | bytes | None,
        describe: Callable[[], dict[str, Any]],
        window: float = 60.0,
        session_ttl: float = SESSION_TTL,
    ) -> None:
        # The host's own list, not a copy: the disk manager swaps a replaced
        # drive into it in place, and peers must see the replacement at once.
        self.drives = drives
        self.verifier = Verifier(secret, window=window) if secret else None
        self.describe = describe
        self.sessions: dict[tuple[int, str], _Session] = {}
        # A pushed cluster document (titans3/cluster/membership.py); None: refused.
        self.on_ring: Callable[[bytes], Awaitable[dict[str, Any]]] | None = None
        # A change-lease request (titans3/cluster/leases.py); None: refused.
        self.on_lease: Callable[[bytes], dict[str, Any]] | None = None
        # Join tokens (titans3/cluster/bootstrap.py): the unsigned redeem, and a
        # signed "join me" from a host that redeemed one; None: refused.
        self.on_join_redeem: Callable[[bytes], Awaitable[dict[str, Any]]] | None = None
        self.on_join_request: Callable[[bytes, str], Awaitable[dict[str, Any]]] | None = None
        # What a heartbeat's query tells about its sender (the iam generation).
        self.on_gossip: Callable[[Mapping[str, str]], None] | None = None
        self._window = window
        self.session_ttl = session_ttl
        self._swept = 0.0

    def set_secret(self, secret: str) -> None:
        """A host that got its cluster secret at run time (cluster/bootstrap.py)."""
        self.verifier = Verifier(secret, window=self._window)

    def sweep(self, now: float) -> list[_Session]:
        stale = [k for k, s in self.sessions.items() if now - s.used > self.session_ttl]
        return [self.sessions.pop(k) for k in stale]

    def sweep_due(self, now: float) -> list[_Session]:
        """:meth:`sweep`, at most once a second: run on every request, so a session
        whose client died is dropped even when no new upload comes (heartbeats
        keep arriving), and its open staging file does not outlive GC's window."""
        if now - self._swept < 1.0:
            return []
        self._swept = now
        return self.sweep(now)


def _msg(value: Any, status: int = 200) -> Response:
    return Response(wire.pack(value), status=status, content_type=wire.CONTENT_TYPE)


def _error(e: Exception) -> Response:
    status, body = wire.error_out(e)
    return Response(body, status=status, content_type=wire.CONTENT_TYPE)


def _refuse() -> Response:
    return Response("peer request not authenticated\n", status=403, content_type="text/plain")


# --------------------------------------------------------------------- rpc ops
Rpc = Callable[[Drive, dict[str, Any]], Awaitable[Any]]


async def _stat(d: Drive, a: dict[str, Any]) -> Any:
    return wire.stat_out(await d.stat())


async def _fragment_size(d: Drive, a: dict[str, Any]) -> Any:
    return await d.fragment_size(a["id"])


async def _put_inline(d: Drive, a: dict[str, Any]) -> Any:
    await d.put_inline(a["id"], a["data"])


async def _stage_carried(d: Drive, a: dict[str, Any]) -> None:
    """Inline blobs that came with their commit (RemoteDrive's outbox)."""
    for data_id, data in (a.get("inl") or {}).items():
        await d.put_inline(str(data_id), bytes(data))


async def _commit_version(d: Drive, a: dict[str, Any]) -> Any:
    rec = VersionRecord.from_dict(a["r"])
    await _stage_carried(d, a)
    return await d.commit_version(a["b"], a["k"], rec, promote=list(a.get("p", ())))


async def _read_versions(d: Drive, a: dict[str, Any]) -> Any:
    recs = await d.read_versions(a["b"], a["k"])
    if not a.get("carry"):
        return wire.records_out(recs)
    # The newest version's inline fragment comes along: a small GET then needs
    # no second call (RemoteDrive's read cache).  Unreadable: the reader asks.
    inl: dict[str, bytes] = {}
    for r in recs:
        if r.tomb:
            continue
        if r.inline and r.data:
            with contextlib.suppress(DriveError):
                inl[r.data] = await d.read_fragment(r.data, 0, CARRY_MAX)
        break
    return {"r": wire.records_out(recs), "inl": inl}


async def _list_versions(d: Drive, a: dict[str, Any]) -> Any:
    entries = await d.list_versions(
        a["b"], prefix=a.get("prefix", b""), start_after=a.get("after"),
        delimiter=a.get("delim"), limit=int(a.get("limit", 1000)), live=bool(a.get("live")),
    )
    return wire.entries_out(entries)


async def _delete_data(d: Drive, a: dict[str, Any]) -> Any:
    await d.delete_data(list(a["ids"]))


async def _put_meta(d: Drive, a: dict[str, Any]) -> Any:
    await _stage_carried(d, a)
    await d.put_meta(a["t"], a["k"], a.get("v"), promote=list(a.get("p", ())))


async def _swap_meta(d: Drive, a: dict[str, Any]) -> Any:
    return await d.swap_meta(a["t"], a["k"], a.get("v"), a.get("e"))


async def _get_meta(d: Drive, a: dict[str, Any]) -> Any:
    return await d.get_meta(a["t"], a["k"])


async def _list_meta(d: Drive, a: dict[str, Any]) -> Any:
    rows = await d.list_meta(
        a["t"], prefix=a.get("prefix", b""), start_after=a.get("after"), limit=int(a.get("limit", 1000))
    )
    return [[k, v] for k, v in rows]


RPC: dict[str, Rpc] = {
    "stat": _stat,
    "fragment_size": _fragment_size,
    "put_inline": _put_inline,
    "commit_version": _commit_version,
    "read_versions": _read_versions,
    "list_versions": _list_versions,
    "delete_data": _delete_data,
    "put_meta": _put_meta,
    "swap_meta": _swap_meta,
    "get_meta": _get_meta,
    "list_meta": _list_meta,
}


# ------------------------------------------------------------------------ app
def build_peer_app(svc: PeerService) -> QuartTrio:
    app = ClosingQuartTrio("titans3-peer")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    app.config["BODY_TIMEOUT"] = 30
    app.config["RESPONSE_TIMEOUT"] = None
    app.extensions["titans3.peer"] = svc

    @app.before_request
    async def authenticate() -> Response | None:
        if request.path == REDEEM_PATH and request.method == "POST":
            # The one unsigned route: a new host has no secret yet; the join
            # token's own HMAC authenticates it (cluster/jointoken.py).
            if (request.content_length or 0) > REDEEM_MAX:
                return Response("body too large\n", status=413, content_type="text/plain")
            g.body = await request.get_data(cache=False)
            g.sender = ""
            return None
        if svc.verifier is None:
            return _refuse()
        raw = request.scope.get("raw_path") or request.path.encode()
        qs = request.scope.get("query_string", b"")
        target = raw.decode("latin-1") + ("?" + qs.decode("latin-1") if qs else "")
        try:
            verified = svc.verifier.check_headers(request.method, target, request.headers)
        except AuthError as e:
            log.warning("peer request %s %s from %s refused: %s", request.method, request.path,
                        request.remote_addr, e)
            return _refuse()
        if (request.content_length or 0) > MAX_BODY:
            return Response("body too large\n", status=413, content_type="text/plain")
        body = await request.get_data(cache=False)
        assert isinstance(body, bytes)
        try:
            svc.verifier.check_body(verified, body)
        except AuthError as e:
            log.warning("peer request %s %s refused: %s", request.method, request.path, e)
            return _refuse()
        g.body = body
        g.sender = verified.sender
        for s in svc.sweep_due(time.monotonic()):
            if not s.finished:
                async with s.lock:
                    await s.writer.abort()
        return None

    def drive(i: int) -> Drive:
        if not 0 <= i < len(svc.drives):
            raise LookupError(i)
        return svc.drives[i]

    def no_drive(i: int) -> Response:
        return _msg({"error": "DriveError", "message": f"this host has no drive {i}"}, 404)

    @app.get("/peer/v1/heartbeat")
    async def heartbeat() -> Response:
        if svc.on_gossip is not None:
            svc.on_gossip(request.args)
        return _msg(svc.describe())

    @app.post("/peer/v1/cluster/ring")
    async def cluster_ring() -> Response:
        if svc.on_ring is None:
            return _msg({"error": "ValueError", "message": "this host takes no cluster documents"}, 404)
        try:
            return _msg(await svc.on_ring(g.body))
        except (ValueError, KeyError, TypeError, msgpack.UnpackException) as e:
            return _error(ValueError(f"cluster document refused: {e}"))

    @app.post("/peer/v1/cluster/lease")
    async def cluster_lease() -> Response:
        if svc.on_lease is None:
            return _msg({"error": "ValueError", "message": "this host is not a cluster member"}, 404)
        try:
            return _msg(svc.on_lease(g.body))
        except (ValueError, KeyError, TypeError, msgpack.UnpackException) as e:
            return _error(ValueError(f"lease request refused: {e}"))

    @app.post(REDEEM_PATH)
    async def join_redeem() -> Response:
        if svc.on_join_redeem is None or len(g.body) > REDEEM_MAX:
            return _msg({"error": "ValueError", "message": "this host issues no join tokens"}, 404)
        try:
            return _msg(await svc.on_join_redeem(g.body))
        except ValueError as e:
            log.warning("join token redeem from %s refused: %s", request.remote_addr, e)
            return _msg({"error": "ValueError", "message": str(e)}, 403)

    @app.post("/peer/v1/cluster/join-request")
    async def join_request() -> Response:
        if svc.on_join_request is None:
            return _msg({"error": "ValueError", "message": "this host takes no join requests"}, 404)
        try:
            return _msg(await svc.on_join_request(g.body, g.sender))
        except (ValueError, KeyError, TypeError, msgpack.UnpackException) as e:
            return _error(ValueError(f"join request refused: {e}"))
        except S3Error as e:  # ClusterChangeRefused: another change runs, or the join is invalid
            return _msg({"error": "ValueError", "message": e.message}, 409)

    async def call(i: int, op: str, args: Any) -> tuple[int, Any]:
        """One drive call: (HTTP status, result or error document)."""
        fn = RPC.get(op)
        if fn is None:
            return 404, {"error": "ValueError", "message": f"no operation {op!r}"}
        if not isinstance(i, int) or not 0 <= i < len(svc.drives):
            return 404, {"error": "DriveError", "message": f"this host has no drive {i}"}
        try:
            if not isinstance(args, dict):
                raise TypeError("arguments must be a map")
            return 200, await fn(drive(i), args)
        except (DriveError, ValueError) as e:
            return wire.error_doc(e)
        except (KeyError, TypeError) as e:
            return wire.error_doc(ValueError(f"malformed {op} request: {e!r}"))

    @app.post("/peer/v1/drive/<int:i>/rpc/<op>")
    async def rpc(i: int, op: str) -> Response:
        try:
            args = wire.unpack(g.body) if g.body else {}
        except msgpack.UnpackException as e:
            return _error(ValueError(f"malformed {op} request: {e!r}"))
        status, value = await call(i, op, args)
        return _msg(value, status)

    @app.post("/peer/v1/batch")
    async def batch() -> Response:
        """Several drive calls in one request, run concurrently; one
        ``[status, result or error document]`` per call, in order."""
        try:
            calls = wire.unpack(g.body)
            if not isinstance(calls, list) or not all(
                    isinstance(c, list) and len(c) == 3 for c in calls):
                raise TypeError("a batch is a list of [drive, op, args]")
            if len(calls) > BATCH_MAX:
                raise ValueError(f"more than {BATCH_MAX} calls in one batch")
        except (ValueError, TypeError, msgpack.UnpackException) as e:
            return _error(ValueError(f"malformed batch: {e}"))
        results: list[Any] = [None] * len(calls)

        async def one(n: int, i: Any, op: Any, args: Any) -> None:
            results[n] = list(await call(i, str(op), args))

        async with trio.open_nursery() as nursery:
            for n, (i, op, args) in enumerate(calls):
                nursery.start_soon(one, n, i, op, args)
        return _msg(results)

    @app.post("/peer/v1/drive/<int:i>/frag/<data_id>/open")
    async def frag_open(i: int, data_id: str) -> Response:
        if not 0 <= i < len(svc.drives):
            return no_drive(i)
        for s in svc.sweep(time.monotonic()):
            if not s.finished:
                await s.writer.abort()
        old = svc.sessions.pop((i, data_id), None)
        if old is not None:
            await old.writer.abort()
        try:
            index = int(request.args.get("index", "0"))
            w = await drive(i).create_fragment(data_id, index)
        except (DriveError, ValueError) as e:
            return _error(e)
        svc.sessions[(i, data_id)] = _Session(w)
        return _msg(None)

    @app.put("/peer/v1/drive/<int:i>/frag/<data_id>/write")
    async def frag_write(i: int, data_id: str) -> Response:
        s = svc.sessions.get((i, data_id))
        if s is None:
            return _msg({"error": "DriveError", "message": f"no open writer for {data_id}"}, 404)
        try:
            offset = int(request.args.get("offset", "-1"))
        except ValueError:
            offset = -1
        finish = request.args.get("finish") == "1"
        async with s.lock:
            s.used = time.monotonic()
            if s.finished or offset != s.length:
                return _msg({"error": "DriveError", "message":
                             f"chunk at {offset} does not continue {data_id} at {s.length}"}, 409)
            try:
                if g.body:
                    await s.writer.write(g.body)
                    s.length += len(g.body)
                if finish:
                    s.length = await s.writer.finish()
                    s.finished = True
            except (DriveError, ValueError, RuntimeError) as e:
                svc.sessions.pop((i, data_id), None)  # the writer removed its staging file
                return _error(e if not isinstance(e, RuntimeError) else DriveError(data_id, str(e)))
            return _msg({"length": s.length})

    @app.post("/peer/v1/drive/<int:i>/frag/<data_id>/abort")
    async def frag_abort(i: int, data_id: str) -> Response:
        s = svc.sessions.pop((i, data_id), None)
        if s is not None:
            async with s.lock:
                await s.writer.abort()
        return _msg(None)

    @app.get("/peer/v1/drive/<int:i>/frag/<data_id>")
    async def frag_read(i: int, data_id: str) -> Response:
        if not 0 <= i < len(svc.drives):
            return no_drive(i)
        d = drive(i)
        try:
            offset = int(request.args.get("offset", "0"))
            length = int(request.args.get("length", "0"))
            first = await d.read_fragment(data_id, offset, min(length, READ_PIECE))
        except (DriveError, ValueError) as e:
            return _error(e)
        if len(first) < READ_PIECE or length <= READ_PIECE:
            return Response(first, status=200, content_type="application/octet-stream")

        async def rest() -> AsyncIterator[bytes]:
            yield first
            pos, end = offset + len(first), offset + length
            while pos < end:
                piece = await d.read_fragment(data_id, pos, min(end - pos, READ_PIECE))
                if piece:
                    yield piece
                if len(piece) < min(end - pos, READ_PIECE):
                    return
                pos += len(piece)

        resp = Response(rest(), status=200, content_type="application/octet-stream")
        resp.timeout = None
        return resp

    return app


def describe_host(host: Host) -> dict[str, Any]:
    """The heartbeat answer: who this host is and what it serves."""
    store = host.store
    return {
        "host_id": host.host_id,
        "time_ms": int(time.time() * 1000),
        "ring_version": store.ring.version if store is not None else 0,
        "segment_size": host.config.segment_size,
        "ec": host.config.ec,
        "drives": [
            {"index": i, "drive_id": d.drive_id, "state": d.state.value}
            for i, d in enumerate(host.drives)
        ],
        "workers": worker_summaries(host.workers),  # the cluster's status pages show them
        "iam": host.iam.generation if host.iam is not None else "",  # accounts/directory.py gossip
    }


def create_peer_app(host: Host) -> QuartTrio:
    svc = PeerService(
        host.drives, secret=host.config.cluster_secret or None, describe=lambda: describe_host(host),
        # An upload session idle longer than the commit window is garbage by
        # GC's own definition: its staging file must not outlive that window.
        session_ttl=min(SESSION_TTL, host.config.commit_window),
    )
    from titans3.cluster import membership

    svc.on_ring = lambda raw: membership.receive(host, raw)
    svc.on_lease = lambda raw: membership.lease_request(host, raw)
    from titans3.cluster import bootstrap

    svc.on_join_redeem = lambda raw: bootstrap.redeem(host, raw)
    svc.on_join_request = lambda raw, sender: bootstrap.join_request(host, raw, sender)
    host.peer_service = svc  # bootstrap arms it when this host gets a secret at run time
    svc.on_gossip = lambda args: host.iam.observe(args.get("iam", "")) if host.iam is not None else None
    return build_peer_app(svc)
