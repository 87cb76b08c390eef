"""Client-side byte vectors for the NBD tests, written from doc/proto.md.

Deliberately independent of ``titans3.nbd.wire``: every layout is spelled
out here again from the document ("C: 64 bits, IHAVEOPT; C: 32 bits, option;
..."), so a wrong constant in the implementation cannot agree with itself.
"""

from __future__ import annotations

import struct

IHAVEOPT = bytes.fromhex("49484156454F5054")  # ASCII "IHAVEOPT"
NBDMAGIC = bytes.fromhex("4e42444d41474943")  # ASCII "NBDMAGIC"
OPT_REPLY_MAGIC = bytes.fromhex("0003e889045565a9")
REQUEST_MAGIC = bytes.fromhex("25609513")
SIMPLE_MAGIC = bytes.fromhex("67446698")
STRUCTURED_MAGIC = bytes.fromhex("668e33ef")

# option numbers, reply types, commands, flags (doc "Values")
EXPORT_NAME, ABORT, LIST, STARTTLS, INFO, GO, STRUCTURED_REPLY = 1, 2, 3, 5, 6, 7, 8
LIST_META_CONTEXT, SET_META_CONTEXT = 9, 10
REP_ACK, REP_SERVER, REP_INFO, REP_META_CONTEXT = 1, 2, 3, 4
ERR = 1 << 31
REP_ERR_UNSUP, REP_ERR_POLICY, REP_ERR_INVALID = ERR + 1, ERR + 2, ERR + 3
REP_ERR_TLS_REQD, REP_ERR_UNKNOWN, REP_ERR_TOO_BIG = ERR + 5, ERR + 6, ERR + 9
INFO_EXPORT, INFO_NAME, INFO_DESCRIPTION, INFO_BLOCK_SIZE = 0, 1, 2, 3
READ, WRITE, DISC, FLUSH, TRIM, CACHE, WRITE_ZEROES, BLOCK_STATUS = range(8)
FUA, NO_HOLE, DF, REQ_ONE, FAST_ZERO = 1, 2, 4, 8, 16
EPERM, EIO, EINVAL, ENOSPC, EOVERFLOW, ENOTSUP = 1, 5, 22, 28, 75, 95
REPLY_DONE = 1
TYPE_NONE, TYPE_OFFSET_DATA, TYPE_OFFSET_HOLE, TYPE_BLOCK_STATUS = 0, 1, 2, 5
TYPE_ERROR = (1 << 15) + 1


def client_flags(fixed: bool = True, no_zeroes: bool = True) -> bytes:
    return struct.pack(">I", (1 if fixed else 0) | (2 if no_zeroes else 0))


def option(opt: int, data: bytes = b"") -> bytes:
    """C: IHAVEOPT, 32-bit option, 32-bit length, data."""
    return IHAVEOPT + struct.pack(">II", opt, len(data)) + data


def info_go(opt: int, name: str, requests: tuple[int, ...] = ()) -> bytes:
    raw = name.encode()
    body = struct.pack(">I", len(raw)) + raw + struct.pack(">H", len(requests))
    body += b"".join(struct.pack(">H", r) for r in requests)
    return option(opt, body)


def meta(opt: int, name: str, queries: list[str]) -> bytes:
    raw = name.encode()
    body = struct.pack(">I", len(raw)) + raw + struct.pack(">I", len(queries))
    for q in queries:
        body += struct.pack(">I", len(q.encode())) + q.encode()
    return option(opt, body)


def request(cmd: int, offset: int = 0, length: int = 0, *, cookie: int = 1, flags: int = 0,
            data: bytes = b"") -> bytes:
    """C: magic, 16-bit flags, 16-bit type, 64-bit cookie, 64-bit offset, 32-bit length, data."""
    return REQUEST_MAGIC + struct.pack(">HHQQI", flags, cmd, cookie, offset, length) + data


def opt_reply(opt: int, rep: int, data: bytes = b"") -> bytes:
    """S: reply magic, option, reply type, length, data."""
    return OPT_REPLY_MAGIC + struct.pack(">III", opt, rep, len(data)) + data


def parse_opt_replies(raw: bytes) -> list[tuple[int, int, bytes]]:
    out = []
    pos = 0
    while pos < len(raw):
        assert raw[pos : pos + 8] == OPT_REPLY_MAGIC, raw[pos:].hex()
        opt, rep, n = struct.unpack_from(">III", raw, pos + 8)
        out.append((opt, rep, raw[pos + 20 : pos + 20 + n]))
        pos += 20 + n
    return out


def simple_reply(error: int, cookie: int, data: bytes = b"") -> bytes:
    return SIMPLE_MAGIC + struct.pack(">IQ", error, cookie) + data


def parse_transmission(raw: bytes, read_lengths: dict[int, int] | None = None) -> list[tuple]:
    """Split server traffic into ("simple", error, cookie, data) and
    ("chunk", flags, type, cookie, payload).  ``read_lengths``: cookie -> length
    of simple-reply READs (their data has no length field)."""
    out: list[tuple] = []
    pos = 0
    read_lengths = dict(read_lengths or {})
    while pos < len(raw):
        magic = raw[pos : pos + 4]
        if magic == SIMPLE_MAGIC:
            error, cookie = struct.unpack_from(">IQ", raw, pos + 4)
            pos += 16
            n = read_lengths.pop(cookie, 0) if error == 0 else 0
            out.append(("simple", error, cookie, raw[pos : pos + n]))
            pos += n
        elif magic == STRUCTURED_MAGIC:
            flags, kind, cookie, n = struct.unpack_from(">HHQI", raw, pos + 4)
            pos += 20
            out.append(("chunk", flags, kind, cookie, raw[pos : pos + n]))
            pos += n
        else:
            raise AssertionError(f"bad reply magic at {pos}: {raw[pos:pos + 8].hex()}")
    return out
