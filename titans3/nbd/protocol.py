"""The server side of the NBD protocol, without I/O (the h11 way).

Theory of operation
-------------------
:class:`ServerConnection` holds the state of one client connection.  The
adapter feeds it what the socket delivered (``receive_data``; ``b""`` for
end-of-file), asks for the next client event (``next_event``), hands the
server's answers to ``send`` (which returns the bytes to write) and writes
whatever ``data_to_send`` returns after every call -- the replies the protocol
produced itself.  Nothing here touches a socket, a clock or a thread.

Phases, as in the protocol document (fixed newstyle only; oldstyle is gone):

``GREETING`` -> ``CLIENT_FLAGS`` -> ``OPTIONS`` (repeat) -> ``TRANSMISSION``
-> ``DONE``.  ``initiate()`` returns the server's greeting.  In ``OPTIONS`` each
option is read whole (its data is bounded: anything longer than
``MAX_OPTION_DATA`` is skipped unread and answered ``ERR_TOO_BIG``); options the
protocol can answer alone -- STRUCTURED_REPLY, ABORT, STARTTLS, unknown or
malformed ones -- never reach the application.  The others become events
(:class:`~titans3.nbd.events.ListExports`, ``ExportRequest``,
``MetaContextRequest``) and the connection waits (``PAUSED``) until the
application answers.  A successful ``NBD_OPT_GO`` (or ``EXPORT_NAME``) fixes
the export: size, flags and block sizes, against which every request is
checked before it becomes an event.

In ``TRANSMISSION`` requests are parsed as they arrive; many may be in
flight and the application may answer them in any order.  Requests that
break the rules (unknown command or flag, a command not advertised, writes to
a read-only export, offsets or lengths past the end or not aligned to the
minimum block size, payloads above the maximum) are answered with the error
the document names and never reach the application; a WRITE payload that is
too large is skipped unread.  At most ``max_inflight`` requests are handed out
unanswered; beyond that ``next_event`` returns ``PAUSED``.

Invariants (exercised by the byte-vector and property tests):

* bytes buffered never exceed one request header plus ``maximum_payload``
  (or one option header plus ``MAX_OPTION_DATA``) beyond what one
  ``receive_data`` call delivered: oversized payloads are skipped unread;
* the only exception ``receive_data``/``next_event`` raise on bad input is
  :class:`ProtocolError` -- the document's "hard disconnect";
* every reply carries the cookie of the request it answers, and a READ with
  structured replies ends with exactly one chunk flagged DONE.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum, auto

from titans3.nbd import events as ev
from titans3.nbd import replies as rp
from titans3.nbd.replies import LocalProtocolError
from titans3.nbd.wire import (
    BASE_ALLOCATION,
    CLIENT_FLAGS,
    CMD_FLAGS,
    CMD_NEEDS,
    EXPORT_NAME_PADDING,
    EXPORT_NAME_REPLY,
    GREETING,
    IHAVEOPT,
    INFO_BLOCK_SIZE,
    INFO_EXPORT,
    NBDMAGIC,
    OPTION_HEADER,
    REQUEST,
    REQUEST_MAGIC,
    U16,
    U32,
    WRITING,
    ClientFlag,
    Cmd,
    CmdFlag,
    Errno,
    HandshakeFlag,
    Info,
    Opt,
    Rep,
    ReplyFlag,
    ReplyType,
    TransmissionFlag,
)

MAX_OPTION_DATA = 64 << 10  # no option we understand needs more (strings are <= 4 KiB)
MAX_META_QUERIES = 64


class ProtocolError(Exception):
    """The peer broke a MUST of the protocol: close the connection (hard disconnect)."""


class TLSMode(Enum):
    OFF = auto()  # NOTLS: STARTTLS is refused
    OPTIONAL = auto()  # SELECTIVETLS with no TLS-only export: the client may upgrade
    REQUIRED = auto()  # FORCEDTLS: nothing but STARTTLS/ABORT before the upgrade


class Phase(Enum):
    GREETING = auto()
    CLIENT_FLAGS = auto()
    OPTIONS = auto()
    TRANSMISSION = auto()
    DONE = auto()


@dataclass(frozen=True, slots=True)
class Export:
    """The export fixed by GO/EXPORT_NAME: what requests are checked against."""

    name: str
    size: int
    flags: TransmissionFlag
    minimum_block: int
    maximum_payload: int


@dataclass(slots=True)
class _Pending:
    cmd: Cmd
    flags: CmdFlag
    offset: int
    length: int


class ServerConnection:
    def __init__(self, *, tls: TLSMode = TLSMode.OFF, max_inflight: int = 256) -> None:
        self.phase = Phase.GREETING
        self.tls = tls
        self.tls_active = False
        self.max_inflight = max_inflight
        self.client_flags = ClientFlag(0)
        self.structured = False
        self.export: Export | None = None
        self._buf = bytearray()
        self._eof = False
        self._out: list[bytes] = []
        self._skip = 0  # payload bytes still to discard unread
        self._waiting: tuple[Opt, ev.ClientEvent] | None = None  # option awaiting the app
        # SET_META_CONTEXT result: the export it named and {context id: name}.
        self._meta_export: str | None = None
        self._meta: dict[int, str] = {}
        # Requests handed out and not answered: by sequence number, and the
        # sequence numbers of each cookie (a client may reuse one in flight).
        self._inflight: dict[int, _Pending] = {}
        self._by_cookie: dict[int, list[int]] = {}
        self._seq = 0

    # ------------------------------------------------------------ bytes in/out
    def initiate(self) -> bytes:
        """The server's greeting; the first thing sent on the connection."""
        if self.phase is not Phase.GREETING:
            raise LocalProtocolError("initiate() called twice")
        self.phase = Phase.CLIENT_FLAGS
        return GREETING.pack(NBDMAGIC, IHAVEOPT, HandshakeFlag.FIXED_NEWSTYLE | HandshakeFlag.NO_ZEROES)

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Bytes from the client; ``b""`` means it closed its side."""
        if not data:
            self._eof = True
            return
        if self.phase is Phase.DONE:
            return  # after DISC / ABORT the client must send nothing; ignore it
        if self._skip:
            n = min(self._skip, len(data))
            self._skip -= n
            data = memoryview(data)[n:]
        self._buf += data

    def data_to_send(self) -> bytes:
        """Replies the protocol produced on its own since the last call."""
        out, self._out = b"".join(self._out), []
        return out

    @property
    def buffered(self) -> int:
        return len(self._buf)

    @property
    def inflight(self) -> int:
        return len(self._inflight)

    # ------------------------------------------------------------ events out
    def next_event(self) -> ev.ClientEvent | ev.Sentinel:
        while True:
            if self.phase is Phase.DONE:
                return ev.Closed()
            if self._skip:
                if self._eof:
                    raise ProtocolError("connection closed inside a payload")
                return ev.NEED_DATA
            if self._waiting is not None:
                return ev.PAUSED
            if self.phase is Phase.CLIENT_FLAGS:
                out = self._client_flags()
            elif self.phase is Phase.OPTIONS:
                out = self._option()
            elif self.phase is Phase.TRANSMISSION:
                if len(self._inflight) >= self.max_inflight:
                    return ev.PAUSED
                out = self._request()
            else:
                raise LocalProtocolError("next_event() before initiate()")
            if out is not None:
                return out
            # None: something was handled internally; look again.

    def _need(self, n: int) -> bool:
        if len(self._buf) >= n:
            return True
        if self._eof:
            if self._buf:
                raise ProtocolError("connection closed in the middle of a message")
            self.phase = Phase.DONE
        return False

    def _take(self, n: int) -> bytes:
        with memoryview(self._buf) as view:  # one copy, not two (a slice of a bytearray is one)
            out = bytes(view[:n])
        del self._buf[:n]
        return out

    def _client_flags(self) -> ev.ClientEvent | ev.Sentinel | None:
        if not self._need(CLIENT_FLAGS.size):
            return ev.Closed() if self.phase is Phase.DONE else ev.NEED_DATA
        (flags,) = CLIENT_FLAGS.unpack(self._take(CLIENT_FLAGS.size))
        if flags & ~int(ClientFlag.C_FIXED_NEWSTYLE | ClientFlag.C_NO_ZEROES):
            raise ProtocolError(f"unknown client flags {flags:#x}")
        self.client_flags = ClientFlag(flags)
        self.phase = Phase.OPTIONS
        return None

    # ------------------------------------------------------------ options
    def _reply(self, opt: int, rep: Rep, payload: bytes = b"") -> None:
        self._out.append(rp.option_reply(opt, rep, payload))

    def _refuse(self, opt: int, rep: Rep, message: str) -> None:
        self._out.append(rp.option_error(opt, rep, message))

    def _option(self) -> ev.ClientEvent | ev.Sentinel | None:
        if not self._need(OPTION_HEADER.size):
            return ev.Closed() if self.phase is Phase.DONE else ev.NEED_DATA
        magic, opt, length = OPTION_HEADER.unpack_from(self._buf)
        if magic != IHAVEOPT:
            raise ProtocolError(f"bad option magic {magic:#x}")
        if length > MAX_OPTION_DATA:
            if opt == Opt.EXPORT_NAME:
                raise ProtocolError("NBD_OPT_EXPORT_NAME with an over-long name")
            del self._buf[: OPTION_HEADER.size]
            self._discard(length)
            self._refuse(opt, Rep.ERR_TOO_BIG, f"option data of {length} bytes is too large")
            return None
        if not self._need(OPTION_HEADER.size + length):
            if self.phase is Phase.DONE:
                raise ProtocolError("connection closed inside an option")
            return ev.NEED_DATA
        del self._buf[: OPTION_HEADER.size]
        data = self._take(length)
        return self._on_option(opt, data)

    def _discard(self, n: int) -> None:
        have = min(n, len(self._buf))
        del self._buf[:have]
        self._skip = n - have

    def _on_option(self, opt: int, data: bytes) -> ev.ClientEvent | None:
        if opt == Opt.ABORT:  # data, if any, is ignored (the document says so)
            self._reply(opt, Rep.ACK)
            self.phase = Phase.DONE
            return ev.Aborted()
        if opt == Opt.STARTTLS:
            return self._starttls(data)
        if self.tls is TLSMode.REQUIRED and not self.tls_active:
            if opt == Opt.EXPORT_NAME:
                raise ProtocolError("NBD_OPT_EXPORT_NAME before the required TLS upgrade")
            self._refuse(opt, Rep.ERR_TLS_REQD, "this listener requires TLS: send NBD_OPT_STARTTLS first")
            return None
        if opt == Opt.EXPORT_NAME:
            name = rp.string(data)
            if name is None:
                raise ProtocolError("NBD_OPT_EXPORT_NAME with a name that is not a protocol string")
            return self._wait(opt, ev.ExportRequest(name, go=True, legacy=True))
        if opt in (Opt.INFO, Opt.GO):
            return self._info_go(opt, data)
        if opt == Opt.LIST:
            if data:
                self._refuse(opt, Rep.ERR_INVALID, "NBD_OPT_LIST takes no data")
                return None
            return self._wait(opt, ev.ListExports())
        if opt == Opt.STRUCTURED_REPLY:
            if data:
                self._refuse(opt, Rep.ERR_INVALID, "NBD_OPT_STRUCTURED_REPLY takes no data")
                return None
            self.structured = True
            self._reply(opt, Rep.ACK)
            return None
        if opt in (Opt.LIST_META_CONTEXT, Opt.SET_META_CONTEXT):
            return self._meta_context(opt, data)
        self._refuse(opt, Rep.ERR_UNSUP, f"option {opt} is not supported")
        return None

    def _wait(self, opt: Opt, event: ev.ClientEvent) -> ev.ClientEvent:
        self._waiting = (opt, event)
        return event

    def _starttls(self, data: bytes) -> ev.ClientEvent | None:
        if data:
            self._refuse(Opt.STARTTLS, Rep.ERR_INVALID, "NBD_OPT_STARTTLS takes no data")
            return None
        if self.tls is TLSMode.OFF:
            self._refuse(Opt.STARTTLS, Rep.ERR_POLICY, "TLS is not offered on this listener")
            return None
        if self.tls_active:
            self._refuse(Opt.STARTTLS, Rep.ERR_INVALID, "TLS is already active")
            return None
        if self._buf:
            raise ProtocolError("data after NBD_OPT_STARTTLS before the TLS handshake")
        self._reply(Opt.STARTTLS, Rep.ACK)
        # "the server MUST NOT preserve any negotiation state" across the upgrade.
        self.tls_active = True
        self.structured = False
        self._meta_export, self._meta = None, {}
        return ev.StartTLS()

    def _info_go(self, opt: Opt, data: bytes) -> ev.ClientEvent | None:
        if len(data) < 6:
            self._refuse(opt, Rep.ERR_INVALID, "option data too short")
            return None
        (nlen,) = U32.unpack_from(data)
        if nlen > len(data) - 6:
            self._refuse(opt, Rep.ERR_INVALID, "export name length past the option data")
            return None
        name = rp.string(data[4 : 4 + nlen])
        (count,) = U16.unpack_from(data, 4 + nlen)
        if len(data) != 4 + nlen + 2 + 2 * count:
            self._refuse(opt, Rep.ERR_INVALID, "information request count does not match the option length")
            return None
        if name is None:
            self._refuse(opt, Rep.ERR_INVALID, "export name is not valid UTF-8 text")
            return None
        requests = tuple(U16.unpack_from(data, 6 + nlen + 2 * i)[0] for i in range(count))
        return self._wait(opt, ev.ExportRequest(name, go=opt == Opt.GO, requests=requests))

    def _meta_context(self, opt: Opt, data: bytes) -> ev.ClientEvent | None:
        select = opt == Opt.SET_META_CONTEXT
        if select:  # "replaces all previously-set metadata contexts (including when this command fails)"
            self._meta_export, self._meta = None, {}
        if not self.structured:
            self._refuse(opt, Rep.ERR_INVALID, "negotiate NBD_OPT_STRUCTURED_REPLY first")
            return None
        parsed = rp.parse_meta(data)
        if parsed is None:
            self._refuse(opt, Rep.ERR_INVALID, "malformed metadata context request")
            return None
        name, queries = parsed
        if len(queries) > MAX_META_QUERIES:
            self._refuse(opt, Rep.ERR_TOO_BIG, f"at most {MAX_META_QUERIES} queries")
            return None
        if any(":" not in q for q in queries):
            self._refuse(opt, Rep.ERR_INVALID, "a query must start with a namespace and a colon")
            return None
        return self._wait(opt, ev.MetaContextRequest(name, queries, select))

    # ------------------------------------------------------------ transmission
    def _request(self) -> ev.ClientEvent | ev.Sentinel | None:
        if not self._need(REQUEST.size):
            return ev.Closed() if self.phase is Phase.DONE else ev.NEED_DATA
        magic, flags, kind, cookie, offset, length = REQUEST.unpack_from(self._buf)
        if magic != REQUEST_MAGIC:
            raise ProtocolError(f"bad request magic {magic:#x}")
        assert self.export is not None
        if kind == Cmd.WRITE and length > self.export.maximum_payload:
            del self._buf[: REQUEST.size]
            self._discard(length)
            self._fail(cookie, Cmd.WRITE, Errno.EINVAL,
                       f"write of {length} bytes is above the maximum payload {self.export.maximum_payload}")
            return None
        if kind == Cmd.WRITE and not self._need(REQUEST.size + length):
            if self.phase is Phase.DONE:
                raise ProtocolError("connection closed inside a write payload")
            return ev.NEED_DATA
        del self._buf[: REQUEST.size]
        data = self._take(length) if kind == Cmd.WRITE else b""
        try:
            cmd = Cmd(kind)
        except ValueError:
            self._fail(cookie, None, Errno.EINVAL, f"unknown command {kind}")
            return None
        if cmd is Cmd.DISC:
            self.phase = Phase.DONE
            self._buf.clear()
            return ev.Disconnect()
        problem = self._check(cmd, CmdFlag(flags), offset, length)
        if problem is not None:
            self._fail(cookie, cmd, problem[0], problem[1])
            return None
        if length == 0 and cmd is not Cmd.FLUSH:  # nothing to do: answer at once
            if cmd is Cmd.BLOCK_STATUS:
                self._fail(cookie, cmd, Errno.EINVAL, "block status of zero bytes")
            elif cmd is Cmd.READ and self.structured:
                self._out.append(rp.chunk(cookie, ReplyFlag.DONE, ReplyType.NONE, b""))
            else:
                self._out.append(rp.simple(cookie))
            return None
        self._seq += 1
        self._inflight[self._seq] = _Pending(cmd, CmdFlag(flags), offset, length)
        self._by_cookie.setdefault(cookie, []).append(self._seq)
        return ev.Request(cmd, CmdFlag(flags), cookie, offset, length, data, seq=self._seq)

    def _check(self, cmd: Cmd, flags: CmdFlag, offset: int, length: int) -> tuple[Errno, str] | None:
        exp = self.export
        assert exp is not None
        allowed = int(CMD_FLAGS[cmd])
        if not exp.flags & TransmissionFlag.SEND_FUA:
            allowed &= ~int(CmdFlag.FUA)
        if not exp.flags & TransmissionFlag.SEND_DF:
            allowed &= ~int(CmdFlag.DF)
        if not exp.flags & TransmissionFlag.SEND_FAST_ZERO:
            allowed &= ~int(CmdFlag.FAST_ZERO)
        if int(flags) & ~allowed:
            return Errno.EINVAL, f"flags {int(flags):#x} are not valid for {cmd.name}"
        need = CMD_NEEDS.get(cmd)
        if need is not None and not exp.flags & need:
            return Errno.EINVAL, f"{cmd.name} was not advertised for this export"
        if cmd is Cmd.BLOCK_STATUS and not self._meta:
            return Errno.EINVAL, "no metadata context was selected for this export"
        if cmd in WRITING and exp.flags & TransmissionFlag.READ_ONLY:
            return Errno.EPERM, "the export is read-only"
        if cmd is Cmd.FLUSH:
            return (Errno.EINVAL, "flush offset and length must be zero") if offset or length else None
        if offset + length > exp.size:
            err = Errno.ENOSPC if cmd in (Cmd.WRITE, Cmd.WRITE_ZEROES) else Errno.EINVAL
            return err, f"{cmd.name} of {length} bytes at {offset} is past the end ({exp.size})"
        if offset % exp.minimum_block or length % exp.minimum_block:
            return Errno.EINVAL, f"offset and length must be multiples of {exp.minimum_block}"
        if cmd is Cmd.READ and length > exp.maximum_payload:
            return Errno.EOVERFLOW, f"read of {length} bytes is above the maximum payload {exp.maximum_payload}"
        return None

    # ------------------------------------------------------------ events in
    def send(self, event: ev.ServerEvent) -> bytes:
        """Bytes for a server event (an option answer or a request's reply)."""
        return b"".join(self.send_chunks(event))

    def send_chunks(self, event: ev.ServerEvent) -> list[bytes | memoryview]:
        """Like :meth:`send`, without joining large read data into one buffer."""
        if isinstance(event, ev.ExportList | ev.ExportInfo | ev.MetaContexts | ev.OptionError):
            return [self._answer_option(event)]
        if self.phase not in (Phase.TRANSMISSION, Phase.DONE):
            raise LocalProtocolError(f"{type(event).__name__} outside the transmission phase")
        pending = self._pop(event)
        if isinstance(event, ev.Done):
            if pending.cmd in (Cmd.READ, Cmd.BLOCK_STATUS):
                raise LocalProtocolError(f"{pending.cmd.name} needs a payload reply")
            return [rp.simple(event.cookie)]
        if isinstance(event, ev.Failed):
            return [rp.failure(self.structured, event.cookie, pending.cmd, event.error, event.message,
                               event.offset)]
        if isinstance(event, ev.ReadData):
            if pending.cmd is not Cmd.READ:
                raise LocalProtocolError("ReadData answers a READ only")
            return rp.read_reply(self.structured, event.cookie, pending.offset, pending.length, event.pieces,
                                 one_chunk=bool(pending.flags & CmdFlag.DF))
        if isinstance(event, ev.BlockStatus):
            if pending.cmd is not Cmd.BLOCK_STATUS:
                raise LocalProtocolError("BlockStatus answers a BLOCK_STATUS only")
            return [self._block_status(event, pending)]
        raise LocalProtocolError(f"unknown event {event!r}")

    def _pop(self, event: ev.Done | ev.Failed | ev.ReadData | ev.BlockStatus) -> _Pending:
        """The request ``event`` answers: the one with its ``seq`` if given, else
        the oldest request with its cookie that this kind of reply can answer."""
        seqs = self._by_cookie.get(event.cookie, [])
        if event.seq is not None:
            seq = event.seq if event.seq in seqs else None
        else:
            fits = {ev.Done: lambda c: c not in (Cmd.READ, Cmd.BLOCK_STATUS),
                    ev.ReadData: lambda c: c is Cmd.READ, ev.BlockStatus: lambda c: c is Cmd.BLOCK_STATUS,
                    ev.Failed: lambda c: True}[type(event)]
            seq = next((s for s in seqs if fits(self._inflight[s].cmd)), None)
        if seq is None:
            raise LocalProtocolError(f"no request with cookie {event.cookie:#x} is in flight for {event!r}")
        seqs.remove(seq)
        if not seqs:
            del self._by_cookie[event.cookie]
        return self._inflight.pop(seq)

    def _answer_option(self, event: ev.ServerEvent) -> bytes:
        if self._waiting is None:
            raise LocalProtocolError(f"{type(event).__name__} but no option is waiting for an answer")
        opt, asked = self._waiting
        self._waiting = None
        if isinstance(event, ev.OptionError):
            if not event.code & (1 << 31):
                raise LocalProtocolError("OptionError needs an error reply type")
            if opt == Opt.EXPORT_NAME:  # cannot be refused: hard disconnect
                self.phase = Phase.DONE
                return b""
            if opt == Opt.SET_META_CONTEXT:
                self._meta_export, self._meta = None, {}
            return rp.option_error(opt, event.code, event.message)
        if isinstance(event, ev.ExportList) and isinstance(asked, ev.ListExports):
            parts = [rp.option_reply(opt, Rep.SERVER, U32.pack(len(e.name.encode())) + e.name.encode()
                                     + rp.error_text(e.description)) for e in event.exports]
            return b"".join(parts) + rp.option_reply(opt, Rep.ACK)
        if isinstance(event, ev.ExportInfo) and isinstance(asked, ev.ExportRequest):
            return self._export_reply(opt, asked, event)
        if isinstance(event, ev.MetaContexts) and isinstance(asked, ev.MetaContextRequest):
            return self._meta_reply(opt, asked, event)
        raise LocalProtocolError(f"{type(event).__name__} does not answer {type(asked).__name__}")

    def _export_reply(self, opt: Opt, asked: ev.ExportRequest, info: ev.ExportInfo) -> bytes:
        rp.check_sizes(info)
        flags = TransmissionFlag(info.flags) | TransmissionFlag.HAS_FLAGS
        if self.structured:
            flags |= TransmissionFlag.SEND_DF
        else:
            flags = TransmissionFlag(int(flags) & ~int(TransmissionFlag.SEND_DF))
        if not flags & TransmissionFlag.SEND_WRITE_ZEROES:
            flags = TransmissionFlag(int(flags) & ~int(TransmissionFlag.SEND_FAST_ZERO))
        if asked.legacy:
            out = EXPORT_NAME_REPLY.pack(info.size, flags)
            if not self.client_flags & ClientFlag.C_NO_ZEROES:
                out += bytes(EXPORT_NAME_PADDING)
        else:
            parts = [INFO_EXPORT.pack(Info.EXPORT, info.size, flags)]
            if Info.NAME in asked.requests:
                parts.append(U16.pack(Info.NAME) + info.name.encode())
            if Info.DESCRIPTION in asked.requests and info.description:
                parts.append(U16.pack(Info.DESCRIPTION) + rp.error_text(info.description))
            parts.append(INFO_BLOCK_SIZE.pack(Info.BLOCK_SIZE, info.minimum_block, info.preferred_block,
                                              info.maximum_payload))
            out = b"".join(rp.option_reply(opt, Rep.INFO, p) for p in parts) + rp.option_reply(opt, Rep.ACK)
        if asked.go:
            self.phase = Phase.TRANSMISSION
            self.export = Export(info.name, info.size, flags, info.minimum_block, info.maximum_payload)
            # BLOCK_STATUS needs the final SET_META_CONTEXT to have named this export.
            if self._meta_export != asked.name:
                self._meta = {}
        return out

    def _meta_reply(self, opt: Opt, asked: ev.MetaContextRequest, offered: ev.MetaContexts) -> bytes:
        chosen = rp.match_contexts(asked.queries, list(offered.contexts), select=asked.select)
        parts = []
        if asked.select:
            self._meta = {i + 1: name for i, name in enumerate(chosen)}
            self._meta_export = asked.name if chosen else None
            items = list(self._meta.items())
        else:
            items = [(0, name) for name in chosen]
        for cid, name in items:
            parts.append(rp.option_reply(opt, Rep.META_CONTEXT, U32.pack(cid) + name.encode()))
        return b"".join(parts) + rp.option_reply(opt, Rep.ACK)

    # ------------------------------------------------------------ replies
    def _fail(self, cookie: int, cmd: Cmd | None, error: Errno, message: str) -> None:
        self._out.append(rp.failure(self.structured, cookie, cmd, error, message))

    def _block_status(self, event: ev.BlockStatus, pending: _Pending) -> bytes:
        if not self._meta:
            raise LocalProtocolError("BlockStatus without a selected context")
        contexts = []
        for cid in sorted(self._meta):
            name = self._meta[cid]
            if isinstance(event.extents, Mapping):
                contexts.append((cid, event.extents.get(name, ())))
            else:
                contexts.append((cid, event.extents if name == BASE_ALLOCATION else ()))
        return rp.block_status(event.cookie, contexts, pending.length, one=bool(pending.flags & CmdFlag.REQ_ONE))
