"""Who may do what, with real clients: identity policies (boto3 as one user), bucket
policies (curl as the anonymous client), conditions, the IAM API (the AWS CLI)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .access import cli_code, code_of, curl, error_code, make_user, titanctl
from .cluster import AwsCli, Daemon, s3_client

BUCKET = "site"


@pytest.fixture(scope="module")
def d(module_daemon: Daemon) -> Daemon:
    root = s3_client(module_daemon)
    root.create_bucket(Bucket=BUCKET)
    for key, body in (("public/index.html", b"<h1>hello</h1>"), ("private/salary.txt", b"secret"),
                      ("other.txt", b"other")):  # fmt: skip
        root.put_object(Bucket=BUCKET, Key=key, Body=body)
    return module_daemon


def policy(*statements: dict) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def test_a_user_allowed_only_get_on_public_gets_access_denied_for_everything_else(d: Daemon) -> None:
    creds, user = make_user(d.endpoint, "alice", policy={"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{BUCKET}/public/*"}]})
    alice = s3_client(d, creds)
    assert alice.get_object(Bucket=BUCKET, Key="public/index.html")["Body"].read() == b"<h1>hello</h1>"
    assert alice.head_object(Bucket=BUCKET, Key="public/index.html")["ContentLength"] == 14
    denied = {
        "GetObject private/": lambda: alice.get_object(Bucket=BUCKET, Key="private/salary.txt"),
        "GetObject other.txt": lambda: alice.get_object(Bucket=BUCKET, Key="other.txt"),
        "PutObject public/": lambda: alice.put_object(Bucket=BUCKET, Key="public/new", Body=b"x"),
        "DeleteObject public/": lambda: alice.delete_object(Bucket=BUCKET, Key="public/index.html"),
        "ListObjectsV2": lambda: alice.list_objects_v2(Bucket=BUCKET),
        "GetBucketAcl": lambda: alice.get_bucket_acl(Bucket=BUCKET),
        "GetBucketPolicy": lambda: alice.get_bucket_policy(Bucket=BUCKET),
        "CreateBucket": lambda: alice.create_bucket(Bucket="alices"),
        "ListBuckets": lambda: alice.list_buckets(),
        "GetObjectTagging public/": lambda: alice.get_object_tagging(Bucket=BUCKET, Key="public/index.html"),
    }
    got = {what: code_of(fn) for what, fn in denied.items()}
    assert got == dict.fromkeys(denied, "AccessDenied"), got
    # A missing key under public/: 403 as well -- without s3:ListBucket the answer
    # must not tell whether the key exists (AWS).
    assert code_of(lambda: alice.get_object(Bucket=BUCKET, Key="public/missing")) == "AccessDenied"
    assert user["canonical_id"] and user["arn"].endswith(":user/alice")
    alice.close()


def test_a_bucket_policy_for_everyone_lets_curl_read_and_a_deny_wins(d: Daemon) -> None:
    root = s3_client(d)
    url = f"{d.endpoint}/{BUCKET}/public/index.html"
    assert curl(url)[0] == 403
    public = policy({"Sid": "PublicRead", "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                     "Resource": f"arn:aws:s3:::{BUCKET}/*"})  # fmt: skip
    # New buckets block public policies (AWS's default since April 2023) ...
    assert code_of(lambda: root.put_bucket_policy(Bucket=BUCKET, Policy=public)) == "AccessDenied"
    root.delete_public_access_block(Bucket=BUCKET)
    root.put_bucket_policy(Bucket=BUCKET, Policy=public)
    assert root.get_bucket_policy(Bucket=BUCKET)["Policy"] == public
    assert root.get_bucket_policy_status(Bucket=BUCKET)["PolicyStatus"]["IsPublic"] is True
    status, body = curl(url)
    assert (status, body) == (200, b"<h1>hello</h1>")
    assert curl(f"{d.endpoint}/{BUCKET}/private/salary.txt")[0] == 200
    status, body = curl(f"{d.endpoint}/{BUCKET}/nothing-here")
    assert (status, error_code(body)) == (403, "AccessDenied")  # no ListBucket: no existence leak
    assert curl(f"{d.endpoint}/{BUCKET}")[0] == 403  # listing was not granted
    assert curl(url, "-I")[0] == 200  # HEAD
    listing = policy(json.loads(public)["Statement"][0],
                     {"Sid": "PublicList", "Effect": "Allow", "Principal": "*", "Action": "s3:ListBucket",
                      "Resource": f"arn:aws:s3:::{BUCKET}"})  # fmt: skip
    root.put_bucket_policy(Bucket=BUCKET, Policy=listing)
    status, body = curl(f"{d.endpoint}/{BUCKET}?list-type=2&prefix=public/")
    assert status == 200 and b"<Key>public/index.html</Key>" in body
    assert curl(f"{d.endpoint}/{BUCKET}", "-I")[0] == 200  # HeadBucket
    status, body = curl(f"{d.endpoint}/{BUCKET}/nothing-here")
    assert (status, error_code(body)) == (404, "NoSuchKey")  # may list: the truth
    with_deny = policy(json.loads(public)["Statement"][0],
                       {"Sid": "NotPrivate", "Effect": "Deny", "Principal": "*", "Action": "s3:GetObject",
                        "Resource": f"arn:aws:s3:::{BUCKET}/private/*"})  # fmt: skip
    root.put_bucket_policy(Bucket=BUCKET, Policy=with_deny)
    status, body = curl(f"{d.endpoint}/{BUCKET}/private/salary.txt")
    assert (status, error_code(body)) == (403, "AccessDenied")
    assert curl(url)[0] == 200
    # The Deny binds the account root too (an explicit deny beats everything) ...
    assert code_of(lambda: root.get_object(Bucket=BUCKET, Key="private/salary.txt")) == "AccessDenied"
    # ... and RestrictPublicBuckets takes a public policy's grants away from anonymous callers.
    root.put_public_access_block(Bucket=BUCKET, PublicAccessBlockConfiguration={"RestrictPublicBuckets": True})
    assert curl(url)[0] == 403
    root.delete_public_access_block(Bucket=BUCKET)
    root.delete_bucket_policy(Bucket=BUCKET)
    assert curl(url)[0] == 403
    assert code_of(lambda: root.get_bucket_policy_status(Bucket=BUCKET)) == "NoSuchBucketPolicy"
    root.close()


def test_source_ip_conditions_decide_as_written(d: Daemon) -> None:
    root = s3_client(d)
    root.delete_public_access_block(Bucket=BUCKET)
    url = f"{d.endpoint}/{BUCKET}/public/index.html"

    def allow_from(cidr: str) -> str:
        return policy({"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                       "Resource": f"arn:aws:s3:::{BUCKET}/public/*",
                       "Condition": {"IpAddress": {"aws:SourceIp": cidr}}})  # fmt: skip

    root.put_bucket_policy(Bucket=BUCKET, Policy=allow_from("127.0.0.0/8"))  # the test's own address
    assert curl(url)[0] == 200
    root.put_bucket_policy(Bucket=BUCKET, Policy=allow_from("192.0.2.0/24"))
    assert curl(url)[0] == 403
    root.put_bucket_policy(Bucket=BUCKET, Policy=policy(
        {"Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": [f"arn:aws:s3:::{BUCKET}/*"],
         "Condition": {"NotIpAddress": {"aws:SourceIp": "192.0.2.0/24"}}}))  # fmt: skip
    assert code_of(lambda: root.get_object(Bucket=BUCKET, Key="other.txt")) == "AccessDenied"
    root.delete_bucket_policy(Bucket=BUCKET)  # the account root may always manage the policy
    assert root.get_object(Bucket=BUCKET, Key="other.txt")["Body"].read() == b"other"
    root.put_public_access_block(Bucket=BUCKET, PublicAccessBlockConfiguration={
        k: True for k in ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")})
    root.close()


def test_secure_transport_false_over_plain_http(d: Daemon) -> None:
    root = s3_client(d)
    root.put_bucket_policy(Bucket=BUCKET, Policy=policy(
        {"Sid": "TLSOnly", "Effect": "Deny", "Principal": "*", "Action": "s3:GetObject",
         "Resource": f"arn:aws:s3:::{BUCKET}/*", "Condition": {"Bool": {"aws:SecureTransport": "false"}}}))
    assert code_of(lambda: root.get_object(Bucket=BUCKET, Key="other.txt")) == "AccessDenied"
    root.delete_bucket_policy(Bucket=BUCKET)
    root.close()


def test_prefix_conditions_on_listings_and_a_user_policy_with_variables(d: Daemon) -> None:
    root = s3_client(d)
    for key in ("home/dave/a.txt", "home/erin/b.txt"):
        root.put_object(Bucket=BUCKET, Key=key, Body=b"x")
    creds, _ = make_user(d.endpoint, "dave", policy={"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{BUCKET}",
         "Condition": {"StringLike": {"s3:prefix": ["home/${aws:username}/*"]}}},
        {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"],
         "Resource": f"arn:aws:s3:::{BUCKET}/home/${{aws:username}}/*"},
        {"Effect": "Deny", "Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{BUCKET}",
         "Condition": {"NumericGreaterThan": {"s3:max-keys": "100"}}},
    ]})  # fmt: skip
    dave = s3_client(d, creds)
    keys = [o["Key"] for o in dave.list_objects_v2(Bucket=BUCKET, Prefix="home/dave/")["Contents"]]
    assert keys == ["home/dave/a.txt"]
    assert code_of(lambda: dave.list_objects_v2(Bucket=BUCKET, Prefix="home/erin/")) == "AccessDenied"
    assert code_of(lambda: dave.list_objects_v2(Bucket=BUCKET, Prefix="home/dave/", MaxKeys=500)) == "AccessDenied"
    dave.put_object(Bucket=BUCKET, Key="home/dave/new.txt", Body=b"mine")
    assert code_of(lambda: dave.put_object(Bucket=BUCKET, Key="home/erin/x", Body=b"x")) == "AccessDenied"
    # With s3:ListBucket on the prefix, a missing key is 404, not 403.
    assert code_of(lambda: dave.get_object(Bucket=BUCKET, Key="home/dave/missing")) in ("NoSuchKey", "AccessDenied")
    dave.close()
    root.close()


def test_malformed_policies_get_aws_messages(d: Daemon, tmp_path: Path) -> None:
    cli = AwsCli(d.endpoint, d.credentials, tmp_path / "aws")
    account = json.loads(titanctl(d.endpoint, "account", "show", "--json").stdout)["account"]["account_id"]
    cases = {
        "not json": "Policies must be valid JSON and the first byte must be '{'",
        "{}": "Missing required field Statement",
        policy({"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{BUCKET}/*"}):
            "Missing required field Principal",
        policy({"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{account}:user/nobody-like-this"},
                "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{BUCKET}/*"}): "Invalid principal in policy",
        policy({"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                "Resource": "arn:aws:s3:::another-bucket/*"}): "Policy has invalid resource",
        policy({"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                "Resource": f"arn:aws:s3:::{BUCKET}"}): "Action does not apply to any resource(s) in statement",
        policy({"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{BUCKET}/*",
                "Condition": {"StringEquals": {"s3:VersionStatus": "x"}}}): "Policy has an invalid condition key",
    }  # fmt: skip
    for doc, message in cases.items():
        proc = cli("s3api", "put-bucket-policy", "--bucket", BUCKET, "--policy", doc, check=False)
        assert cli_code(proc) == "MalformedPolicy", (doc, proc.stderr)
        assert message in proc.stderr, (doc, proc.stderr)


def test_the_iam_api_with_the_aws_cli(d: Daemon, tmp_path: Path) -> None:
    root_cli = AwsCli(d.endpoint, d.credentials, tmp_path / "root")
    made = json.loads(root_cli("iam", "create-user", "--user-name", "carol").stdout)["User"]
    assert made["UserName"] == "carol" and made["Arn"].endswith(":user/carol")
    key = json.loads(root_cli("iam", "create-access-key", "--user-name", "carol").stdout)["AccessKey"]
    assert key["Status"] == "Active" and len(key["SecretAccessKey"]) == 40
    doc = policy({"Effect": "Allow", "Action": ["s3:PutObject", "s3:GetObject"],
                  "Resource": f"arn:aws:s3:::{BUCKET}/carol/*"})  # fmt: skip
    root_cli("iam", "put-user-policy", "--user-name", "carol", "--policy-name", "own-prefix", "--policy-document", doc)
    users = [u["UserName"] for u in json.loads(root_cli("iam", "list-users").stdout)["Users"]]
    assert "carol" in users
    keys = json.loads(root_cli("iam", "list-access-keys", "--user-name", "carol").stdout)["AccessKeyMetadata"]
    assert [k["AccessKeyId"] for k in keys] == [key["AccessKeyId"]]
    names = json.loads(root_cli("iam", "list-user-policies", "--user-name", "carol").stdout)["PolicyNames"]
    assert names == ["own-prefix"]
    got = json.loads(root_cli("iam", "get-user-policy", "--user-name", "carol", "--policy-name", "own-prefix").stdout)
    assert got["PolicyDocument"] == json.loads(doc)
    bad = root_cli("iam", "put-user-policy", "--user-name", "carol", "--policy-name", "x", "--policy-document",
                   '{"Statement": [{"Effect": "Maybe"}]}', check=False)  # fmt: skip
    assert cli_code(bad) == "MalformedPolicyDocument"
    assert cli_code(root_cli("iam", "create-user", "--user-name", "carol", check=False)) == "EntityAlreadyExists"
    # carol, with her new key and the AWS CLI: her prefix only.
    from .cluster import Credentials

    carol = AwsCli(d.endpoint, Credentials(key["AccessKeyId"], key["SecretAccessKey"]), tmp_path / "carol")
    src = tmp_path / "note.txt"
    src.write_text("carol's note")
    carol("s3", "cp", str(src), f"s3://{BUCKET}/carol/note.txt")
    assert carol("s3", "cp", f"s3://{BUCKET}/carol/note.txt", "-").stdout == "carol's note"
    assert "AccessDenied" in carol("s3", "cp", str(src), f"s3://{BUCKET}/other/note.txt", check=False).stderr
    assert cli_code(carol("iam", "create-user", "--user-name", "mallory", check=False)) == "AccessDenied"
    assert cli_code(carol("iam", "list-users", check=False)) == "AccessDenied"
    root_cli("iam", "update-access-key", "--user-name", "carol", "--access-key-id", key["AccessKeyId"],
             "--status", "Inactive")  # fmt: skip
    assert cli_code(carol("s3api", "get-object", "--bucket", BUCKET, "--key", "carol/note.txt", str(tmp_path / "o"),
                          check=False)) == "InvalidAccessKeyId"  # fmt: skip
    root_cli("iam", "delete-access-key", "--user-name", "carol", "--access-key-id", key["AccessKeyId"])
    root_cli("iam", "delete-user-policy", "--user-name", "carol", "--policy-name", "own-prefix")
    root_cli("iam", "delete-user", "--user-name", "carol")
    assert cli_code(root_cli("iam", "get-user", "--user-name", "carol", check=False)) == "NoSuchEntity"
