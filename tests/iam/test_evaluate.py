"""Policy evaluation against the examples of AWS's IAM and S3 documentation."""

from __future__ import annotations

import json

import pytest

from titans3.iam.evaluate import ANONYMOUS, Decision, Identity, decide
from titans3.iam.policy import parse_policy

ACCOUNT = "123456789012"
CARLOS = Identity("user", ACCOUNT, f"arn:aws:iam::{ACCOUNT}:user/carlossalazar", "c" * 64,
                  "carlossalazar", "AIDACARLOS")  # fmt: skip
ROOT = Identity("root", ACCOUNT, f"arn:aws:iam::{ACCOUNT}:root", "r" * 64, "", ACCOUNT)
BOB = Identity("user", ACCOUNT, f"arn:aws:iam::{ACCOUNT}:user/bob", "b" * 64, "bob", "AIDABOB")


def identity(statements: list[dict]) -> object:
    return parse_policy(json.dumps({"Version": "2012-10-17", "Statement": statements}),
                        resource_policy=False)  # fmt: skip


def bucket(bucket_name: str, statements: list[dict]) -> object:
    return parse_policy(json.dumps({"Version": "2012-10-17", "Statement": statements}),
                        resource_policy=True, bucket=bucket_name)  # fmt: skip


def ctx(who: Identity, **keys: object) -> dict[str, list[str]]:
    out = {"aws:username": [who.name]} if who.name else {}
    out["aws:userid"] = [who.user_id]
    for k, v in keys.items():
        out[k.replace("__", ":").replace("_", "-").lower()] = v if isinstance(v, list) else [v]
    return out


# The "Example identity-based and resource-based policy evaluation" of AWS's
# policy evaluation logic page: Carlos' identity policy.
CARLOS_POLICY = identity([
    {"Sid": "AllowS3ListRead", "Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "*"},
    {"Sid": "AllowS3Self", "Effect": "Allow", "Action": "s3:*",
     "Resource": ["arn:aws:s3:::carlossalazar/*", "arn:aws:s3:::carlossalazar"]},
    {"Sid": "DenyS3Logs", "Effect": "Deny", "Action": "s3:*", "Resource": "arn:aws:s3:::*log*"},
])  # fmt: skip


@pytest.mark.parametrize(
    ("action", "resource", "expected"),
    [
        ("s3:ListAllMyBuckets", "arn:aws:s3:::*", Decision.ALLOW),
        ("s3:PutObject", "arn:aws:s3:::carlossalazar/notes.txt", Decision.ALLOW),
        ("s3:ListBucket", "arn:aws:s3:::carlossalazar", Decision.ALLOW),
        ("s3:PutObject", "arn:aws:s3:::carlossalazar-logs/1.log", Decision.DENY),  # explicit deny wins
        ("s3:GetObject", "arn:aws:s3:::someone-else/x", Decision.NONE),  # implicit deny
    ],
)
def test_carlos_identity_policy(action, resource, expected):
    assert decide([CARLOS_POLICY], CARLOS, action, resource, ctx(CARLOS)) is expected


def test_explicit_deny_in_a_bucket_policy_beats_an_identity_allow():
    deny = bucket("carlossalazar", [{"Effect": "Deny", "Principal": "*", "Action": "s3:DeleteObject",
                                     "Resource": "arn:aws:s3:::carlossalazar/*"}])  # fmt: skip
    c = ctx(CARLOS)
    assert decide([CARLOS_POLICY, deny], CARLOS, "s3:DeleteObject",
                  "arn:aws:s3:::carlossalazar/a", c) is Decision.DENY  # fmt: skip
    assert decide([CARLOS_POLICY, deny], CARLOS, "s3:GetObject",
                  "arn:aws:s3:::carlossalazar/a", c) is Decision.ALLOW  # fmt: skip


def test_resource_wildcards_of_the_iam_resource_page():
    # arn:aws:s3:::amzn-s3-demo-bucket/*/test/* -- the IAM "Resource" page's example.
    p = identity([{"Effect": "Allow", "Action": "s3:GetObject",
                   "Resource": "arn:aws:s3:::amzn-s3-demo-bucket/*/test/*"}])  # fmt: skip
    base = "arn:aws:s3:::amzn-s3-demo-bucket/"
    for key, ok in [("1///test///object.jpg", True), ("/test/object.jpg", True), ("1/test/", True),
                    ("1-test/object.jpg", False), ("test/object.jpg", False), ("1/2/test.jpg", False)]:
        got = decide([p], BOB, "s3:GetObject", base + key, ctx(BOB))
        assert (got is Decision.ALLOW) == ok, key


def test_action_names_are_case_insensitive_and_take_wildcards():
    p = identity([{"Effect": "Allow", "Action": ["S3:getobj*", "s3:List?ucket"], "Resource": "*"}])
    assert decide([p], BOB, "s3:GetObject", "arn:aws:s3:::b/k", ctx(BOB)) is Decision.ALLOW
    assert decide([p], BOB, "s3:ListBucket", "arn:aws:s3:::b", ctx(BOB)) is Decision.ALLOW
    assert decide([p], BOB, "s3:PutObject", "arn:aws:s3:::b/k", ctx(BOB)) is Decision.NONE


def test_not_action_and_not_resource():
    # "Allow everything except IAM", and a Deny on all but one prefix.
    p = identity([
        {"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"},
        {"Effect": "Deny", "Action": "s3:*", "NotResource": ["arn:aws:s3:::b/public/*"]},
    ])  # fmt: skip
    assert decide([p], BOB, "s3:GetObject", "arn:aws:s3:::b/public/x", ctx(BOB)) is Decision.ALLOW
    assert decide([p], BOB, "s3:GetObject", "arn:aws:s3:::b/private/x", ctx(BOB)) is Decision.DENY
    assert decide([p], BOB, "iam:CreateUser", "*", ctx(BOB)) is Decision.NONE


def test_home_directories_with_policy_variables():
    # The IAM user guide's "home directory" example: ${aws:username} in a resource and a condition.
    p = identity([
        {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::bucket",
         "Condition": {"StringLike": {"s3:prefix": ["home/${aws:username}/*", "home/${aws:username}"]}}},
        {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"],
         "Resource": "arn:aws:s3:::bucket/home/${aws:username}/*"},
    ])  # fmt: skip
    assert decide([p], BOB, "s3:ListBucket", "arn:aws:s3:::bucket",
                  ctx(BOB, s3__prefix="home/bob/photos/")) is Decision.ALLOW  # fmt: skip
    assert decide([p], BOB, "s3:ListBucket", "arn:aws:s3:::bucket",
                  ctx(BOB, s3__prefix="home/carol/")) is Decision.NONE  # fmt: skip
    assert decide([p], BOB, "s3:PutObject", "arn:aws:s3:::bucket/home/bob/a", ctx(BOB)) is Decision.ALLOW
    assert decide([p], BOB, "s3:PutObject", "arn:aws:s3:::bucket/home/carol/a", ctx(BOB)) is Decision.NONE
    # Root has no aws:username: the variable has no value and the resource matches nothing.
    assert decide([p], ROOT, "s3:PutObject", "arn:aws:s3:::bucket/home//a", ctx(ROOT)) is Decision.NONE


def test_version_2008_treats_variables_as_literals():
    text = json.dumps({"Version": "2008-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/${aws:username}/*"}]})
    p = parse_policy(text, resource_policy=False)
    assert decide([p], BOB, "s3:GetObject", "arn:aws:s3:::b/bob/x", ctx(BOB)) is Decision.NONE
    assert decide([p], BOB, "s3:GetObject", "arn:aws:s3:::b/${aws:username}/x", ctx(BOB)) is Decision.ALLOW


def test_principals_of_a_bucket_policy():
    p = bucket("b", [
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:user/bob"},
         "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/bob/*"},
        {"Effect": "Allow", "Principal": {"CanonicalUser": "c" * 64}, "Action": "s3:GetObject",
         "Resource": "arn:aws:s3:::b/carlos/*"},
        {"Effect": "Allow", "Principal": {"AWS": ACCOUNT}, "Action": "s3:GetObject",
         "Resource": "arn:aws:s3:::b/account/*"},
        {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "s3:GetObject",
         "Resource": "arn:aws:s3:::b/public/*"},
    ])  # fmt: skip

    def d(who, key):
        return decide([p], who, "s3:GetObject", f"arn:aws:s3:::b/{key}", ctx(who))

    assert d(BOB, "bob/1") is Decision.ALLOW and d(CARLOS, "bob/1") is Decision.NONE
    assert d(CARLOS, "carlos/1") is Decision.ALLOW and d(BOB, "carlos/1") is Decision.NONE
    # An allow to the account delegates to its root; its users need their own policies.
    assert d(ROOT, "account/1") is Decision.ALLOW and d(BOB, "account/1") is Decision.NONE
    for who in (BOB, CARLOS, ROOT, ANONYMOUS):
        assert d(who, "public/1") is Decision.ALLOW
    assert d(ANONYMOUS, "bob/1") is Decision.NONE


def test_a_deny_to_the_account_and_not_principal():
    p = bucket("b", [
        {"Effect": "Deny", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "s3:*",
         "Resource": "arn:aws:s3:::b/locked/*"},
        {"Effect": "Deny", "NotPrincipal": {"AWS": f"arn:aws:iam::{ACCOUNT}:user/bob"},
         "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/bob-only/*"},
    ])  # fmt: skip
    r = "arn:aws:s3:::b/"
    assert decide([p], BOB, "s3:GetObject", r + "locked/x", ctx(BOB)) is Decision.DENY
    assert decide([p], ANONYMOUS, "s3:GetObject", r + "locked/x", ctx(ANONYMOUS)) is Decision.NONE
    assert decide([p], BOB, "s3:GetObject", r + "bob-only/x", ctx(BOB)) is Decision.NONE
    assert decide([p], CARLOS, "s3:GetObject", r + "bob-only/x", ctx(CARLOS)) is Decision.DENY
    assert decide([p], ANONYMOUS, "s3:GetObject", r + "bob-only/x", ctx(ANONYMOUS)) is Decision.DENY


def test_restrict_access_to_an_ip_range():
    # S3 user guide, "Restricting access to specific IP addresses": Deny unless from 192.0.2.0/24.
    p = bucket("amzn-s3-demo-bucket", [{
        "Sid": "IPAllow", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
        "Resource": ["arn:aws:s3:::amzn-s3-demo-bucket", "arn:aws:s3:::amzn-s3-demo-bucket/*"],
        "Condition": {"NotIpAddress": {"aws:SourceIp": "192.0.2.0/24"}}}])  # fmt: skip
    res = "arn:aws:s3:::amzn-s3-demo-bucket/k"
    assert decide([p], BOB, "s3:GetObject", res, ctx(BOB, aws__SourceIp="192.0.2.7")) is Decision.NONE
    assert decide([p], BOB, "s3:GetObject", res, ctx(BOB, aws__SourceIp="203.0.113.1")) is Decision.DENY


def test_deny_insecure_transport():
    # S3 user guide: Deny when "Bool": {"aws:SecureTransport": "false"}.
    p = bucket("b", [{"Effect": "Deny", "Principal": "*", "Action": "s3:*",
                      "Resource": ["arn:aws:s3:::b", "arn:aws:s3:::b/*"],
                      "Condition": {"Bool": {"aws:SecureTransport": "false"}}}])  # fmt: skip
    r = "arn:aws:s3:::b/k"
    assert decide([p], BOB, "s3:GetObject", r, ctx(BOB, aws__SecureTransport="false")) is Decision.DENY
    assert decide([p], BOB, "s3:GetObject", r, ctx(BOB, aws__SecureTransport="true")) is Decision.NONE


def test_require_server_side_encryption():
    # S3 user guide: deny PUTs without SSE (Null) or with another algorithm (StringNotEquals).
    p = bucket("b", [
        {"Sid": "DenyIncorrectEncryptionHeader", "Effect": "Deny", "Principal": "*",
         "Action": "s3:PutObject", "Resource": "arn:aws:s3:::b/*",
         "Condition": {"StringNotEquals": {"s3:x-amz-server-side-encryption": "AES256"}}},
        {"Sid": "DenyUnEncryptedObjectUploads", "Effect": "Deny", "Principal": "*",
         "Action": "s3:PutObject", "Resource": "arn:aws:s3:::b/*",
         "Condition": {"Null": {"s3:x-amz-server-side-encryption": "true"}}},
    ])  # fmt: skip
    r = "arn:aws:s3:::b/k"
    key = "s3:x-amz-server-side-encryption"
    assert decide([p], BOB, "s3:PutObject", r, ctx(BOB)) is Decision.DENY
    assert decide([p], BOB, "s3:PutObject", r, {**ctx(BOB), key: ["aws:kms"]}) is Decision.DENY
    assert decide([p], BOB, "s3:PutObject", r, {**ctx(BOB), key: ["AES256"]}) is Decision.NONE
