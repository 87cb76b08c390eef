"""Who may use the status page: admin password, sessions, CSRF, rate limit, setup code.

Theory of operation
-------------------
* **One admin password per cluster.**  Its Argon2id hash (argon2-cffi, the
  library's recommended costs) is a cluster-wide system record
  (:mod:`titans3.objects.sysrecord`), so every host of a cluster takes the same
  password, and a host that joins takes the cluster's.  Verifying runs in a
  worker thread, one at a time per host (each costs ~64 MiB and tens of ms):
  a flood of logins can neither stall the event loop nor exhaust memory.
* **Per-host rate limit** (:class:`LoginLimiter`): after ``LIMIT`` (20) wrong
  passwords in a row -- from anyone, the limit is the host's -- logins are
  refused for ``lockout`` seconds without looking at the password; each
  further failure after the pause locks again; a success resets the count.
  The setup code shares the limiter.
* **Sessions** live in this host's memory (:class:`Sessions`): a 256-bit
  random id in a cookie that is ``HttpOnly``, ``SameSite=Strict``, ``Path=/``
  and ``Secure`` when the page is served over TLS.  A login issues a *new* id
  (no session fixation).  Idle sessions end after ``idle`` seconds, any
  session after ``MAX_AGE``.  Logging out, or a restart, ends them; so does a
  new password, on every host: a session remembers the hash it logged in
  under and is an admin session only while that hash is the cluster's.
* **CSRF**: every session -- also the anonymous one that the login and setup
  forms get -- has its own random token; every POST must carry it
  (form field ``csrf`` or header ``X-CSRF-Token``), compared in constant
  time.  SameSite=Strict already keeps the cookie off cross-site requests;
  the token is the second, independent fence (old browsers, same-site
  attackers on another port).
* **Before a password exists** the page answers only clients on loopback --
  unless the first-boot setup code file exists (the appliance writes it and
  shows the code on the console): then anyone who can reach the page may
  enter the code, and only the code unlocks the setup form.  The code is
  single-use: the file is removed once the password is set.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import trio

from titans3.core.crypto import hash_password, verify_password
from titans3.core.errors import QuorumError
from titans3.core.setupcode import SetupCode  # noqa: F401 -- the page's setup code, re-exported
from titans3.objects import ADMIN_PASSWORD, SystemRecords

log = logging.getLogger(__name__)

PASSWORD_RECORD = ADMIN_PASSWORD
MIN_PASSWORD = 10
LIMIT = 20  # wrong passwords in a row before logins pause
MAX_AGE = 12 * 3600.0  # s: no session lives longer
ANONYMOUS_MAX = 512  # pre-login sessions kept (oldest dropped)
COOKIE = "titans3_session"
PASSWORD_CACHE = 2.0  # s "is a password set" is reused (another host may set it)


def is_loopback(address: str | None) -> bool:
    if not address:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def same_token(a: str, b: str) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(a.encode(), b.encode())


class LoginLimiter:
    """Consecutive wrong answers on this host; see the module notes."""

    def __init__(self, *, limit: int = LIMIT, lockout: float = 300.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.lockout = lockout
        self._clock = clock
        self.failures = 0  # in a row
        self.locked_until = 0.0
        self.refused = 0  # attempts turned away while locked

    def wait(self) -> float:
        """Seconds until an attempt is allowed (0: now)."""
        left = self.locked_until - self._clock()
        return left if left > 0 else 0.0

    def refuse(self) -> None:
        self.refused += 1

    def failed(self) -> None:
        self.failures += 1
        if self.failures >= self.limit:
            self.locked_until = self._clock() + self.lockout
            log.warning("status page: %d wrong answers in a row; logins paused for %.0f s",
                        self.failures, self.lockout)

    def succeeded(self) -> None:
        self.failures = 0
        self.locked_until = 0.0


@dataclass
class Session:
    sid: str
    csrf: str
    admin: bool
    created: float
    used: float
    code_ok: bool = False  # this browser entered the setup code
    password: bytes = b""  # the hash an admin session logged in under (a new password ends it)
    notes: list[dict[str, Any]] = field(default_factory=list)  # one-shot messages for the next page
    token: dict[str, Any] | None = None  # the join token this session made last (shown on its page)


class Sessions:
    def __init__(self, *, idle: float = 3600.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.idle = idle
        self._clock = clock
        self._by_id: OrderedDict[str, Session] = OrderedDict()

    def new(self, *, admin: bool = False, code_ok: bool = False, password: bytes = b"") -> Session:
        now = self._clock()
        s = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), admin, now, now, code_ok,
                    password=password)
        self._by_id[s.sid] = s
        anonymous = [k for k, v in self._by_id.items() if not v.admin]
        for k in anonymous[:max(0, len(anonymous) - ANONYMOUS_MAX)]:
            del self._by_id[k]
        return s

    def get(self, sid: str | None) -> Session | None:
        if not sid:
            return None
        s = self._by_id.get(sid)
        if s is None:
            return None
        now = self._clock()
        if now - s.used > self.idle or now - s.created > MAX_AGE:
            del self._by_id[sid]
            return None
        s.used = now
        return s

    def drop(self, sid: str) -> None:
        self._by_id.pop(sid, None)

    def drop_all(self) -> None:
        """A new password ends every session (another host's change shows on the next read)."""
        self._by_id.clear()

    @property
    def logged_in(self) -> int:
        return sum(1 for s in self._by_id.values() if s.admin)


class AdminPassword:
    """The cluster's admin password hash (system record), verified off the loop."""

    def __init__(self, records: SystemRecords, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.records = records
        self._clock = clock
        self._cached: tuple[float, bytes | None] | None = None
        self._last: bytes | None = None  # the newest hash this process has read
        self._verify_limiter = trio.CapacityLimiter(1)

    async def _hash(self) -> bytes | None:
        if self._cached is not None and self._clock() - self._cached[0] < PASSWORD_CACHE:
            return self._cached[1]
        try:
            # Partial: with most of the cluster down the page must still let the
            # operator in (with the newest hash the reachable drives hold).
            value = await self.records.get(PASSWORD_RECORD, partial=True)
        except QuorumError:
            if self._last is None:
                raise
            log.warning("admin password record unreadable (no drive answers); using the last one read")
            value = self._last
        self._cached = (self._clock(), value)
        if value is not None:
            self._last = value
        return value

    def forget(self) -> None:
        """This host joined a cluster: whatever it read before is not the cluster's."""
        self._cached = None
        self._last = None

    async def current(self) -> bytes | None:
        """The hash in force (None: no password); a session is valid only under it."""
        return await self._hash()

    async def is_set(self) -> bool:
        return await self._hash() is not None

    async def verify(self, password: str) -> bytes | None:
        """The hash ``password`` matches (the newest), or None."""
        self._cached = None  # always the newest hash for a login
        hashed = await self._hash()
        if hashed is None or not password:
            return None
        ok = await trio.to_thread.run_sync(verify_password, hashed.decode(), password,
                                           limiter=self._verify_limiter)
        return hashed if ok else None

    async def set(self, password: str) -> bytes:
        hashed = (await trio.to_thread.run_sync(hash_password, password,
                                                limiter=self._verify_limiter)).encode()
        await self.records.put(PASSWORD_RECORD, hashed)
        self._cached = (self._clock(), hashed)
        self._last = hashed
        return hashed


def password_problem(password: str, repeat: str) -> str | None:
    """Why ``password`` cannot be the admin password (None: it can)."""
    if password != repeat:
        return "the two passwords differ"
    if len(password) < MIN_PASSWORD:
        return f"use at least {MIN_PASSWORD} characters"
    if len(password) > 1024:
        return "use at most 1024 characters"
    return None
