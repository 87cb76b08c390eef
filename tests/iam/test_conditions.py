"""Condition operators: AWS's rules for values, missing keys and multivalued keys."""

from __future__ import annotations

import pytest

from titans3.iam.conditions import ConditionError, compile_condition, substitute


def holds(operator: str, key: str, policy_value: object, request: dict[str, list[str]]) -> bool:
    return compile_condition(operator, key, policy_value, variables=True).holds(request)


@pytest.mark.parametrize(
    ("operator", "policy", "value", "expected"),
    [
        ("StringEquals", "public-read", "public-read", True),
        ("StringEquals", "public-read", "Public-Read", False),
        ("StringEqualsIgnoreCase", "public-read", "Public-Read", True),
        ("StringNotEquals", ["a", "b"], "c", True),  # NOR over the values
        ("StringNotEquals", ["a", "b"], "b", False),
        ("StringNotEqualsIgnoreCase", "A", "a", False),
        ("StringLike", "home/*/docs/?.txt", "home/bob/docs/a.txt", True),
        ("StringLike", "home/*/docs/?.txt", "home/bob/docs/ab.txt", False),
        ("StringNotLike", "private/*", "public/x", True),
    ],
)
def test_string_operators(operator, policy, value, expected):
    assert holds(operator, "s3:x-amz-acl", policy, {"s3:x-amz-acl": [value]}) is expected


@pytest.mark.parametrize(
    ("operator", "value", "expected"),
    [("NumericEquals", "10", True), ("NumericNotEquals", "10", False), ("NumericLessThan", "9", True),
     ("NumericLessThan", "10", False), ("NumericLessThanEquals", "10", True),
     ("NumericGreaterThan", "11", True), ("NumericGreaterThanEquals", "10", True),
     ("NumericGreaterThanEquals", "9.5", False), ("NumericLessThan", "ten", False)],
)
def test_numeric_operators(operator, value, expected):
    # The s3:max-keys example of the S3 user guide compares against 10.
    assert holds(operator, "s3:max-keys", "10", {"s3:max-keys": [value]}) is expected


def test_date_operators_take_iso_8601_and_epoch():
    window = [("DateGreaterThan", "2020-04-01T00:00:00Z"), ("DateLessThan", "2020-06-30T23:59:59Z")]
    inside, outside = "2020-05-15T12:00:00Z", "2020-07-01T00:00:00Z"
    for op, bound in window:
        assert holds(op, "aws:CurrentTime", bound, {"aws:currenttime": [inside]})
    assert not holds("DateLessThan", "aws:CurrentTime", "2020-06-30T23:59:59Z",
                     {"aws:currenttime": [outside]})  # fmt: skip
    assert holds("DateEquals", "aws:EpochTime", "1588334400", {"aws:epochtime": ["2020-05-01T12:00:00Z"]})
    assert holds("DateNotEquals", "aws:CurrentTime", "2020-05-01", {"aws:currenttime": ["2020-05-02"]})
    assert holds("DateLessThanEquals", "aws:CurrentTime", "2020-05-01T00:00:00+02:00",
                 {"aws:currenttime": ["2020-04-30T22:00:00Z"]})  # fmt: skip
    assert holds("DateGreaterThanEquals", "aws:CurrentTime", "2020-05-01T00:00:00.000Z",
                 {"aws:currenttime": ["2020-05-01T00:00:00Z"]})  # fmt: skip


def test_ip_address_operators():
    assert holds("IpAddress", "aws:SourceIp", ["192.0.2.0/24", "2001:db8::/32"],
                 {"aws:sourceip": ["2001:db8:1::5"]})  # fmt: skip
    assert holds("IpAddress", "aws:SourceIp", "203.0.113.9", {"aws:sourceip": ["203.0.113.9"]})  # /32
    assert not holds("IpAddress", "aws:SourceIp", "203.0.113.9", {"aws:sourceip": ["203.0.113.10"]})
    assert holds("NotIpAddress", "aws:SourceIp", "192.0.2.0/24", {"aws:sourceip": ["10.0.0.1"]})
    with pytest.raises(ConditionError, match="Invalid IP address in Conditions"):
        compile_condition("IpAddress", "aws:SourceIp", "not-an-ip", variables=True)


def test_bool_binary_and_arn_operators():
    assert holds("Bool", "aws:SecureTransport", True, {"aws:securetransport": ["true"]})
    assert not holds("Bool", "aws:SecureTransport", "true", {"aws:securetransport": ["false"]})
    assert holds("BinaryEquals", "s3:x-amz-content-sha256", "QmluYXJ5", {"s3:x-amz-content-sha256": ["QmluYXJ5"]})
    arn = "arn:aws:iam::123456789012:user/alice"
    assert holds("ArnLike", "aws:PrincipalArn", "arn:aws:iam::*:user/a*", {"aws:principalarn": [arn]})
    assert holds("ArnNotEquals", "aws:PrincipalArn", "arn:aws:iam::123456789012:user/bob",
                 {"aws:principalarn": [arn]})  # fmt: skip


def test_a_missing_key_fails_positive_and_passes_negated_operators():
    assert not holds("StringEquals", "s3:prefix", "a", {})
    assert holds("StringNotEquals", "s3:prefix", "a", {})
    assert not holds("NumericLessThan", "s3:max-keys", "10", {})
    assert holds("NotIpAddress", "aws:SourceIp", "10.0.0.0/8", {})


def test_if_exists_and_null():
    assert holds("StringEqualsIfExists", "s3:x-amz-server-side-encryption", "AES256", {})
    assert not holds("StringEqualsIfExists", "s3:x-amz-server-side-encryption", "AES256",
                     {"s3:x-amz-server-side-encryption": ["aws:kms"]})  # fmt: skip
    assert holds("Null", "s3:x-amz-server-side-encryption", "true", {})
    assert not holds("Null", "s3:x-amz-server-side-encryption", "false", {})
    assert holds("Null", "s3:x-amz-server-side-encryption", "false",
                 {"s3:x-amz-server-side-encryption": ["AES256"]})  # fmt: skip
    with pytest.raises(ConditionError):
        compile_condition("NullIfExists", "s3:prefix", "true", variables=True)


def test_for_all_values_and_for_any_value():
    # The IAM guide's multivalued example: only these tag keys may be sent.
    allowed = ["environment", "cost-center"]
    key = "s3:RequestObjectTagKeys"
    assert holds("ForAllValues:StringEquals", key, allowed, {key.lower(): ["environment"]})
    assert not holds("ForAllValues:StringEquals", key, allowed,
                     {key.lower(): ["environment", "owner"]})  # fmt: skip
    assert holds("ForAllValues:StringEquals", key, allowed, {})  # true without the key
    assert holds("ForAnyValue:StringEquals", key, allowed, {key.lower(): ["owner", "cost-center"]})
    assert not holds("ForAnyValue:StringEquals", key, allowed, {})  # false without the key
    assert holds("ForAnyValue:StringNotEquals", key, ["a"], {key.lower(): ["a", "b"]})
    assert not holds("ForAllValues:StringNotEquals", key, ["a"], {key.lower(): ["a", "b"]})


def test_policy_variables_in_conditions():
    ctx = {"aws:username": ["bob"], "s3:prefix": ["home/bob/x"]}
    assert holds("StringLike", "s3:prefix", "home/${aws:username}/*", ctx)
    assert not holds("StringLike", "s3:prefix", "home/${aws:username}/*", {"s3:prefix": ["home/bob/x"]})
    assert holds("StringNotLike", "s3:prefix", "home/${aws:username}/*", {"s3:prefix": ["home/bob/x"]})
    assert substitute("a${*}b${?}c${$}", {}) == "a*b?c$"
    assert substitute("${aws:username, 'nobody'}", {}) == "nobody"
    assert substitute("${aws:username}", {}) is None


def test_operator_and_key_names():
    with pytest.raises(ConditionError, match="Invalid Condition type : ForEveryValue:StringEquals"):
        compile_condition("ForEveryValue:StringEquals", "s3:prefix", "a", variables=True)
    with pytest.raises(ConditionError, match="invalid condition key"):
        compile_condition("StringEquals", "s3:nonsense", "a", variables=True)
    c = compile_condition("StringEquals", "S3:ExistingObjectTag/Environment", "prod", variables=True)
    assert c.key == "s3:existingobjecttag/environment"
    assert c.holds({"s3:existingobjecttag/environment": ["prod"]})
