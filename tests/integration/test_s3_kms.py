"""The built-in KMS through ``titanctl kms`` and SSE-KMS with boto3 against the real
daemon: keys created, listed, rotated, disabled and enabled; bucket default encryption."""

from __future__ import annotations

import base64
import json
import os

from .objtools import module_fixtures, s3_error
from .test_titanctl import titanctl

BUCKET = "kms-bucket"
DEFAULT = "kms-default"

d, s3, cli, _no_traceback = module_fixtures(BUCKET, DEFAULT, home="aws-kms")


def ctl(d, *args: str) -> dict:
    r = titanctl(*args, "--json", endpoint=d.endpoint)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_kms_key_lifecycle_disable_blocks_reads_and_rotation_keeps_old_objects(s3, d) -> None:
    key = ctl(d, "kms", "create", "--description", "backups", "--alias", "backups")["key"]
    assert key["enabled"] and key["versions"] == 1 and key["arn"].endswith(key["key_id"])
    listed = ctl(d, "kms", "list")["keys"]
    assert key["key_id"] in [k["key_id"] for k in listed]
    assert "material" not in json.dumps(listed) and "titans3-sse-s3" not in json.dumps(listed)

    old = os.urandom(300_000)
    put = s3.put_object(Bucket=BUCKET, Key="old", Body=old, ServerSideEncryption="aws:kms",
                        SSEKMSKeyId=key["key_id"])
    assert put["SSEKMSKeyId"] == key["arn"]
    ctx = base64.b64encode(json.dumps({"dept": "finance"}).encode()).decode()
    s3.put_object(Bucket=BUCKET, Key="ctx", Body=b"c", ServerSideEncryption="aws:kms",
                  SSEKMSKeyId=key["key_id"], SSEKMSEncryptionContext=ctx)
    echoed = s3.head_object(Bucket=BUCKET, Key="ctx")["ResponseMetadata"]["HTTPHeaders"]
    assert json.loads(base64.b64decode(echoed["x-amz-server-side-encryption-context"])) == \
        {"dept": "finance"}
    assert s3.get_object(Bucket=BUCKET, Key="ctx")["Body"].read() == b"c"
    assert ctl(d, "kms", "rotate", key["key_id"])["key"]["versions"] == 2
    new = os.urandom(1000)
    s3.put_object(Bucket=BUCKET, Key="new", Body=new, ServerSideEncryption="aws:kms",
                  SSEKMSKeyId="alias/backups")
    assert s3.get_object(Bucket=BUCKET, Key="old")["Body"].read() == old
    assert s3.get_object(Bucket=BUCKET, Key="new")["Body"].read() == new

    assert ctl(d, "kms", "disable", key["arn"])["key"]["enabled"] is False
    assert s3_error(s3.get_object, Bucket=BUCKET, Key="old")[:2] == (403, "AccessDenied")
    assert s3_error(s3.put_object, Bucket=BUCKET, Key="x", Body=b"x", ServerSideEncryption="aws:kms",
                    SSEKMSKeyId=key["key_id"])[0] == 403
    table = titanctl("kms", "list", endpoint=d.endpoint).stdout
    assert "DISABLED" in table and key["key_id"] in table
    ctl(d, "kms", "enable", key["key_id"])
    assert s3.get_object(Bucket=BUCKET, Key="old")["Body"].read() == old


def test_kms_errors_are_one_line(d) -> None:
    r = titanctl("kms", "rotate", "no-such-key", endpoint=d.endpoint)
    assert r.returncode != 0 and r.stderr.startswith("titanctl: ") and "Traceback" not in r.stderr
    r = titanctl("kms", "disable", "titans3-sse-s3", endpoint=d.endpoint)
    assert r.returncode != 0 and "cannot be disabled" in r.stderr


def test_bucket_default_encryption_applies_to_writes_that_name_none(s3) -> None:
    assert s3_error(s3.get_bucket_encryption, Bucket=DEFAULT)[:2] == \
        (404, "ServerSideEncryptionConfigurationNotFoundError")
    s3.put_bucket_encryption(Bucket=DEFAULT, ServerSideEncryptionConfiguration={
        "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms"},
                   "BucketKeyEnabled": True}]})
    rules = s3.get_bucket_encryption(Bucket=DEFAULT)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    assert rules[0]["BucketKeyEnabled"] is True
    put = s3.put_object(Bucket=DEFAULT, Key="k", Body=b"hello")
    assert put["ServerSideEncryption"] == "aws:kms" and put["BucketKeyEnabled"] is True
    head = s3.head_object(Bucket=DEFAULT, Key="k")
    assert head["ServerSideEncryption"] == "aws:kms"
    # An explicit request wins over the default; a multipart upload gets the default too.
    assert s3.put_object(Bucket=DEFAULT, Key="s3", Body=b"x",
                         ServerSideEncryption="AES256")["ServerSideEncryption"] == "AES256"
    up = s3.create_multipart_upload(Bucket=DEFAULT, Key="mp")
    assert up["ServerSideEncryption"] == "aws:kms"
    s3.abort_multipart_upload(Bucket=DEFAULT, Key="mp", UploadId=up["UploadId"])
    s3.put_bucket_encryption(Bucket=DEFAULT, ServerSideEncryptionConfiguration={
        "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})
    assert s3.put_object(Bucket=DEFAULT, Key="k2", Body=b"x")["ServerSideEncryption"] == "AES256"
    s3.delete_bucket_encryption(Bucket=DEFAULT)
    assert "ServerSideEncryption" not in s3.put_object(Bucket=DEFAULT, Key="k3", Body=b"x")
    assert s3.get_object(Bucket=DEFAULT, Key="k")["Body"].read() == b"hello"


def test_bucket_encryption_validation(s3) -> None:
    bad = {"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256",
                                                              "KMSMasterKeyID": "x"}}]}
    assert s3_error(s3.put_bucket_encryption, Bucket=DEFAULT,
                    ServerSideEncryptionConfiguration=bad)[:2] == (400, "InvalidArgument")
    assert s3_error(s3.put_bucket_encryption, Bucket="no-such-bucket-kms",
                    ServerSideEncryptionConfiguration={"Rules": [
                        {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})[1] == \
        "NoSuchBucket"
