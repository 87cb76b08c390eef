"""The ACL model: canned ACLs, grants, headers and Object Ownership."""

from __future__ import annotations

import pytest

from titans3.iam import acl
from titans3.iam.acl import ALL_USERS, AUTHENTICATED_USERS, AclError, Grant

OWNER, OTHER, BUCKET_OWNER = "a" * 64, "b" * 64, "c" * 64


@pytest.mark.parametrize(
    ("name", "anonymous_read", "authenticated_read", "anonymous_write", "bucket_owner_read"),
    [
        ("private", False, False, False, False),
        ("public-read", True, True, False, False),
        ("public-read-write", True, True, True, False),
        ("authenticated-read", False, True, False, False),
        ("bucket-owner-read", False, False, False, True),
        ("bucket-owner-full-control", False, False, False, True),
    ],
)
def test_canned_acls_grant_what_aws_lists(name, anonymous_read, authenticated_read, anonymous_write,
                                          bucket_owner_read):  # fmt: skip
    a = acl.canned(name, owner=OWNER, bucket_owner=BUCKET_OWNER)
    assert a.allows(OWNER, acl.FULL_CONTROL) and a.allows(OWNER, acl.WRITE_ACP)
    assert a.allows(None, acl.READ) is anonymous_read
    assert a.allows(OTHER, acl.READ) is authenticated_read
    assert a.allows(None, acl.WRITE) is anonymous_write
    assert a.allows(BUCKET_OWNER, acl.READ) is (bucket_owner_read or authenticated_read)
    assert a.public is (anonymous_read or authenticated_read)


def test_an_unknown_canned_acl_is_invalid_argument():
    with pytest.raises(AclError) as caught:
        acl.canned("public", owner=OWNER)
    assert caught.value.code == "InvalidArgument"


def test_ignore_public_acls_skips_group_grants():
    a = acl.canned("public-read", owner=OWNER)
    assert a.allows(None, acl.READ) and not a.allows(None, acl.READ, ignore_public=True)
    assert a.allows(OWNER, acl.READ, ignore_public=True)


def test_grant_headers_with_ids_emails_and_groups():
    headers = {
        "x-amz-grant-read": f'uri="{ALL_USERS}", id="{OTHER}"',
        "x-amz-grant-full-control": 'emailAddress="carol@example.com"',
    }
    a = acl.acl_from_headers(headers, owner=OWNER, bucket_owner=None,
                             resolve_email={"carol@example.com": BUCKET_OWNER}.get)  # fmt: skip
    assert a is not None
    assert set(a.grants) == {Grant("Group", ALL_USERS, "READ"), Grant("CanonicalUser", OTHER, "READ"),
                             Grant("CanonicalUser", BUCKET_OWNER, "FULL_CONTROL")}  # fmt: skip
    with pytest.raises(AclError) as caught:
        acl.acl_from_headers({"x-amz-grant-read": 'emailAddress="nobody@example.com"'},
                             owner=OWNER, bucket_owner=None, resolve_email=lambda e: None)  # fmt: skip
    assert caught.value.code == "UnresolvableGrantByEmailAddress"
    with pytest.raises(AclError) as caught:
        acl.acl_from_headers({"x-amz-acl": "private", "x-amz-grant-read": f'id="{OTHER}"'},
                             owner=OWNER, bucket_owner=None, resolve_email=lambda e: None)  # fmt: skip
    assert caught.value.code == "InvalidRequest"
    assert acl.acl_from_headers({}, owner=OWNER, bucket_owner=None, resolve_email=lambda e: None) is None


def test_authenticated_users_group_excludes_anonymous():
    a = acl.from_grant_specs(OWNER, [("uri", AUTHENTICATED_USERS, "READ")], resolve_email=lambda e: None)
    assert a.allows(OTHER, acl.READ) and not a.allows(None, acl.READ)


def test_pack_round_trip():
    a = acl.canned("public-read-write", owner=OWNER)
    assert acl.ACL.unpack(a.pack()) == a


def test_permissions_for_actions():
    assert acl.permission_for("s3:GetObject", on_object=True) == "READ"
    assert acl.permission_for("s3:PutObject", on_object=False) == "WRITE"
    assert acl.permission_for("s3:ListBucket", on_object=False) == "READ"
    assert acl.permission_for("s3:PutObjectAcl", on_object=True) == "WRITE_ACP"
    assert acl.permission_for("s3:PutBucketPolicy", on_object=False) is None


def test_object_ownership():
    kw = {"writer": OTHER, "bucket_owner": OWNER}
    assert acl.object_owner("BucketOwnerEnforced", acl_header=None, **kw) == OWNER
    assert acl.object_owner("ObjectWriter", acl_header="bucket-owner-full-control", **kw) == OTHER
    assert acl.object_owner("BucketOwnerPreferred", acl_header="bucket-owner-full-control", **kw) == OWNER
    assert acl.object_owner("BucketOwnerPreferred", acl_header=None, **kw) == OTHER


def test_bucket_owner_enforced_accepts_only_owner_full_control():
    assert acl.canned("private", owner=OWNER).only_full_control_to(OWNER)
    assert acl.canned("bucket-owner-full-control", owner=OTHER, bucket_owner=OWNER).only_full_control_to(OWNER) is False
    assert not acl.canned("public-read", owner=OWNER).only_full_control_to(OWNER)
