"""The sans-I/O NBD server against byte vectors written from doc/proto.md."""

from __future__ import annotations

import struct

import pytest

from titans3.nbd import events as ev
from titans3.nbd.protocol import LocalProtocolError, ProtocolError, ServerConnection, TLSMode
from titans3.nbd.wire import Cmd, CmdFlag, Errno, Rep, TransmissionFlag

from . import vectors as v

WRITABLE = (TransmissionFlag.SEND_FLUSH | TransmissionFlag.SEND_FUA | TransmissionFlag.SEND_TRIM
            | TransmissionFlag.SEND_WRITE_ZEROES | TransmissionFlag.SEND_FAST_ZERO
            | TransmissionFlag.SEND_CACHE | TransmissionFlag.CAN_MULTI_CONN)
SIZE = 1 << 20


def events(conn: ServerConnection) -> list:
    out = []
    while True:
        e = conn.next_event()
        if e in (ev.NEED_DATA, ev.PAUSED):
            return out
        out.append(e)
        if isinstance(e, ev.Closed):
            return out


def handshake(**kw) -> ServerConnection:
    conn = ServerConnection(**kw)
    conn.initiate()
    conn.receive_data(v.client_flags())
    assert events(conn) == []
    return conn


def info(name: str = "vol", size: int = SIZE, flags: int = WRITABLE, **kw) -> ev.ExportInfo:
    return ev.ExportInfo(name, size, int(flags), **kw)


def transmission(structured: bool = True, flags: int = WRITABLE, meta: bool = True,
                 size: int = SIZE, **kw) -> ServerConnection:
    conn = handshake(**kw)
    if structured:
        conn.receive_data(v.option(v.STRUCTURED_REPLY))
        assert events(conn) == []
        assert v.parse_opt_replies(conn.data_to_send()) == [(v.STRUCTURED_REPLY, v.REP_ACK, b"")]
        if meta:
            conn.receive_data(v.meta(v.SET_META_CONTEXT, "vol", ["base:allocation"]))
            (req,) = events(conn)
            conn.send(ev.MetaContexts(["base:allocation"]))
    conn.receive_data(v.info_go(v.GO, "vol", (v.INFO_BLOCK_SIZE,)))
    (req,) = events(conn)
    assert isinstance(req, ev.ExportRequest) and req.go
    conn.send(info(flags=flags, size=size))
    return conn


# ------------------------------------------------------------------ handshake
def test_greeting_is_nbdmagic_ihaveopt_and_fixed_newstyle_no_zeroes():
    conn = ServerConnection()
    assert conn.initiate() == v.NBDMAGIC + v.IHAVEOPT + bytes.fromhex("0003")


def test_unknown_client_flags_are_a_hard_disconnect():
    conn = ServerConnection()
    conn.initiate()
    conn.receive_data(struct.pack(">I", 4))
    with pytest.raises(ProtocolError):
        conn.next_event()


def test_list_answers_one_server_reply_per_export_then_ack():
    conn = handshake()
    conn.receive_data(v.option(v.LIST))
    assert events(conn) == [ev.ListExports()]
    assert conn.next_event() is ev.PAUSED  # one option at a time
    raw = conn.send(ev.ExportList([ev.ExportEntry("a"), ev.ExportEntry("bb", "desc")]))
    assert raw == (v.opt_reply(v.LIST, v.REP_SERVER, struct.pack(">I", 1) + b"a")
                   + v.opt_reply(v.LIST, v.REP_SERVER, struct.pack(">I", 2) + b"bbdesc")
                   + v.opt_reply(v.LIST, v.REP_ACK))


def test_list_with_data_is_invalid_and_parsing_goes_on():
    conn = handshake()
    conn.receive_data(v.option(v.LIST, b"x") + v.option(v.LIST))
    assert events(conn) == [ev.ListExports()]
    (reply,) = v.parse_opt_replies(conn.data_to_send())
    assert reply[:2] == (v.LIST, v.REP_ERR_INVALID)


def test_unknown_option_gets_err_unsup_and_the_next_option_is_read():
    conn = handshake()
    conn.receive_data(v.option(99, b"whatever") + v.option(v.STRUCTURED_REPLY))
    assert events(conn) == []
    replies = v.parse_opt_replies(conn.data_to_send())
    assert [r[:2] for r in replies] == [(99, v.REP_ERR_UNSUP), (v.STRUCTURED_REPLY, v.REP_ACK)]


def test_bad_option_magic_is_a_hard_disconnect():
    conn = handshake()
    conn.receive_data(b"IHAVEOPX" + struct.pack(">II", v.LIST, 0))
    with pytest.raises(ProtocolError):
        conn.next_event()


def test_oversized_option_is_skipped_unread_and_refused_too_big():
    conn = handshake()
    conn.receive_data(v.IHAVEOPT + struct.pack(">II", v.GO, 10 << 20))
    assert events(conn) == []
    for _ in range(10):
        conn.receive_data(bytes(1 << 20))
        assert conn.buffered == 0  # nothing of it is kept
        events(conn)
    conn.receive_data(v.option(v.STRUCTURED_REPLY))
    events(conn)
    replies = v.parse_opt_replies(conn.data_to_send())
    assert [r[:2] for r in replies] == [(v.GO, v.REP_ERR_TOO_BIG), (v.STRUCTURED_REPLY, v.REP_ACK)]


def test_info_sends_export_block_size_and_requested_name_then_ack_and_stays_in_options():
    conn = handshake()
    conn.receive_data(v.info_go(v.INFO, "vol", (v.INFO_NAME, v.INFO_DESCRIPTION, v.INFO_BLOCK_SIZE)))
    (req,) = events(conn)
    assert req == ev.ExportRequest("vol", go=False, requests=(1, 2, 3))
    raw = conn.send(info(description="a volume", minimum_block=512, preferred_block=4096,
                         maximum_payload=32 << 20))
    flags = 0x0001 | int(WRITABLE)  # HAS_FLAGS; no structured replies: no SEND_DF
    assert v.parse_opt_replies(raw) == [
        (v.INFO, v.REP_INFO, struct.pack(">HQH", v.INFO_EXPORT, SIZE, flags)),
        (v.INFO, v.REP_INFO, struct.pack(">H", v.INFO_NAME) + b"vol"),
        (v.INFO, v.REP_INFO, struct.pack(">H", v.INFO_DESCRIPTION) + b"a volume"),
        (v.INFO, v.REP_INFO, struct.pack(">HIII", v.INFO_BLOCK_SIZE, 512, 4096, 32 << 20)),
        (v.INFO, v.REP_ACK, b""),
    ]
    conn.receive_data(v.option(v.LIST))
    assert events(conn) == [ev.ListExports()]


def test_info_go_with_a_name_length_past_the_data_is_invalid():
    conn = handshake()
    conn.receive_data(v.option(v.GO, struct.pack(">I", 50) + b"abc" + struct.pack(">H", 0)))
    assert events(conn) == []
    assert v.parse_opt_replies(conn.data_to_send())[0][:2] == (v.GO, v.REP_ERR_INVALID)


def test_unknown_export_error_carries_a_message():
    conn = handshake()
    conn.receive_data(v.info_go(v.GO, "nope"))
    events(conn)
    raw = conn.send(ev.OptionError(Rep.ERR_UNKNOWN, "no volume named nope"))
    assert v.parse_opt_replies(raw) == [(v.GO, v.REP_ERR_UNKNOWN, b"no volume named nope")]
    assert conn.phase.name == "OPTIONS"


def test_go_with_structured_replies_adds_send_df_and_enters_transmission():
    conn = handshake()
    conn.receive_data(v.option(v.STRUCTURED_REPLY) + v.info_go(v.GO, "vol"))
    events(conn)
    conn.data_to_send()
    raw = conn.send(info())
    replies = v.parse_opt_replies(raw)
    size, flags = struct.unpack(">QH", replies[0][2][2:])
    assert flags & 0x80 and flags & 1  # SEND_DF, HAS_FLAGS
    assert replies[-1] == (v.GO, v.REP_ACK, b"")
    assert conn.phase.name == "TRANSMISSION"


@pytest.mark.parametrize("no_zeroes", [False, True])
def test_export_name_reply_is_size_flags_and_124_zeroes_unless_no_zeroes(no_zeroes):
    conn = ServerConnection()
    conn.initiate()
    conn.receive_data(v.client_flags(no_zeroes=no_zeroes) + v.option(v.EXPORT_NAME, b"vol"))
    (req,) = events(conn)
    assert req.legacy and req.name == "vol"
    raw = conn.send(info(flags=0))
    assert raw == struct.pack(">QH", SIZE, 1) + (b"" if no_zeroes else bytes(124))


def test_refused_export_name_closes_the_connection():
    conn = handshake()
    conn.receive_data(v.option(v.EXPORT_NAME, b"nope"))
    events(conn)
    assert conn.send(ev.OptionError(Rep.ERR_UNKNOWN)) == b""
    assert events(conn) == [ev.Closed()]


def test_abort_is_acknowledged_and_ends_the_session():
    conn = handshake()
    conn.receive_data(v.option(v.ABORT, b"ignored"))
    assert events(conn) == [ev.Aborted(), ev.Closed()]
    assert conn.data_to_send() == v.opt_reply(v.ABORT, v.REP_ACK)


def test_starttls_is_refused_by_policy_when_tls_is_off():
    conn = handshake()
    conn.receive_data(v.option(v.STARTTLS))
    assert events(conn) == []
    assert v.parse_opt_replies(conn.data_to_send())[0][:2] == (v.STARTTLS, v.REP_ERR_POLICY)


def test_forced_tls_refuses_everything_but_starttls_then_resets_negotiation():
    conn = handshake(tls=TLSMode.REQUIRED)
    conn.receive_data(v.option(v.LIST) + v.option(v.STRUCTURED_REPLY) + v.info_go(v.INFO, "vol"))
    assert events(conn) == []
    assert [r[1] for r in v.parse_opt_replies(conn.data_to_send())] == [v.REP_ERR_TLS_REQD] * 3
    conn.receive_data(v.option(v.STARTTLS))
    assert events(conn) == [ev.StartTLS()]
    assert conn.data_to_send() == v.opt_reply(v.STARTTLS, v.REP_ACK)
    assert conn.tls_active and not conn.structured
    conn.receive_data(v.option(v.STARTTLS) + v.option(v.LIST))
    assert events(conn) == [ev.ListExports()]
    assert v.parse_opt_replies(conn.data_to_send())[0][:2] == (v.STARTTLS, v.REP_ERR_INVALID)


def test_export_name_before_forced_tls_is_a_hard_disconnect():
    conn = handshake(tls=TLSMode.REQUIRED)
    conn.receive_data(v.option(v.EXPORT_NAME, b"vol"))
    with pytest.raises(ProtocolError):
        conn.next_event()


def test_bytes_pipelined_after_starttls_are_a_hard_disconnect():
    conn = handshake(tls=TLSMode.OPTIONAL)
    conn.receive_data(v.option(v.STARTTLS) + v.option(v.LIST))
    with pytest.raises(ProtocolError):
        conn.next_event()


def test_meta_context_needs_structured_replies_first():
    conn = handshake()
    conn.receive_data(v.meta(v.LIST_META_CONTEXT, "vol", []))
    assert events(conn) == []
    assert v.parse_opt_replies(conn.data_to_send())[0][:2] == (v.LIST_META_CONTEXT, v.REP_ERR_INVALID)


def test_list_meta_context_wildcard_and_set_base_allocation():
    conn = handshake()
    conn.receive_data(v.option(v.STRUCTURED_REPLY) + v.meta(v.LIST_META_CONTEXT, "vol", ["base:", "x-other:y"]))
    (req,) = events(conn)
    conn.data_to_send()
    assert req == ev.MetaContextRequest("vol", ("base:", "x-other:y"), select=False)
    raw = conn.send(ev.MetaContexts(["base:allocation"]))
    assert v.parse_opt_replies(raw) == [
        (v.LIST_META_CONTEXT, v.REP_META_CONTEXT, struct.pack(">I", 0) + b"base:allocation"),
        (v.LIST_META_CONTEXT, v.REP_ACK, b""),
    ]
    conn.receive_data(v.meta(v.SET_META_CONTEXT, "vol", ["base:", "base:allocation", "base:nope"]))
    events(conn)
    raw = conn.send(ev.MetaContexts(["base:allocation"]))
    assert v.parse_opt_replies(raw) == [
        (v.SET_META_CONTEXT, v.REP_META_CONTEXT, struct.pack(">I", 1) + b"base:allocation"),
        (v.SET_META_CONTEXT, v.REP_ACK, b""),
    ]


def test_malformed_meta_context_query_lengths_are_invalid():
    conn = handshake()
    conn.receive_data(v.option(v.STRUCTURED_REPLY))
    body = struct.pack(">I", 3) + b"vol" + struct.pack(">I", 1) + struct.pack(">I", 99) + b"base:"
    conn.receive_data(v.option(v.SET_META_CONTEXT, body))
    assert events(conn) == []
    assert v.parse_opt_replies(conn.data_to_send())[-1][:2] == (v.SET_META_CONTEXT, v.REP_ERR_INVALID)


# ------------------------------------------------------------------ transmission
def test_read_with_simple_replies_sends_header_then_data_with_holes_as_zeroes():
    conn = transmission(structured=False)
    conn.receive_data(v.request(v.READ, 4096, 8192, cookie=7))
    (req,) = events(conn)
    assert (req.cmd, req.cookie, req.offset, req.length) == (Cmd.READ, 7, 4096, 8192)
    raw = conn.send(ev.ReadData(7, [b"a" * 4096, 4096]))
    assert raw == v.simple_reply(0, 7, b"a" * 4096 + bytes(4096))


def test_structured_read_uses_offset_data_and_offset_hole_and_flags_the_last_chunk_done():
    conn = transmission()
    conn.receive_data(v.request(v.READ, 4096, 12288, cookie=9))
    (req,) = events(conn)
    raw = conn.send(ev.ReadData(9, [b"x" * 4096, 4096, b"y" * 4096]))
    assert v.parse_transmission(raw) == [
        ("chunk", 0, v.TYPE_OFFSET_DATA, 9, struct.pack(">Q", 4096) + b"x" * 4096),
        ("chunk", 0, v.TYPE_OFFSET_HOLE, 9, struct.pack(">QI", 8192, 4096)),
        ("chunk", v.REPLY_DONE, v.TYPE_OFFSET_DATA, 9, struct.pack(">Q", 12288) + b"y" * 4096),
    ]


def test_dont_fragment_merges_a_read_into_one_data_chunk():
    conn = transmission()
    conn.receive_data(v.request(v.READ, 0, 8192, cookie=3, flags=v.DF))
    events(conn)
    raw = conn.send(ev.ReadData(3, [4096, b"z" * 4096]))
    assert v.parse_transmission(raw) == [
        ("chunk", v.REPLY_DONE, v.TYPE_OFFSET_DATA, 3, struct.pack(">Q", 0) + bytes(4096) + b"z" * 4096)]


def test_many_requests_in_flight_are_answered_out_of_order():
    conn = transmission()
    conn.receive_data(b"".join(v.request(v.WRITE, i * 512, 512, cookie=100 + i, data=bytes([i]) * 512)
                               for i in range(5)) + v.request(v.FLUSH, cookie=200))
    got = events(conn)
    assert [e.cookie for e in got] == [100, 101, 102, 103, 104, 200]
    assert got[3].data == bytes([3]) * 512
    raw = b"".join(conn.send(ev.Done(c)) for c in (200, 104, 100, 102, 101, 103))
    assert [r[2] for r in v.parse_transmission(raw)] == [200, 104, 100, 102, 101, 103]
    assert conn.inflight == 0


@pytest.mark.parametrize("cmd,offset,length,error", [
    (v.READ, SIZE - 512, 1024, v.EINVAL),  # past the end
    (v.WRITE, SIZE, 512, v.ENOSPC),  # writes past the end: ENOSPC
    (v.WRITE_ZEROES, SIZE - 512, 1024, v.ENOSPC),
    (v.TRIM, SIZE, 512, v.EINVAL),
    (v.READ, 100, 512, v.EINVAL),  # not aligned to the minimum block
    (v.READ, 0, 100, v.EINVAL),
    (v.FLUSH, 512, 0, v.EINVAL),  # flush offset/length are reserved zero
    (v.BLOCK_STATUS, 0, 0, v.EINVAL),
    (99, 0, 512, v.EINVAL),  # unknown command
])
def test_bad_requests_get_the_documented_error_and_never_reach_the_app(cmd, offset, length, error):
    conn = transmission(structured=False)
    data = bytes(length) if cmd == v.WRITE else b""
    conn.receive_data(v.request(cmd, offset, length, cookie=5, data=data) + v.request(v.FLUSH, cookie=6))
    (req,) = events(conn)
    assert req.cookie == 6
    assert v.parse_transmission(conn.data_to_send()) == [("simple", error, 5, b"")]


def test_flags_a_command_does_not_take_are_einval():
    conn = transmission(structured=False)
    conn.receive_data(v.request(v.READ, 0, 512, cookie=1, flags=v.NO_HOLE)
                      + v.request(v.WRITE, 0, 512, cookie=2, flags=0x80, data=bytes(512))
                      + v.request(v.READ, 0, 512, cookie=3, flags=v.DF))  # DF needs structured replies
    assert events(conn) == []
    assert [r[1] for r in v.parse_transmission(conn.data_to_send())] == [v.EINVAL] * 3


def test_writes_to_a_read_only_export_are_eperm():
    conn = transmission(structured=False, flags=TransmissionFlag.READ_ONLY | TransmissionFlag.SEND_FLUSH)
    conn.receive_data(v.request(v.WRITE, 0, 512, cookie=1, data=bytes(512)))
    assert events(conn) == []
    assert v.parse_transmission(conn.data_to_send()) == [("simple", v.EPERM, 1, b"")]


def test_commands_not_advertised_are_einval():
    conn = transmission(structured=False, flags=TransmissionFlag.SEND_FLUSH)
    conn.receive_data(v.request(v.TRIM, 0, 512, cookie=1) + v.request(v.WRITE_ZEROES, 0, 512, cookie=2))
    assert events(conn) == []
    assert [r[1] for r in v.parse_transmission(conn.data_to_send())] == [v.EINVAL, v.EINVAL]


def test_a_write_above_the_maximum_payload_is_skipped_unread_and_refused():
    conn = transmission(structured=False)
    conn.receive_data(v.request(v.WRITE, 0, 64 << 20, cookie=1))
    assert events(conn) == []
    for _ in range(64):
        conn.receive_data(bytes(1 << 20))
        assert conn.buffered == 0
        assert events(conn) == []
    conn.receive_data(v.request(v.FLUSH, cookie=2))
    assert [e.cookie for e in events(conn)] == [2]
    assert v.parse_transmission(conn.data_to_send()) == [("simple", v.EINVAL, 1, b"")]


def test_reads_above_the_maximum_payload_are_eoverflow():
    conn = transmission(size=1 << 30)
    conn.receive_data(v.request(v.READ, 0, 64 << 20, cookie=1))
    events(conn)
    (chunk,) = v.parse_transmission(conn.data_to_send())
    assert chunk[:4] == ("chunk", v.REPLY_DONE, v.TYPE_ERROR, 1)
    assert struct.unpack_from(">I", chunk[4])[0] == v.EOVERFLOW


def test_structured_errors_carry_the_message():
    conn = transmission()
    conn.receive_data(v.request(v.WRITE, 0, 512, cookie=4, data=bytes(512)))
    events(conn)
    raw = conn.send(ev.Failed(4, Errno.EIO, "quorum lost"))
    ((_, flags, kind, cookie, payload),) = v.parse_transmission(raw)
    assert (flags, kind, cookie) == (v.REPLY_DONE, v.TYPE_ERROR, 4)
    assert payload == struct.pack(">IH", v.EIO, 11) + b"quorum lost"


def test_block_status_sends_one_chunk_for_base_allocation_and_req_one_clips_it():
    conn = transmission()
    conn.receive_data(v.request(v.BLOCK_STATUS, 0, 8192, cookie=1)
                      + v.request(v.BLOCK_STATUS, 0, 8192, cookie=2, flags=v.REQ_ONE))
    a, b = events(conn)
    raw = conn.send(ev.BlockStatus(1, [(4096, 3), (4096, 0), (1 << 20, 3)]))
    assert v.parse_transmission(raw) == [
        ("chunk", v.REPLY_DONE, v.TYPE_BLOCK_STATUS, 1, struct.pack(">IIIII", 1, 4096, 3, 4096, 0))]
    raw = conn.send(ev.BlockStatus(2, [(1 << 20, 3)]))
    assert v.parse_transmission(raw) == [
        ("chunk", v.REPLY_DONE, v.TYPE_BLOCK_STATUS, 2, struct.pack(">III", 1, 8192, 3))]


def test_block_status_without_a_selected_context_is_einval():
    conn = transmission(meta=False)
    conn.receive_data(v.request(v.BLOCK_STATUS, 0, 4096, cookie=1))
    assert events(conn) == []
    ((_, flags, kind, cookie, payload),) = v.parse_transmission(conn.data_to_send())
    assert kind == v.TYPE_ERROR and struct.unpack_from(">I", payload)[0] == v.EINVAL


def test_contexts_set_for_another_export_do_not_count():
    conn = handshake()
    conn.receive_data(v.option(v.STRUCTURED_REPLY) + v.meta(v.SET_META_CONTEXT, "other", ["base:allocation"]))
    events(conn)
    conn.send(ev.MetaContexts(["base:allocation"]))
    conn.receive_data(v.info_go(v.GO, "vol"))
    events(conn)
    conn.send(info())
    conn.data_to_send()
    conn.receive_data(v.request(v.BLOCK_STATUS, 0, 4096, cookie=1))
    assert events(conn) == []
    assert v.parse_transmission(conn.data_to_send())[0][2] == v.TYPE_ERROR


def test_zero_length_requests_are_answered_at_once():
    conn = transmission()
    conn.receive_data(v.request(v.READ, 0, 0, cookie=1) + v.request(v.WRITE, 0, 0, cookie=2))
    assert events(conn) == []
    assert v.parse_transmission(conn.data_to_send()) == [
        ("chunk", v.REPLY_DONE, v.TYPE_NONE, 1, b""), ("simple", 0, 2, b"")]


def test_at_most_max_inflight_requests_are_handed_out():
    conn = transmission(max_inflight=2)
    conn.receive_data(b"".join(v.request(v.READ, 0, 512, cookie=i) for i in range(4)))
    assert [e.cookie for e in events(conn)] == [0, 1]
    assert conn.next_event() is ev.PAUSED
    conn.send(ev.ReadData(0, [512]))
    assert [e.cookie for e in events(conn)] == [2]


def test_disc_ends_transmission_and_later_bytes_are_ignored():
    conn = transmission()
    conn.receive_data(v.request(v.DISC) + b"garbage after disc")
    assert events(conn) == [ev.Disconnect(), ev.Closed()]


def test_eof_between_messages_is_closed_but_inside_one_is_a_protocol_error():
    conn = transmission()
    conn.receive_data(b"")
    assert events(conn) == [ev.Closed()]
    conn = transmission()
    conn.receive_data(v.request(v.WRITE, 0, 4096, cookie=1, data=bytes(100)))
    assert events(conn) == []
    conn.receive_data(b"")
    with pytest.raises(ProtocolError):
        conn.next_event()


def test_bad_request_magic_is_a_hard_disconnect():
    conn = transmission()
    conn.receive_data(b"\x12\x56\x09\x53" + bytes(24))  # the historic request magic
    with pytest.raises(ProtocolError):
        conn.next_event()


def test_answers_that_do_not_fit_are_local_errors():
    conn = transmission()
    with pytest.raises(LocalProtocolError):
        conn.send(ev.Done(12345))
    conn.receive_data(v.request(v.READ, 0, 1024, cookie=1))
    events(conn)
    with pytest.raises(LocalProtocolError):
        conn.send(ev.ReadData(1, [512]))


def test_request_flags_and_fua_are_visible_on_the_event():
    conn = transmission()
    conn.receive_data(v.request(v.WRITE_ZEROES, 0, 4096, cookie=1, flags=v.FUA | v.NO_HOLE | v.FAST_ZERO))
    (req,) = events(conn)
    assert req.fua and req.flags & CmdFlag.FAST_ZERO and req.flags & CmdFlag.NO_HOLE
