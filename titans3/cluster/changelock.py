"""The change lock: one membership change at a time, cluster-wide (sans-I/O).

Theory of operation
-------------------
Every new cluster document (join, remove, next epoch, retirement, a
coordinator taking over) is built from the current one, version ``v``, as
version ``v + 1``.  Two hosts building ``v + 1`` at the same time would push
two different documents under one version number, and hosts adopt only
*newer* versions -- the cluster would split over which ring it runs.

So before building ``v + 1`` a host must hold a *lease on base* ``v`` from a
strict majority of the members of ``v`` (itself included).  A host grants a
lease when

* its own document is exactly version ``v`` (a requester that is behind is
  refused and told the newer version; one that is ahead is refused too -- it
  has to wait until this host adopts, which a push does within seconds), and
* it holds no unexpired lease for another holder.

Two majorities of the same member list overlap, so at most one host holds a
majority lease for base ``v`` while the leases live: only one ``v + 1`` is
ever built.  A lease is released when its holder publishes (the version moved
on, so the lease no longer matches anything) or gives up (explicit release);
a holder that dies leaves a lease that expires after ``ttl`` seconds.

Safety relies on the holder publishing within ``ttl`` of being granted
(milliseconds in practice: the document is built in memory and pushed at
once); a host also refuses to *adopt* a document for base ``v`` made by
anyone other than the holder of its unexpired lease on ``v`` (:meth:`admits`),
so a late publisher whose lease was overtaken is refused by the hosts that
moved on to the next holder.

:class:`ChangeLock` is the per-host state: values and a clock in, decisions
out.  The trio side (asking peers, the route) is in
:mod:`titans3.cluster.membership`.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_TTL = 30.0  # seconds a granted lease lives without its holder publishing


@dataclass(frozen=True, slots=True)
class Lease:
    holder: str  # the peer address of the host that may build base + 1
    base: int  # the document version it builds on
    expires: float  # monotonic seconds


@dataclass(frozen=True, slots=True)
class Answer:
    granted: bool
    reason: str = ""
    version: int = 0  # the granter's document version (a refused requester may be behind)
    holder: str = ""  # who holds the lease, when that is why


def majority(members: int) -> int:
    """Grants needed among ``members`` voters (a strict majority)."""
    return members // 2 + 1


class ChangeLock:
    def __init__(self, ttl: float = DEFAULT_TTL) -> None:
        if ttl <= 0:
            raise ValueError("lease ttl must be > 0")
        self.ttl = ttl
        self.lease: Lease | None = None

    def current(self, now: float) -> Lease | None:
        if self.lease is not None and self.lease.expires <= now:
            self.lease = None
        return self.lease

    def grant(self, holder: str, base: int, version: int, now: float) -> Answer:
        """``holder`` asks for a lease on ``base``; this host's document is ``version``."""
        if base != version:
            why = "behind" if base < version else "ahead"
            return Answer(False, f"the requester's document is {why}: this host has version "
                                 f"{version}, the request builds on {base}", version)
        cur = self.current(now)
        if cur is not None and cur.holder != holder and cur.base == base:
            return Answer(False, f"{cur.holder} is changing the cluster (version {base} -> "
                                 f"{base + 1})", version, cur.holder)
        self.lease = Lease(holder, base, now + self.ttl)
        return Answer(True, "", version, holder)

    def release(self, holder: str, base: int) -> None:
        cur = self.lease
        if cur is not None and cur.holder == holder and cur.base == base:
            self.lease = None

    def admits(self, made_by: str | None, base: int, now: float) -> bool:
        """May a document built on ``base`` by ``made_by`` be adopted here?  Not
        while another host holds this host's lease on that base."""
        cur = self.current(now)
        return cur is None or cur.base != base or cur.holder == made_by
