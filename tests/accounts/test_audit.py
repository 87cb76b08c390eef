"""The audit log on the cluster: flushing, resuming, tail, and tamper detection per drive."""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable

from titans3.accounts.audit import AuditLog
from titans3.accounts.journal import Journal, encode_entry
from titans3.accounts.register import Envelope, SystemTable
from titans3.objects.versionid import HybridClock

from ..objects.memdrive import MemDrive


def clock_of() -> Callable[[], HybridClock]:
    clock = HybridClock()  # one host's clock, read by the table on every call
    return lambda: clock


def log_on(drives: list[MemDrive], host: str = "h1", **kw: object) -> AuditLog:
    return AuditLog(SystemTable(lambda: drives, clock_of(), "audit"), host, **kw)  # type: ignore[arg-type]


async def write(log: AuditLog, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        log.record({"user": "alice", "op": "GetObject", "bucket": "b", "key": f"k{i}", "status": 200})


def edit_block(drive: MemDrive, mutate) -> None:
    rows = drive.tables["audit"]
    key = sorted(k for k in rows if k.startswith(b"b/"))[0]
    env = Envelope.unpack(rows[key])
    env.doc["records"] = mutate(list(env.doc["records"]))
    rows[key] = env.pack()


async def test_records_flush_in_blocks_and_the_chain_resumes_after_restart():
    drives = [MemDrive(f"d{i}") for i in range(3)]
    log = log_on(drives, max_block=4)
    await log.open()
    await write(log, 10)
    await log.flush()
    assert log.statistics().pending == 0 and log.flushed_blocks == 3
    again = log_on(drives)
    await again.open()
    assert again.chain.seq == 10
    await write(again, 2, 10)
    tail = await again.tail(5)
    assert [r["seq"] for r in tail] == [8, 9, 10, 11, 12]
    report = await again.verify()
    assert report["ok"] and report["hosts"]["h1"]["records"] == 12


async def test_an_edited_byte_on_one_drive_is_named():
    drives = [MemDrive(f"d{i}") for i in range(3)]
    log = log_on(drives)
    await log.open()
    await write(log, 5)
    await log.flush()
    edit_block(drives[1], lambda recs: [recs[0], recs[1].replace(b'"status":200', b'"status":201'), *recs[2:]])
    report = await log.verify()
    assert not report["ok"]
    (problem,) = report["hosts"]["h1"]["problems"]
    assert problem.startswith("drive d1: block at seq 1: seq 2 was edited"), problem


async def test_a_record_removed_everywhere_is_named():
    drives = [MemDrive(f"d{i}") for i in range(3)]
    log = log_on(drives)
    await log.open()
    await write(log, 5)
    await log.flush()
    for d in drives:
        edit_block(d, lambda recs: recs[:2] + recs[3:])
    report = await log.verify()
    assert not report["ok"]
    assert any("seq 3 missing: seq 2 is followed by seq 4" in p for p in report["hosts"]["h1"]["problems"])


async def test_an_edited_last_record_is_caught_by_the_head():
    drives = [MemDrive(f"d{i}") for i in range(3)]
    log = log_on(drives)
    await log.open()
    await write(log, 3)
    await log.flush()
    for d in drives:
        edit_block(d, lambda recs: [*recs[:2], recs[2].replace(b"alice", b"alicf")])
    report = await log.verify()
    assert any("seq 3 was edited" in p for p in report["hosts"]["h1"]["problems"])


async def test_a_drive_that_missed_a_block_is_not_tampering():
    drives = [MemDrive(f"d{i}") for i in range(3)]
    log = log_on(drives)
    await log.open()
    drives[2].offline = True
    await write(log, 3)
    await log.flush()
    drives[2].offline = False
    await write(log, 3, 3)
    await log.flush()
    assert (await log.verify())["ok"]


async def test_records_reach_journald_in_its_native_protocol(tmp_path):
    path = str(tmp_path / "journal.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(path)
    try:
        drives = [MemDrive(f"d{i}") for i in range(3)]
        log = log_on(drives, journal=Journal(path))
        await log.open()
        await write(log, 1)
        entry = server.recv(65536)
    finally:
        server.close()
    fields = dict(line.split(b"=", 1) for line in entry.split(b"\n") if b"=" in line)
    assert fields[b"SYSLOG_IDENTIFIER"] == b"titans3-audit" and fields[b"TITANS3_SEQ"] == b"1"
    assert fields[b"MESSAGE"] == b"alice GetObject b/k0 -> 200 from -"
    assert b'"prev":"' in fields[b"TITANS3_AUDIT"]


def test_multiline_values_use_the_binary_form():
    raw = encode_entry({"MESSAGE": "a\nb", "X": "1"})
    assert raw == b"MESSAGE\n" + struct.pack("<Q", 3) + b"a\nb\nX=1\n"
