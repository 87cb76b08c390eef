"""The audit log: every request and admin action recorded, shipped to journald's
socket, and ``titanctl audit verify`` failing -- and saying where -- when one
byte of a record on a disk is edited or a record is removed.

Tampering is done the way an intruder with the disks would: the daemon is
stopped and the drive's LMDB (``drive-N/index.lmdb``, table ``meta:audit``) is
edited in place with the lmdb module, then the daemon is started again.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import lmdb
import msgpack

from .access import code_of, curl, make_user, titanctl
from .cluster import Daemon, s3_client


def journal_entries(sock: socket.socket) -> list[dict[bytes, bytes]]:
    out = []
    sock.setblocking(False)
    while True:
        try:
            raw = sock.recv(65536)
        except BlockingIOError:
            return out
        out.append(dict(line.split(b"=", 1) for line in raw.split(b"\n") if b"=" in line))


def edit_audit_blocks(drive: Path, change: Callable[[list[bytes]], list[bytes]]) -> int:
    """Apply ``change`` to the records of every audit block on one drive; blocks changed."""
    env = lmdb.open(str(drive / "index.lmdb"), max_dbs=32, subdir=True, lock=True)
    changed = 0
    try:
        db = env.open_db(b"meta:audit", create=False)
        with env.begin(write=True, db=db) as txn:
            for key, raw in list(txn.cursor()):
                if not key.startswith(b"b/"):
                    continue
                env_doc = msgpack.unpackb(raw, raw=False)
                new = change(list(env_doc["doc"]["records"]))
                if new != env_doc["doc"]["records"]:
                    env_doc["doc"]["records"] = new
                    txn.put(key, msgpack.packb(env_doc, use_bin_type=True))
                    changed += 1
    finally:
        env.close()
    return changed


def test_requests_are_recorded_shipped_and_tampering_is_found(daemon_factory, tmp_path: Path) -> None:  # noqa: ANN001
    path = str(tmp_path / "journal.sock")
    journal = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    journal.bind(path)
    try:
        d: Daemon = daemon_factory(drives=4, env={"TITANS3_AUDIT_JOURNAL": path})
        s3 = s3_client(d)
        s3.create_bucket(Bucket="audited")
        s3.put_object(Bucket="audited", Key="doc.txt", Body=b"12345")
        creds, _ = make_user(d.endpoint, "auditee")
        user = s3_client(d, creds)
        assert code_of(lambda: user.get_object(Bucket="audited", Key="doc.txt")) == "AccessDenied"
        assert curl(f"{d.endpoint}/audited/doc.txt")[0] == 403
        tail = json.loads(titanctl(d.endpoint, "audit", "tail", "--limit", "100", "--json").stdout)["records"]
        seen = {(r.get("user"), r.get("op"), r.get("status")) for r in tail}
        assert ("root", "PutObject", 200) in seen and ("root", "CreateBucket", 200) in seen
        assert ("auditee", "GetObject", 403) in seen and ("anonymous", "GetObject", 403) in seen
        assert any(r.get("op") == "Admin" and r.get("admin") == "v1/users/create"
                   and r.get("args") == {"name": "auditee", "email": ""} for r in tail)  # fmt: skip
        put = next(r for r in tail if r.get("op") == "PutObject")
        assert put["bucket"] == "audited" and put["object"] == "doc.txt" and put["bytes_in"] == 5
        assert put["src"] == "127.0.0.1" and put["key"] == d.credentials.access_key
        assert [r["seq"] for r in tail] == list(range(tail[0]["seq"], tail[0]["seq"] + len(tail)))
        shipped = journal_entries(journal)
        assert any(e.get(b"TITANS3_OP") == b"PutObject" and e.get(b"TITANS3_USER") == b"root" for e in shipped)
        assert all(b'"prev":"' in e[b"TITANS3_AUDIT"] for e in shipped)
        ok = titanctl(d.endpoint, "audit", "verify")
        assert ok.returncode == 0 and "records verified" in ok.stdout, ok.stderr
        # A burst, so some block holds 3+ records whatever the machine's load
        # (blocks are flushed every second; a slow run writes one or two per block).
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda _: s3.head_object(Bucket="audited", Key="doc.txt"), range(32)))
        user.close()
        s3.close()

        # One byte of one record on one disk.
        d.stop()
        edited = edit_audit_blocks(d.drive_dir(1), lambda recs: [
            r.replace(b'"status":403', b'"status":200', 1) if b'"user":"auditee"' in r else r for r in recs])
        assert edited == 1
        d.start()
        bad = titanctl(d.endpoint, "audit", "verify", check=False)
        assert bad.returncode == 1, bad.stdout
        assert "FAILED" in bad.stderr and f"({d.drive_dir(1)})" in bad.stderr, bad.stderr
        assert "was edited" in bad.stderr and str(d.drive_dir(0)) not in bad.stderr, bad.stderr
        # Put it back, then remove one record from every copy.
        d.stop()
        edit_audit_blocks(d.drive_dir(1), lambda recs: [
            r.replace(b'"status":200', b'"status":403', 1) if b'"user":"auditee"' in r else r for r in recs])
        removed_seq: list[int] = []

        def drop_third(recs: list[bytes]) -> list[bytes]:
            if len(recs) < 3:
                return recs
            removed_seq.append(json.loads(recs[2])["seq"])
            return recs[:2] + recs[3:]

        for i in range(4):
            edit_audit_blocks(d.drive_dir(i), drop_third)
        assert removed_seq, "no audit block with 3 records to remove one from"
        d.start()
        assert titanctl(d.endpoint, "audit", "verify", check=False).returncode == 1
        bad = titanctl(d.endpoint, "audit", "verify", check=False)
        seq = removed_seq[0]
        assert f"seq {seq} missing: seq {seq - 1} is followed by seq {seq + 1}" in bad.stderr, bad.stderr
    finally:
        journal.close()
