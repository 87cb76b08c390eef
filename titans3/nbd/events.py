"""Events of an NBD server connection: what the client asked, what the server answers.

:class:`~titans3.nbd.protocol.ServerConnection` turns bytes from the client
into the *client events* below (``next_event``) and turns the *server events*
the application passes to ``send`` into bytes.  Options and requests the
protocol can answer on its own (unknown options, malformed lengths, bad
flags, offsets past the end) never surface as events: their replies are
queued for ``data_to_send``.  Everything here is a plain frozen record.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum

from titans3.nbd.wire import Cmd, CmdFlag, Errno, Rep


class Sentinel(Enum):
    NEED_DATA = "need-data"  # feed more bytes (receive_data) before the next event
    PAUSED = "paused"  # as many requests in flight as allowed: send replies first


NEED_DATA = Sentinel.NEED_DATA
PAUSED = Sentinel.PAUSED


# ------------------------------------------------------------- client events
@dataclass(frozen=True, slots=True)
class ListExports:
    """``NBD_OPT_LIST``: answer with :class:`ExportList` or :class:`OptionError`."""


@dataclass(frozen=True, slots=True)
class ExportRequest:
    """``NBD_OPT_INFO`` (``go=False``), ``NBD_OPT_GO`` or ``NBD_OPT_EXPORT_NAME``
    (``legacy=True``, which cannot be refused except by closing).  Answer with
    :class:`ExportInfo` or :class:`OptionError`."""

    name: str
    go: bool
    requests: tuple[int, ...] = ()  # NBD_INFO_* types the client asked for
    legacy: bool = False


@dataclass(frozen=True, slots=True)
class MetaContextRequest:
    """``NBD_OPT_LIST_META_CONTEXT`` / ``SET_META_CONTEXT`` for export ``name``.
    Answer with :class:`MetaContexts` (the contexts that export offers; the
    protocol matches the queries) or :class:`OptionError`."""

    name: str
    queries: tuple[str, ...]
    select: bool  # True: SET (selects), False: LIST


@dataclass(frozen=True, slots=True)
class StartTLS:
    """The ``NBD_OPT_STARTTLS`` ACK is queued: send it, then run the TLS handshake."""


@dataclass(frozen=True, slots=True)
class Aborted:
    """``NBD_OPT_ABORT`` (its ACK is queued): close after sending it."""


@dataclass(frozen=True, slots=True)
class Request:
    """One transmission request, already checked against the export: the
    offset and length are in bounds and aligned, the flags are valid."""

    cmd: Cmd
    flags: CmdFlag
    cookie: int
    offset: int
    length: int
    data: bytes | memoryview = b""  # the payload of NBD_CMD_WRITE
    seq: int = 0  # unique per connection: names this request in the reply (cookies may repeat)

    @property
    def fua(self) -> bool:
        return bool(self.flags & CmdFlag.FUA)


@dataclass(frozen=True, slots=True)
class Disconnect:
    """``NBD_CMD_DISC``: finish what is in flight, then close."""


@dataclass(frozen=True, slots=True)
class Closed:
    """The client closed the connection at a message boundary."""


ClientEvent = ListExports | ExportRequest | MetaContextRequest | StartTLS | Aborted | Request | Disconnect | Closed


# ------------------------------------------------------------- server events
@dataclass(frozen=True, slots=True)
class ExportEntry:
    name: str
    description: str = ""


@dataclass(frozen=True, slots=True)
class ExportList:
    exports: Sequence[ExportEntry]


@dataclass(frozen=True, slots=True)
class ExportInfo:
    """The export an :class:`ExportRequest` named.  ``flags`` are the
    transmission flags beyond HAS_FLAGS (the protocol adds SEND_DF when
    structured replies are on, and clears flags needing them when off)."""

    name: str
    size: int
    flags: int
    minimum_block: int = 512
    preferred_block: int = 4096
    maximum_payload: int = 32 << 20
    description: str = ""


@dataclass(frozen=True, slots=True)
class MetaContexts:
    contexts: Sequence[str]


@dataclass(frozen=True, slots=True)
class OptionError:
    code: Rep
    message: str = ""


@dataclass(frozen=True, slots=True)
class Done:
    """Success of a request without payload (WRITE, FLUSH, TRIM, CACHE, WRITE_ZEROES)."""

    cookie: int
    seq: int | None = None  # Request.seq: which request, should a cookie be in flight twice


@dataclass(frozen=True, slots=True)
class Failed:
    """A request failed with ``error``; ``offset`` (structured replies only) names where."""

    cookie: int
    error: Errno
    message: str = ""
    offset: int | None = None
    seq: int | None = None


@dataclass(frozen=True, slots=True)
class ReadData:
    """The answer to a READ: ``pieces`` cover the request in order; a piece is
    data (``bytes``/``memoryview``) or an ``int``, the length of a run of zeroes
    (sent as ``OFFSET_HOLE`` with structured replies)."""

    cookie: int
    pieces: Sequence[bytes | memoryview | int]
    seq: int | None = None


@dataclass(frozen=True, slots=True)
class BlockStatus:
    """Extents from the request's offset, ``(length, State flags)``: for
    ``base:allocation``, or a mapping of context name -> extents."""

    cookie: int
    extents: Sequence[tuple[int, int]] | Mapping[str, Sequence[tuple[int, int]]] = field(default_factory=tuple)
    seq: int | None = None


ServerEvent = ExportList | ExportInfo | MetaContexts | OptionError | Done | Failed | ReadData | BlockStatus
