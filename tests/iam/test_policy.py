"""Parsing and validating policy documents: what S3 and IAM accept and refuse."""

from __future__ import annotations

import json

import pytest

from titans3.iam.policy import PolicyError, parse_policy

BUCKET = "amzn-s3-demo-bucket"


def bucket_policy(**statement: object) -> str:
    st = {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
          "Resource": f"arn:aws:s3:::{BUCKET}/*"}  # fmt: skip
    st.update(statement)
    st = {k: v for k, v in st.items() if v is not None}
    return json.dumps({"Version": "2012-10-17", "Statement": [st]})


def refused(text: str, *, resource_policy: bool = True) -> str:
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, resource_policy=resource_policy, bucket=BUCKET)
    return caught.value.message


def test_the_put_bucket_policy_sample_parses():
    # The request sample of AWS's PutBucketPolicy page (version 2008-10-17, two accounts).
    text = ('{"Version":"2008-10-17","Id":"aaaa-bbbb-cccc-dddd","Statement":[{"Effect":"Allow",'
            '"Sid":"1","Principal":{"AWS":["111122223333","444455556666"]},"Action":["s3:*"],'
            '"Resource":"arn:aws:s3:::bucket/*"}]}')  # fmt: skip
    policy = parse_policy(text, resource_policy=True, bucket="bucket")
    (st,) = policy.statements
    assert st.principal is not None and st.principal.aws == ("111122223333", "444455556666")
    assert st.actions == ("s3:*",) and policy.text == text and not st.variables


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "Policies must be valid JSON and the first byte must be '{'"),
        ("invalid json", "Policies must be valid JSON and the first byte must be '{'"),
        ("{", "This policy contains invalid Json"),
        ('{"Statement": [], "Statement": []}', "This policy contains invalid Json"),
        ("{}", "Missing required field Statement"),
        ('{"Statement": []}', "Could not parse the policy: Statement is empty!"),
        ('{"Version": "2020-01-01", "Statement": []}', "The policy must contain a valid version string"),
    ],
)
def test_documents_that_are_not_policies(text, message):
    assert refused(text) == message


def test_statement_errors_carry_aws_messages():
    assert refused(bucket_policy(Principal=None)) == "Missing required field Principal"
    assert refused(bucket_policy(Effect="allow")) == "Invalid effect: allow"
    assert refused(bucket_policy(Principal={"AWS": "AKIAEXAMPLE"})) == "Invalid principal in policy"
    assert refused(bucket_policy(Principal={"Bogus": "x"})) == "Invalid principal in policy"
    assert refused(bucket_policy(Resource="*")) == "Policy has invalid resource"
    assert refused(bucket_policy(Resource="arn:aws:s3:::other-bucket/*")) == "Policy has invalid resource"
    assert refused(bucket_policy(Action="s3:PutObjectLockConfiguration")) == "Policy has invalid action"
    assert refused(bucket_policy(Action="ec2:RunInstances")) == "Policy has invalid action"
    assert refused(bucket_policy(Action=["s3:GetObject", "s3:ListBucket"])) == (
        "Action does not apply to any resource(s) in statement")
    assert refused(bucket_policy(Condition={"StringEquals": {"s3:VersionStatus": "x"}})) == (
        "Policy has an invalid condition key")
    assert refused(bucket_policy(Condition={"stringequals": {"s3:prefix": "x"}})) == (
        "Invalid Condition type : stringequals")
    assert refused(bucket_policy(Condition={"IpAddress": {"aws:SourceIp": "300.1.1.1/8"}})) == (
        "Invalid IP address in Conditions")
    assert refused(bucket_policy(NotPrincipal={"AWS": "111122223333"}, Principal=None)) == (
        "Invalid principal in policy")  # NotPrincipal with Allow


def test_an_unknown_user_principal_is_invalid():
    known = {"arn:aws:iam::123456789012:user/alice"}

    def exists(ptype: str, value: str) -> bool:
        return ptype != "AWS" or ":user/" not in value or value in known

    ok = bucket_policy(Principal={"AWS": "arn:aws:iam::123456789012:user/alice"})
    parse_policy(ok, resource_policy=True, bucket=BUCKET, principal_ok=exists)
    bad = bucket_policy(Principal={"AWS": "arn:aws:iam::123456789012:user/mallory"})
    with pytest.raises(PolicyError, match="Invalid principal in policy"):
        parse_policy(bad, resource_policy=True, bucket=BUCKET, principal_ok=exists)


def test_bucket_wildcards_and_canonical_principals_are_accepted():
    canonical = "79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be"
    text = bucket_policy(Principal={"CanonicalUser": canonical.upper()},
                         Resource=["arn:aws:s3:::*/*", "arn:aws:s3:::amzn-*"],
                         Action=["s3:Get*", "s3:ListBucket"])  # fmt: skip
    (st,) = parse_policy(text, resource_policy=True, bucket=BUCKET).statements
    assert st.principal is not None and st.principal.canonical == (canonical,)


def test_identity_policies_take_no_principal_and_any_service():
    text = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["iam:GetUser", "s3:*"], "Resource": "*"}]})
    parse_policy(text, resource_policy=False)
    with_principal = json.dumps({"Statement": [
        {"Effect": "Allow", "Principal": "*", "Action": "s3:*", "Resource": "*"}]})
    assert refused(with_principal, resource_policy=False) == (
        "Policy document should not specify a principal.")


def test_the_size_limit_counts_the_normalized_document():
    big = bucket_policy(Sid="x" * 20000)
    assert len(big) < 20480 + 200
    parse_policy(big, resource_policy=True, bucket=BUCKET)
    too_big = bucket_policy(Sid="x" * 20480)
    assert "exceeds the maximum allowed size of 20480 bytes" in refused(too_big)


def test_duplicate_sids_are_refused():
    st = {"Sid": "a", "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
          "Resource": f"arn:aws:s3:::{BUCKET}/*"}  # fmt: skip
    assert "unique" in refused(json.dumps({"Statement": [st, st]}))
