"""Users, access keys and identity policies: the account's directory.

Theory of operation
-------------------
TitanS3 has one *account* (AWS's unit of ownership and billing): a 12-digit
id, a canonical user id and a display name, created once per cluster as the
``account`` record; its root user is whoever holds a host's root credentials
(``core/credentials.py``).  Under it live IAM-style *users*: a name (unique
regardless of case, as in IAM), a user id (``AIDA...``), their own canonical
id and display name (what ACL grants and object ``Owner`` elements show), an
optional e-mail address (ACL grants by e-mail), a disabled flag, inline
identity policies, and at most two access keys, each Active or Inactive.

Each user is one record (``user/<lower-case name>``) in the ``iam`` system
table (:mod:`titans3.accounts.register`), changed only by compare-and-set
updates, so two hosts changing one user at once never lose a change.  Key
secrets are sealed (AES-256-GCM, ``titans3.core.crypto.seal``) under the
cluster key (derived from the cluster secret, or the host master key for a
single host), bound to the access key id: a record copied from one key to
another does not open.

**Every host caches the whole directory** -- requests look keys up in a dict,
never on the drives -- and knows its *generation*, the newest version id it
has loaded.  Hosts tell each other their generation on every heartbeat, both
ways (request and answer): a host that sees a newer one reloads the table
from a majority.  A change made on one host therefore reaches every host
within about one heartbeat round trip (it also triggers an immediate
heartbeat round, so in practice one round trip), and a host that was down
loads the current directory before it serves a request.  A reload that does
not find the generation it was told about (a write that failed short of a
majority) is not repeated for that generation.
"""

from __future__ import annotations

import logging
import re
import secrets
import string
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import trio
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from titans3.accounts.register import Envelope, SystemTable
from titans3.core.crypto import seal, unseal
from titans3.core.errors import ConfigError, TitanError
from titans3.iam.evaluate import Identity
from titans3.iam.policy import Policy, PolicyError, parse_policy
from titans3.iam.publicaccess import PublicAccessBlock

log = logging.getLogger(__name__)

__all__ = ["AccessKey", "Account", "Directory", "IamError", "User", "seal_key_for"]

TABLE = "iam"
ACCOUNT_KEY = b"account"
USER_PREFIX = b"user/"
MAX_KEYS = 2
MAX_USER_POLICY_BYTES = 2048  # IAM: aggregate inline policy size per user, whitespace excluded
RELOAD_EVERY = 30.0  # s: a safety net under the heartbeat gossip
_NAME = re.compile(r"[\w+=,.@-]{1,64}")
_POLICY_NAME = re.compile(r"[\w+=,.@-]{1,128}")
_ALNUM = string.ascii_uppercase + string.digits


class IamError(TitanError):
    """An IAM error: ``code`` as the IAM API names it, HTTP ``status``."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status


def no_such_user(name: str) -> IamError:
    return IamError("NoSuchEntity", f"The user with name {name} cannot be found.", 404)


def seal_key_for(*, cluster_secret: str, master_key: bytes) -> bytes:
    """The key user secrets are sealed under: one per cluster (from its secret),
    or the host master key's child for a single host."""
    ikm, info = ((cluster_secret.encode(), b"titans3 iam secrets v1 cluster") if cluster_secret
                 else (master_key, b"titans3 iam secrets v1 host"))  # fmt: skip
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(ikm)


def _random(alphabet: str, n: int) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(n))


@dataclass(frozen=True, slots=True)
class Account:
    id: str
    canonical_id: str
    name: str
    public_access_block: PublicAccessBlock = PublicAccessBlock()

    created: str = ""  # version id of the account's creation: the oldest account wins

    def to_doc(self) -> dict[str, Any]:
        return {"id": self.id, "canonical": self.canonical_id, "name": self.name,
                "pab": self.public_access_block.to_dict(), "created": self.created}  # fmt: skip

    @classmethod
    def from_doc(cls, d: dict[str, Any]) -> Account:
        return cls(d["id"], d["canonical"], d.get("name", "titans3"),
                   PublicAccessBlock.from_dict(d.get("pab") or {}), d.get("created", ""))  # fmt: skip

    @property
    def root_arn(self) -> str:
        return f"arn:aws:iam::{self.id}:root"


@dataclass(frozen=True, slots=True)
class AccessKey:
    id: str
    sealed: str
    status: str  # "Active" | "Inactive"
    created_ns: int

    def to_doc(self) -> dict[str, Any]:
        return {"id": self.id, "sealed": self.sealed, "status": self.status, "t": self.created_ns}


@dataclass(frozen=True, slots=True)
class User:
    name: str
    user_id: str
    canonical_id: str
    created_ns: int
    email: str = ""
    disabled: bool = False
    policies: dict[str, str] = field(default_factory=dict)  # name -> document text
    keys: tuple[AccessKey, ...] = ()

    def to_doc(self) -> dict[str, Any]:
        return {"name": self.name, "id": self.user_id, "canonical": self.canonical_id,
                "t": self.created_ns, "email": self.email, "disabled": self.disabled,
                "policies": dict(self.policies), "keys": [k.to_doc() for k in self.keys]}  # fmt: skip

    @classmethod
    def from_doc(cls, d: dict[str, Any]) -> User:
        keys = tuple(AccessKey(k["id"], k["sealed"], k["status"], k["t"]) for k in d.get("keys") or ())
        return cls(d["name"], d["id"], d["canonical"], d["t"], d.get("email", ""),
                   bool(d.get("disabled")), dict(d.get("policies") or {}), keys)  # fmt: skip

    def arn(self, account: str) -> str:
        return f"arn:aws:iam::{account}:user/{self.name}"


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller: who, and the identity policies that bind them."""

    identity: Identity
    policies: tuple[Policy, ...] = ()
    user: User | None = None

    @property
    def root(self) -> bool:
        return self.identity.kind == "root"


def _user_key(name: str) -> bytes:
    return USER_PREFIX + name.lower().encode()


def check_user_name(name: str) -> None:
    if not _NAME.fullmatch(name or ""):
        raise IamError("ValidationError",
                       "The specified value for userName is invalid. It must contain only alphanumeric "
                       "characters and/or the following: +=,.@_-")  # fmt: skip


class Directory:
    """The cached directory of one host (see module doc)."""

    def __init__(
        self,
        table: SystemTable,
        *,
        seal_key: bytes,
        root_access_key: str,
        older_seal_keys: tuple[bytes, ...] = (),
        root_secret_key: str,
        default_canonical: str = "",
    ) -> None:
        self.table = table
        self._seal_key = seal_key
        # Keys secrets may have been sealed under before (a host's own key, before it
        # was given a cluster secret): tried when opening, never used to seal.
        self._open_keys = (seal_key, *older_seal_keys)
        self.root_access_key = root_access_key
        self._root_secret = root_secret_key
        self._default_canonical = default_canonical  # the owner id shown before users existed
        self.account = Account("", default_canonical, "titans3")
        self._users: dict[str, User] = {}  # lower-case name -> user
        self._by_key: dict[str, tuple[User, AccessKey]] = {}
        self._secrets: dict[str, str] = {}  # active keys of enabled users -> secret
        self._by_canonical: dict[str, User] = {}
        self._by_email: dict[str, User] = {}
        self._principals: dict[str, Principal] = {}  # access key -> parsed principal
        self.generation = ""
        self._wanted = ""  # newest generation a peer told us about
        self._wake = trio.Event()
        self.reloads = 0
        self.on_change: list[Callable[[], None]] = []  # e.g. heartbeat peers now
        self.loaded = False
        self._root_principal: Principal | None = None

    # ------------------------------------------------------------ loading
    async def open(self) -> None:
        """Load the directory, creating the account record the first time."""
        await self.reload()
        if not self.account.id:
            def create(doc: Any) -> Any:
                if doc is not None:
                    return doc  # another host created it first: keep theirs
                return Account(_random(string.digits[1:], 1) + _random(string.digits, 11),
                               self._default_canonical or secrets.token_hex(32), "titans3",
                               created=self.table.clock.new_id()).to_doc()  # fmt: skip

            env = await self.table.update(ACCOUNT_KEY, create)
            self._apply(ACCOUNT_KEY, env)

    async def reload(self) -> None:
        rows = await self.table.list(repair=True, keep=frozenset({ACCOUNT_KEY}))  # see _settle_account
        users: dict[str, User] = {}
        account = Account("", self._default_canonical, "titans3")
        generation = ""
        for key, env in rows.items():
            generation = max(generation, env.vid)
            if env.deleted:
                continue
            if key == ACCOUNT_KEY:
                account = Account.from_doc(env.doc)
            elif key.startswith(USER_PREFIX):
                try:
                    u = User.from_doc(env.doc)
                except (KeyError, TypeError, ValueError) as e:
                    log.error("iam record %r is damaged, ignoring it: %s", key, e)
                    continue
                users[u.name.lower()] = u
        if ACCOUNT_KEY in rows:
            account = await self._settle_account(account)
        self.account = account
        self._rebuild(users)
        self.generation = max(self.generation, generation)
        self.reloads += 1

    async def _settle_account(self, newest: Account) -> Account:
        """A host that joins a cluster brings its own account record; the
        cluster keeps the account that was created first (ids, ARNs and owners
        must not change under existing policies), and the record converges."""
        candidates = [Account.from_doc(e.doc) for e in await self.table.read_versions(ACCOUNT_KEY)
                      if not e.deleted and isinstance(e.doc, dict)]  # fmt: skip
        first = min(candidates, key=lambda a: (a.created or "~", a.id), default=newest)
        if first.id == newest.id:
            return newest
        log.warning("iam: two account records met (a host joined with its own); keeping the older, %s",
                    first.id)  # fmt: skip
        keep = replace(first, public_access_block=newest.public_access_block)
        await self.table.update(ACCOUNT_KEY, lambda _doc: keep.to_doc())
        return keep

    def _rebuild(self, users: dict[str, User]) -> None:
        by_key: dict[str, tuple[User, AccessKey]] = {}
        secrets_: dict[str, str] = {}
        for u in users.values():
            for k in u.keys:
                by_key[k.id] = (u, k)
                if k.status == "Active" and not u.disabled:
                    cached = self._secrets.get(k.id)
                    secret = cached or self._unseal(k)
                    if secret is None:
                        log.error("access key %s of user %s does not open with this host's keys; "
                                  "it cannot be used here", k.id, u.name)  # fmt: skip
                    else:
                        secrets_[k.id] = secret
        self._users = users
        self._by_key = by_key
        self._secrets = secrets_
        self._by_canonical = {u.canonical_id: u for u in users.values()}
        self._by_email = {u.email.lower(): u for u in users.values() if u.email}
        self._principals = {}
        self._root_principal = None

    def use_cluster_secret(self, secret: str, master_key: bytes) -> None:
        """This host joined (or created) a cluster at run time: seal under the
        cluster key from now on, keep opening what the host sealed alone."""
        self._seal_key = seal_key_for(cluster_secret=secret, master_key=master_key)
        self._open_keys = tuple(dict.fromkeys((self._seal_key, *self._open_keys)))
        self._rebuild(self._users)

    def _unseal(self, k: AccessKey) -> str | None:
        for key in self._open_keys:
            try:
                return unseal(key, k.sealed, _purpose(k.id)).decode()
            except ConfigError:
                continue
        return None

    def _apply(self, key: bytes, env: Envelope) -> None:
        """Take one record we just wrote into the cache."""
        self.generation = max(self.generation, env.vid)
        if key == ACCOUNT_KEY:
            if not env.deleted:
                self.account = Account.from_doc(env.doc)
            self._root_principal = None
        else:
            users = dict(self._users)
            name = key[len(USER_PREFIX):].decode()
            if env.deleted:
                users.pop(name, None)
            else:
                users[name] = User.from_doc(env.doc)
            self._rebuild(users)
        for cb in self.on_change:
            cb()

    # ------------------------------------------------------------ front processes (titans3/front/)
    def snapshot(self) -> dict[str, Any]:
        """What a front process needs to answer lookups as this directory does
        (its secrets included: fronts are this daemon's own processes)."""
        return {"account": self.account, "users": dict(self._users), "secrets": dict(self._secrets),
                "generation": self.generation, "loaded": self.loaded}

    @classmethod
    def mirror(cls, snap: dict[str, Any], *, root_access_key: str, root_secret_key: str) -> Directory:
        """A directory that only looks up: :meth:`snapshot` of the owner's (no table)."""
        d = cls(None, seal_key=b"", root_access_key=root_access_key,  # type: ignore[arg-type]
                root_secret_key=root_secret_key)
        d.restore(snap)
        return d

    def restore(self, snap: dict[str, Any]) -> None:
        self.account = snap["account"]
        self._secrets = dict(snap["secrets"])  # _rebuild takes cached secrets, unseals nothing
        self._rebuild(dict(snap["users"]))
        self.generation = snap["generation"]
        self.loaded = snap["loaded"]

    # ------------------------------------------------------------ gossip
    def observe(self, generation: str) -> None:
        """A peer has loaded ``generation``: reload if it is newer than ours (and
        than any we were told of before, so a generation that a reload did not
        find -- a write that missed its majority -- is asked for once)."""
        if generation and generation > self.generation and generation > self._wanted:
            self._wanted = generation
            self._wake.set()

    async def open_when_possible(self, *, retry: float = 2.0) -> None:
        """:meth:`open`, retried while too few drives answer.  Until then only the
        root credentials authenticate on this host (users fail closed)."""
        while True:
            try:
                await self.open()
                self.loaded = True
                return
            except TitanError as e:
                log.warning("iam: cannot load the directory yet (%s); only root can sign in; retrying", e)
                await trio.sleep(retry)

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Reload when told of a newer generation (and every ``RELOAD_EVERY`` s)."""
        task_status.started()
        if not self.loaded:
            await self.open_when_possible()
        while True:
            with trio.move_on_after(RELOAD_EVERY):
                await self._wake.wait()
            self._wake = trio.Event()
            try:
                await self.reload()
            except TitanError as e:
                log.warning("reloading the iam directory failed: %s", e)
                await trio.sleep(1.0)

    # ------------------------------------------------------------ lookups (per request)
    def get_secret(self, access_key: str) -> str | None:
        if access_key == self.root_access_key:
            return self._root_secret
        return self._secrets.get(access_key)

    def principal(self, access_key: str) -> Principal | None:
        """The caller behind an access key that authenticated."""
        if access_key == self.root_access_key:
            if self._root_principal is None:
                a = self.account
                self._root_principal = Principal(Identity("root", a.id, a.root_arn, a.canonical_id,
                                                          "", a.id))  # fmt: skip
            return self._root_principal
        hit = self._principals.get(access_key)
        if hit is not None:
            return hit
        found = self._by_key.get(access_key)
        if found is None or access_key not in self._secrets:
            return None
        u = found[0]
        policies = []
        for pname, text in u.policies.items():
            try:
                policies.append(parse_policy(text, resource_policy=False, max_size=None))
            except PolicyError as e:  # stored before a stricter parser: never widen, log
                log.error("policy %s of user %s no longer parses (%s); ignoring it", pname, u.name, e.message)
        p = Principal(Identity("user", self.account.id, u.arn(self.account.id), u.canonical_id, u.name,
                               u.user_id), tuple(policies), u)  # fmt: skip
        self._principals[access_key] = p
        return p

    def canonical_for_email(self, email: str) -> str | None:
        u = self._by_email.get(email.lower())
        return u.canonical_id if u else None

    def display_name(self, canonical_id: str) -> str:
        if canonical_id == self.account.canonical_id:
            return self.account.name
        u = self._by_canonical.get(canonical_id)
        return u.name if u else ""

    def known_canonical(self, canonical_id: str) -> bool:
        return canonical_id == self.account.canonical_id or canonical_id in self._by_canonical

    def user_arn_exists(self, arn: str) -> bool:
        prefix = f"arn:aws:iam::{self.account.id}:user/"
        if not arn.startswith(prefix):
            return True  # another account's principal: AWS cannot check it either
        return arn[len(prefix):].lower() in self._users

    def users(self) -> list[User]:
        return sorted(self._users.values(), key=lambda u: u.name.lower())

    def user(self, name: str) -> User:
        u = self._users.get(name.lower())
        if u is None:
            raise no_such_user(name)
        return u

    def key_owner(self, access_key: str) -> User | None:
        found = self._by_key.get(access_key)
        return found[0] if found else None

    # ------------------------------------------------------------ changes
    async def _change(self, name: str, mutate: Callable[[User | None], User | None]) -> User | None:
        key = _user_key(name)

        def on_doc(doc: Any) -> Any:
            new = mutate(User.from_doc(doc) if doc is not None else None)
            return new.to_doc() if new is not None else None

        env = await self.table.update(key, on_doc)
        self._apply(key, env)
        return None if env.deleted else User.from_doc(env.doc)

    async def create_user(self, name: str, *, email: str = "") -> User:
        check_user_name(name)
        if email and not re.fullmatch(r"[^@\s]+@[^@\s]+", email):
            raise IamError("ValidationError", f"Invalid e-mail address: {email}")
        if email and email.lower() in self._by_email:
            raise IamError("EntityAlreadyExists", f"Another user already has the e-mail address {email}.", 409)

        def create(cur: User | None) -> User:
            if cur is not None:
                raise IamError("EntityAlreadyExists", f"User with name {name} already exists.", 409)
            return User(name, "AIDA" + _random(_ALNUM, 17), secrets.token_hex(32), time.time_ns(), email)

        user = await self._change(name, create)
        assert user is not None
        return user

    async def delete_user(self, name: str, *, force: bool = False) -> None:
        def delete(cur: User | None) -> None:
            if cur is None:
                raise no_such_user(name)
            if not force and cur.keys:
                raise IamError("DeleteConflict", "Cannot delete entity, must delete access keys first.", 409)
            if not force and cur.policies:
                raise IamError("DeleteConflict", "Cannot delete entity, must delete policies first.", 409)
            return None

        await self._change(name, delete)

    async def set_user_disabled(self, name: str, disabled: bool) -> User:
        def change(cur: User | None) -> User:
            if cur is None:
                raise no_such_user(name)
            return replace(cur, disabled=disabled)

        user = await self._change(name, change)
        assert user is not None
        return user

    async def create_key(self, name: str) -> tuple[User, AccessKey, str]:
        secret = _random(string.ascii_letters + string.digits + "+/", 40)
        made: list[AccessKey] = []

        def add(cur: User | None) -> User:
            if cur is None:
                raise no_such_user(name)
            if len(cur.keys) >= MAX_KEYS:
                raise IamError("LimitExceeded", f"Cannot exceed quota for AccessKeysPerUser: {MAX_KEYS}", 409)
            key_id = "AKIA" + _random(_ALNUM, 16)
            made[:] = [AccessKey(key_id, seal(self._seal_key, secret.encode(), _purpose(key_id)), "Active",
                                 time.time_ns())]  # fmt: skip
            return replace(cur, keys=(*cur.keys, made[0]))

        user = await self._change(name, add)
        assert user is not None
        return user, made[0], secret

    def _owner_name(self, key_id: str, name: str | None) -> str:
        if name:
            return name
        owner = self.key_owner(key_id)
        if owner is None:
            raise IamError("NoSuchEntity", f"The Access Key with id {key_id} cannot be found.", 404)
        return owner.name

    async def set_key_status(self, key_id: str, status: str, *, user: str | None = None) -> User:
        if status not in ("Active", "Inactive"):
            raise IamError("ValidationError", "Status must be Active or Inactive")
        name = self._owner_name(key_id, user)

        def change(cur: User | None) -> User:
            if cur is None:
                raise no_such_user(name)
            if not any(k.id == key_id for k in cur.keys):
                raise IamError("NoSuchEntity", f"The Access Key with id {key_id} cannot be found.", 404)
            return replace(cur, keys=tuple(replace(k, status=status) if k.id == key_id else k for k in cur.keys))

        user_ = await self._change(name, change)
        assert user_ is not None
        return user_

    async def delete_key(self, key_id: str, *, user: str | None = None) -> None:
        name = self._owner_name(key_id, user)

        def change(cur: User | None) -> User:
            if cur is None:
                raise no_such_user(name)
            if not any(k.id == key_id for k in cur.keys):
                raise IamError("NoSuchEntity", f"The Access Key with id {key_id} cannot be found.", 404)
            return replace(cur, keys=tuple(k for k in cur.keys if k.id != key_id))

        await self._change(name, change)

    async def put_user_policy(self, name: str, policy_name: str, text: str) -> None:
        if not _POLICY_NAME.fullmatch(policy_name or ""):
            raise IamError("ValidationError", "The specified value for policyName is invalid.")
        try:
            parse_policy(text, resource_policy=False, max_size=None)
        except PolicyError as e:
            raise IamError("MalformedPolicyDocument", e.message) from None

        def change(cur: User | None) -> User:
            if cur is None:
                raise no_such_user(name)
            policies = {**cur.policies, policy_name: text}
            size = sum(len("".join(t.split())) for t in policies.values())
            if size > MAX_USER_POLICY_BYTES:
                raise IamError("LimitExceeded",
                               f"Maximum policy size of {MAX_USER_POLICY_BYTES} bytes exceeded for user {name}", 409)  # fmt: skip
            return replace(cur, policies=policies)

        await self._change(name, change)

    async def delete_user_policy(self, name: str, policy_name: str) -> None:
        def change(cur: User | None) -> User:
            if cur is None:
                raise no_such_user(name)
            if policy_name not in cur.policies:
                raise IamError("NoSuchEntity", f"The user policy with name {policy_name} cannot be found.", 404)
            return replace(cur, policies={k: v for k, v in cur.policies.items() if k != policy_name})

        await self._change(name, change)

    async def set_account_public_access_block(self, pab: PublicAccessBlock | None) -> Account:
        def change(doc: Any) -> Any:
            account = Account.from_doc(doc) if doc else self.account
            return replace(account, public_access_block=pab or PublicAccessBlock()).to_doc()

        env = await self.table.update(ACCOUNT_KEY, change)
        self._apply(ACCOUNT_KEY, env)
        return self.account


def _purpose(key_id: str) -> str:
    return f"titans3/iam-secret/{key_id}"


def iter_policies(user: User) -> Iterable[tuple[str, str]]:
    return sorted(user.policies.items())
