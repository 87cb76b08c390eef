"""One writer per volume: a lease in the ``nbd-leases`` system table.

Theory of operation
-------------------
A host attaches a volume for writing only while it holds the volume's lease:
a system record (:mod:`titans3.nbd.register`, compare-and-set on a majority
of the cluster's drives) naming the holder and a wall-clock expiry.  The
holder renews it every quarter of ``duration``; a holder that cannot renew stops
writing before the lease runs out (:meth:`Lease.remaining`), so by the time
another host may take over -- expiry plus ``SKEW`` for clocks that disagree --
the old holder has gone quiet.  A daemon that crashed simply stops renewing:
its lease expires and any host can attach.

The holder is identified by host id *and* a per-process nonce.  A restarted
daemon on the same host takes its own host's lease at once (only one daemon
runs per host, so the old holder is dead); another host must wait for expiry.
A second writer is refused with :class:`~titans3.nbd.catalog.VolumeInUse`
naming the holder and how long its lease has left.

The decisions are pure (:func:`decide`); the record I/O is the register's.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

from titans3.nbd.catalog import VolumeInUse
from titans3.nbd.register import QuorumRegister

TABLE = "nbd-leases"
SKEW = 2.0  # seconds an expired lease is still respected (clocks of two hosts)
NONCE = secrets.token_hex(4)  # this process


@dataclass(frozen=True, slots=True)
class Holder:
    host_id: str
    label: str  # what operators see: the host's NBD/peer address
    nonce: str = NONCE


@dataclass(slots=True)
class Lease:
    volume: str
    holder: Holder
    until_ns: int
    doc: dict[str, Any]

    def remaining(self, now_ns: int | None = None) -> float:
        return (self.until_ns - (now_ns if now_ns is not None else time.time_ns())) / 1e9


def decide(cur: dict[str, Any] | None, me: Holder, duration: float, now_ns: int) -> dict[str, Any]:
    """The lease record to write when ``me`` attaches, or ``VolumeInUse``."""
    if cur is not None and cur.get("host") and int(cur.get("until", 0)) > 0:
        mine = cur.get("host") == me.host_id
        live = now_ns < int(cur["until"]) + SKEW * 1e9
        if live and not mine:
            left = max(0.0, (int(cur["until"]) - now_ns) / 1e9)
            raise VolumeInUse(f"volume is attached for writing on {cur.get('label') or cur['host']} "
                              f"(lease {left:.0f}s left; a crashed host's lease expires by itself); "
                              "attach a snapshot (VOLUME@SNAPSHOT) to read it meanwhile")
    return {"host": me.host_id, "label": me.label, "nonce": me.nonce, "until": now_ns + int(duration * 1e9)}


def holder_of(doc: dict[str, Any] | None, now_ns: int | None = None) -> str | None:
    """The label of the live holder of a lease record, or None."""
    if doc is None or not doc.get("host"):
        return None
    now = now_ns if now_ns is not None else time.time_ns()
    if now >= int(doc.get("until", 0)) + SKEW * 1e9:
        return None
    return str(doc.get("label") or doc["host"])


class Leases:
    def __init__(self, register: QuorumRegister, me: Holder, duration: float) -> None:
        self.register = register
        self.me = me
        self.duration = duration

    async def acquire(self, volume: str) -> Lease:
        now = time.time_ns()
        doc = await self.register.update(volume, lambda cur: decide(cur, self.me, self.duration, now))
        assert doc is not None
        return Lease(volume, self.me, int(doc["until"]), doc)

    async def renew(self, lease: Lease) -> bool:
        """Extend ``lease``; False when another holder has it now (stop writing)."""
        lost = False

        def change(cur: dict[str, Any] | None) -> dict[str, Any] | None:
            nonlocal lost
            if cur is None or cur.get("host") != self.me.host_id or cur.get("nonce") != self.me.nonce:
                lost = True
                return None
            return {**cur, "until": time.time_ns() + int(self.duration * 1e9)}

        doc = await self.register.update(lease.volume, change)
        if lost or doc is None:
            return False
        lease.until_ns, lease.doc = int(doc["until"]), doc
        return True

    async def release(self, lease: Lease) -> None:
        def change(cur: dict[str, Any] | None) -> dict[str, Any] | None:
            if cur is None or cur.get("nonce") != self.me.nonce or cur.get("host") != self.me.host_id:
                return None
            return {"host": "", "label": "", "nonce": "", "until": 0}

        await self.register.update(lease.volume, change)

    async def holder(self, volume: str) -> str | None:
        return holder_of(await self.register.get(volume))

    async def all(self) -> dict[str, str]:
        """Volume name -> live holder label, for every attached volume."""
        now = time.time_ns()
        out = {}
        for name, doc in (await self.register.list()).items():
            h = holder_of(doc, now)
            if h is not None:
                out[name] = h
        return out
