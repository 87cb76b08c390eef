"""The authorization step, decided against a fake store: each branch of AWS's order."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import trio

from titans3.core.errors import (
    NoSuchKey,
)
from titans3.iam import acl as acls
from titans3.iam.evaluate import Identity
from titans3.iam.policy import parse_policy
from titans3.iam.publicaccess import PublicAccessBlock
from titans3.objects import BucketSettings
from titans3.objects.types import ObjectInfo
from titans3.s3.auth import ANONYMOUS_AUTH
from titans3.s3.authorize import AccessControl, Caller
from titans3.s3.routing import Route

ACCOUNT = "123456789012"
OWNER, OTHER = "a" * 64, "b" * 64


def identity(kind: str, canonical: str, name: str = "") -> Identity:
    arn = f"arn:aws:iam::{ACCOUNT}:" + ("root" if kind == "root" else f"user/{name}")
    return Identity(kind, ACCOUNT, arn, canonical, name, "AIDA" + name if name else ACCOUNT)


class Directory:
    class account:  # noqa: N801 -- the shape Directory.account has
        id, canonical_id, name = ACCOUNT, "r" * 64, "titans3"
        public_access_block = PublicAccessBlock()

    def __init__(self) -> None:
        self.callers = {
            "ROOT": Caller(identity("root", "r" * 64)),
            "OWNER": Caller(identity("user", OWNER, "owner")),
            "OTHER": Caller(identity("user", OTHER, "other")),
        }

    def principal(self, key: str) -> Caller | None:
        return self.callers.get(key)

    def canonical_for_email(self, email: str) -> str | None:
        return {"other@example.com": OTHER}.get(email)

    def known_canonical(self, cid: str) -> bool:
        return cid in (OWNER, OTHER, "r" * 64)

    def display_name(self, cid: str) -> str:
        return ""

    def user_arn_exists(self, arn: str) -> bool:
        return True

    def get_secret(self, key: str) -> str | None:
        return "s"


class Store:
    def __init__(self) -> None:
        self.buckets: dict[str, dict[str, bytes]] = {}
        self.objects: dict[tuple[str, str], ObjectInfo] = {}
        self.version = 0

    async def bucket_settings(self, name: str) -> BucketSettings:
        from titans3.core.errors import NoSuchBucket

        if name not in self.buckets:
            raise NoSuchBucket(BucketName=name)
        return BucketSettings(name, f"{self.version:032x}", 0, self.buckets[name])

    async def head_object(self, bucket: str, key: str, *, version_id: str | None = None) -> ObjectInfo:
        try:
            return self.objects[(bucket, key)]
        except KeyError:
            raise NoSuchKey() from None

    def bucket(self, name: str, **config: bytes) -> None:
        self.buckets[name] = {"owner": OWNER.encode(), **config}
        self.version += 1

    def obj(self, bucket: str, key: str, acl: acls.ACL | None = None, tags: dict | None = None) -> None:
        self.objects[(bucket, key)] = ObjectInfo(bucket, key, "null", 1, "e", 0, tags=tags or {},
                                                 acl=acl.pack() if acl else None)  # fmt: skip


class Ctx:
    def __init__(self, key: str, op: str, bucket: str | None, obj: str | None = None,
                 headers: dict | None = None, query: dict | None = None) -> None:  # fmt: skip
        self.auth = replace(ANONYMOUS_AUTH, access_key=key)
        self.route = Route(op, bucket, obj, query or {})
        self.query = self.route.query
        self.headers = headers or {}
        self.scheme = "http"
        self.client = "127.0.0.1"
        self.access = None


@pytest.fixture
def world():  # noqa: ANN201
    store = Store()
    return AccessControl(directory=Directory(), store=store), store


def decide(control: AccessControl, ctx: Ctx) -> str:
    async def go() -> str:
        try:
            await control.authorize(ctx)
        except Exception as e:  # noqa: BLE001
            return type(e).__name__
        return "ok"

    return trio.run(go)


def policy(*statements: dict) -> bytes:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)}).encode()


def test_the_owner_and_root_may_everything_others_nothing(world) -> None:  # noqa: ANN001
    control, store = world
    store.bucket("b", ownership=b"BucketOwnerEnforced")
    store.obj("b", "k")
    for key, want in (("ROOT", "ok"), ("OWNER", "ok"), ("OTHER", "AccessDenied"), ("", "AccessDenied")):
        assert decide(control, Ctx(key, "GetObject", "b", "k")) == want, key
        assert decide(control, Ctx(key, "PutBucketVersioning", "b")) == want, key
    assert decide(control, Ctx("OTHER", "GetObject", "missing-bucket", "k")) == "ok"  # the handler says NoSuchBucket


def test_an_explicit_deny_binds_root_except_on_the_policy_itself(world) -> None:  # noqa: ANN001
    control, store = world
    store.bucket("b", ownership=b"BucketOwnerEnforced", policy=policy(
        {"Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": ["arn:aws:s3:::b", "arn:aws:s3:::b/*"]}))
    assert decide(control, Ctx("ROOT", "GetObject", "b", "k")) == "AccessDenied"
    assert decide(control, Ctx("OWNER", "GetObject", "b", "k")) == "AccessDenied"
    for op in ("GetBucketPolicy", "PutBucketPolicy", "DeleteBucketPolicy"):
        assert decide(control, Ctx("ROOT", op, "b")) == "ok"
        assert decide(control, Ctx("OWNER", op, "b")) == "AccessDenied"


def test_identity_and_bucket_policy_allows(world) -> None:  # noqa: ANN001
    control, store = world
    store.bucket("b", ownership=b"BucketOwnerEnforced", policy=policy(
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:user/other"}, "Action": "s3:GetObject",
         "Resource": "arn:aws:s3:::b/shared/*"}))  # fmt: skip
    assert decide(control, Ctx("OTHER", "GetObject", "b", "shared/x")) == "ok"
    assert decide(control, Ctx("OTHER", "GetObject", "b", "mine/x")) == "AccessDenied"
    d = control.directory
    d.callers["OTHER"] = replace(d.callers["OTHER"], policies=(parse_policy(json.dumps({"Statement": [
        {"Effect": "Allow", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::b/mine/*"}]}),
        resource_policy=False),))  # fmt: skip
    assert decide(control, Ctx("OTHER", "PutObject", "b", "mine/x")) == "ok"
    assert decide(control, Ctx("OTHER", "PutObject", "b", "mine/x", {"x-amz-tagging": "a=1"})) == "AccessDenied"


def test_acls_with_object_writer(world) -> None:  # noqa: ANN001
    control, store = world
    bucket_acl = acls.ACL(OWNER, (acls.Grant("CanonicalUser", OWNER, "FULL_CONTROL"),
                                  acls.Grant("CanonicalUser", OTHER, "WRITE")))  # fmt: skip
    store.bucket("w", ownership=b"ObjectWriter", acl=bucket_acl.pack())
    store.obj("w", "others", acl=acls.private(OTHER))
    store.obj("w", "public", acl=acls.canned("public-read", owner=OTHER))
    assert decide(control, Ctx("OTHER", "PutObject", "w", "new")) == "ok"  # bucket WRITE
    assert decide(control, Ctx("OTHER", "ListObjectsV2", "w")) == "AccessDenied"  # no READ on the bucket
    assert decide(control, Ctx("OWNER", "GetObject", "w", "others")) == "AccessDenied"  # not the object's owner
    assert decide(control, Ctx("OWNER", "DeleteObject", "w", "others")) == "ok"  # the bucket's owner deletes
    assert decide(control, Ctx("OTHER", "GetObjectAcl", "w", "others")) == "ok"  # the object's owner
    assert decide(control, Ctx("", "GetObject", "w", "public")) == "ok"
    store.buckets["w"]["pab"] = json.dumps({"IgnorePublicAcls": True}).encode()
    store.version += 1
    assert decide(control, Ctx("", "GetObject", "w", "public")) == "AccessDenied"


def test_a_missing_key_is_403_without_list_permission(world) -> None:  # noqa: ANN001
    control, store = world
    store.bucket("w", ownership=b"ObjectWriter")
    assert decide(control, Ctx("OTHER", "GetObject", "w", "nope")) == "AccessDenied"
    assert decide(control, Ctx("OWNER", "GetObject", "w", "nope")) == "ok"  # lists: the handler answers 404


def test_what_new_objects_and_buckets_get(world) -> None:  # noqa: ANN001
    control, store = world
    store.bucket("e", ownership=b"BucketOwnerEnforced")
    store.bucket("p", ownership=b"BucketOwnerPreferred",
                 acl=acls.ACL(OWNER, (acls.Grant("CanonicalUser", OTHER, "WRITE"),)).pack())
    assert decide(control, Ctx("OWNER", "PutObject", "e", "k", {"x-amz-acl": "public-read"})) == \
        "AccessControlListNotSupported"  # fmt: skip
    assert decide(control, Ctx("OWNER", "PutObject", "e", "k", {"x-amz-acl": "private"})) == "ok"

    async def new_acl(key: str, bucket: str, headers: dict) -> acls.ACL | None:
        access = await control.authorize(Ctx(key, "PutObject", bucket, "k", headers))
        return acls.ACL.unpack(access.new_acl) if access.new_acl else None

    assert trio.run(new_acl, "OWNER", "e", {}) is None
    handed = trio.run(new_acl, "OTHER", "p", {"x-amz-acl": "bucket-owner-full-control"})
    assert handed is not None and handed.owner == OWNER
    kept = trio.run(new_acl, "OTHER", "p", {})
    assert kept is not None and kept.owner == OTHER and kept.grants == acls.private(OTHER).grants
    grant = trio.run(new_acl, "OTHER", "p", {"x-amz-grant-read": 'emailAddress="other@example.com"'})
    assert grant is not None and grant.grants[0].id == OTHER
    assert decide(control, Ctx("ROOT", "CreateBucket", "e")) == "BucketAlreadyExists"
    assert decide(control, Ctx("ROOT", "CreateBucket", "fresh", headers={"x-amz-acl": "public-read"})) == \
        "InvalidBucketAclWithObjectOwnership"  # fmt: skip
    assert decide(control, Ctx("OTHER", "CreateBucket", "fresh")) == "AccessDenied"  # no s3:CreateBucket


def test_existing_object_tags_in_a_policy(world) -> None:  # noqa: ANN001
    control, store = world
    store.bucket("t", ownership=b"BucketOwnerEnforced", policy=policy(
        {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::t/*",
         "Condition": {"StringEquals": {"s3:ExistingObjectTag/security": "public"}}}))  # fmt: skip
    store.obj("t", "open", tags={"security": "public"})
    store.obj("t", "closed", tags={"security": "private"})
    assert decide(control, Ctx("", "GetObject", "t", "open")) == "ok"
    assert decide(control, Ctx("", "GetObject", "t", "closed")) == "AccessDenied"
