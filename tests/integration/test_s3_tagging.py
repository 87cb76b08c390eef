"""Object tagging against the real daemon (boto3 and the AWS CLI): tags at write
time, Put/Get/DeleteObjectTagging per version, x-amz-tagging-count, limits."""

from __future__ import annotations

import os

from .cluster import AwsCli, Daemon
from .objtools import cli_json, module_fixtures, s3_error
from .rawhttp import raw_request

B = "tagging"


d, s3, cli, _no_traceback = module_fixtures(B, home="aws-tagging")


def tags(s3, key: str, bucket: str = B, **kw) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in s3.get_object_tagging(Bucket=bucket, Key=key, **kw)["TagSet"]}


def tag_set(**pairs: str) -> dict:
    return {"TagSet": [{"Key": k, "Value": v} for k, v in pairs.items()]}


def test_tags_given_at_put_are_counted_on_get_and_head(s3) -> None:
    s3.put_object(Bucket=B, Key="put", Body=b"x", Tagging="project=titan&empty=&sp%20ace=a%2Bb")
    assert tags(s3, "put") == {"project": "titan", "empty": "", "sp ace": "a+b"}
    assert s3.get_object(Bucket=B, Key="put")["TagCount"] == 3
    head = s3.head_object(Bucket=B, Key="put")
    assert head["ResponseMetadata"]["HTTPHeaders"]["x-amz-tagging-count"] == "3"
    s3.put_object(Bucket=B, Key="untagged", Body=b"x")
    assert "TagCount" not in s3.get_object(Bucket=B, Key="untagged")


def test_put_get_delete_tagging_per_version(s3) -> None:
    b = "tagging-versioned"
    s3.create_bucket(Bucket=b)
    s3.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": "Enabled"})
    v1 = s3.put_object(Bucket=b, Key="k", Body=b"1", Tagging="gen=1")["VersionId"]
    v2 = s3.put_object(Bucket=b, Key="k", Body=b"2")["VersionId"]
    res = s3.put_object_tagging(Bucket=b, Key="k", VersionId=v1, Tagging=tag_set(gen="one", x="y"))
    assert res["VersionId"] == v1
    assert tags(s3, "k", b, VersionId=v1) == {"gen": "one", "x": "y"}
    assert tags(s3, "k", b) == {}
    assert s3.put_object_tagging(Bucket=b, Key="k", Tagging=tag_set(cur="2"))["VersionId"] == v2
    got = s3.get_object_tagging(Bucket=b, Key="k")
    assert got["VersionId"] == v2 and got["TagSet"] == [{"Key": "cur", "Value": "2"}]
    assert s3.delete_object_tagging(Bucket=b, Key="k", VersionId=v1)["VersionId"] == v1
    assert tags(s3, "k", b, VersionId=v1) == {}
    assert len(s3.list_object_versions(Bucket=b)["Versions"]) == 2  # no version was added
    marker = s3.delete_object(Bucket=b, Key="k")["VersionId"]
    assert s3_error(s3.get_object_tagging, Bucket=b, Key="k")[:2] == (404, "NoSuchKey")
    assert s3_error(s3.get_object_tagging, Bucket=b, Key="k", VersionId=marker)[:2] == (
        405, "MethodNotAllowed")
    assert s3_error(s3.put_object_tagging, Bucket=b, Key="k", Tagging=tag_set(a="b"))[:2] == (
        405, "MethodNotAllowed")


def test_retagging_a_large_object_keeps_its_data(s3) -> None:
    data = os.urandom(3 * 1024 * 1024 + 1)  # fragment files, not inline records
    s3.put_object(Bucket=B, Key="large", Body=data, Tagging="a=1")
    for i in range(3):
        s3.put_object_tagging(Bucket=B, Key="large", Tagging=tag_set(round=str(i)))
        assert tags(s3, "large") == {"round": str(i)}
    s3.delete_object_tagging(Bucket=B, Key="large")
    assert s3.get_object(Bucket=B, Key="large")["Body"].read() == data
    assert tags(s3, "large") == {}


def test_tag_limits_get_aws_errors_and_change_nothing(s3, d: Daemon) -> None:
    s3.put_object(Bucket=B, Key="limits", Body=b"x", Tagging="keep=me")
    cases = [
        ({f"k{i}": "v" for i in range(11)}, "InvalidTag"),
        ({"k" * 129: "v"}, "InvalidTag"),
        ({"k": "v" * 257}, "InvalidTag"),
        ({"aws:own": "v"}, "InvalidTag"),
        ({"bad*char": "v"}, "InvalidTag"),
    ]
    for pairs, code in cases:
        status, got, _ = s3_error(s3.put_object_tagging, Bucket=B, Key="limits",
                                  Tagging={"TagSet": [{"Key": k, "Value": v} for k, v in pairs.items()]})
        assert (status, got) == (400, code), pairs
    dup = {"TagSet": [{"Key": "a", "Value": "1"}, {"Key": "a", "Value": "2"}]}
    assert s3_error(s3.put_object_tagging, Bucket=B, Key="limits", Tagging=dup)[:2] == (400, "InvalidTag")
    assert tags(s3, "limits") == {"keep": "me"}
    ok = {f"k{i}": "v" for i in range(9)} | {"K" * 128: "V" * 256}
    s3.put_object_tagging(Bucket=B, Key="limits", Tagging=tag_set(**ok))
    assert tags(s3, "limits") == ok
    # Through the header: duplicates and bad encodings are InvalidArgument; nothing is stored.
    for header in ("a=1&a=2", "a=%zz%ff", "&".join(f"k{i}=v" for i in range(11))):
        r = raw_request(d, "PUT", f"/{B}/hdr", body=b"x", headers={"x-amz-tagging": header})
        assert r.status == 400 and r.error_code() in ("InvalidArgument", "InvalidTag"), header
        assert s3_error(s3.head_object, Bucket=B, Key="hdr")[0] == 404
    r = raw_request(d, "PUT", f"/{B}/limits?tagging", body=b"<Tagging><TagSet><Tag><Key>k</Key>"
                    b"</Tag></TagSet></Tagging>")  # fmt: skip
    assert (r.status, r.error_code()) == (400, "MalformedXML")
    good = b"<Tagging><TagSet><Tag><Key>k</Key><Value>v</Value></Tag></TagSet></Tagging>"
    r = raw_request(d, "PUT", f"/{B}/limits?tagging", body=good,
                    headers={"Content-MD5": "1B2M2Y8AsgTpgAmY7PhCfg=="})  # md5 of b""
    assert (r.status, r.error_code()) == (400, "BadDigest")
    assert tags(s3, "limits") == ok
    assert s3_error(s3.get_object_tagging, Bucket=B, Key="nothing-here")[:2] == (404, "NoSuchKey")


def test_multipart_and_copy_carry_tags(s3) -> None:
    up = s3.create_multipart_upload(Bucket=B, Key="mp", Tagging="via=mpu")["UploadId"]
    e = s3.upload_part(Bucket=B, Key="mp", UploadId=up, PartNumber=1, Body=b"abc")["ETag"]
    s3.complete_multipart_upload(Bucket=B, Key="mp", UploadId=up,
                                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e}]})
    assert tags(s3, "mp") == {"via": "mpu"}
    s3.copy_object(Bucket=B, Key="mp-copy", CopySource={"Bucket": B, "Key": "mp"})
    assert tags(s3, "mp-copy") == {"via": "mpu"}
    s3.copy_object(Bucket=B, Key="mp-copy2", CopySource={"Bucket": B, "Key": "mp"},
                   TaggingDirective="REPLACE", Tagging="via=copy")  # fmt: skip
    assert tags(s3, "mp-copy2") == {"via": "copy"}


def test_tagging_with_the_aws_cli(s3, cli: AwsCli) -> None:
    s3.put_object(Bucket=B, Key="cli", Body=b"x")
    cli("s3api", "put-object-tagging", "--bucket", B, "--key", "cli",
        "--tagging", "TagSet=[{Key=team,Value=storage},{Key=tier,Value=hot}]")  # fmt: skip
    out = cli_json(cli, "s3api", "get-object-tagging", "--bucket", B, "--key", "cli")
    assert out["TagSet"] == [{"Key": "team", "Value": "storage"}, {"Key": "tier", "Value": "hot"}]
    cli("s3api", "delete-object-tagging", "--bucket", B, "--key", "cli")
    assert tags(s3, "cli") == {}
