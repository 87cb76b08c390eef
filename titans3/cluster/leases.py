"""Asking the cluster for the change lease (the trio side of :mod:`changelock`).

:class:`Leases` is a part :class:`titans3.cluster.membership.Membership`
holds: ``changing()`` holds a majority lease on the current document version
while a change is built and published (refused with 409 otherwise),
``grant()`` is the peer route's side.  It owns the leases this host granted
(``change_lock``) and reads the document through :class:`Document` -- the
membership it is handed, typed without importing it.  The rules themselves are
pure, in :class:`titans3.cluster.changelock.ChangeLock`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import trio

from titans3.cluster.changelock import ChangeLock, majority
from titans3.core.errors import DriveError, S3Error
from titans3.drive.wire import pack, unpack

if TYPE_CHECKING:
    from titans3.cluster.peers import Cluster

LEASE_TARGET = "/peer/v1/cluster/lease"


class ClusterChangeRefused(S3Error):
    code = "ClusterChangeRefused"
    status = 409
    default_message = "The cluster cannot make this change now."


class Document(Protocol):
    """What the lease code reads of the membership it serves."""

    doc: dict[str, Any]  # the cluster document this host has

    @property
    def version(self) -> int: ...

    @property
    def me(self) -> str: ...

    async def adopt(self, doc: dict[str, Any]) -> bool:
        """Take a newer document (one a refusing peer sent back)."""
        ...


class Leases:
    """The change lease: asking peers for it, and granting it to them."""

    def __init__(self, cluster: Cluster, members: Document) -> None:
        self.cluster = cluster
        self.members = members
        self.change_lock = ChangeLock()  # leases this host granted (cluster/changelock.py)
        self._changing = trio.Lock()  # one change built here at a time

    @property
    def version(self) -> int:
        return self.members.version

    @property
    def me(self) -> str:
        return self.members.me

    def grant(self, raw: bytes) -> dict[str, Any]:
        """The peer route: another host asks for (or releases) a lease."""
        req = unpack(raw)
        holder, base = str(req["holder"]), int(req["base"])
        if req.get("op") == "release":
            self.change_lock.release(holder, base)
            return {"granted": False, "released": True, "version": self.version}
        ans = self.change_lock.grant(holder, base, self.version, trio.current_time())
        out = {"granted": ans.granted, "reason": ans.reason, "version": ans.version,
               "holder": ans.holder}
        if not ans.granted and self.version > base:
            out["doc"] = self.members.doc  # the asker is behind: here is what it missed
        return out

    async def _ask_all(self, op: str, base: int, voters: Sequence[str]) -> list[tuple[str, Any]]:
        body = pack({"op": op, "holder": self.me, "base": base})
        answers: list[tuple[str, Any]] = []

        async def ask(address: str) -> None:
            peer = self.cluster.peers.get(address)
            if peer is None:
                answers.append((address, DriveError(address, "not a known peer")))
                return
            try:
                resp = await peer._send("POST", LEASE_TARGET, body)
                if resp.status_code != 200:
                    raise DriveError(address, f"HTTP {resp.status_code}")
                answers.append((address, unpack(resp.content)))
            except DriveError as e:
                answers.append((address, e))

        async with trio.open_nursery() as nursery:
            for a in voters:
                nursery.start_soon(ask, a)
        return answers

    @contextlib.asynccontextmanager
    async def changing(self) -> AsyncIterator[None]:
        """Hold a majority lease on the current version while building and
        publishing its successor; refused (409) otherwise."""
        async with self._changing:
            base = self.version
            granted = await self._acquire(base)
            try:
                yield
            except BaseException:
                with trio.CancelScope(shield=True):
                    await self._release(base, granted)
                raise

    async def confirm(self) -> None:
        """Check, under a lease taken and given back at once, that this host's
        document is still the cluster's newest (a restarted coordinator)."""
        async with self._changing:
            base = self.version
            granted = await self._acquire(base)
            await self._release(base, granted)

    async def _acquire(self, base: int) -> list[str]:
        """Lease ``base`` from a majority of its members; the hosts that granted."""
        voters = sorted({h["address"] for h in self.members.doc["hosts"]})
        need = majority(len(voters))
        mine = self.change_lock.grant(self.me, base, base, trio.current_time())
        if not mine.granted:
            raise ClusterChangeRefused(mine.reason)
        granted = [self.me] if self.me in voters else []
        refusals: list[str] = []
        newer: dict[str, Any] | None = None
        for address, ans in await self._ask_all("acquire", base, [v for v in voters if v != self.me]):
            if isinstance(ans, Exception):
                refusals.append(f"{address}: {ans}")
            elif ans.get("granted"):
                granted.append(address)
            else:
                refusals.append(f"{address}: {ans.get('reason')}")
                doc = ans.get("doc")
                if doc and int(doc["version"]) > base and (
                        newer is None or int(doc["version"]) > int(newer["version"])):
                    newer = doc
        if newer is None and len(granted) >= need:
            return granted
        with trio.CancelScope(shield=True):
            await self._release(base, granted)
        if newer is not None:  # our own lease is gone, so the newer document is admitted
            with contextlib.suppress(ValueError):
                await self.members.adopt(newer)
            raise ClusterChangeRefused(
                f"this host was behind (version {base}); it now has version {self.version} "
                "-- check `titanctl cluster status` and retry")
        raise ClusterChangeRefused(
            f"{len(granted)} of the {need} hosts needed agreed to a change of version {base}: "
            + "; ".join(refusals))

    async def _release(self, base: int, granted: Sequence[str]) -> None:
        self.change_lock.release(self.me, base)
        with trio.move_on_after(5):
            await self._ask_all("release", base, [g for g in granted if g != self.me])
