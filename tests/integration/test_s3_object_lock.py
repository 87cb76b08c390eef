"""Object lock against the real daemon with boto3: lock buckets, default retention,
COMPLIANCE (no one may delete or shorten it, root included), GOVERNANCE (only with the
bypass header), legal holds, and AWS's errors."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from .objtools import module_fixtures, s3_error

PLAIN = "lock-plain"

d, s3, cli, _no_traceback = module_fixtures(PLAIN, home="aws-lock")


def _lock_bucket(s3, name: str) -> str:
    s3.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    return name


def _in(seconds: float) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


def test_a_lock_bucket_is_versioned_and_cannot_be_suspended(s3) -> None:
    b = _lock_bucket(s3, "lock-versioned")
    assert s3.get_bucket_versioning(Bucket=b)["Status"] == "Enabled"
    cfg = s3.get_object_lock_configuration(Bucket=b)["ObjectLockConfiguration"]
    assert cfg["ObjectLockEnabled"] == "Enabled"
    status, code, _ = s3_error(s3.put_bucket_versioning, Bucket=b,
                               VersioningConfiguration={"Status": "Suspended"})
    assert (status, code) == (409, "InvalidBucketState")
    assert s3_error(s3.get_object_lock_configuration, Bucket=PLAIN)[:2] == \
        (404, "ObjectLockConfigurationNotFoundError")
    # Lock on an unversioned bucket is refused; once versioned it may be enabled.
    assert s3_error(s3.put_object_lock_configuration, Bucket=PLAIN,
                    ObjectLockConfiguration={"ObjectLockEnabled": "Enabled"})[:2] == \
        (409, "InvalidBucketState")


def test_compliance_cannot_be_deleted_shortened_or_weakened_by_root(s3) -> None:
    b = _lock_bucket(s3, "lock-compliance")
    until = _in(4)
    put = s3.put_object(Bucket=b, Key="k", Body=b"keep me", ObjectLockMode="COMPLIANCE",
                        ObjectLockRetainUntilDate=until)
    vid = put["VersionId"]
    head = s3.head_object(Bucket=b, Key="k", VersionId=vid)
    assert head["ObjectLockMode"] == "COMPLIANCE"
    assert abs((head["ObjectLockRetainUntilDate"] - until).total_seconds()) < 1
    for kw in ({}, {"BypassGovernanceRetention": True}):
        assert s3_error(s3.delete_object, Bucket=b, Key="k", VersionId=vid, **kw)[:2] == \
            (403, "AccessDenied")
    for mode, when in (("COMPLIANCE", _in(2)), ("GOVERNANCE", _in(60))):
        assert s3_error(s3.put_object_retention, Bucket=b, Key="k", VersionId=vid,
                        Retention={"Mode": mode, "RetainUntilDate": when},
                        BypassGovernanceRetention=True)[:2] == (403, "AccessDenied")
    # Extending is allowed.
    later = _in(5)
    s3.put_object_retention(Bucket=b, Key="k", VersionId=vid,
                            Retention={"Mode": "COMPLIANCE", "RetainUntilDate": later})
    got = s3.get_object_retention(Bucket=b, Key="k", VersionId=vid)["Retention"]
    assert got["Mode"] == "COMPLIANCE"
    # A delete without a version id only adds a marker; the version stays readable.
    s3.delete_object(Bucket=b, Key="k")
    assert s3.get_object(Bucket=b, Key="k", VersionId=vid)["Body"].read() == b"keep me"
    # A new PUT is a new version: the locked one is never overwritten in place.
    s3.put_object(Bucket=b, Key="k", Body=b"new")
    assert s3.get_object(Bucket=b, Key="k", VersionId=vid)["Body"].read() == b"keep me"
    time.sleep(max(0.0, (later - datetime.now(UTC)).total_seconds()) + 0.5)
    s3.delete_object(Bucket=b, Key="k", VersionId=vid)  # the date passed
    assert s3_error(s3.head_object, Bucket=b, Key="k", VersionId=vid)[0] == 404


def test_governance_gives_way_only_to_the_bypass_header(s3) -> None:
    b = _lock_bucket(s3, "lock-governance")
    vid = s3.put_object(Bucket=b, Key="g", Body=b"g", ObjectLockMode="GOVERNANCE",
                        ObjectLockRetainUntilDate=_in(3600))["VersionId"]
    assert s3_error(s3.delete_object, Bucket=b, Key="g", VersionId=vid)[:2] == (403, "AccessDenied")
    assert s3_error(s3.put_object_retention, Bucket=b, Key="g", VersionId=vid,
                    Retention={"Mode": "GOVERNANCE", "RetainUntilDate": _in(60)})[0] == 403
    s3.put_object_retention(Bucket=b, Key="g", VersionId=vid, BypassGovernanceRetention=True,
                            Retention={"Mode": "GOVERNANCE", "RetainUntilDate": _in(60)})
    res = s3.delete_objects(Bucket=b, Delete={"Objects": [{"Key": "g", "VersionId": vid}]})
    assert res["Errors"][0]["Code"] == "AccessDenied"
    s3.delete_object(Bucket=b, Key="g", VersionId=vid, BypassGovernanceRetention=True)
    assert s3_error(s3.head_object, Bucket=b, Key="g", VersionId=vid)[0] == 404


def test_legal_hold_blocks_deletion_until_removed(s3) -> None:
    b = _lock_bucket(s3, "lock-hold")
    vid = s3.put_object(Bucket=b, Key="h", Body=b"h", ObjectLockLegalHoldStatus="ON")["VersionId"]
    assert s3.head_object(Bucket=b, Key="h")["ObjectLockLegalHoldStatus"] == "ON"
    assert s3.get_object_legal_hold(Bucket=b, Key="h")["LegalHold"]["Status"] == "ON"
    for kw in ({}, {"BypassGovernanceRetention": True}):
        assert s3_error(s3.delete_object, Bucket=b, Key="h", VersionId=vid, **kw)[0] == 403
    s3.put_object_legal_hold(Bucket=b, Key="h", VersionId=vid, LegalHold={"Status": "OFF"})
    assert s3.get_object_legal_hold(Bucket=b, Key="h")["LegalHold"]["Status"] == "OFF"
    s3.delete_object(Bucket=b, Key="h", VersionId=vid)


def test_default_retention_applies_to_new_versions(s3) -> None:
    b = _lock_bucket(s3, "lock-default")
    s3.put_object_lock_configuration(Bucket=b, ObjectLockConfiguration={
        "ObjectLockEnabled": "Enabled",
        "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}}})
    rule = s3.get_object_lock_configuration(Bucket=b)["ObjectLockConfiguration"]["Rule"]
    assert rule["DefaultRetention"] == {"Mode": "GOVERNANCE", "Days": 1}
    vid = s3.put_object(Bucket=b, Key="d", Body=b"d")["VersionId"]
    ret = s3.get_object_retention(Bucket=b, Key="d", VersionId=vid)["Retention"]
    assert ret["Mode"] == "GOVERNANCE"
    assert timedelta(hours=23) < ret["RetainUntilDate"] - datetime.now(UTC) < timedelta(hours=25)
    up = s3.create_multipart_upload(Bucket=b, Key="mp")
    part = s3.upload_part(Bucket=b, Key="mp", UploadId=up["UploadId"], PartNumber=1, Body=b"x")
    done = s3.complete_multipart_upload(Bucket=b, Key="mp", UploadId=up["UploadId"],
                                        MultipartUpload={"Parts": [{"PartNumber": 1,
                                                                    "ETag": part["ETag"]}]})
    assert s3.head_object(Bucket=b, Key="mp", VersionId=done["VersionId"])["ObjectLockMode"] == \
        "GOVERNANCE"
    assert s3_error(s3.delete_object, Bucket=b, Key="mp", VersionId=done["VersionId"])[0] == 403
    for bad in ({"Mode": "GOVERNANCE", "Days": 0}, {"Mode": "GOVERNANCE", "Days": 1, "Years": 1}):
        status, code, _ = s3_error(s3.put_object_lock_configuration, Bucket=b,
                                   ObjectLockConfiguration={"ObjectLockEnabled": "Enabled",
                                                            "Rule": {"DefaultRetention": bad}})
        assert status == 400 and code in ("InvalidArgument", "MalformedXML")


@pytest.mark.parametrize("kw", [{"ObjectLockMode": "GOVERNANCE"},
                                {"ObjectLockMode": "BOGUS", "ObjectLockRetainUntilDate": _in(60)}])
def test_bad_lock_headers_are_refused(s3, kw) -> None:
    b = "lock-bad"
    if b not in [x["Name"] for x in s3.list_buckets()["Buckets"]]:
        _lock_bucket(s3, b)
    assert s3_error(s3.put_object, Bucket=b, Key="x", Body=b"x", **kw)[:2] == (400, "InvalidArgument")


def test_lock_headers_need_a_lock_bucket_and_past_dates_are_refused(s3) -> None:
    assert s3_error(s3.put_object, Bucket=PLAIN, Key="x", Body=b"x", ObjectLockMode="GOVERNANCE",
                    ObjectLockRetainUntilDate=_in(60))[:2] == (400, "InvalidRequest")
    assert s3_error(s3.get_object_retention, Bucket=PLAIN, Key="x")[0] == 400
    b = _lock_bucket(s3, "lock-past")
    assert s3_error(s3.put_object, Bucket=b, Key="x", Body=b"x", ObjectLockMode="GOVERNANCE",
                    ObjectLockRetainUntilDate=_in(-60))[:2] == (400, "InvalidArgument")
    s3.put_object(Bucket=b, Key="none", Body=b"x")
    assert s3_error(s3.get_object_retention, Bucket=b, Key="none")[:2] == \
        (404, "NoSuchObjectLockConfiguration")


def test_the_aws_cli_sets_and_reads_retention_and_legal_hold(s3, cli) -> None:
    from .objtools import cli_json

    b = _lock_bucket(s3, "lock-cli")
    vid = s3.put_object(Bucket=b, Key="c", Body=b"c")["VersionId"]
    until = _in(3600).strftime("%Y-%m-%dT%H:%M:%SZ")
    cli("s3api", "put-object-retention", "--bucket", b, "--key", "c", "--version-id", vid,
        "--retention", f'{{"Mode":"GOVERNANCE","RetainUntilDate":"{until}"}}')
    got = cli_json(cli, "s3api", "get-object-retention", "--bucket", b, "--key", "c")
    assert got["Retention"]["Mode"] == "GOVERNANCE"
    cli("s3api", "put-object-legal-hold", "--bucket", b, "--key", "c", "--legal-hold", "Status=ON")
    assert cli_json(cli, "s3api", "get-object-legal-hold", "--bucket", b,
                    "--key", "c")["LegalHold"]["Status"] == "ON"
    r = cli("s3api", "delete-object", "--bucket", b, "--key", "c", "--version-id", vid,
            "--bypass-governance-retention", check=False)
    assert r.returncode != 0 and "AccessDenied" in r.stderr  # the legal hold still holds
    cli("s3api", "put-object-legal-hold", "--bucket", b, "--key", "c", "--legal-hold", "Status=OFF")
    cli("s3api", "delete-object", "--bucket", b, "--key", "c", "--version-id", vid,
        "--bypass-governance-retention")
