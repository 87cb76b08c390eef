"""Access control meets data protection, with boto3 against the daemon: bypassing
GOVERNANCE retention takes the ``s3:BypassGovernanceRetention`` permission as well
as the header, and a bucket name another user owns is 409 ``BucketAlreadyExists``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from botocore.exceptions import ClientError

from .access import code_of, make_user
from .cluster import Daemon, s3_client

LOCKED = "bypass-locked"
OBJECT_ACTIONS = ["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject", "s3:DeleteObject",
                  "s3:DeleteObjectVersion", "s3:GetObjectRetention", "s3:PutObjectRetention",
                  "s3:ListBucket", "s3:ListBucketVersions"]


def _policy(*extra: str) -> dict:
    return {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["s3:CreateBucket", "s3:ListAllMyBuckets"], "Resource": "*"},
        {"Effect": "Allow", "Action": OBJECT_ACTIONS + list(extra),
         "Resource": [f"arn:aws:s3:::{LOCKED}", f"arn:aws:s3:::{LOCKED}/*"]}]}


@pytest.fixture(scope="module")
def clients(module_daemon: Daemon):  # noqa: ANN201
    d = module_daemon
    keeper_creds, _ = make_user(d.endpoint, "keeper", policy=_policy())
    bypasser_creds, _ = make_user(d.endpoint, "bypasser", policy=_policy("s3:BypassGovernanceRetention"))
    made = [s3_client(d), s3_client(d, keeper_creds), s3_client(d, bypasser_creds)]
    yield made
    for c in made:
        c.close()


def _governed(s3, key: str) -> str:  # noqa: ANN001
    until = datetime.now(UTC) + timedelta(days=1)
    return s3.put_object(Bucket=LOCKED, Key=key, Body=b"kept", ObjectLockMode="GOVERNANCE",
                         ObjectLockRetainUntilDate=until)["VersionId"]


def test_governance_bypass_needs_the_permission_as_well_as_the_header(clients) -> None:  # noqa: ANN001
    root, keeper, bypasser = clients
    root.create_bucket(Bucket=LOCKED, ObjectLockEnabledForBucket=True)
    v = _governed(keeper, "doc")
    # The header alone does not bypass: keeper lacks s3:BypassGovernanceRetention.
    assert code_of(lambda: keeper.delete_object(Bucket=LOCKED, Key="doc", VersionId=v,
                                                BypassGovernanceRetention=True)) == "AccessDenied"
    assert code_of(lambda: keeper.put_object_retention(
        Bucket=LOCKED, Key="doc", VersionId=v, Retention={}, BypassGovernanceRetention=True)) == "AccessDenied"
    errors = keeper.delete_objects(Bucket=LOCKED, BypassGovernanceRetention=True,
                                   Delete={"Objects": [{"Key": "doc", "VersionId": v}]}).get("Errors", [])
    assert [e["Code"] for e in errors] == ["AccessDenied"]
    assert keeper.get_object(Bucket=LOCKED, Key="doc", VersionId=v)["Body"].read() == b"kept"
    # A version without retention is deleted with the header too: there is nothing to bypass.
    plain = keeper.put_object(Bucket=LOCKED, Key="plain", Body=b"p")["VersionId"]
    keeper.delete_object(Bucket=LOCKED, Key="plain", VersionId=plain, BypassGovernanceRetention=True)
    # With the permission the header works; the root user holds every permission.
    bypasser.delete_object(Bucket=LOCKED, Key="doc", VersionId=v, BypassGovernanceRetention=True)
    w = _governed(root, "doc2")
    assert code_of(lambda: root.delete_object(Bucket=LOCKED, Key="doc2", VersionId=w)) == "AccessDenied"
    root.delete_object(Bucket=LOCKED, Key="doc2", VersionId=w, BypassGovernanceRetention=True)
    versions = root.list_object_versions(Bucket=LOCKED).get("Versions", [])
    assert {x["VersionId"] for x in versions}.isdisjoint({v, w, plain})


def test_a_bucket_another_user_owns_is_bucket_already_exists(clients) -> None:  # noqa: ANN001
    _, keeper, bypasser = clients
    keeper.create_bucket(Bucket="keepers-own")
    keeper.put_object(Bucket="keepers-own", Key="k", Body=b"mine")
    with pytest.raises(ClientError) as e:
        bypasser.create_bucket(Bucket="keepers-own")
    assert e.value.response["Error"]["Code"] == "BucketAlreadyExists"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 409
    # The owner asking again gets us-east-1's legacy 200; the bucket and its object stay.
    keeper.create_bucket(Bucket="keepers-own")
    assert keeper.get_object(Bucket="keepers-own", Key="k")["Body"].read() == b"mine"
    assert [b["Name"] for b in bypasser.list_buckets()["Buckets"]] == []
