"""The owner <-> front wire: length-prefixed frames, sans-I/O.

Theory of operation
-------------------
A front process (``titans3/front/process.py``) and the owner talk over one
``AF_UNIX`` stream socket each, a ``socketpair`` the owner made when it
spawned the front: no path on disk, so no other process -- not even one of
the same user -- can connect.  This module only turns frames into bytes and
bytes into frames; ``titans3/front/rpc.py`` does the I/O.

A frame is ``length:u32 | kind:u8 | call:u32 | payload`` (big-endian;
``length`` counts ``kind``, ``call`` and the payload).  ``call`` names the
call a frame belongs to; the side that opens a call chooses its id, the
front odd ids and the owner even ones, so both sides can call each other on
one connection without their ids colliding.  Kinds:

========  ==============================================================
CALL      open a call: payload = pickled ``(method, args)``
NOTE      a call that wants no answer (metrics, audit records)
RESULT    the call's value (pickled); it may announce a body stream
ERROR     the call raised: the pickled exception, re-raised as its own type
PULL      "send me the next chunk" of the call's body stream
DATA      one raw ``bytes`` chunk of a body stream (never pickled)
ITEM      one pickled item of an object stream (``walk_objects``)
END       the stream ended: pickled trailer (checksums) or exception
CANCEL    the caller gave up: stop the call and close its streams
========  ==============================================================

Invariants.  A request body moves one chunk per ``PULL``: the owner asks
only when its write path wants the next chunk, so memory per stream is one
chunk whatever the object's size (an answer's stream: two, rpc.DOWN_WINDOW),
and the owner's write memory budget
(``core/membudget.py``) still bounds the host -- a front cannot push a body
faster than the owner's write path reads it.  A frame longer than
:data:`MAX_FRAME`, shorter than its header, or of an unknown kind is a
:class:`FrameError`: the connection is dropped, never resynchronised.

Payloads are pickles.  That is safe here and only here: both ends are the
same program started by the same owner on a private socketpair.  Exceptions
are pickled with their ``__dict__`` (an ``S3Error``'s ``extra`` and
``headers``), so a front answers exactly the S3 error the owner would.
"""

from __future__ import annotations

import copyreg
import io
import pickle
import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

__all__ = ["FrameError", "FrameReader", "Kind", "MAX_FRAME", "Frame", "dumps", "encode", "loads"]

HEADER = struct.Struct(">IBI")
MAX_FRAME = 64 << 20  # a 1,000-key listing is ~0.3 MiB; a body chunk is a segment or one recv


class Kind(IntEnum):
    CALL = 1
    NOTE = 2
    RESULT = 3
    ERROR = 4
    PULL = 5
    DATA = 6
    ITEM = 7
    END = 8
    CANCEL = 9


class FrameError(Exception):
    """The peer sent something that is not a frame: drop the connection."""


@dataclass(frozen=True, slots=True)
class Frame:
    kind: Kind
    call: int
    payload: bytes | memoryview


def header(kind: Kind, call: int, size: int) -> bytes:
    """The header of a frame whose payload is ``size`` bytes (send it, then the payload)."""
    if size + 5 > MAX_FRAME:
        raise FrameError(f"frame of {size} bytes is over the limit")
    return HEADER.pack(size + 5, kind, call)


def encode(kind: Kind, call: int, payload: bytes | memoryview = b"") -> bytes:
    return header(kind, call, len(payload)) + bytes(payload)


class FrameReader:
    """Bytes in, frames out (feed what the socket gave, then iterate ``frames``)."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[Frame]:
        self._buf += data
        out: list[Frame] = []
        buf = self._buf
        pos = 0
        while len(buf) - pos >= HEADER.size:
            length, kind, call = HEADER.unpack_from(buf, pos)
            if length < 5 or length > MAX_FRAME:
                raise FrameError(f"bad frame length {length}")
            try:
                k = Kind(kind)
            except ValueError:
                raise FrameError(f"unknown frame kind {kind}") from None
            end = pos + 4 + length
            if len(buf) < end:
                break
            out.append(Frame(k, call, bytes(buf[pos + HEADER.size:end])))
            pos = end
        if pos:
            del buf[:pos]
        return out

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame held (a peer that closed mid-frame left these)."""
        return len(self._buf)


# ------------------------------------------------------------ payloads
def _rebuild_exception(cls: type[BaseException], args: tuple[Any, ...], state: dict[str, Any]) -> BaseException:
    exc = cls.__new__(cls)
    exc.args = args
    exc.__dict__.update(state)
    return exc


class _Pickler(pickle.Pickler):
    def reducer_override(self, obj: Any) -> Any:
        # S3Error's __init__ takes (message, **extra) and sets attributes: the
        # default reduce (cls(*args)) would lose extra/headers and the message.
        if isinstance(obj, BaseException) and not isinstance(obj, BaseExceptionGroup):
            return _rebuild_exception, (type(obj), obj.args, dict(getattr(obj, "__dict__", {})))
        return NotImplemented


copyreg.constructor(_rebuild_exception)


def dumps(value: Any) -> bytes:
    buf = io.BytesIO()
    _Pickler(buf, protocol=pickle.HIGHEST_PROTOCOL).dump(value)
    return buf.getvalue()


def loads(data: bytes | memoryview) -> Any:
    try:
        return pickle.loads(data)
    except Exception as e:  # noqa: BLE001 -- anything the unpickler raises is a bad frame
        raise FrameError(f"undecodable payload: {e!r}") from None
