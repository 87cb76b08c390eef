"""The audit log: every host's hash chain, kept on the cluster, shipped to journald.

Theory of operation
-------------------
Each authenticated request and admin action becomes one record of this
host's chain (:mod:`titans3.iam.auditchain`): time, user, access key, source
address, operation, bucket/key, status, bytes in and out, request id.
:meth:`AuditLog.record` appends in memory (no I/O on the request path beyond
one non-blocking journald datagram) and a background task flushes what
accumulated every ``flush_every`` seconds (or at ``max_block`` records) as one
*block* in the ``audit`` system table -- written to every drive of the
cluster, acknowledged by a majority -- followed by the host's *head* (last
sequence number and hash).  A block that could not reach a majority stays
queued and is retried; nothing is dropped unless the queue passes
``max_pending`` (then the oldest records go, counted and logged, and journald
still has them).  A crash loses at most the records of the last flush
interval from the cluster copy.

Keys: ``b/<host>/<first seq, 16 hex>`` for blocks (so a host's blocks list in
order), ``h/<host>`` for its head.  Each block also names the block before
it, so ``tail`` walks back from the head without listing the table.

**Verification** (:meth:`AuditLog.verify`) reads every drive's copy of every
block, not just a majority's: for each block it looks for a copy that
continues the chain and reports every other copy as damaged, naming the
drive -- so an edited byte or a removed record on one disk is found even
though the other copies are intact, and a block a drive merely missed (it was
down) is not mistaken for tampering.  A block whose every copy breaks the
chain, a missing range of sequence numbers and a head the records do not
reach are reported too.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgpack
import trio

from titans3.accounts.journal import Journal
from titans3.accounts.register import Envelope, SystemTable
from titans3.core.errors import DriveError, TitanError
from titans3.iam import auditchain
from titans3.iam.auditchain import GENESIS, Chain

log = logging.getLogger(__name__)

__all__ = ["AuditLog", "AuditStatistics"]

TABLE = "audit"


def _block_key(host: str, first_seq: int) -> bytes:
    return f"b/{host}/{first_seq:016x}".encode()


def _head_key(host: str) -> bytes:
    return f"h/{host}".encode()


@dataclass(frozen=True, slots=True)
class AuditStatistics:
    records: int  # appended since start
    pending: int  # not yet on the cluster
    flushed_blocks: int
    dropped: int
    journal_sent: int
    journal_dropped: int
    last_seq: int


class AuditLog:
    def __init__(
        self, table: SystemTable, host: str, *, journal: Journal | None = None,
        flush_every: float = 1.0, max_block: int = 1000, max_pending: int = 200_000,
    ) -> None:  # fmt: skip
        self.table = table
        self.host = host
        self.journal = journal
        self.flush_every = flush_every
        self.max_block = max_block
        self.max_pending = max_pending
        self.chain = Chain(host)
        self._pending: list[bytes] = []
        self._pending_first = 1  # seq of _pending[0]
        self._last_block = 0  # first seq of the last block written (0: none)
        self._wake = trio.Event()
        self._lock = trio.Lock()
        self.records = 0
        self.flushed_blocks = 0
        self.dropped = 0
        self.opened = False
        self._early: list[dict[str, Any]] = []  # recorded before the chain's end was known

    # ------------------------------------------------------------ start
    async def open(self) -> None:
        """Continue this host's chain where the cluster copy ends."""
        head = await self.table.read(_head_key(self.host))
        seq, prev, block = 0, GENESIS, 0
        if head is not None and not head.deleted:
            seq, prev, block = int(head.doc["seq"]), str(head.doc["hash"]), int(head.doc["block"])
        # A crash between a block and its head: the block is there, the head behind it.
        nxt = await self.table.read(_block_key(self.host, seq + 1))
        if nxt is not None and not nxt.deleted and nxt.doc["records"]:
            last = nxt.doc["records"][-1]
            seq, prev, block = int(auditchain.decode(last)["seq"]), auditchain.digest(last), seq + 1
        self.chain = Chain(self.host, seq=seq, prev=prev)
        self._pending_first = seq + 1
        self._last_block = block
        self.opened = True
        early, self._early = self._early, []
        for doc in early:
            self._append(doc)

    async def open_when_possible(self, *, retry: float = 2.0) -> None:
        """:meth:`open`, retried while too few drives answer (a host restarted
        while the cluster is short of a majority); records wait meanwhile."""
        while True:
            try:
                await self.open()
                return
            except TitanError as e:
                log.warning("audit: cannot read this host's chain yet (%s); retrying", e)
                await trio.sleep(retry)

    # ------------------------------------------------------------ appending
    def record(self, fields: Mapping[str, Any]) -> None:
        now = time.time()
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z"
        doc = {"time": stamp, **{k: v for k, v in fields.items() if v is not None}}
        if not self.opened:
            if len(self._early) < self.max_pending:
                self._early.append(doc)
            else:
                self.dropped += 1
            return
        self._append(doc)

    def _append(self, doc: dict[str, Any]) -> None:
        raw = self.chain.append(doc)
        self._pending.append(raw)
        self.records += 1
        if len(self._pending) > self.max_pending:
            drop = len(self._pending) - self.max_pending
            del self._pending[:drop]
            self._pending_first += drop
            self.dropped += drop
            log.error("audit: %d records could not reach the cluster and were dropped "
                      "(journald has them)", drop)  # fmt: skip
        if self.journal is not None:
            self.journal.send(_message(doc), {"TITANS3_AUDIT": raw, "TITANS3_SEQ": self.chain.seq,
                                              "TITANS3_USER": str(doc.get("user", "")),
                                              "TITANS3_OP": str(doc.get("op", ""))})  # fmt: skip
        if len(self._pending) >= self.max_block:
            self._wake.set()

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        if not self.opened:
            await self.open_when_possible()
        try:
            while True:
                with trio.move_on_after(self.flush_every):
                    await self._wake.wait()
                self._wake = trio.Event()
                try:
                    await self.flush()
                except TitanError as e:
                    log.warning("audit: flushing to the cluster failed, will retry: %s", e)
        finally:
            with trio.CancelScope(shield=True), contextlib.suppress(TitanError):
                await self.flush()

    async def flush(self) -> None:
        if not self.opened:
            return
        async with self._lock:
            while self._pending:
                batch = self._pending[: self.max_block]
                first = self._pending_first
                doc = {"records": batch, "prev_block": self._last_block}
                await self.table.write(_block_key(self.host, first), doc)
                last = first + len(batch) - 1
                await self.table.write(_head_key(self.host), {
                    "seq": last, "hash": auditchain.digest(batch[-1]), "block": first})  # fmt: skip
                del self._pending[: len(batch)]
                self._pending_first = last + 1
                self._last_block = first
                self.flushed_blocks += 1

    def statistics(self) -> AuditStatistics:
        j = self.journal
        return AuditStatistics(self.records, len(self._pending), self.flushed_blocks, self.dropped,
                               j.sent if j else 0, j.dropped if j else 0, self.chain.seq)  # fmt: skip

    # ------------------------------------------------------------ reading
    async def hosts(self) -> list[str]:
        heads = await self.table.list(b"h/")
        return sorted(k.decode()[2:] for k in heads)

    async def tail(self, limit: int = 50, *, host: str | None = None) -> list[dict[str, Any]]:
        """The last ``limit`` records of ``host`` (default: this host), oldest first,
        including those not yet flushed."""
        host = host or self.host
        out: list[bytes] = list(self._pending) if host == self.host else []
        head = await self.table.read(_head_key(host))
        block = int(head.doc["block"]) if head is not None and not head.deleted else 0
        while block and len(out) < limit:
            env = await self.table.read(_block_key(host, block))
            if env is None or env.deleted:
                break
            out = list(env.doc["records"]) + out
            block = int(env.doc.get("prev_block", 0))
        return [auditchain.decode(r) for r in out[-limit:]] if limit > 0 else []

    async def verify(self) -> dict[str, Any]:
        """Every drive's copy checked (module doc); ``{"ok", "hosts": {...}}``."""
        await self.flush()
        drives = self.table.drives
        blocks: dict[str, dict[int, dict[bytes, list[str]]]] = {}
        heads: dict[str, Envelope] = {}
        unreadable: list[str] = []
        for i, d in enumerate(drives):
            name = _drive_name(d, i)
            try:
                rows = await self.table.scan_drive(d)
            except DriveError as e:
                unreadable.append(f"{name}: {e}")
                continue
            for key, raw in rows:
                text = key.decode("utf-8", "replace")
                kind, _, rest = text.partition("/")
                try:
                    env = Envelope.unpack(raw)
                except (ValueError, KeyError, TypeError, msgpack.UnpackException):
                    host = rest.rsplit("/", 1)[0] if kind == "b" else rest
                    blocks.setdefault(host, {}).setdefault(-1, {}).setdefault(raw, []).append(name)
                    continue
                if kind == "h":
                    if rest not in heads or env.vid > heads[rest].vid:
                        heads[rest] = env
                elif kind == "b":
                    host, _, first = rest.rpartition("/")
                    copy = msgpack.packb(env.doc.get("records", []), use_bin_type=True)
                    blocks.setdefault(host, {}).setdefault(int(first, 16), {}).setdefault(copy, []).append(name)
        report: dict[str, Any] = {"ok": not unreadable, "hosts": {}, "unreadable_drives": unreadable}
        for host in sorted(set(blocks) | set(heads)):
            head = heads.get(host)
            head_pair = (int(head.doc["seq"]), str(head.doc["hash"])) if head is not None else None
            result = _verify_host(blocks.get(host, {}), head_pair)
            report["hosts"][host] = result
            report["ok"] = report["ok"] and not result["problems"]
        return report


def _verify_host(blocks: dict[int, dict[bytes, list[str]]], head: tuple[int, str] | None) -> dict[str, Any]:
    problems: list[str] = []
    for copy, names in blocks.pop(-1, {}).items():
        problems.append(f"{', '.join(names)}: an audit block that does not decode ({len(copy)} bytes)")
    seq, prev = 1, GENESIS
    checked = 0
    order = sorted(blocks)
    for n, first in enumerate(order):
        copies = sorted(blocks[first].items(), key=lambda kv: -len(kv[1]))  # most-held first
        # What the chain says this block must end with: the next block's first prev, or the head.
        after: str | None = head[1] if head is not None and n == len(order) - 1 else None
        if n + 1 < len(order):
            nxt = msgpack.unpackb(max(blocks[order[n + 1]].items(), key=lambda kv: len(kv[1]))[0], raw=False)
            with contextlib.suppress(ValueError, KeyError, TypeError, IndexError):
                after = str(auditchain.decode(nxt[0])["prev"])
        fits: list[tuple[bytes, list[str], int, str, int]] = []
        problems_here: dict[bytes, str] = {}
        for copy, names in copies:
            records = msgpack.unpackb(copy, raw=False)
            v = auditchain.verify(records, first_seq=seq, first_prev=prev)
            if v.ok and records:
                fits.append((copy, names, v.last_seq, auditchain.digest(records[-1]), v.checked))
            else:
                problems_here[copy] = v.problem or "an empty block"
        good = next((f for f in fits if f[3] == after), fits[0] if fits else None)
        for copy, names in copies:
            if good is not None and copy == good[0]:
                continue
            problem = problems_here.get(copy) or (
                "this copy differs from the copy that continues the chain (a record was edited or removed)")
            problems.append(f"{', '.join(names)}: block at seq {first}: {problem}")
        if good is None:
            # No copy continues the chain: resynchronise on the block's own last record.
            records = msgpack.unpackb(copies[0][0], raw=False)
            if records:
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    seq = int(auditchain.decode(records[-1])["seq"]) + 1
                prev = auditchain.digest(records[-1])
            continue
        seq, prev = good[2] + 1, good[3]
        checked += good[4]
    if head is not None:
        head_seq, head_hash = head
        if head_seq > seq - 1:
            gone = f"seq {seq}" if head_seq == seq else f"seq {seq}..{head_seq}"
            problems.append(f"{gone} missing at the end (the head records seq {head_seq})")
        elif head_seq == seq - 1 and head_hash != prev:
            problems.append(f"seq {head_seq} was edited (its hash is not the one the head records)")
    return {"records": checked, "last_seq": seq - 1, "problems": problems}


def _drive_name(d: Any, i: int) -> str:
    """How a problem names the drive: its id and where it is (path, or host:index)."""
    name = getattr(d, "drive_id", "") or f"drive {i}"
    if getattr(d, "root", None) is not None:
        return f"drive {name} ({d.root})"
    peer = getattr(d, "peer", None)
    if peer is not None:
        return f"drive {name} ({peer.address} #{getattr(d, 'index', '?')})"
    return f"drive {name}"


def _message(doc: Mapping[str, Any]) -> str:
    where = doc.get("bucket") or ""
    if doc.get("key"):
        where += "/" + str(doc["key"])
    return (f"{doc.get('user', '-')} {doc.get('op', '-')} {where or '-'} -> {doc.get('status', '-')}"
            f" from {doc.get('src', '-')}")  # fmt: skip
