"""Conditional writes, partNumber reads, response-* overrides, the metadata limit,
upload and part listings, and bad multipart/MD5 input -- against the real daemon
with boto3 and the AWS CLI.  Every refused request must leave nothing visible."""

from __future__ import annotations

import base64
import hashlib
import os
import threading

import pytest
from botocore.exceptions import ClientError

from .cluster import AwsCli, Daemon, MiB, s3_client
from .objtools import cli_json, module_fixtures, s3_error
from .rawhttp import raw_request

B = "conditional"
PART = 5 * MiB


d, s3, cli, _no_traceback = module_fixtures(B, home="aws-conditional")


def read(s3, key: str, **kw) -> bytes:
    return s3.get_object(Bucket=B, Key=key, **kw)["Body"].read()


def absent(s3, key: str) -> bool:
    return s3_error(s3.head_object, Bucket=B, Key=key)[0] == 404


# -------------------------------------------------------- conditional writes
def test_if_none_match_and_if_match_on_put(s3, d: Daemon) -> None:
    first = s3.put_object(Bucket=B, Key="cw", Body=b"first", IfNoneMatch="*")
    assert s3_error(s3.put_object, Bucket=B, Key="cw", Body=b"again", IfNoneMatch="*")[:2] == (
        412, "PreconditionFailed")
    assert s3_error(s3.put_object, Bucket=B, Key="cw", Body=b"x", IfMatch='"0000"')[:2] == (
        412, "PreconditionFailed")
    s3.put_object(Bucket=B, Key="cw", Body=b"second", IfMatch=first["ETag"])
    assert read(s3, "cw") == b"second"
    assert s3_error(s3.put_object, Bucket=B, Key="cw-new", Body=b"x", IfMatch=first["ETag"])[:2] == (
        404, "NoSuchKey")
    second = s3.head_object(Bucket=B, Key="cw")["ETag"]
    r = raw_request(d, "PUT", f"/{B}/cw", body=b"x", headers={"If-None-Match": second})
    assert (r.status, r.error_code()) == (412, "PreconditionFailed")
    assert read(s3, "cw") == b"second" and absent(s3, "cw-new")


def test_concurrent_create_only_writers_exactly_one_wins(s3, d: Daemon) -> None:
    outcomes: dict[int, object] = {}

    def writer(i: int) -> None:
        client = s3_client(d)
        try:
            client.put_object(Bucket=B, Key="race", Body=b"writer %d " % i * 20_000, IfNoneMatch="*")
            outcomes[i] = 200
        except ClientError as e:
            outcomes[i] = e.response["Error"]["Code"]
        finally:
            client.close()

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    winners = [i for i, o in outcomes.items() if o == 200]
    assert len(outcomes) == 6 and len(winners) == 1, outcomes
    assert set(outcomes.values()) <= {200, "PreconditionFailed", "ConditionalRequestConflict"}
    assert read(s3, "race") == b"writer %d " % winners[0] * 20_000


def test_conditional_complete_multipart_upload(s3) -> None:
    s3.put_object(Bucket=B, Key="cmp", Body=b"exists")
    up = s3.create_multipart_upload(Bucket=B, Key="cmp")["UploadId"]
    e = s3.upload_part(Bucket=B, Key="cmp", UploadId=up, PartNumber=1, Body=b"new")["ETag"]
    parts = {"Parts": [{"PartNumber": 1, "ETag": e}]}
    assert s3_error(s3.complete_multipart_upload, Bucket=B, Key="cmp", UploadId=up,
                    MultipartUpload=parts, IfNoneMatch="*")[:2] == (412, "PreconditionFailed")
    assert read(s3, "cmp") == b"exists"
    etag = s3.head_object(Bucket=B, Key="cmp")["ETag"]
    s3.complete_multipart_upload(Bucket=B, Key="cmp", UploadId=up, MultipartUpload=parts,
                                 IfMatch=etag)  # fmt: skip
    assert read(s3, "cmp") == b"new"


# ------------------------------------------------------------------- reads
@pytest.fixture(scope="module")
def multipart_object(s3) -> list[bytes]:
    chunks = [os.urandom(PART), os.urandom(PART), b"tail bytes"]
    up = s3.create_multipart_upload(Bucket=B, Key="parts")["UploadId"]
    etags = [s3.upload_part(Bucket=B, Key="parts", UploadId=up, PartNumber=i + 1, Body=c)["ETag"]
             for i, c in enumerate(chunks)]  # fmt: skip
    s3.complete_multipart_upload(Bucket=B, Key="parts", UploadId=up, MultipartUpload={
        "Parts": [{"PartNumber": i + 1, "ETag": e} for i, e in enumerate(etags)]})  # fmt: skip
    return chunks


def test_part_number_reads_serve_one_part(s3, multipart_object: list[bytes]) -> None:
    total = sum(map(len, multipart_object))
    offset = 0
    for n, chunk in enumerate(multipart_object, start=1):
        got = s3.get_object(Bucket=B, Key="parts", PartNumber=n)
        assert got["ResponseMetadata"]["HTTPStatusCode"] == 206 and got["PartsCount"] == 3
        assert got["ContentRange"] == f"bytes {offset}-{offset + len(chunk) - 1}/{total}"
        assert got["Body"].read() == chunk
        head = s3.head_object(Bucket=B, Key="parts", PartNumber=n)
        assert head["ContentLength"] == len(chunk) and head["PartsCount"] == 3
        offset += len(chunk)
    assert s3_error(s3.get_object, Bucket=B, Key="parts", PartNumber=4)[:2] == (400, "InvalidPartNumber")
    assert s3_error(s3.get_object, Bucket=B, Key="parts", PartNumber=1, Range="bytes=0-1")[:2] == (
        400, "InvalidRequest")
    s3.put_object(Bucket=B, Key="single", Body=b"one piece")
    one = s3.get_object(Bucket=B, Key="single", PartNumber=1)  # the whole object, a plain 200
    assert one["Body"].read() == b"one piece" and "PartsCount" not in one
    assert one["ResponseMetadata"]["HTTPStatusCode"] == 200 and "ContentRange" not in one
    head = s3.head_object(Bucket=B, Key="single", PartNumber=1)
    assert head["ResponseMetadata"]["HTTPStatusCode"] == 200 and head["ContentLength"] == 9
    assert s3_error(s3.head_object, Bucket=B, Key="single", PartNumber=2)[0] == 400
    assert s3_error(s3.get_object, Bucket=B, Key="single", PartNumber=2)[:2] == (
        400, "InvalidPartNumber")


def test_response_overrides_on_get(s3) -> None:
    s3.put_object(Bucket=B, Key="over", Body=b"x", ContentType="text/plain")
    got = s3.get_object(Bucket=B, Key="over", ResponseContentType="application/x-custom",
                        ResponseContentDisposition='attachment; filename="f.txt"',
                        ResponseCacheControl="no-cache", ResponseContentLanguage="de",
                        ResponseContentEncoding="identity",
                        ResponseExpires="Thu, 01 Jan 2037 00:00:00 GMT")  # fmt: skip
    h = got["ResponseMetadata"]["HTTPHeaders"]
    assert h["content-type"] == "application/x-custom"
    assert h["content-disposition"] == 'attachment; filename="f.txt"'
    assert (h["cache-control"], h["content-language"], h["content-encoding"]) == ("no-cache", "de", "identity")
    assert h["expires"] == "Thu, 01 Jan 2037 00:00:00 GMT"
    assert s3.head_object(Bucket=B, Key="over")["ContentType"] == "text/plain"  # stored value intact


def test_user_metadata_limit_is_2_kib(s3) -> None:
    exact = {"a": "x" * (2048 - 1)}  # name + value bytes, as AWS counts
    s3.put_object(Bucket=B, Key="meta-ok", Body=b"x", Metadata=exact)
    assert s3.head_object(Bucket=B, Key="meta-ok")["Metadata"] == exact
    status, code, _ = s3_error(s3.put_object, Bucket=B, Key="meta-big", Body=b"x",
                               Metadata={"a": "x" * 2048})  # fmt: skip
    assert (status, code) == (400, "MetadataTooLarge") and absent(s3, "meta-big")
    assert s3_error(s3.create_multipart_upload, Bucket=B, Key="meta-big",
                    Metadata={"b": "y" * 3000})[:2] == (400, "MetadataTooLarge")  # fmt: skip


# ----------------------------------------------------------------- listings
def test_list_multipart_uploads_pages_with_boto3_and_cli(s3, cli: AwsCli) -> None:
    b = "uploads-listing"
    s3.create_bucket(Bucket=b)
    made = sorted((k, s3.create_multipart_upload(Bucket=b, Key=k)["UploadId"])
                  for k in ("a", "b", "b", "dir/1", "dir/2", "z"))  # fmt: skip
    pages = list(s3.get_paginator("list_multipart_uploads").paginate(
        Bucket=b, PaginationConfig={"PageSize": 2}))  # fmt: skip
    assert len(pages) == 3
    assert [(u["Key"], u["UploadId"]) for p in pages for u in p.get("Uploads", [])] == made
    grouped = s3.list_multipart_uploads(Bucket=b, Delimiter="/")
    assert [p["Prefix"] for p in grouped["CommonPrefixes"]] == ["dir/"]
    assert [u["Key"] for u in grouped["Uploads"]] == ["a", "b", "b", "z"]
    after = s3.list_multipart_uploads(Bucket=b, KeyMarker="b", UploadIdMarker=made[1][1])
    assert [(u["Key"], u["UploadId"]) for u in after["Uploads"]] == made[2:]
    out = cli_json(cli, "s3api", "list-multipart-uploads", "--bucket", b, "--prefix", "dir/")
    assert [u["Key"] for u in out["Uploads"]] == ["dir/1", "dir/2"]
    for key, upload_id in made:
        s3.abort_multipart_upload(Bucket=b, Key=key, UploadId=upload_id)
    assert "Uploads" not in s3.list_multipart_uploads(Bucket=b)


def test_list_parts_pagination(s3) -> None:
    up = s3.create_multipart_upload(Bucket=B, Key="lp")["UploadId"]
    for n in (1, 2, 3, 5, 8):
        s3.upload_part(Bucket=B, Key="lp", UploadId=up, PartNumber=n, Body=b"p%d" % n)
    page = s3.list_parts(Bucket=B, Key="lp", UploadId=up, MaxParts=2)
    assert [p["PartNumber"] for p in page["Parts"]] == [1, 2] and page["IsTruncated"]
    assert page["NextPartNumberMarker"] == 2
    rest = s3.list_parts(Bucket=B, Key="lp", UploadId=up, PartNumberMarker=2)
    assert [p["PartNumber"] for p in rest["Parts"]] == [3, 5, 8] and not rest["IsTruncated"]
    pages = list(s3.get_paginator("list_parts").paginate(
        Bucket=B, Key="lp", UploadId=up, PaginationConfig={"PageSize": 2}))  # fmt: skip
    assert [p["PartNumber"] for pg in pages for p in pg["Parts"]] == [1, 2, 3, 5, 8]
    s3.abort_multipart_upload(Bucket=B, Key="lp", UploadId=up)


# ---------------------------------------------------------------- bad input
def test_bad_complete_requests_leave_no_object(s3) -> None:
    up = s3.create_multipart_upload(Bucket=B, Key="bad-mpu")["UploadId"]
    e1 = s3.upload_part(Bucket=B, Key="bad-mpu", UploadId=up, PartNumber=1, Body=b"a" * PART)["ETag"]
    e2 = s3.upload_part(Bucket=B, Key="bad-mpu", UploadId=up, PartNumber=2, Body=b"b")["ETag"]
    out_of_order = {"Parts": [{"PartNumber": 2, "ETag": e2}, {"PartNumber": 1, "ETag": e1}]}
    assert s3_error(s3.complete_multipart_upload, Bucket=B, Key="bad-mpu", UploadId=up,
                    MultipartUpload=out_of_order)[:2] == (400, "InvalidPartOrder")  # fmt: skip
    too_many = {"Parts": [{"PartNumber": n, "ETag": e1} for n in range(1, 10_002)]}
    status, code, _ = s3_error(s3.complete_multipart_upload, Bucket=B, Key="bad-mpu", UploadId=up,
                               MultipartUpload=too_many)  # fmt: skip
    assert (status, code) == (400, "InvalidArgument")
    assert s3_error(s3.upload_part, Bucket=B, Key="bad-mpu", UploadId=up, PartNumber=10_001,
                    Body=b"x")[:2] == (400, "InvalidArgument")  # fmt: skip
    wrong_etag = {"Parts": [{"PartNumber": 1, "ETag": e2}]}
    assert s3_error(s3.complete_multipart_upload, Bucket=B, Key="bad-mpu", UploadId=up,
                    MultipartUpload=wrong_etag)[:2] == (400, "InvalidPart")  # fmt: skip
    assert absent(s3, "bad-mpu")
    # The upload is intact: a correct Complete still works.
    s3.complete_multipart_upload(Bucket=B, Key="bad-mpu", UploadId=up, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]})  # fmt: skip
    assert s3.head_object(Bucket=B, Key="bad-mpu")["ContentLength"] == PART + 1


def test_wrong_content_md5_stores_nothing(s3) -> None:
    wrong = base64.b64encode(hashlib.md5(b"something else").digest()).decode()
    assert s3_error(s3.put_object, Bucket=B, Key="md5", Body=b"payload", ContentMD5=wrong)[:2] == (
        400, "BadDigest")
    assert absent(s3, "md5")
    up = s3.create_multipart_upload(Bucket=B, Key="md5-mpu")["UploadId"]
    assert s3_error(s3.upload_part, Bucket=B, Key="md5-mpu", UploadId=up, PartNumber=1,
                    Body=b"payload", ContentMD5=wrong)[:2] == (400, "BadDigest")  # fmt: skip
    assert s3.list_parts(Bucket=B, Key="md5-mpu", UploadId=up).get("Parts", []) == []
    s3.abort_multipart_upload(Bucket=B, Key="md5-mpu", UploadId=up)
