"""CopyObject and UploadPartCopy against the real daemon (boto3 and the AWS CLI):
directives, conditionals, versions, ranges, errors, and a streamed large copy."""

from __future__ import annotations

import base64
import hashlib
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from .cluster import AwsCli, Daemon, MiB
from .objtools import cli_json, module_fixtures, s3_error
from .rawhttp import pattern_chunks, sha256_of, stream_get, stream_put
from .test_memory import RssSampler
from .test_rename import chunk_files

SRC = "copy-src"
DST = "copy-dst"


d, s3, cli, _no_traceback = module_fixtures(SRC, DST, home="aws-copy")


def read(s3, b: str, k: str, **kw) -> bytes:
    return s3.get_object(Bucket=b, Key=k, **kw)["Body"].read()


def test_copy_within_and_across_buckets_keeps_data_metadata_and_tags(s3) -> None:
    data = os.urandom(3 * MiB + 5)
    s3.put_object(Bucket=SRC, Key="orig", Body=data, ContentType="text/x-test",
                  Metadata={"color": "blue"}, Tagging="a=1")  # fmt: skip
    for bucket, key in ((SRC, "same"), (DST, "other")):
        res = s3.copy_object(Bucket=bucket, Key=key, CopySource={"Bucket": SRC, "Key": "orig"})
        assert res["CopyObjectResult"]["ETag"].strip('"') == hashlib.md5(data).hexdigest()
        assert res["CopyObjectResult"]["LastModified"].year >= 2024
        assert read(s3, bucket, key) == data
        head = s3.head_object(Bucket=bucket, Key=key)
        assert head["ContentType"] == "text/x-test" and head["Metadata"] == {"color": "blue"}
        assert s3.get_object_tagging(Bucket=bucket, Key=key)["TagSet"] == [{"Key": "a", "Value": "1"}]


def test_copy_computes_a_requested_checksum_algorithm(s3) -> None:
    data = os.urandom(100_000)
    s3.put_object(Bucket=SRC, Key="ck", Body=data)
    res = s3.copy_object(Bucket=DST, Key="ck", CopySource={"Bucket": SRC, "Key": "ck"},
                         ChecksumAlgorithm="SHA256")  # fmt: skip
    want = base64.b64encode(hashlib.sha256(data).digest()).decode()
    assert res["CopyObjectResult"]["ChecksumSHA256"] == want
    assert s3.head_object(Bucket=DST, Key="ck", ChecksumMode="ENABLED")["ChecksumSHA256"] == want


def test_replace_directives_and_copy_onto_itself(s3) -> None:
    s3.put_object(Bucket=SRC, Key="self", Body=b"same", Metadata={"old": "1"}, Tagging="t=1")
    status, code, _ = s3_error(s3.copy_object, Bucket=SRC, Key="self",
                               CopySource={"Bucket": SRC, "Key": "self"})  # fmt: skip
    assert (status, code) == (400, "InvalidRequest")
    s3.copy_object(Bucket=SRC, Key="self", CopySource={"Bucket": SRC, "Key": "self"},
                   MetadataDirective="REPLACE", Metadata={"new": "2"}, ContentType="x/y",
                   TaggingDirective="REPLACE", Tagging="u=2")  # fmt: skip
    head = s3.head_object(Bucket=SRC, Key="self")
    assert head["Metadata"] == {"new": "2"} and head["ContentType"] == "x/y"
    assert s3.get_object_tagging(Bucket=SRC, Key="self")["TagSet"] == [{"Key": "u", "Value": "2"}]
    assert read(s3, SRC, "self") == b"same"
    # COPY metadata with REPLACE tagging and no x-amz-tagging: the copy has no tags.
    s3.copy_object(Bucket=DST, Key="untagged", CopySource={"Bucket": SRC, "Key": "self"},
                   TaggingDirective="REPLACE")  # fmt: skip
    assert s3.get_object_tagging(Bucket=DST, Key="untagged")["TagSet"] == []
    assert s3.head_object(Bucket=DST, Key="untagged")["Metadata"] == {"new": "2"}
    assert s3_error(s3.copy_object, Bucket=DST, Key="x", CopySource=f"{SRC}/self",
                    MetadataDirective="MERGE")[:2] == (400, "InvalidArgument")  # fmt: skip


def test_copy_onto_itself_replacing_metadata_moves_no_data(s3, d: Daemon) -> None:
    data = os.urandom(24 * MiB + 3)
    put = s3.put_object(Bucket=SRC, Key="big-self", Body=data, Metadata={"mode": "33188"},
                        Tagging="keep=1")  # fmt: skip
    before = chunk_files(d)
    res = s3.copy_object(Bucket=SRC, Key="big-self", CopySource={"Bucket": SRC, "Key": "big-self"},
                         MetadataDirective="REPLACE", Metadata={"mode": "33261"},
                         CopySourceIfMatch=put["ETag"])  # fmt: skip
    assert res["CopyObjectResult"]["ETag"] == put["ETag"]
    assert not chunk_files(d) - before  # no fragment file written: the bytes stayed put
    head = s3.head_object(Bucket=SRC, Key="big-self")
    assert head["Metadata"] == {"mode": "33261"} and head["ContentLength"] == len(data)
    assert s3.get_object_tagging(Bucket=SRC, Key="big-self")["TagSet"] == [{"Key": "keep", "Value": "1"}]
    assert hashlib.sha256(read(s3, SRC, "big-self")).digest() == hashlib.sha256(data).digest()
    assert read(s3, SRC, "big-self", Range="bytes=9000000-9000009") == data[9000000:9000010]
    status, code, _ = s3_error(s3.copy_object, Bucket=SRC, Key="big-self",
                               CopySource={"Bucket": SRC, "Key": "big-self"},
                               MetadataDirective="REPLACE", Metadata={"mode": "1"},
                               CopySourceIfMatch='"' + "0" * 32 + '"')  # fmt: skip
    assert (status, code) == (412, "PreconditionFailed")
    assert s3.head_object(Bucket=SRC, Key="big-self")["Metadata"] == {"mode": "33261"}


def test_copy_source_conditionals(s3) -> None:
    etag = s3.put_object(Bucket=SRC, Key="cond", Body=b"c")["ETag"]
    past, future = datetime.now(UTC) - timedelta(days=1), datetime.now(UTC) + timedelta(days=1)
    src = {"Bucket": SRC, "Key": "cond"}
    ok = [dict(CopySourceIfMatch=etag), dict(CopySourceIfNoneMatch='"other"'),
          dict(CopySourceIfModifiedSince=past), dict(CopySourceIfUnmodifiedSince=future),
          dict(CopySourceIfMatch=etag, CopySourceIfUnmodifiedSince=past)]  # fmt: skip
    bad = [dict(CopySourceIfMatch='"other"'), dict(CopySourceIfNoneMatch=etag),
           dict(CopySourceIfModifiedSince=future), dict(CopySourceIfUnmodifiedSince=past),
           dict(CopySourceIfNoneMatch=etag, CopySourceIfModifiedSince=past)]  # fmt: skip
    for kw in ok:
        s3.copy_object(Bucket=DST, Key="cond-ok", CopySource=src, **kw)
    for kw in bad:
        assert s3_error(s3.copy_object, Bucket=DST, Key="cond-bad", CopySource=src, **kw)[:2] == (
            412, "PreconditionFailed"), kw
    assert s3_error(s3.head_object, Bucket=DST, Key="cond-bad")[0] == 404


def test_copy_of_versions_and_delete_markers(s3) -> None:
    b = "copy-versioned"
    s3.create_bucket(Bucket=b)
    s3.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": "Enabled"})
    v1 = s3.put_object(Bucket=b, Key="k", Body=b"first")["VersionId"]
    s3.put_object(Bucket=b, Key="k", Body=b"second")
    res = s3.copy_object(Bucket=b, Key="k", CopySource={"Bucket": b, "Key": "k", "VersionId": v1})
    assert res["CopySourceVersionId"] == v1 and res["VersionId"] not in (v1, "null")
    assert read(s3, b, "k") == b"first"  # restoring an old version needs no REPLACE
    marker = s3.delete_object(Bucket=b, Key="k")["VersionId"]
    status, code, headers = s3_error(s3.copy_object, Bucket=DST, Key="x", CopySource=f"{b}/k")
    assert (status, code, headers.get("x-amz-delete-marker")) == (404, "NoSuchKey", "true")
    assert s3_error(s3.copy_object, Bucket=DST, Key="x",
                    CopySource={"Bucket": b, "Key": "k", "VersionId": marker})[:2] == (
        400, "InvalidRequest")  # fmt: skip
    assert s3_error(s3.copy_object, Bucket=DST, Key="x", CopySource=f"{SRC}/missing")[:2] == (
        404, "NoSuchKey")
    assert s3_error(s3.copy_object, Bucket="no-such-dst", Key="x", CopySource=f"{b}/k?versionId={v1}"
                    )[:2] == (404, "NoSuchBucket")  # fmt: skip


def test_upload_part_copy_with_ranges(s3) -> None:
    data = os.urandom(7 * MiB)
    s3.put_object(Bucket=SRC, Key="big", Body=data)
    up = s3.create_multipart_upload(Bucket=DST, Key="assembled")["UploadId"]
    p1 = s3.upload_part_copy(Bucket=DST, Key="assembled", UploadId=up, PartNumber=1,
                             CopySource={"Bucket": SRC, "Key": "big"},
                             CopySourceRange=f"bytes=0-{5 * MiB - 1}")  # fmt: skip
    p2 = s3.upload_part_copy(Bucket=DST, Key="assembled", UploadId=up, PartNumber=2,
                             CopySource={"Bucket": SRC, "Key": "big"},
                             CopySourceRange=f"bytes={5 * MiB}-{len(data) - 1}")  # fmt: skip
    assert p1["CopyPartResult"]["ETag"].strip('"') == hashlib.md5(data[: 5 * MiB]).hexdigest()
    for bad, answer in ((f"bytes=0-{len(data)}", (416, "InvalidRange")),  # past the end
                        (f"bytes={len(data)}-{len(data) + 5}", (416, "InvalidRange")),
                        ("bytes=9-3", (400, "InvalidArgument")), ("0-5", (400, "InvalidArgument"))):
        status, code, _ = s3_error(s3.upload_part_copy, Bucket=DST, Key="assembled", UploadId=up,
                                   PartNumber=3, CopySource={"Bucket": SRC, "Key": "big"},
                                   CopySourceRange=bad)  # fmt: skip
        assert (status, code) == answer, bad
    parts = s3.list_parts(Bucket=DST, Key="assembled", UploadId=up)["Parts"]
    assert [p["PartNumber"] for p in parts] == [1, 2]
    s3.complete_multipart_upload(Bucket=DST, Key="assembled", UploadId=up, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": p1["CopyPartResult"]["ETag"]},
                  {"PartNumber": 2, "ETag": p2["CopyPartResult"]["ETag"]}]})  # fmt: skip
    assert read(s3, DST, "assembled") == data


def test_copy_with_the_aws_cli(s3, cli: AwsCli, tmp_path: Path) -> None:
    s3.put_object(Bucket=SRC, Key="cli/src", Body=b"from the cli", Metadata={"m": "1"})
    res = cli_json(cli, "s3api", "copy-object", "--bucket", DST, "--key", "cli/dst",
                   "--copy-source", f"{SRC}/cli/src")  # fmt: skip
    assert res["CopyObjectResult"]["ETag"].strip('"') == hashlib.md5(b"from the cli").hexdigest()
    cli("s3", "cp", f"s3://{SRC}/cli/src", f"s3://{DST}/cli/s3cp")  # server-side copy
    assert read(s3, DST, "cli/s3cp") == b"from the cli"
    up = cli_json(cli, "s3api", "create-multipart-upload", "--bucket", DST, "--key", "cli/mp")
    part = cli_json(cli, "s3api", "upload-part-copy", "--bucket", DST, "--key", "cli/mp",
                    "--upload-id", up["UploadId"], "--part-number", "1",
                    "--copy-source", f"{SRC}/cli/src", "--copy-source-range", "bytes=5-7")  # fmt: skip
    assert part["CopyPartResult"]["ETag"].strip('"') == hashlib.md5(b"the").hexdigest()
    s3.abort_multipart_upload(Bucket=DST, Key="cli/mp", UploadId=up["UploadId"])


def test_large_copy_streams_with_bounded_memory(s3, d: Daemon) -> None:
    size = 192 * MiB
    want = sha256_of(pattern_chunks(size, seed=3))
    r = stream_put(d, SRC, "large", pattern_chunks(size, seed=3), size, payload_sha256=want)
    assert r.status == 200
    baseline = d.rss_bytes()
    with RssSampler(d.pid) as rss:
        s3.copy_object(Bucket=DST, Key="large-copy", CopySource={"Bucket": SRC, "Key": "large"})
    status, got, n = stream_get(d, DST, "large-copy")
    assert (status, n, got) == (200, size, want)
    grown = (rss.max_rss - baseline) / MiB
    print(f"copy of {size // MiB} MiB: RSS {baseline / MiB:.0f} -> max {rss.max_rss / MiB:.0f} MiB")
    assert rss.samples > 3 and grown < 96, f"copy grew the daemon by {grown:.0f} MiB"
