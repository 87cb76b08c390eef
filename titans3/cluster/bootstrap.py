"""Becoming a cluster at run time: create one, issue join tokens, join with one.

Theory of operation
-------------------
The first-boot flow (status page, or ``titanctl cluster create/token/join-token``)
turns a standalone host into a cluster member without a restart and without a
shell.  Three operations, each on a running host:

* :func:`create_cluster` -- a standalone host becomes a one-host cluster: a
  fresh cluster secret (sealed under the host master key in
  ``<state>/cluster-secret.json``, read back at every start by
  :func:`with_saved_secret`), the peer listener armed with it, and a cluster
  document naming this host (its ring is the ring it already had, so no data
  moves).  From then on it is an ordinary member: ``titanctl cluster join``
  and join tokens work against it.
* :class:`JoinTokens` -- a member issues short-lived single-use tokens and
  answers :func:`redeem` (see :mod:`titans3.cluster.jointoken` for the
  protocol) with the sealed secret.  Tokens live in this host's memory only.
* :func:`join_with_token` -- the new host redeems a token at the member, stores
  and arms the secret, drops the system records it held alone (the cluster's
  apply from now on, e.g. the admin password), and asks the member with a
  signed call (:func:`join_request`) to run the ordinary join for its address
  (``Membership.join``: heartbeat, next ring, publish; the move runs in the
  background with progress on every page).

Arming means two things: ``host.config`` gets the secret (every ``Cluster``
and ``Signer`` made later uses it) and ``host.peer_service`` (the peer
listener's state) starts verifying signatures with it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import secrets
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import httpx
import trio

from titans3.cluster import jointoken
from titans3.cluster.leases import ClusterChangeRefused
from titans3.core import tls
from titans3.core.config import Config, parse_hostport
from titans3.core.crypto import load_or_create_master_key, seal, unseal, write_atomic
from titans3.core.errors import ConfigError, DriveError
from titans3.drive import wire
from titans3.objects.sysrecord import forget_local
from titans3.ring.evolve import ring_to_doc

if TYPE_CHECKING:
    from titans3.cluster.host import HostServices as Host

log = logging.getLogger(__name__)

SECRET_FILE = "cluster-secret.json"
_PURPOSE = "titans3/cluster-secret"
REDEEM_TARGET = "/peer/v1/join/redeem"
JOIN_TARGET = "/peer/v1/cluster/join-request"
MAX_TOKENS = 16


class SetupRefused(ClusterChangeRefused):
    code = "SetupRefused"
    default_message = "This host cannot take this setup step now."


# ------------------------------------------------------------------ the secret
def with_saved_secret(cfg: Config) -> Config:
    """``cfg`` with the cluster secret saved by a run-time setup (if any, and if
    the operator did not give one)."""
    if cfg.cluster_secret:
        return cfg
    path = cfg.state_path / SECRET_FILE
    if not path.exists():
        return cfg
    try:
        doc = json.loads(path.read_text())
        secret = unseal(load_or_create_master_key(cfg.state_path), doc["sealed"], _PURPOSE).decode()
    except (ValueError, KeyError) as e:
        raise ConfigError(f"state_dir: {path} is damaged ({e})") from None
    return dataclasses.replace(cfg, cluster_secret=secret)


def save_secret(cfg: Config, secret: str) -> None:
    master = load_or_create_master_key(cfg.state_path)
    doc = {"sealed": seal(master, secret.encode(), _PURPOSE)}
    write_atomic(cfg.state_path / SECRET_FILE, json.dumps(doc).encode())


def arm(host: Host, secret: str) -> None:
    host.config = dataclasses.replace(host.config, cluster_secret=secret)
    svc = getattr(host, "peer_service", None)
    if svc is not None:
        svc.set_secret(secret)


def _membership(host: Host) -> Any:
    from titans3.cluster.membership import membership_of

    return membership_of(host)


def _check_address(address: str) -> str:
    host, port = parse_hostport(address.strip(), "address")
    if host in ("0.0.0.0", "::", ""):
        raise SetupRefused(f"{address!r}: give the address other hosts reach this one at, not a wildcard")
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def default_address(cfg: Config, hostname: str = "") -> str:
    """This host's peer address as others would use it, when config says it."""
    host, port = parse_hostport(cfg.peer_listen, "peer_listen")
    if host not in ("0.0.0.0", "::", ""):
        return cfg.peer_listen
    return f"{hostname}:{port}" if hostname else ""


# ------------------------------------------------------------------ create
def _start_member(host: Host, cluster: Any, ms: Any) -> None:
    cluster.membership = ms
    host.workers["cluster"] = cluster
    queue = host.workers.get("heal-queue")
    if queue is not None:  # a host that comes back gets what it missed at once
        cluster.on_peer_up.append(queue.wake_deferred)
    nursery = host.store._background
    if nursery is not None:
        nursery.start_soon(cluster.run)
        nursery.start_soon(ms.run)


async def create_cluster(host: Host, address: str) -> dict[str, Any]:
    """Make this standalone host a one-host cluster reachable at ``address``."""
    from titans3.cluster.membership import Membership, hosts_doc, save_doc, wire_store
    from titans3.cluster.peers import Cluster, HostEntry

    if _membership(host) is not None:
        raise SetupRefused("this host is already a cluster member")
    address = _check_address(address)
    secret = host.config.cluster_secret or secrets.token_urlsafe(32)
    if not host.config.cluster_secret:
        save_secret(host.config, secret)
    arm(host, secret)
    store = host.store
    entry = HostEntry(address, host.host_id, len(host.drives))
    sch = store.scheme
    doc = {"version": store.ring.version, "hosts": hosts_doc([entry]), "ring": ring_to_doc(store.ring),
           "old_ring": None, "ec": [sch.k, sch.m, sch.segment_size], "leaving": [], "coordinator": None}
    cluster = Cluster(host.config, host)
    for p in cluster.peers.values():
        await p.aclose()
    cluster.peers = {}
    save_doc(host.config.state_path, doc)
    ms = Membership(cluster, doc)
    wire_store(cluster, store, doc)
    _start_member(host, cluster, ms)
    log.info("cluster created: this host (%s) is its first member at %s", host.host_id, address)
    return ms.summary()


# ------------------------------------------------------------------ tokens (member side)
class JoinTokens:
    """Tokens this member issued and not yet redeemed (memory only)."""

    def __init__(self) -> None:
        self._by_id: dict[bytes, jointoken.JoinToken] = {}
        self.issued = self.redeemed = self.refused = 0

    def issue(self, address: str, *, now: float | None = None,
              ttl: float = jointoken.TTL) -> jointoken.JoinToken:
        now = time.time() if now is None else now
        self._sweep(now)
        if len(self._by_id) >= MAX_TOKENS:
            oldest = min(self._by_id.values(), key=lambda t: t.expires)
            del self._by_id[oldest.token_id]
        tok = jointoken.make(address, now, ttl)
        self._by_id[tok.token_id] = tok
        self.issued += 1
        return tok

    def _sweep(self, now: float) -> None:
        for tid in [t for t, tok in self._by_id.items() if tok.expires < now]:
            del self._by_id[tid]

    def get(self, token_id: bytes) -> jointoken.JoinToken | None:
        return self._by_id.get(token_id)

    def spend(self, token_id: bytes) -> None:
        self._by_id.pop(token_id, None)
        self.redeemed += 1

    @property
    def outstanding(self) -> int:
        self._sweep(time.time())
        return len(self._by_id)


def tokens_of(host: Host) -> JoinTokens:
    ms = _membership(host)
    if ms is None:
        raise SetupRefused("only a cluster member issues join tokens: create a cluster first")
    cluster = ms.cluster
    tokens = getattr(cluster, "join_tokens", None)
    if tokens is None:
        tokens = cluster.join_tokens = JoinTokens()
    return tokens


def issue_token(host: Host) -> dict[str, Any]:
    ms = _membership(host)
    tokens = tokens_of(host)
    address = ms.cluster.self_address
    if not address:
        raise SetupRefused("this host does not know its own peer address yet")
    tok = tokens.issue(address)
    return {"token": jointoken.encode(tok), "address": address, "expires": tok.expires}


async def redeem(host: Host, raw: bytes) -> dict[str, Any]:
    """The peer route: a new host redeems a token; the sealed secret in return."""
    ms = _membership(host)
    if ms is None:
        raise jointoken.TokenError("this host is not a cluster member")
    tokens = tokens_of(host)
    req = jointoken.parse_request(raw)
    tok = tokens.get(req["i"])
    if tok is None:
        tokens.refused += 1
        raise jointoken.TokenError("unknown, used or expired join token: make a new one")
    try:
        jointoken.check_request(tok, req, now=time.time())
        _check_address(req["a"])
    except (jointoken.TokenError, SetupRefused) as e:
        tokens.refused += 1
        raise jointoken.TokenError(str(e)) from None
    if any(h["address"] == req["a"] or h["host_id"] == req["h"] for h in ms.doc["hosts"]):
        raise jointoken.TokenError(f"{req['a']} (host {req['h']}) is already a member")
    tokens.spend(tok.token_id)
    log.info("join token redeemed by host %s at %s", req["h"], req["a"])
    cfg = host.config
    payload = {"secret": cfg.cluster_secret, "segment_size": cfg.segment_size,
               "ec": list(ms.doc["ec"]), "member": ms.cluster.self_address,
               "hosts": [h["address"] for h in ms.doc["hosts"]]}
    return jointoken.seal_answer(tok, req, payload)


async def join_request(host: Host, raw: bytes, sender: str) -> dict[str, Any]:
    """The peer route (signed): a host that redeemed a token asks to be joined."""
    ms = _membership(host)
    if ms is None:
        raise ValueError("this host is not a cluster member")
    doc = wire.unpack(raw)
    address = _check_address(str(doc.get("address", "")))
    probe = ms.cluster.new_peer(address)
    try:
        info = await probe.heartbeat()
    except DriveError as e:
        raise ValueError(f"{address} does not answer signed heartbeats: {e}") from None
    finally:
        await probe.aclose()
    if info.get("host_id") != sender:
        raise ValueError(f"{address} answers as host {info.get('host_id')}, the request came from {sender}")
    return await ms.join(address)


# ------------------------------------------------------------------ joining (new host side)
async def join_with_token(host: Host, token: str, *, member: str = "", address: str,
                          forget: Sequence[str] = ()) -> dict[str, Any]:
    """Join the cluster ``token`` is for; ``address`` is this host's peer address.
    ``forget``: system records this host held alone that the cluster's replace."""
    from titans3.drive.remote import PeerClient, Timeouts
    from titans3.peer.auth import Signer

    if _membership(host) is not None:
        raise SetupRefused("this host is already a cluster member")
    try:
        tok = jointoken.decode(token)
    except jointoken.TokenError as e:
        raise SetupRefused(str(e)) from None
    member = _check_address(member or tok.address)
    address = _check_address(address)
    if await host.store.buckets.list():
        raise SetupRefused("this host holds buckets; only an empty host can join a cluster")
    req = jointoken.redeem_request(tok, joiner_address=address, joiner_host=host.host_id,
                                   now=time.time())
    cfg = host.config
    scheme = "https" if cfg.tls_ca else "http"
    try:
        async with httpx.AsyncClient(timeout=10.0, trust_env=False,
                                     verify=tls.client_context(cfg) or True) as http:
            resp = await http.post(f"{scheme}://{member}{REDEEM_TARGET}",
                                   content=wire.pack({k: v for k, v in req.items()}))
    except httpx.HTTPError as e:
        raise SetupRefused(f"cannot reach the member at {member}: {type(e).__name__}") from None
    answer = _unpack(resp.content)
    if resp.status_code != 200:
        why = answer.get("message") if isinstance(answer, dict) else resp.text[:200]
        raise SetupRefused(f"the member refused the token: {why}")
    try:
        payload = jointoken.open_answer(tok, req, answer)
    except jointoken.TokenError as e:
        raise SetupRefused(str(e)) from None
    if int(payload.get("segment_size", 0)) != cfg.segment_size:
        raise SetupRefused(f"the cluster runs with segment_size {payload.get('segment_size')}, "
                           f"this host with {cfg.segment_size}")
    secret = str(payload["secret"])
    save_secret(cfg, secret)
    arm(host, secret)
    await forget_records(host, forget)
    peer = PeerClient(member, Signer(secret, host.host_id), timeouts=Timeouts(read=120.0),
                      **tls.peer_client_options(host.config))
    try:
        resp = await peer._send("POST", JOIN_TARGET, wire.pack({"address": address}))
    except DriveError as e:
        raise SetupRefused(f"the member did not answer the join request: {e}") from None
    finally:
        await peer.aclose()
    body = _unpack(resp.content)
    if resp.status_code != 200:
        why = body.get("message") if isinstance(body, dict) else ""
        raise SetupRefused(f"the member refused the join: {why}")
    with trio.move_on_after(30):  # the member's push makes this host a member
        while _membership(host) is None:
            await trio.sleep(0.1)
    with trio.move_on_after(10):  # and the first heartbeats make its drives reachable
        while not getattr(host.workers["cluster"].peers.get(member), "online", False):
            await trio.sleep(0.1)
    log.info("joined the cluster through %s as %s", member, address)
    return body if isinstance(body, dict) else {}


async def forget_records(host: Host, names: Sequence[str]) -> None:
    for name in names:
        await forget_local(name, list(host.drives))


def _unpack(raw: bytes) -> Any:
    try:
        return wire.unpack(raw)
    except Exception:  # noqa: BLE001 -- not our body (a proxy page): the caller reports the status
        return None
