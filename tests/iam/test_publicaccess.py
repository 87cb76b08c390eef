"""Block Public Access: combining levels, and AWS's meaning of a public policy."""

from __future__ import annotations

import json

import pytest

from titans3.iam.policy import parse_policy
from titans3.iam.publicaccess import ALL_BLOCKED, NONE_BLOCKED, PublicAccessBlock, policy_is_public


def test_the_most_restrictive_level_wins():
    bucket = PublicAccessBlock(block_public_acls=True)
    account = PublicAccessBlock(restrict_public_buckets=True)
    both = bucket | account
    assert both.block_public_acls and both.restrict_public_buckets
    assert not both.ignore_public_acls and not both.block_public_policy
    assert (NONE_BLOCKED | ALL_BLOCKED) == ALL_BLOCKED
    assert PublicAccessBlock.from_dict(both.to_dict()) == both


def policy(principal: object, condition: dict | None = None, effect: str = "Allow") -> object:
    st = {"Effect": effect, "Principal": principal, "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}
    if condition:
        st["Condition"] = condition
    return parse_policy(json.dumps({"Version": "2012-10-17", "Statement": [st]}), resource_policy=True,
                        bucket="b")  # fmt: skip


@pytest.mark.parametrize(
    ("principal", "condition", "public"),
    [
        ("*", None, True),
        ({"AWS": "*"}, None, True),
        ({"AWS": "arn:aws:iam::123456789012:user/alice"}, None, False),
        ("*", {"IpAddress": {"aws:SourceIp": "10.0.0.0/32"}}, False),  # s3-tests' non-public case
        ("*", {"IpAddress": {"aws:SourceIp": "192.0.2.0/24"}}, False),
        ("*", {"IpAddress": {"aws:SourceIp": "0.0.0.0/1"}}, True),  # broader than /8
        ("*", {"NotIpAddress": {"aws:SourceIp": "192.0.2.0/24"}}, True),
        ("*", {"StringEquals": {"aws:SourceAccount": "111122223333"}}, False),
        ("*", {"StringLike": {"aws:SourceArn": "arn:aws:sns:*"}}, True),  # a wildcard is not fixed
        ("*", {"StringEquals": {"s3:prefix": "public/"}}, True),  # not a key that pins the caller
    ],
)
def test_the_meaning_of_public(principal, condition, public):
    assert policy_is_public(policy(principal, condition)) is public


def test_a_deny_for_everyone_is_not_public():
    assert not policy_is_public(policy("*", effect="Deny"))
    assert not policy_is_public(None)
