"""DeleteObjects against the real daemon (boto3, the AWS CLI, raw requests):
the 1,000-key limit, quiet mode, per-key errors, versions, integrity headers."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

from .cluster import AwsCli, Daemon
from .objtools import cli_json, module_fixtures, s3_error
from .rawhttp import raw_request

d, s3, cli, _no_traceback = module_fixtures(home="aws-delete")


_n = iter(range(10_000))


def bucket(s3, versioned: bool = False) -> str:
    name = f"batch-{next(_n)}"
    s3.create_bucket(Bucket=name)
    if versioned:
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return name


def keys(s3, b: str) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=b).get("Contents", [])]


def delete_body(entries: list[str], quiet: bool = False) -> bytes:
    objs = "".join(f"<Object><Key>{k}</Key></Object>" for k in entries)
    return f"<Delete><Quiet>{str(quiet).lower()}</Quiet>{objs}</Delete>".encode()


def md5_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


def test_one_request_deletes_up_to_1000_keys(s3) -> None:
    b = bucket(s3)
    real = [f"k/{i:03d}" for i in range(40)]
    for k in real:
        s3.put_object(Bucket=b, Key=k, Body=b"x")
    wanted = real + [f"missing/{i}" for i in range(960)]  # absent keys delete fine too
    res = s3.delete_objects(Bucket=b, Delete={"Objects": [{"Key": k} for k in wanted]})
    assert [x["Key"] for x in res["Deleted"]] == wanted and "Errors" not in res
    assert keys(s3, b) == []


def test_more_than_1000_keys_is_malformed_xml_and_deletes_nothing(s3, d: Daemon) -> None:
    b = bucket(s3)
    s3.put_object(Bucket=b, Key="k0", Body=b"x")
    body = delete_body([f"k{i}" for i in range(1001)])
    r = raw_request(d, "POST", f"/{b}?delete", body=body, headers={"Content-MD5": md5_b64(body)})
    assert (r.status, r.error_code()) == (400, "MalformedXML")
    assert keys(s3, b) == ["k0"]


def test_quiet_mode_reports_only_errors(s3) -> None:
    b = bucket(s3)
    s3.put_object(Bucket=b, Key="a", Body=b"x")
    res = s3.delete_objects(Bucket=b, Delete={"Quiet": True, "Objects": [
        {"Key": "a"}, {"Key": "b", "VersionId": "not-a-version"}]})  # fmt: skip
    assert "Deleted" not in res
    assert [(e["Key"], e["Code"]) for e in res["Errors"]] == [("b", "InvalidArgument")]
    assert keys(s3, b) == []


def test_per_key_errors_do_not_stop_the_others(s3, d: Daemon) -> None:
    b = bucket(s3)
    for k in ("ok1", "ok2"):
        s3.put_object(Bucket=b, Key=k, Body=b"x")
    long_key = "L" * 1025
    body = (f"<Delete><Object><Key>ok1</Key></Object><Object><Key>{long_key}</Key></Object>"
            "<Object><Key>ok2</Key><VersionId>zzz</VersionId></Object>"
            "<Object><Key>ok2</Key></Object></Delete>").encode()  # fmt: skip
    r = raw_request(d, "POST", f"/{b}?delete", body=body, headers={"Content-MD5": md5_b64(body)})
    assert r.status == 200, r.body
    text = r.body.decode()
    assert text.count("<Deleted>") == 2 and text.count("<Error>") == 2
    assert "<Code>KeyTooLongError</Code>" in text and "<Code>InvalidArgument</Code>" in text
    assert keys(s3, b) == []


def test_versioned_batch_delete_makes_and_removes_markers(s3) -> None:
    b = bucket(s3, versioned=True)
    v1 = s3.put_object(Bucket=b, Key="k", Body=b"one")["VersionId"]
    res = s3.delete_objects(Bucket=b, Delete={"Objects": [{"Key": "k"}, {"Key": "k"}]})
    (marker,) = res["Deleted"]  # the same key twice is done once
    assert marker["DeleteMarker"] is True and "VersionId" not in marker
    mid = marker["DeleteMarkerVersionId"]
    res = s3.delete_objects(Bucket=b, Delete={"Objects": [
        {"Key": "k", "VersionId": mid}, {"Key": "k", "VersionId": v1}]})  # fmt: skip
    by_version = {x["VersionId"]: x for x in res["Deleted"]}
    assert by_version[mid]["DeleteMarker"] is True and by_version[mid]["DeleteMarkerVersionId"] == mid
    assert "DeleteMarker" not in by_version[v1]
    assert s3.list_object_versions(Bucket=b).get("Versions") is None


def test_integrity_header_is_required_and_checked(s3, d: Daemon) -> None:
    b = bucket(s3)
    s3.put_object(Bucket=b, Key="keep", Body=b"x")
    body = delete_body(["keep"])
    missing = raw_request(d, "POST", f"/{b}?delete", body=body)
    assert (missing.status, missing.error_code()) == (400, "InvalidRequest")
    wrong = raw_request(d, "POST", f"/{b}?delete", body=body, headers={"Content-MD5": md5_b64(b"x")})
    assert (wrong.status, wrong.error_code()) == (400, "BadDigest")
    crc = raw_request(d, "POST", f"/{b}?delete", body=body,
                      headers={"x-amz-checksum-crc32": "AAAAAA=="})  # fmt: skip
    assert (crc.status, crc.error_code()) == (400, "BadDigest")
    garbage = b"<Delete><Object><Key>keep</Key></Object>"
    bad = raw_request(d, "POST", f"/{b}?delete", body=garbage, headers={"Content-MD5": md5_b64(garbage)})
    assert (bad.status, bad.error_code()) == (400, "MalformedXML")
    assert keys(s3, b) == ["keep"]
    assert s3_error(s3.delete_objects, Bucket="no-such-batch",
                    Delete={"Objects": [{"Key": "k"}]})[:2] == (404, "NoSuchBucket")  # fmt: skip


def test_batch_delete_with_the_aws_cli(s3, cli: AwsCli, tmp_path: Path) -> None:
    b = bucket(s3)
    for i in range(30):
        s3.put_object(Bucket=b, Key=f"tree/{i}", Body=b"x")
    s3.put_object(Bucket=b, Key="a", Body=b"x")
    spec = tmp_path / "delete.json"
    spec.write_text(json.dumps({"Objects": [{"Key": "a"}], "Quiet": False}))
    out = cli_json(cli, "s3api", "delete-objects", "--bucket", b, "--delete", f"file://{spec}")
    assert [x["Key"] for x in out["Deleted"]] == ["a"]
    cli("s3", "rm", f"s3://{b}/tree/", "--recursive")
    assert keys(s3, b) == []
