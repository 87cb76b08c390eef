"""Encoding NBD server replies and decoding option payloads: pure functions.

The byte layouts of :mod:`titans3.nbd.wire` put together: option replies,
structured reply chunks (OFFSET_DATA, OFFSET_HOLE, BLOCK_STATUS, ERROR), the
matching of metadata-context queries, and the checks the protocol document
puts on strings and block sizes.  :mod:`titans3.nbd.protocol` decides *when*
each is sent; this module only knows *how*.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from titans3.nbd.events import ExportInfo
from titans3.nbd.wire import (
    BLOCK_DESCRIPTOR,
    ERROR_HEAD,
    MAX_STRING,
    OFFSET_HOLE,
    OPTION_REPLY,
    OPTION_REPLY_MAGIC,
    SIMPLE_REPLY,
    SIMPLE_REPLY_MAGIC,
    STRUCTURED_REPLY,
    STRUCTURED_REPLY_MAGIC,
    U32,
    Cmd,
    Errno,
    Rep,
    ReplyFlag,
    ReplyType,
)

MAX_DESCRIPTORS = 1 << 20  # "SHOULD NOT send more than 2^20 extents in a single reply chunk"
HOLE_CHUNK_MAX = 0xFFFFFFFF
ERROR_OFFSET_COMMANDS = (Cmd.READ, Cmd.WRITE, Cmd.TRIM, Cmd.CACHE, Cmd.WRITE_ZEROES, Cmd.BLOCK_STATUS)


class LocalProtocolError(RuntimeError):
    """The application sent an event that does not fit the connection's state (a bug)."""


def string(raw: bytes | bytearray | memoryview) -> str | None:
    """A protocol string (UTF-8, no NUL, at most 4096 bytes), or None if it is not one."""
    if len(raw) > MAX_STRING:
        return None
    try:
        text = bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        return None
    return None if "\0" in text else text


def error_text(message: str) -> bytes:
    raw = message.encode("utf-8")[:MAX_STRING]
    return raw.decode("utf-8", "ignore").encode("utf-8")



def option_reply(opt: int, rep: Rep, payload: bytes = b"") -> bytes:
    return OPTION_REPLY.pack(OPTION_REPLY_MAGIC, opt, rep, len(payload)) + payload


def option_error(opt: int, rep: Rep, message: str) -> bytes:
    return option_reply(opt, rep, error_text(message))


def simple(cookie: int, error: int = 0) -> bytes:
    return SIMPLE_REPLY.pack(SIMPLE_REPLY_MAGIC, error, cookie)


def chunk(cookie: int, flags: int, kind: int, payload: bytes | memoryview, extra: int = 0) -> bytes:
    """A structured reply chunk: header and payload (``extra``: bytes of payload sent separately)."""
    head = STRUCTURED_REPLY.pack(STRUCTURED_REPLY_MAGIC, flags, kind, cookie, len(payload) + extra)
    return head + bytes(payload) if payload else head


def failure(structured: bool, cookie: int, cmd: Cmd | None, error: Errno, message: str,
            offset: int | None = None) -> bytes:
    """An error reply: simple, or one ERROR / ERROR_OFFSET chunk with the message."""
    if not structured:
        return simple(cookie, int(error))
    text = error_text(message)
    head = ERROR_HEAD.pack(int(error), len(text)) + text
    if offset is not None and cmd in ERROR_OFFSET_COMMANDS:
        return chunk(cookie, ReplyFlag.DONE, ReplyType.ERROR_OFFSET, head + offset.to_bytes(8, "big"))
    return chunk(cookie, ReplyFlag.DONE, ReplyType.ERROR, head)


def read_reply(structured: bool, cookie: int, offset: int, length: int, pieces: Iterable[bytes | memoryview | int],
               *, one_chunk: bool) -> list[bytes | memoryview]:
    """The reply to a READ of ``length`` bytes at ``offset``: data and holes in order."""
    kept = [p for p in pieces if (p if isinstance(p, int) else len(p))]
    total = sum(p if isinstance(p, int) else len(p) for p in kept)
    if total != length:
        raise LocalProtocolError(f"read reply of {total} bytes for a request of {length}")
    if not structured:
        return [simple(cookie), *(bytes(p) if isinstance(p, int) else p for p in kept)]
    if one_chunk and len(kept) > 1:  # NBD_CMD_FLAG_DF: one content chunk, zeroes spelled out
        kept = [b"".join(bytes(p) for p in kept)]
    out: list[bytes | memoryview] = []
    split = _split_holes(kept)
    for i, piece in enumerate(split):
        flags = ReplyFlag.DONE if i == len(split) - 1 else 0
        if isinstance(piece, int):
            out.append(chunk(cookie, flags, ReplyType.OFFSET_HOLE, OFFSET_HOLE.pack(offset, piece)))
            offset += piece
        else:
            out.append(chunk(cookie, flags, ReplyType.OFFSET_DATA, b"", extra=8 + len(piece)))
            out.append(offset.to_bytes(8, "big"))
            out.append(piece)
            offset += len(piece)
    return out


def block_status(cookie: int, contexts: Sequence[tuple[int, Iterable[tuple[int, int]]]], length: int,
                 *, one: bool) -> bytes:
    """One BLOCK_STATUS chunk per ``(context id, extents)``, the last flagged DONE."""
    parts = []
    for n, (cid, given) in enumerate(contexts):
        extents = clip_extents(given, length, one=one)
        if not extents:
            raise LocalProtocolError(f"BlockStatus has no extents for context id {cid}")
        payload = U32.pack(cid) + b"".join(BLOCK_DESCRIPTOR.pack(x, f) for x, f in extents)
        parts.append(chunk(cookie, ReplyFlag.DONE if n == len(contexts) - 1 else 0, ReplyType.BLOCK_STATUS,
                           payload))
    return b"".join(parts)


def check_sizes(info: ExportInfo) -> None:
    mn, pref, mx = info.minimum_block, info.preferred_block, info.maximum_payload
    if mn < 1 or mn & (mn - 1) or mn > 1 << 16:
        raise LocalProtocolError("minimum block must be a power of 2 up to 64 KiB")
    if pref < max(mn, 512) or pref & (pref - 1):
        raise LocalProtocolError("preferred block must be a power of 2 >= max(minimum, 512)")
    if mx < pref or mx > 0xFFFFFFFF or info.size < 0 or info.size >= 1 << 63:
        raise LocalProtocolError("maximum payload must be >= preferred block; size must fit 63 bits")


def parse_meta(data: bytes) -> tuple[str, tuple[str, ...]] | None:
    """(export name, queries) of a LIST/SET_META_CONTEXT option, or None if malformed."""
    if len(data) < 8:
        return None
    (nlen,) = U32.unpack_from(data)
    if 4 + nlen + 4 > len(data):
        return None
    name = string(data[4 : 4 + nlen])
    pos = 4 + nlen
    (count,) = U32.unpack_from(data, pos)
    pos += 4
    if count > len(data):  # each query needs at least four bytes
        return None
    queries = []
    for _ in range(count):
        if pos + 4 > len(data):
            return None
        (qlen,) = U32.unpack_from(data, pos)
        pos += 4
        if pos + qlen > len(data):
            return None
        q = string(data[pos : pos + qlen])
        if q is None:
            return None
        queries.append(q)
        pos += qlen
    if pos != len(data) or name is None:
        return None
    return name, tuple(queries)


def match_contexts(queries: Sequence[str], offered: list[str], *, select: bool) -> list[str]:
    """The contexts a LIST (``select=False``) or SET returns for ``queries``."""
    if not queries:
        return [] if select else list(offered)
    out: list[str] = []
    for q in queries:
        namespace, _, leaf = q.partition(":")
        for name in offered:
            if name in out:
                continue
            if name == q or (not select and not leaf and name.startswith(namespace + ":")):
                out.append(name)
    return out


def _split_holes(pieces: Iterable[bytes | memoryview | int]) -> list[bytes | memoryview | int]:
    out: list[bytes | memoryview | int] = []
    for p in pieces:
        if isinstance(p, int):
            while p > HOLE_CHUNK_MAX:
                out.append(HOLE_CHUNK_MAX - HOLE_CHUNK_MAX % 4096)
                p -= out[-1]  # type: ignore[operator]
        out.append(p)
    return out


def clip_extents(extents: Iterable[tuple[int, int]], length: int, *, one: bool) -> list[tuple[int, int]]:
    """Descriptors as the document requires: nonzero, 32-bit, the first N-1
    summing to less than ``length``; exactly one, at most ``length``, with REQ_ONE."""
    out: list[tuple[int, int]] = []
    total = 0
    for n, flags in extents:
        if n <= 0:
            continue
        n = min(n, 0xFFFFFFFF - 0xFFF)
        if one:
            return [(min(n, length), flags)]
        out.append((n, flags))
        total += n
        if total >= length or len(out) >= MAX_DESCRIPTORS:
            break
    return out
