"""journald's native protocol, received on a real datagram socket."""

from __future__ import annotations

import logging
import socket
import struct
from pathlib import Path

from titans3.core.journal import JournalHandler, encode, wanted


def parse(datagram: bytes) -> dict[str, str]:
    """journald's reading of a native-protocol datagram."""
    out: dict[str, str] = {}
    i = 0
    while i < len(datagram):
        nl = datagram.index(b"\n", i)
        line = datagram[i:nl]
        if b"=" in line:
            k, v = line.split(b"=", 1)
            out[k.decode()] = v.decode()
            i = nl + 1
        else:
            (n,) = struct.unpack("<Q", datagram[nl + 1: nl + 9])
            out[line.decode()] = datagram[nl + 9: nl + 9 + n].decode()
            assert datagram[nl + 9 + n: nl + 10 + n] == b"\n"
            i = nl + 10 + n
    return out


def test_multiline_values_use_the_length_prefixed_form() -> None:
    fields = {"MESSAGE": "one\ntwo", "PRIORITY": "6"}
    assert parse(encode(fields)) == fields
    assert b"MESSAGE\n" + struct.pack("<Q", 7) + b"one\ntwo\n" in encode(fields)


def test_records_carry_level_logger_code_location_traceback_and_extras(tmp_path: Path) -> None:
    path = str(tmp_path / "journal")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    s.settimeout(5)
    handler = JournalHandler(path=path)
    log = logging.getLogger("titans3.test.journal")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("disk %s failed", "/dev/vdb", extra={"t3_drive": "abc123"})
        warn = parse(s.recv(65536))
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("repair failed")
        err = parse(s.recv(65536))
    finally:
        log.removeHandler(handler)
        handler.close()
    assert warn["MESSAGE"] == "disk /dev/vdb failed"
    assert warn["PRIORITY"] == "4" and warn["LOGGER"] == "titans3.test.journal"
    assert warn["SYSLOG_IDENTIFIER"] == "titans3" and warn["T3_DRIVE"] == "abc123"
    assert warn["CODE_FILE"].endswith("test_journal.py") and int(warn["CODE_LINE"]) > 0
    assert err["PRIORITY"] == "3" and "ValueError: boom" in err["TRACEBACK"]


def test_only_when_stderr_is_the_stream_systemd_gave_us() -> None:
    assert not wanted({})
    assert not wanted({"JOURNAL_STREAM": "1:2"})
