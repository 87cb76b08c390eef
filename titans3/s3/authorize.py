"""The authorization step of the S3 front: who may do what, decided once per request.

Theory of operation
-------------------
``S3App.dispatch`` authenticates a request (``titans3.s3.auth``), classifies
it, and then hands it to :meth:`AccessControl.run` instead of calling the
handler directly.  ``run`` decides, attaches what it learned to the context
(``ctx.access``: the caller, the bucket's parsed settings, the ACL a new
object gets), runs the handler, and turns a missing key into AccessDenied
for callers who may not list the bucket, as AWS does (the answer must not
reveal whether a key exists).  Nothing else in the front decides access.

The decision, for a caller (root, a user, or anonymous), an action
(``titans3.s3.access_ops.OPS``), a resource ARN and the request's condition
keys, follows AWS's evaluation logic for one account:

1. an explicit ``Deny`` in the caller's identity policies or the bucket
   policy refuses -- even the root user, except for Get/Put/DeleteBucketPolicy,
   which the account root may always call (AWS's lock-out escape);
2. the root user is allowed everything else;
3. an ``Allow`` in the identity policies or in the bucket policy allows
   (the bucket policy's public statements do not count for anonymous callers
   while RestrictPublicBuckets is on);
4. otherwise ownership and ACLs: the bucket owner may do anything to the
   bucket, and to its objects when Object Ownership is BucketOwnerEnforced
   (ACLs disabled); with ACLs enabled the bucket ACL grants bucket actions
   and object writes, the object's ACL (and its owner's implicit ACP rights)
   object reads -- public grants ignored under IgnorePublicAcls;
5. anything else is AccessDenied.

Fast path.  The root user on a bucket without a policy needs no evaluation at
all: one cached settings lookup.  Parsed bucket settings (owner, policy, ACL,
ownership, Block Public Access) are cached per bucket *record version*, so a
policy is parsed once per change, never per request; condition keys are only
built when a policy is evaluated; an object's ACL is only read when nothing
else allowed the request (or a policy tests ``s3:ExistingObjectTag``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from titans3.core.errors import (
    AccessControlListNotSupported,
    AccessDenied,
    BucketAlreadyExists,
    InvalidArgument,
    InvalidBucketAclWithObjectOwnership,
    InvalidRequest,
    MalformedACLError,
    NoSuchBucket,
    NoSuchKey,
    NoSuchVersion,
    S3Error,
    UnresolvableGrantByEmailAddress,
)
from titans3.iam import acl as acls
from titans3.iam.acl import ACL, AclError
from titans3.iam.actions import ResourceKind
from titans3.iam.evaluate import ANONYMOUS, Decision, Identity, decide
from titans3.iam.policy import Policy, PolicyError, parse_policy
from titans3.iam.publicaccess import ALL_BLOCKED, PublicAccessBlock, policy_is_public
from titans3.s3 import access_ops
from titans3.s3.access_ops import OPS

__all__ = ["Access", "AccessControl", "BucketAccess", "Caller", "StaticDirectory"]

# Names of the access settings in a bucket record's configuration map.
OWNER, OWNERSHIP, BUCKET_ACL, POLICY, PAB = "owner", "ownership", "acl", "policy", "pab"
_POLICY_ESCAPE = frozenset({"s3:getbucketpolicy", "s3:putbucketpolicy", "s3:deletebucketpolicy"})
# Object actions decided by the bucket, not by an existing object's ACL.
_OBJECT_WRITES = frozenset({"s3:putobject", "s3:deleteobject", "s3:deleteobjectversion",
                            "s3:abortmultipartupload", "s3:listmultipartuploadparts"})  # fmt: skip
_NEW_OBJECT_OPS = frozenset({"PutObject", "CopyObject", "CreateMultipartUpload", "PostObject"})
_MISSING = (NoSuchKey, NoSuchVersion)


class Directory(Protocol):
    """What the access rules need from the account directory (titans3.accounts.directory)."""

    account: Any  # .id, .canonical_id, .name, .public_access_block

    def get_secret(self, access_key: str) -> str | None: ...
    def principal(self, access_key: str) -> Any: ...
    def canonical_for_email(self, email: str) -> str | None: ...
    def display_name(self, canonical_id: str) -> str: ...
    def known_canonical(self, canonical_id: str) -> bool: ...
    def user_arn_exists(self, arn: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class Caller:
    """The authenticated caller of one request."""

    identity: Identity
    policies: tuple[Policy, ...] = ()

    @property
    def root(self) -> bool:
        return self.identity.kind == "root"

    @property
    def canonical(self) -> str | None:
        return self.identity.canonical_id or None


ANONYMOUS_CALLER = Caller(ANONYMOUS)


@dataclass(frozen=True, slots=True)
class _StaticAccount:
    id: str
    canonical_id: str
    name: str
    public_access_block: PublicAccessBlock = PublicAccessBlock()


class StaticDirectory:
    """A directory for a fixed credential source with no users: every key it
    knows is the account's root (single-tenant mode, unit tests)."""

    def __init__(self, credentials: Any, owner_id: str, owner_name: str = "titans3") -> None:
        self._credentials = credentials
        self.account = _StaticAccount("000000000000", owner_id, owner_name)
        self.root_access_key = credentials.root_access_key

    def get_secret(self, access_key: str) -> str | None:
        return self._credentials.get_secret(access_key)

    def principal(self, access_key: str) -> Any:
        a = self.account
        return Caller(Identity("root", a.id, f"arn:aws:iam::{a.id}:root", a.canonical_id, "", a.id))

    def canonical_for_email(self, email: str) -> str | None:
        return None

    def display_name(self, canonical_id: str) -> str:
        return self.account.name if canonical_id == self.account.canonical_id else ""

    def known_canonical(self, canonical_id: str) -> bool:
        return canonical_id == self.account.canonical_id

    def user_arn_exists(self, arn: str) -> bool:
        return True


@dataclass(frozen=True, slots=True)
class BucketAccess:
    """A bucket's access settings, parsed once per record version."""

    name: str
    vid: str
    owner: str
    ownership: str
    acl: ACL
    policy: Policy | None
    pab: PublicAccessBlock  # bucket level
    policy_public: bool
    existing_tags: bool  # the policy tests s3:ExistingObjectTag/...

    @property
    def acls_enabled(self) -> bool:
        return self.ownership != acls.ENFORCED


def _uses_existing_tags(policies: tuple[Policy, ...]) -> bool:
    return any(c.key.startswith("s3:existingobjecttag/")
               for p in policies for st in p.statements for c in st.conditions)  # fmt: skip


@dataclass
class Access:
    """What the authorization step learned; ``ctx.access`` for the handlers."""

    control: AccessControl
    caller: Caller
    bucket: BucketAccess | None = None
    new_acl: bytes | None = None  # the ACL a new object is written with (ACLs enabled)
    new_bucket_config: dict[str, bytes] = field(default_factory=dict)  # CreateBucket
    _ctx: Any = None
    _may_list: bool | None = None

    def check(self, action: str, key: str | None) -> None:
        """AccessDenied unless the caller may do ``action`` on ``key`` of this bucket
        (DeleteObjects asks this for every key it deletes)."""
        if not self.allows(action, key):
            raise AccessDenied()

    def allows(self, action: str, key: str | None) -> bool:
        """Whether the caller may do ``action`` on ``key`` of this bucket (a
        permission asked for beside the operation's own, such as
        ``s3:BypassGovernanceRetention``)."""
        return self.control.allowed_without_object(self, action, key)


class AccessControl:
    def __init__(self, *, directory: Directory, store: Any, audit: Any = None) -> None:
        self.directory = directory
        self.store = store
        self.audit = audit
        self._buckets: dict[str, BucketAccess] = {}

    # ------------------------------------------------------------ callers
    def caller(self, access_key: str) -> Caller:
        if not access_key:
            return ANONYMOUS_CALLER
        p = self.directory.principal(access_key)
        if p is None:  # authenticated a moment ago, gone since (revoked): nobody
            raise AccessDenied()
        if isinstance(p, Caller):
            return p
        return Caller(p.identity, tuple(p.policies))

    @property
    def account_pab(self) -> PublicAccessBlock:
        return self.directory.account.public_access_block

    # ------------------------------------------------------------ bucket settings
    def parse_bucket(self, name: str, vid: str, config: Mapping[str, bytes]) -> BucketAccess:
        owner = config.get(OWNER, b"").decode() or self.directory.account.canonical_id
        # No Object Ownership setting: deleted (DeleteBucketOwnershipControls -> ObjectWriter,
        # as on AWS) on a bucket made with an owner; a bucket from before users: the owner's alone.
        ownership = config.get(OWNERSHIP, b"").decode() or ("ObjectWriter" if OWNER in config else acls.ENFORCED)
        raw_acl = config.get(BUCKET_ACL)
        bucket_acl = ACL.unpack(raw_acl) if raw_acl else acls.private(owner)
        policy = None
        if POLICY in config:
            try:
                policy = parse_policy(config[POLICY], resource_policy=True, bucket=name)
            except PolicyError:  # stored under other rules: deny-by-default is the safe reading
                policy = None
        pab = PublicAccessBlock.from_dict(json.loads(config[PAB])) if PAB in config else PublicAccessBlock()
        return BucketAccess(name, vid, owner, ownership, bucket_acl, policy, pab,
                            policy_is_public(policy),
                            _uses_existing_tags((policy,) if policy else ()))  # fmt: skip

    async def bucket_access(self, name: str) -> BucketAccess:
        settings = await self.store.bucket_settings(name)
        hit = self._buckets.get(name)
        if hit is not None and hit.vid == settings.vid:
            return hit
        parsed = self.parse_bucket(name, settings.vid, settings.config)
        if len(self._buckets) > 10_000:
            self._buckets.clear()
        self._buckets[name] = parsed
        return parsed

    def forget(self, name: str) -> None:
        self._buckets.pop(name, None)

    def effective_pab(self, b: BucketAccess) -> PublicAccessBlock:
        return b.pab | self.account_pab

    # ------------------------------------------------------------ the hook
    async def run(self, ctx: Any, handler: Callable[[Any], Any]) -> Any:
        """Authorize ``ctx``'s request, then run ``handler`` (module doc)."""
        access = await self.authorize(ctx)
        ctx.access = access
        try:
            return await handler(ctx)
        except _MISSING:
            if OPS.get(ctx.route.op, ("", None, ResourceKind.BUCKET))[2] is ResourceKind.OBJECT \
                    and not await self.may_list(access):  # fmt: skip
                raise AccessDenied() from None
            raise

    async def authorize(self, ctx: Any) -> Access:
        route = ctx.route
        caller = self.caller(ctx.auth.access_key)
        access = Access(self, caller, _ctx=ctx)
        rule = OPS.get(route.op)
        if route.op in ("PostObject", "PreflightRequest"):
            return access  # the form authorizes a POST (handlers_post); preflights carry no caller
        if rule is None:
            if caller.root:
                return access  # an operation without a rule is root's (and 501 anyway)
            raise AccessDenied()
        action, versioned_action, kind = rule
        if versioned_action is not None and "versionId" in ctx.query:
            action = versioned_action
        if kind is ResourceKind.ACCOUNT:
            self._require_identity(access, action, "arn:aws:s3:::*")
            return access
        if route.op == "CreateBucket":
            await self._authorize_create_bucket(access)
            return access
        try:
            b = access.bucket = await self.bucket_access(route.bucket)
        except NoSuchBucket:
            return access  # the handler answers NoSuchBucket, as AWS does for anyone
        key = route.key if kind is ResourceKind.OBJECT else None
        await self._authorize_on(access, b, action, key, ctx.query.get("versionId"))
        for extra in self._also_required(route.op, ctx.headers):
            self._authorize_extra(access, b, extra, key)
        if route.op in ("CopyObject", "UploadPartCopy"):
            await self._authorize_copy_source(access, ctx.headers.get("x-amz-copy-source", ""))
        if route.op in _NEW_OBJECT_OPS:
            access.new_acl = self.new_object_acl(access, b, ctx.headers)
        return access

    # ------------------------------------------------------------ deciding
    def _ckeys(self, access: Access, *, extra: Mapping[str, list[str]] | None = None) -> access_ops.RequestKeys:
        ctx = access._ctx
        auth = ctx.auth
        version = None if not auth.access_key else ("AWS4-HMAC-SHA256" if auth.scope else "AWS")
        auth_type = None if not auth.access_key else ("REST-QUERY-STRING" if auth.presigned else "REST-HEADER")
        keys = access_ops.condition_context(
            op=ctx.route.op, who=access.caller.identity, headers=ctx.headers, query=ctx.query,
            source_ip=getattr(ctx, "client", None), secure=ctx.scheme == "https",
            account=self.directory.account.id, signature_version=version, auth_type=auth_type,
            amz_date=auth.amz_date,
        )  # fmt: skip
        if extra:
            keys.update(extra)
        return keys

    def _policies(self, caller: Caller, b: BucketAccess | None) -> list[Policy]:
        out = list(caller.policies)
        if b is not None and b.policy is not None:
            restricted = self.effective_pab(b).restrict_public_buckets and b.policy_public
            if not (restricted and caller.identity.anonymous):
                out.append(b.policy)
        return out

    def _decide(self, access: Access, b: BucketAccess | None, action: str, resource: str,
                extra: Mapping[str, list[str]] | None = None) -> Decision:  # fmt: skip
        policies = self._policies(access.caller, b)
        if not policies:
            return Decision.NONE
        return decide(policies, access.caller.identity, action, resource, self._ckeys(access, extra=extra))

    def _require_identity(self, access: Access, action: str, resource: str) -> None:
        """Actions that no bucket grants (ListAllMyBuckets, CreateBucket)."""
        caller = access.caller
        if caller.identity.anonymous:
            raise AccessDenied()
        d = self._decide(access, None, action, resource)
        if d is Decision.DENY or (not caller.root and d is not Decision.ALLOW):
            raise AccessDenied()

    async def _authorize_create_bucket(self, access: Access) -> None:
        ctx = access._ctx
        name = ctx.route.bucket
        self._require_identity(access, "s3:CreateBucket", access_ops.resource_arn(name, None))
        owner = access.caller.canonical or self.directory.account.canonical_id
        try:
            existing = await self.bucket_access(name)
        except NoSuchBucket:
            existing = None
        if existing is not None and existing.owner != owner:
            raise BucketAlreadyExists(BucketName=name)
        access.new_bucket_config = self.new_bucket_config(access, owner, ctx.headers)

    def allowed_without_object(self, access: Access, action: str, key: str | None) -> bool:
        """Steps 1-4 of the module doc for what needs no object record."""
        b = access.bucket
        caller = access.caller
        if caller.root and (b is None or b.policy is None):
            return True  # the fast path
        resource = access_ops.resource_arn(b.name if b else None, key)
        d = self._decide(access, b, action, resource)
        if d is Decision.DENY:
            return caller.root and action.lower() in _POLICY_ESCAPE
        if caller.root or d is Decision.ALLOW or b is None:
            return caller.root or d is Decision.ALLOW
        return self._by_ownership(access, b, action, key)

    def _by_ownership(self, access: Access, b: BucketAccess, action: str, key: str | None) -> bool:
        """Step 4 for what needs no object record: the bucket's owner, the bucket ACL."""
        caller = access.caller
        mine = caller.canonical is not None and caller.canonical == b.owner
        if key is None or not b.acls_enabled:
            if mine:
                return True
        elif mine and action.lower() in _OBJECT_WRITES:
            return True
        if b.acls_enabled and (key is None or action.lower() in _OBJECT_WRITES):
            perm = acls.permission_for(action, on_object=False)
            ignore = self.effective_pab(b).ignore_public_acls
            return perm is not None and b.acl.allows(caller.canonical, perm, ignore_public=ignore)
        return False

    async def _authorize_on(self, access: Access, b: BucketAccess, action: str, key: str | None,
                            version_id: str | None) -> None:  # fmt: skip
        caller = access.caller
        if caller.root and b.policy is None:
            return
        needs_object = key is not None and action.lower() not in _OBJECT_WRITES and (
            b.acls_enabled or b.existing_tags or _uses_existing_tags(caller.policies))
        if not needs_object:
            if not self.allowed_without_object(access, action, key):
                raise AccessDenied()
            return
        await self._authorize_object(access, b, action, key, version_id)

    async def _authorize_object(self, access: Access, b: BucketAccess, action: str, key: str | None,
                                version_id: str | None) -> None:  # fmt: skip
        """An object action that may depend on the object itself (its ACL, owner or tags)."""
        caller = access.caller
        try:
            info = await self.store.head_object(b.name, key, version_id=version_id)
        except _MISSING:
            if await self.may_list(access):
                return  # let the handler answer 404
            raise AccessDenied() from None
        except S3Error as e:
            if e.code == "MethodNotAllowed" or e.status == 404:  # a delete marker: the handler answers
                return
            raise
        extra = {f"s3:existingobjecttag/{k.lower()}": [v] for k, v in info.tags.items()}
        resource = access_ops.resource_arn(b.name, key)
        d = self._decide(access, b, action, resource, extra)
        if d is Decision.DENY:
            raise AccessDenied()
        if caller.root or d is Decision.ALLOW:
            return
        obj_acl = ACL.unpack(info.acl) if info.acl else acls.private(b.owner)
        if not b.acls_enabled:
            if caller.canonical == b.owner:
                return
            raise AccessDenied()
        perm = acls.permission_for(action, on_object=True)
        if caller.canonical is not None and caller.canonical == obj_acl.owner and perm in (
                acls.READ_ACP, acls.WRITE_ACP):  # fmt: skip
            return  # an object's owner may always read and change its ACL
        if caller.canonical == obj_acl.owner and perm is None:
            return  # tagging and the like: the owner's
        ignore = self.effective_pab(b).ignore_public_acls
        if perm is not None and obj_acl.allows(caller.canonical, perm, ignore_public=ignore):
            return
        raise AccessDenied()

    async def may_list(self, access: Access) -> bool:
        if access._may_list is None:
            b = access.bucket
            access._may_list = b is None or self.allowed_without_object(access, "s3:ListBucket", None)
        return access._may_list

    def _authorize_extra(self, access: Access, b: BucketAccess, action: str, key: str | None) -> None:
        """Tags or an ACL sent with a new object: a policy must allow them when a
        policy is what allowed the write; whoever may write by ownership or ACL
        owns what they create and may set its tags and ACL.  A Deny always wins."""
        if access.caller.root and b.policy is None:
            return
        resource = access_ops.resource_arn(b.name, key)
        d = self._decide(access, b, action, resource)
        if d is Decision.DENY:
            raise AccessDenied()
        if access.caller.root or d is Decision.ALLOW or self._by_ownership(access, b, "s3:PutObject", key):
            return
        raise AccessDenied()

    @staticmethod
    def _also_required(op: str, headers: Mapping[str, str]) -> list[str]:
        """Writes that also set tags or an ACL need those permissions too (AWS)."""
        if op not in ("PutObject", "CopyObject", "CreateMultipartUpload"):
            return []
        out = []
        if "x-amz-tagging" in headers:
            out.append("s3:PutObjectTagging")
        if "x-amz-acl" in headers or any(h in headers for h in acls.GRANT_HEADERS):
            out.append("s3:PutObjectAcl")
        return out

    async def _authorize_copy_source(self, access: Access, source: str) -> None:
        from titans3.s3.handlers_copy import parse_copy_source  # the one parser of the header

        try:
            bucket, key, version = parse_copy_source(source)
        except S3Error:
            return  # the handler reports the malformed header
        try:
            b = await self.bucket_access(bucket)
        except NoSuchBucket:
            return
        action = "s3:GetObjectVersion" if version else "s3:GetObject"
        if access.caller.root and b.policy is None:
            return
        saved = access.bucket
        access.bucket = b
        try:
            await self._authorize_object(access, b, action, key, version)
        finally:
            access.bucket = saved

    # ------------------------------------------------------------ what new things get
    def resolve_acl(self, owner: str, bucket_owner: str, headers: Mapping[str, str]) -> ACL | None:
        d = self.directory
        try:
            return acls.acl_from_headers(headers, owner=owner, bucket_owner=bucket_owner,
                                         resolve_email=d.canonical_for_email, known_id=d.known_canonical)  # fmt: skip
        except AclError as e:
            raise acl_error(e) from None

    def new_object_acl(self, access: Access, b: BucketAccess, headers: Mapping[str, str]) -> bytes | None:
        """The packed ACL a new object gets (None under BucketOwnerEnforced: the
        bucket owner owns it, private).  Refuses what AWS refuses."""
        writer = access.caller.canonical or b.owner
        owner = acls.object_owner(b.ownership, writer=writer, bucket_owner=b.owner,
                                  acl_header=headers.get("x-amz-acl"))  # fmt: skip
        wanted = self.resolve_acl(owner, b.owner, headers)
        if not b.acls_enabled:
            if wanted is not None and not wanted.only_full_control_to(b.owner):
                raise AccessControlListNotSupported()
            return None
        acl = wanted or acls.private(owner)
        if acl.public and self.effective_pab(b).block_public_acls:
            raise AccessDenied(PUBLIC_ACL_BLOCKED)
        return acl.pack()

    def new_bucket_config(self, access: Access, owner: str, headers: Mapping[str, str]) -> dict[str, bytes]:
        """Owner, Object Ownership, ACL and Block Public Access of a new bucket.

        New buckets get AWS's defaults since April 2023: BucketOwnerEnforced and
        all four Block Public Access settings on."""
        ownership = headers.get("x-amz-object-ownership", acls.ENFORCED).strip()
        if ownership not in acls.OWNERSHIP:
            raise InvalidArgument("Invalid x-amz-object-ownership header", ArgumentName="x-amz-object-ownership",
                                  ArgumentValue=ownership)  # fmt: skip
        wanted = self.resolve_acl(owner, owner, headers)
        config = {OWNER: owner.encode(), OWNERSHIP: ownership.encode(),
                  PAB: json.dumps(ALL_BLOCKED.to_dict()).encode()}  # fmt: skip
        if ownership == acls.ENFORCED:
            if wanted is not None and not wanted.only_full_control_to(owner):
                raise InvalidBucketAclWithObjectOwnership()
        elif wanted is not None:
            if wanted.public and self.account_pab.block_public_acls:
                raise AccessDenied(PUBLIC_ACL_BLOCKED)
            config[BUCKET_ACL] = wanted.pack()
        return config


PUBLIC_ACL_BLOCKED = "Access Denied: public ACLs are blocked by the BlockPublicAcls block public access setting."
PUBLIC_POLICY_BLOCKED = (
    "Access Denied: public policies are blocked by the BlockPublicPolicy block public access setting."
)


def acl_error(e: AclError) -> S3Error:
    codes: dict[str, type[S3Error]] = {
        "InvalidArgument": InvalidArgument, "InvalidRequest": InvalidRequest,
        "MalformedACLError": MalformedACLError,
        "UnresolvableGrantByEmailAddress": UnresolvableGrantByEmailAddress,
    }  # fmt: skip
    return codes.get(e.code, InvalidArgument)(e.message)




async def authorize_post(control: AccessControl, ctx: Any, caller: Caller, key: str,
                         form: Mapping[str, str]) -> Access:  # fmt: skip
    """PostObject: the form named the caller (or none) and the key; decide
    ``s3:PutObject`` as for a PUT carrying the form's fields as headers."""
    access = Access(control, caller, _ctx=ctx)
    ctx.access = access
    try:
        b = access.bucket = await control.bucket_access(ctx.route.bucket)
    except NoSuchBucket:
        return access
    await control._authorize_on(access, b, "s3:PutObject", key, None)
    if "x-amz-tagging" in form or "tagging" in form:
        control._authorize_extra(access, b, "s3:PutObjectTagging", key)
    access.new_acl = control.new_object_acl(access, b, form)
    return access

