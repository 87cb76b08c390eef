"""The NBD gateway's trio adapter: listeners, connections, requests to volumes.

Theory of operation
-------------------
Each connection runs one :class:`~titans3.nbd.protocol.ServerConnection`;
this module only moves bytes and calls the volume service.  During the
handshake options are answered one at a time.  A successful ``NBD_OPT_GO``
attaches the export (taking the volume's writer lease, or opening a
snapshot read-only) *before* the ACK goes out, so a refusal -- a second
writer, an unknown volume -- reaches the client as an option error with a
message (``nbdinfo`` prints it).

In transmission a reader task parses requests and starts one handler task
per request; handlers run concurrently and reply as they finish, in any
order (one lock serializes the bytes on the wire).  The protocol object caps
requests in flight, so a client cannot make the server queue without bound.
A handler's failure becomes the request's NBD error (``EIO`` when the
cluster cannot serve it) -- never a dropped connection.

Listeners and trust:

* the **unix socket** (``<state dir>/nbd.sock``) and **127.0.0.1 / ::1** are
  local: plain NBD, any volume (TLS optional on TCP when configured);
* **any other address** requires TLS (``NBD_OPT_STARTTLS`` with the cluster's
  certificate, FORCEDTLS) and then either a client certificate issued by the
  cluster CA or the volume's secret in the export name (``NAME/SECRET``).
  Refused to start without TLS configured.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import ssl
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import trio

from titans3.core.errors import ConfigError, S3Error
from titans3.nbd import events as ev
from titans3.nbd.backend import BackendError
from titans3.nbd.catalog import BLOCK, NoSuchSnapshot, NoSuchVolume, VolumeInUse, split_export
from titans3.nbd.protocol import ProtocolError, ServerConnection, TLSMode
from titans3.nbd.service import VolumeService
from titans3.nbd.wire import BASE_ALLOCATION, Cmd, Errno, Rep, TransmissionFlag

log = logging.getLogger(__name__)

RECV = 1 << 20
MAX_PAYLOAD = 32 << 20
MAX_INFLIGHT = 128
JOIN_BELOW = 256 << 10  # replies smaller than this go out as one buffer
ENDED = (trio.BrokenResourceError, trio.ClosedResourceError, ssl.SSLError, OSError)  # the client went away

WRITABLE = (TransmissionFlag.SEND_FLUSH | TransmissionFlag.SEND_FUA | TransmissionFlag.SEND_TRIM
            | TransmissionFlag.SEND_WRITE_ZEROES | TransmissionFlag.SEND_FAST_ZERO
            | TransmissionFlag.SEND_CACHE | TransmissionFlag.CAN_MULTI_CONN)
READ_ONLY = TransmissionFlag.READ_ONLY | TransmissionFlag.SEND_CACHE | TransmissionFlag.CAN_MULTI_CONN


def is_local(host: str) -> bool:
    """Plain NBD is allowed only on these: the loopback address itself, not the whole of 127/8."""
    return host in ("127.0.0.1", "::1", "localhost")


def tls_context(cert: str, key: str, ca: str) -> ssl.SSLContext:
    """Server side: the host certificate; client certificates from the cluster CA are optional."""
    try:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=ca)
        ctx.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as e:
        raise ConfigError(f"tls_cert/tls_key/tls_ca: cannot load for NBD: {e}") from None
    ctx.verify_mode = ssl.CERT_OPTIONAL
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


class _Session:
    """Where one connection stands: its stream, trust and export."""

    def __init__(self, stream: trio.abc.Stream, peer: str, mode: TLSMode) -> None:
        self.stream = stream
        self.peer = peer
        self.mode = mode
        self.certified = False  # a client certificate from the cluster CA was presented
        self.send_lock = trio.Lock()

    @property
    def must_authenticate(self) -> bool:
        return self.mode is TLSMode.REQUIRED

    async def send(self, parts: Sequence[bytes | memoryview]) -> None:
        async with self.send_lock:
            await self._send(parts)

    async def _send(self, parts: Sequence[bytes | memoryview]) -> None:
        if sum(len(p) for p in parts) < JOIN_BELOW:
            data = b"".join(parts)
            if data:
                await self.stream.send_all(data)
            return
        small: list[bytes | memoryview] = []
        for p in parts:
            if len(p) < 4096:
                small.append(p)
                continue
            if small:
                await self.stream.send_all(b"".join(small))
                small = []
            await self.stream.send_all(p)
        if small:
            await self.stream.send_all(b"".join(small))


class _Outbox:
    """Replies waiting for the wire: one task sends them, many at a time.

    Handlers never wait for the socket; replies finished together go out in
    one ``send`` (small ones joined), and the reader stops reading requests
    while more than ``MAX_QUEUED`` bytes of replies wait."""

    MAX_QUEUED = 16 << 20

    def __init__(self, session: _Session) -> None:
        self.session = session
        self.parts: list[bytes | memoryview] = []
        self.size = 0
        self._wake = trio.Event()
        self._sent = trio.Event()
        self._put = trio.Event()

    def put(self, parts: Sequence[bytes | memoryview]) -> None:
        self.parts.extend(parts)
        self.size += sum(len(p) for p in parts)
        self._wake.set()
        self._put.set()

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            while self.parts:
                parts, self.parts, self.size = self.parts, [], 0
                await self.session.send(parts)
            self._sent.set()
            self._sent = trio.Event()

    async def replied(self) -> None:
        """Until a reply was made (a request slot freed up)."""
        await self._put.wait()
        self._put = trio.Event()

    async def room(self) -> None:
        while self.size > self.MAX_QUEUED:
            await self._sent.wait()

    async def drain(self) -> None:
        while self.parts:
            await self._sent.wait()


class NbdServer:
    def __init__(self, service: VolumeService, *, tls: ssl.SSLContext | None = None) -> None:
        self.service = service
        self.tls = tls
        self.connections = 0
        self.requests = 0

    # ------------------------------------------------------------ listeners
    async def serve_tcp(self, host: str, port: int, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        local = is_local(host)
        if not local and self.tls is None:
            raise ConfigError(f"nbd_listen {host}:{port}: NBD on an address other than 127.0.0.1 "
                              "needs TLS (tls_cert, tls_key, tls_ca)")
        mode = (TLSMode.OPTIONAL if self.tls else TLSMode.OFF) if local else TLSMode.REQUIRED
        listeners = await trio.open_tcp_listeners(port, host=host)
        log.info("NBD on %s:%d (%s)", host, port, "plain" if mode is TLSMode.OFF else
                 "TLS optional" if mode is TLSMode.OPTIONAL else "TLS required")
        task_status.started()
        await trio.serve_listeners(lambda s: self._run(s, f"{host}:{port}", mode), listeners)

    async def serve_unix(self, path: Path, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        with contextlib.suppress(FileNotFoundError):
            if path.is_socket():
                path.unlink()  # a stale socket of a previous run (one daemon per state dir)
        sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        await sock.bind(str(path))
        os.chmod(path, 0o660)
        sock.listen(128)
        listener = trio.SocketListener(sock)
        log.info("NBD on unix socket %s", path)
        task_status.started()
        try:
            await trio.serve_listeners(lambda s: self._run(s, "unix", TLSMode.OFF), [listener])
        finally:
            with contextlib.suppress(OSError):
                path.unlink()

    async def _run(self, stream: trio.abc.Stream, where: str, mode: TLSMode) -> None:
        self.connections += 1
        session = _Session(stream, where, mode)
        try:
            await self._connection(session)
        except ProtocolError as e:
            log.info("NBD client on %s broke the protocol, disconnecting: %s", where, e)
        except ENDED as e:
            log.debug("NBD connection on %s ended: %s", where, e)
        except BaseExceptionGroup as group:
            # The same, from inside the transmission's nurseries (a client that
            # resets while replies go out): it ends this connection, never the
            # daemon.  Anything else (a bug, a cancellation) goes on up.
            gone, rest = group.split((*ENDED, ProtocolError))
            if gone is not None:
                log.debug("NBD connection on %s ended: %s", where, gone.exceptions[0])
            if rest is not None:
                raise rest from None
        finally:
            self.connections -= 1
            with contextlib.suppress(Exception):
                await session.stream.aclose()

    # ------------------------------------------------------------ handshake
    async def _connection(self, s: _Session) -> None:
        conn = ServerConnection(tls=s.mode, max_inflight=MAX_INFLIGHT)
        await s.stream.send_all(conn.initiate())
        async with contextlib.AsyncExitStack() as stack:
            export: Any = None
            while export is None:
                e = conn.next_event()
                out = conn.data_to_send()
                if out:
                    await s.stream.send_all(out)
                if e is ev.NEED_DATA:
                    conn.receive_data(await s.stream.receive_some(RECV))
                elif isinstance(e, ev.Closed | ev.Aborted):
                    return
                elif isinstance(e, ev.StartTLS):
                    assert self.tls is not None
                    tls = trio.SSLStream(s.stream, self.tls, server_side=True)
                    await tls.do_handshake()
                    s.stream = tls
                    s.certified = bool(tls.getpeercert())
                elif isinstance(e, ev.ListExports):
                    await s.stream.send_all(conn.send(await self._list(s)))
                elif isinstance(e, ev.MetaContextRequest):
                    await s.stream.send_all(conn.send(await self._meta(s, e)))
                elif isinstance(e, ev.ExportRequest):
                    reply, export = await self._export(s, e, stack)
                    raw = conn.send(reply)
                    if raw:
                        await s.stream.send_all(raw)
                    elif e.legacy and export is None:
                        return  # EXPORT_NAME refused: the protocol says hang up
            await self._transmission(s, conn, export)

    def _authorized(self, s: _Session, secret: str, given: str | None) -> bool:
        if not s.must_authenticate or s.certified:
            return True
        return bool(secret) and given is not None and given == secret

    async def _list(self, s: _Session) -> ev.ServerEvent:
        if s.must_authenticate and not s.certified:
            return ev.OptionError(Rep.ERR_POLICY, "listing volumes needs a client certificate of the cluster CA")
        try:
            names = await self.service.export_names()
        except (BackendError, S3Error) as e:
            return ev.OptionError(Rep.ERR_SHUTDOWN, f"the cluster cannot list volumes now: {e}")
        return ev.ExportList([ev.ExportEntry(n, d) for n, d in names])

    async def _meta(self, s: _Session, e: ev.MetaContextRequest) -> ev.ServerEvent:
        name, given = _secret(e.name)
        try:
            rec, _ = await self.service.describe(name)
        except (NoSuchVolume, NoSuchSnapshot) as err:
            return ev.OptionError(Rep.ERR_UNKNOWN, err.message)
        except (BackendError, S3Error) as err:
            return ev.OptionError(Rep.ERR_SHUTDOWN, str(err))
        if not self._authorized(s, rec.secret, given):
            return ev.OptionError(Rep.ERR_POLICY, "this volume needs a client certificate or NAME/SECRET")
        return ev.MetaContexts([BASE_ALLOCATION])

    async def _export(self, s: _Session, e: ev.ExportRequest,
                      stack: contextlib.AsyncExitStack) -> tuple[ev.ServerEvent, Any]:
        name, given = _secret(e.name)
        if not name:
            return ev.OptionError(Rep.ERR_UNKNOWN, "name a volume (there is no default export)"), None
        try:
            rec, read_only = await self.service.describe(name)
            if not self._authorized(s, rec.secret, given):
                return ev.OptionError(Rep.ERR_POLICY, f"volume {split_export(name)[0]} needs a client "
                                      "certificate from the cluster CA or the export name NAME/SECRET"), None
            export = await stack.enter_async_context(self.service.open_export(name)) if e.go else None
        except (NoSuchVolume, NoSuchSnapshot) as err:
            return ev.OptionError(Rep.ERR_UNKNOWN, err.message), None
        except VolumeInUse as err:
            log.info("NBD client on %s refused %s: %s", s.peer, name, err.message)
            return ev.OptionError(Rep.ERR_POLICY, err.message), None
        except (BackendError, S3Error) as err:
            log.warning("NBD export %s cannot be opened: %s", name, err)
            return ev.OptionError(Rep.ERR_SHUTDOWN, f"the cluster cannot serve {name} now: {err}"), None
        flags = READ_ONLY if read_only else WRITABLE
        desc = f"TitanS3 {'snapshot' if read_only else 'volume'} {name}"
        info = ev.ExportInfo(name, rec.size, int(flags), minimum_block=512, preferred_block=BLOCK,
                             maximum_payload=MAX_PAYLOAD, description=desc)
        if e.go:
            log.info("NBD client on %s attached %s%s", s.peer, name, " (read-only)" if read_only else "")
        return info, export

    # ------------------------------------------------------------ transmission
    async def _transmission(self, s: _Session, conn: ServerConnection, export: Any) -> None:
        out = _Outbox(s)

        def reply(event: ev.ServerEvent) -> None:
            out.put(conn.send_chunks(event))

        async def handle(req: ev.Request) -> None:
            reply(await self._serve(export, req))

        async with trio.open_nursery() as writer:
            writer.start_soon(out.run)
            async with trio.open_nursery() as handlers:
                while True:
                    e = conn.next_event()
                    auto = conn.data_to_send()
                    if auto:
                        out.put([auto])
                    if e is ev.NEED_DATA:
                        await out.room()
                        conn.receive_data(await s.stream.receive_some(RECV))
                    elif e is ev.PAUSED:
                        await out.replied()
                    elif isinstance(e, ev.Request):
                        self.requests += 1
                        done = self._serve_now(export, e)  # a cache hit or a buffered write: no task
                        if done is not None:
                            reply(done)
                        else:
                            handlers.start_soon(handle, e)
                    else:  # Disconnect or Closed: the handlers finish, then the connection closes
                        break
            await out.drain()
            writer.cancel_scope.cancel()

    def _serve_now(self, export: Any, req: ev.Request) -> ev.ServerEvent | None:
        """The reply to ``req`` if it can be given without waiting, else None."""
        try:
            if req.cmd is Cmd.READ:
                pieces = export.read_now(req.offset, req.length)
                return None if pieces is None else ev.ReadData(req.cookie, pieces, seq=req.seq)
            if req.cmd is Cmd.WRITE and not req.fua and getattr(export, "write_now", None) is not None:
                return ev.Done(req.cookie, seq=req.seq) if export.write_now(req.offset, req.data) else None
        except BackendError:
            return None  # the slow path reports it
        return None

    async def _serve(self, export: Any, req: ev.Request) -> ev.ServerEvent:
        try:
            cmd = req.cmd
            if cmd is Cmd.READ:
                return ev.ReadData(req.cookie, await export.read(req.offset, req.length), seq=req.seq)
            if cmd is Cmd.WRITE:
                await export.write(req.offset, req.data, fua=req.fua)
            elif cmd is Cmd.FLUSH:
                await export.flush()
            elif cmd in (Cmd.TRIM, Cmd.WRITE_ZEROES):
                await export.zero(req.offset, req.length, fua=req.fua, trim=cmd is Cmd.TRIM)
            elif cmd is Cmd.CACHE:
                await export.prefetch(req.offset, req.length)
            elif cmd is Cmd.BLOCK_STATUS:
                extents = export.block_status(req.offset, req.length)
                return ev.BlockStatus(req.cookie, extents, seq=req.seq)
            return ev.Done(req.cookie, seq=req.seq)
        except BackendError as e:
            log.warning("NBD %s at %d+%d failed: %s", req.cmd.name, req.offset, req.length, e)
            return ev.Failed(req.cookie, Errno.EIO, str(e), seq=req.seq)
        except Exception as e:  # a bug must cost one request, not the connection or the daemon
            log.exception("NBD %s at %d+%d failed", req.cmd.name, req.offset, req.length)
            return ev.Failed(req.cookie, Errno.EIO, f"internal error: {type(e).__name__}", seq=req.seq)


def _secret(export: str) -> tuple[str, str | None]:
    """``NAME[@SNAP]/SECRET`` -> (``NAME[@SNAP]``, ``SECRET``)."""
    name, slash, secret = export.partition("/")
    return name, (secret if slash else None)

