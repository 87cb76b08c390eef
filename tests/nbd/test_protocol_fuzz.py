"""Property test: random and mutated byte streams never break the NBD server.

Whatever bytes arrive, in whatever pieces, the connection either produces
events, replies and ``NEED_DATA``/``PAUSED`` or raises :class:`ProtocolError`
(the hard disconnect) -- never another exception, never a hang (every call
returns), and never buffers more than one message plus one received piece.
A scripted application answers every event the way the real server would,
so the streams reach deep into the transmission phase.

``NBD_FUZZ_EXAMPLES`` raises the number of examples (the CI default is small;
``scripts/nbd-torture.sh`` runs a long campaign).
"""

from __future__ import annotations

import os
import random
import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from titans3.nbd import events as ev
from titans3.nbd.protocol import MAX_OPTION_DATA, ProtocolError, ServerConnection, TLSMode
from titans3.nbd.wire import Cmd, Errno, Rep, State, TransmissionFlag

from . import vectors as v

EXAMPLES = int(os.environ.get("NBD_FUZZ_EXAMPLES", "300"))
MAX_PAYLOAD = 8192
SIZE = 1 << 20
FLAGS = int(TransmissionFlag.SEND_FLUSH | TransmissionFlag.SEND_FUA | TransmissionFlag.SEND_TRIM
            | TransmissionFlag.SEND_WRITE_ZEROES | TransmissionFlag.SEND_FAST_ZERO | TransmissionFlag.SEND_CACHE)
RUNS = {"n": 0}


def answer(conn: ServerConnection, e: object, rng: random.Random) -> bytes:
    """What the real server would say to ``e`` (sometimes an error)."""
    if isinstance(e, ev.ListExports):
        return conn.send(ev.ExportList([ev.ExportEntry("vol", "a volume"), ev.ExportEntry("vol@s")]))
    if isinstance(e, ev.ExportRequest):
        if e.name not in ("vol", "") or rng.random() < 0.1:
            return conn.send(ev.OptionError(Rep.ERR_UNKNOWN, f"no export {e.name!r}"))
        return conn.send(ev.ExportInfo("vol", SIZE, FLAGS, minimum_block=512, preferred_block=4096,
                                       maximum_payload=MAX_PAYLOAD))
    if isinstance(e, ev.MetaContextRequest):
        return conn.send(ev.MetaContexts(["base:allocation"]))
    if isinstance(e, ev.Request):
        seq = e.seq  # cookies repeat in these streams: name the request
        if rng.random() < 0.1:
            return conn.send(ev.Failed(e.cookie, Errno.EIO, "injected", seq=seq))
        if e.cmd is Cmd.READ:
            half = e.length // 2
            return conn.send(ev.ReadData(e.cookie, [bytes(half), e.length - half], seq=e.seq))
        if e.cmd is Cmd.BLOCK_STATUS:
            return conn.send(ev.BlockStatus(e.cookie, [(e.length, int(State.HOLE | State.ZERO))], seq=seq))
        return conn.send(ev.Done(e.cookie, seq=seq))
    return b""


def drive(stream: bytes, pieces: list[int], seed: int, tls: TLSMode) -> None:
    rng = random.Random(seed)
    conn = ServerConnection(tls=tls, max_inflight=8)
    out = [conn.initiate()]
    pos = 0
    held: list[ev.Request] = []  # requests answered later, out of order
    steps = 0
    try:
        while True:
            steps += 1
            assert steps < 4 * len(stream) + 1000, "no progress"
            e = conn.next_event()
            out.append(conn.data_to_send())
            if e is ev.NEED_DATA:
                if pos >= len(stream):
                    conn.receive_data(b"")
                    continue
                n = pieces[steps % len(pieces)] if pieces else len(stream)
                chunk = stream[pos : pos + n]
                pos += len(chunk)
                conn.receive_data(chunk)
                # One message (header + the largest payload kept) plus this piece.
                assert conn.buffered <= max(MAX_OPTION_DATA + 16, MAX_PAYLOAD + 28) + len(chunk)
                continue
            if e is ev.PAUSED:
                if held:
                    out.append(answer(conn, held.pop(rng.randrange(len(held))), rng))
                    continue
                e = None
            if isinstance(e, ev.Request) and rng.random() < 0.5:
                held.append(e)
                continue
            if isinstance(e, ev.Closed | ev.Aborted | ev.Disconnect):
                break
            if isinstance(e, ev.StartTLS):
                continue  # the adapter would wrap the stream; the bytes go on in the clear here
            if e is not None:
                out.append(answer(conn, e, rng))
        for r in held:
            out.append(answer(conn, r, rng))
    except ProtocolError:
        pass
    RUNS["n"] += 1
    assert all(isinstance(b, bytes) for b in out)


def valid_session(rng: random.Random) -> bytes:
    """A plausible client session from the vectors: options, then requests."""
    parts = [v.client_flags(no_zeroes=rng.random() < 0.5)]
    for _ in range(rng.randrange(4)):
        parts.append(rng.choice([
            v.option(v.LIST), v.option(v.STRUCTURED_REPLY), v.option(99, b"xyz"),
            v.info_go(v.INFO, "vol", (v.INFO_BLOCK_SIZE, v.INFO_NAME)),
            v.meta(v.LIST_META_CONTEXT, "vol", ["base:"]), v.option(v.STARTTLS),
        ]))
    parts.append(v.option(v.STRUCTURED_REPLY))
    parts.append(v.meta(v.SET_META_CONTEXT, "vol", ["base:allocation"]))
    parts.append(v.info_go(v.GO, "vol", (v.INFO_BLOCK_SIZE,)) if rng.random() < 0.9 else
                 v.option(v.EXPORT_NAME, b"vol"))
    for _ in range(rng.randrange(1, 20)):
        cmd = rng.choice([v.READ, v.WRITE, v.FLUSH, v.TRIM, v.CACHE, v.WRITE_ZEROES, v.BLOCK_STATUS, 42])
        length = rng.choice([0, 512, 4096, MAX_PAYLOAD, 2 * MAX_PAYLOAD, 1 << 21])
        offset = rng.choice([0, 512, 4096, SIZE - 4096, SIZE, 7])
        flags = rng.choice([0, 0, v.FUA, v.DF, v.REQ_ONE, v.FAST_ZERO | v.NO_HOLE, 0x4000])
        data = bytes(length) if cmd == v.WRITE and length <= 2 * MAX_PAYLOAD else b""
        parts.append(v.request(cmd, offset, length, cookie=rng.randrange(4), flags=flags, data=data))
    if rng.random() < 0.5:
        parts.append(v.request(v.DISC))
    return b"".join(parts)


def mutate(data: bytes, rng: random.Random) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randrange(1, 6)):
        op = rng.randrange(5)
        if not buf:
            break
        i = rng.randrange(len(buf))
        if op == 0:
            buf[i] ^= 1 << rng.randrange(8)
        elif op == 1:
            del buf[i : i + rng.randrange(1, 64)]
        elif op == 2:
            buf[i:i] = rng.randbytes(rng.randrange(1, 32))
        elif op == 3:  # a length field blown up
            buf[i : i + 4] = struct.pack(">I", rng.choice([0xFFFFFFFF, 1 << 31, 1 << 25, 65537]))
        else:
            buf = buf[:i]
    return bytes(buf)


pieces = st.lists(st.integers(1, 70_000), min_size=1, max_size=8)
tls_modes = st.sampled_from([TLSMode.OFF, TLSMode.OPTIONAL, TLSMode.REQUIRED])
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(st.binary(max_size=4096), pieces, st.integers(0, 2**32), tls_modes)
def test_random_bytes_are_refused_cleanly(raw, cut, seed, tls):
    drive(raw, cut, seed, tls)


@SETTINGS
@given(st.binary(max_size=2048), pieces, st.integers(0, 2**32))
def test_random_bytes_after_a_valid_handshake(raw, cut, seed):
    prefix = v.client_flags() + v.info_go(v.GO, "vol")
    drive(prefix + raw, cut, seed, TLSMode.OFF)


@SETTINGS
@given(st.integers(0, 2**32), pieces, tls_modes, st.booleans())
def test_mutated_valid_sessions(seed, cut, tls, clean):
    rng = random.Random(seed)
    session = valid_session(rng)
    drive(session if clean else mutate(session, rng), cut, seed, tls)


def test_fuzz_ran():
    assert RUNS["n"] > 0
    print(f"NBD protocol fuzz: {RUNS['n']} streams driven to the end or to a clean ProtocolError")
