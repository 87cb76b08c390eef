"""Access configuration operations: bucket policies, ACLs, Object Ownership,
Block Public Access.

Theory of operation
-------------------
Every setting lives in the bucket record's configuration map (``policy``,
``acl``, ``ownership``, ``pab``; see ``titans3.s3.authorize``), so it shares
the bucket's quorum register and is gone with the bucket; object ACLs live in
the version record (``ObjectStore.put_object_acl``).  The authorization step
has already decided the caller may call the operation and parsed the bucket's
current settings (``ctx.access.bucket``); the handlers validate what is sent,
apply AWS's refusals, and store:

* PutBucketPolicy: ``MalformedPolicy`` with AWS's message for what does not
  parse (``titans3.iam.policy``); a public policy under BlockPublicPolicy is
  403.  The document is stored as sent and GetBucketPolicy returns those bytes.
* Put{Bucket,Object}Acl: a canned ACL header, grant headers, or an
  ``AccessControlPolicy`` body (not both).  Under BucketOwnerEnforced only an
  ACL that gives nothing but FULL_CONTROL to the bucket owner is accepted (and
  changes nothing); otherwise ``AccessControlListNotSupported``.  A public ACL
  under BlockPublicAcls is 403.  The owner cannot be changed through an ACL.
* PutBucketOwnershipControls to BucketOwnerEnforced is refused while the
  bucket ACL grants anyone but the owner (``InvalidBucketAclWithObjectOwnership``).
"""

from __future__ import annotations

import hashlib
import json

from titans3.core.errors import (
    AccessControlListNotSupported,
    AccessDenied,
    InvalidBucketAclWithObjectOwnership,
    InvalidRequest,
    MalformedPolicy,
    NoSuchBucket,
    NoSuchBucketPolicy,
    NoSuchPublicAccessBlockConfiguration,
    OwnershipControlsNotFoundError,
)
from titans3.iam import acl as acls
from titans3.iam.acl import ACL, AclError
from titans3.iam.policy import MAX_BUCKET_POLICY, PolicyError, parse_policy
from titans3.iam.publicaccess import PublicAccessBlock, policy_is_public
from titans3.s3 import xml_acl
from titans3.s3.authorize import (
    BUCKET_ACL,
    OWNERSHIP,
    PAB,
    POLICY,
    PUBLIC_ACL_BLOCKED,
    PUBLIC_POLICY_BLOCKED,
    BucketAccess,
    acl_error,
)
from titans3.s3.checksums import verify_content_md5
from titans3.s3.context import Handler, Reply, S3Context, xml_reply

MAX_ACL_BODY = 64 * 1024


def _bucket(ctx: S3Context) -> BucketAccess:
    b = ctx.access.bucket if ctx.access is not None else None
    if b is None:
        raise NoSuchBucket(BucketName=ctx.bucket)
    return b


async def _body(ctx: S3Context, limit: int) -> bytes:
    body = await ctx.read_xml_body(limit)
    md5 = ctx.headers.get("content-md5")
    if md5 is not None:
        verify_content_md5(md5, hashlib.md5(body).digest())
    return body


# ------------------------------------------------------------------ policy
async def put_bucket_policy(ctx: S3Context) -> Reply:
    b = _bucket(ctx)
    control = ctx.access.control
    text = await _body(ctx, MAX_BUCKET_POLICY * 4)
    directory = control.directory

    def principal_ok(ptype: str, value: str) -> bool:
        if ptype == "AWS" and ":user/" in value:
            return directory.user_arn_exists(value)
        return True

    try:
        policy = parse_policy(text, resource_policy=True, bucket=ctx.bucket, principal_ok=principal_ok)
    except PolicyError as e:
        raise MalformedPolicy(e.message) from None
    if control.effective_pab(b).block_public_policy and policy_is_public(policy):
        raise AccessDenied(PUBLIC_POLICY_BLOCKED)
    await ctx.store.put_bucket_config(ctx.bucket, POLICY, text)
    return Reply(204)


async def get_bucket_policy(ctx: S3Context) -> Reply:
    raw = await ctx.store.get_bucket_config(ctx.bucket, POLICY)
    if raw is None:
        raise NoSuchBucketPolicy(BucketName=ctx.bucket)
    return Reply(200, [("Content-Type", "application/json")], raw)


async def delete_bucket_policy(ctx: S3Context) -> Reply:
    _bucket(ctx)
    await ctx.store.put_bucket_config(ctx.bucket, POLICY, None)
    return Reply(204)


async def get_bucket_policy_status(ctx: S3Context) -> Reply:
    b = _bucket(ctx)
    if b.policy is None:
        raise NoSuchBucketPolicy(BucketName=ctx.bucket)
    return xml_reply(xml_acl.render_policy_status(b.policy_public))


# ------------------------------------------------------------------ ACLs
async def _requested_acl(ctx: S3Context, owner: str, bucket_owner: str) -> ACL:
    """The ACL a Put*Acl asks for: headers or body, not both, and never a new owner."""
    control = ctx.access.control
    from_headers = control.resolve_acl(owner, bucket_owner, ctx.headers)
    body = await ctx.read_xml_body(MAX_ACL_BODY)
    if from_headers is not None:
        if body.strip():
            raise InvalidRequest("Specifying both Canned ACLs or Header Grants and a body is not allowed")
        return from_headers
    if not body.strip():
        raise InvalidRequest("Missing required header for this request: x-amz-acl")
    body_owner, specs = xml_acl.parse_acl(body)
    if body_owner is not None and body_owner != owner:
        raise AccessDenied()
    d = control.directory
    try:
        return acls.from_grant_specs(owner, specs, resolve_email=d.canonical_for_email, known_id=d.known_canonical)
    except AclError as e:
        raise acl_error(e) from None


def _check_settable(ctx: S3Context, b: BucketAccess, acl: ACL) -> bool:
    """Whether ``acl`` may be stored (False: accepted and nothing to store)."""
    if not b.acls_enabled:
        if not acl.only_full_control_to(b.owner):
            raise AccessControlListNotSupported()
        return False
    if acl.public and ctx.access.control.effective_pab(b).block_public_acls:
        raise AccessDenied(PUBLIC_ACL_BLOCKED)
    return True


def _display(ctx: S3Context):  # type: ignore[no-untyped-def]
    return ctx.access.control.directory.display_name


async def get_bucket_acl(ctx: S3Context) -> Reply:
    b = _bucket(ctx)
    return xml_reply(xml_acl.render_acl(b.acl, _display(ctx)))


async def put_bucket_acl(ctx: S3Context) -> Reply:
    b = _bucket(ctx)
    acl = await _requested_acl(ctx, b.owner, b.owner)
    if _check_settable(ctx, b, acl):
        await ctx.store.put_bucket_config(ctx.bucket, BUCKET_ACL, acl.pack())
    return Reply(200)


async def _object_acl(ctx: S3Context, b: BucketAccess) -> tuple[ACL, str]:
    version = ctx.query.get("versionId")
    info = await ctx.store.head_object(ctx.bucket, ctx.key, version_id=version)
    acl = ACL.unpack(info.acl) if info.acl and b.acls_enabled else acls.private(b.owner)
    return acl, info.version_id


async def get_object_acl(ctx: S3Context) -> Reply:
    b = _bucket(ctx)
    acl, version = await _object_acl(ctx, b)
    reply = xml_reply(xml_acl.render_acl(acl, _display(ctx)))
    if version != "null":
        reply.header("x-amz-version-id", version)
    return reply


async def put_object_acl(ctx: S3Context) -> Reply:
    b = _bucket(ctx)
    current, version = await _object_acl(ctx, b)
    acl = await _requested_acl(ctx, current.owner, b.owner)
    if _check_settable(ctx, b, acl):
        await ctx.store.put_object_acl(ctx.bucket, ctx.key, acl.pack(), version_id=ctx.query.get("versionId"))
    reply = Reply(200)
    if version != "null":
        reply.header("x-amz-version-id", version)
    return reply


# ------------------------------------------------------------------ Object Ownership
async def get_ownership_controls(ctx: S3Context) -> Reply:
    raw = await ctx.store.get_bucket_config(ctx.bucket, OWNERSHIP)
    if raw is None:
        raise OwnershipControlsNotFoundError(BucketName=ctx.bucket)
    return xml_reply(xml_acl.render_ownership_controls(raw.decode()))


async def put_ownership_controls(ctx: S3Context) -> Reply:
    b = _bucket(ctx)
    ownership = xml_acl.parse_ownership_controls(await _body(ctx, MAX_ACL_BODY))
    if ownership == acls.ENFORCED and not b.acl.only_full_control_to(b.owner):
        raise InvalidBucketAclWithObjectOwnership(
            "The bucket ACL grants access to others: set it to private before enforcing bucket ownership")
    await ctx.store.put_bucket_config(ctx.bucket, OWNERSHIP, ownership.encode())
    return Reply(200)


async def delete_ownership_controls(ctx: S3Context) -> Reply:
    _bucket(ctx)
    await ctx.store.put_bucket_config(ctx.bucket, OWNERSHIP, None)
    return Reply(204)


# ------------------------------------------------------------------ Block Public Access
async def get_public_access_block(ctx: S3Context) -> Reply:
    raw = await ctx.store.get_bucket_config(ctx.bucket, PAB)
    if raw is None:
        raise NoSuchPublicAccessBlockConfiguration(BucketName=ctx.bucket)
    return xml_reply(xml_acl.render_public_access_block(PublicAccessBlock.from_dict(json.loads(raw))))


async def put_public_access_block(ctx: S3Context) -> Reply:
    _bucket(ctx)
    pab = xml_acl.parse_public_access_block(await _body(ctx, MAX_ACL_BODY))
    await ctx.store.put_bucket_config(ctx.bucket, PAB, json.dumps(pab.to_dict()).encode())
    return Reply(200)


async def delete_public_access_block(ctx: S3Context) -> Reply:
    _bucket(ctx)
    await ctx.store.put_bucket_config(ctx.bucket, PAB, None)
    return Reply(204)


HANDLERS: dict[str, Handler] = {
    "PutBucketPolicy": put_bucket_policy,
    "GetBucketPolicy": get_bucket_policy,
    "DeleteBucketPolicy": delete_bucket_policy,
    "GetBucketPolicyStatus": get_bucket_policy_status,
    "GetBucketAcl": get_bucket_acl,
    "PutBucketAcl": put_bucket_acl,
    "GetObjectAcl": get_object_acl,
    "PutObjectAcl": put_object_acl,
    "GetBucketOwnershipControls": get_ownership_controls,
    "PutBucketOwnershipControls": put_ownership_controls,
    "DeleteBucketOwnershipControls": delete_ownership_controls,
    "GetPublicAccessBlock": get_public_access_block,
    "PutPublicAccessBlock": put_public_access_block,
    "DeletePublicAccessBlock": delete_public_access_block,
}
