"""boto3 and the AWS CLI, default settings, against the real daemon.

Default settings matter: current botocore and the CLI send CRC32 checksums as
aws-chunked trailers on every upload, create multipart uploads with
``ChecksumAlgorithm=CRC32`` (so parts and Complete carry checksums), and ask
for ``x-amz-checksum-mode: ENABLED`` on every download, validating what comes
back.  Nothing here turns any of that off.

One module-scoped daemon; the tree for ``aws s3 sync`` is 1,000 small files
plus three large ones over the CLI's 8 MiB multipart threshold.
"""

from __future__ import annotations

import hashlib
import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from .cluster import AwsCli, Daemon, MiB, s3_client
from .rawhttp import sha256_file, write_random_file

SMALL_FILES = 1000
LARGE_SIZES = (8 * MiB, 12 * MiB + 5, 17 * MiB - 3)


@pytest.fixture(scope="module")
def d(module_daemon: Daemon) -> Daemon:
    return module_daemon


@pytest.fixture(scope="module")
def s3(d: Daemon) -> Iterator[object]:
    client = s3_client(d)
    yield client
    client.close()


@pytest.fixture(scope="module")
def cli(d: Daemon, tmp_path_factory: pytest.TempPathFactory) -> AwsCli:
    return AwsCli(d.endpoint, d.credentials, tmp_path_factory.mktemp("aws-home"))


def tree_digest(root: Path) -> dict[str, str]:
    """relative path -> sha256 of every file under ``root``."""
    return {
        p.relative_to(root).as_posix(): sha256_file(p) for p in sorted(root.rglob("*")) if p.is_file()
    }


def make_tree(root: Path) -> None:
    rng = random.Random(3)
    for i in range(SMALL_FILES):
        sub = root / f"d{i % 10}" / f"e{i % 7}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"file-{i:04d}.bin").write_bytes(rng.randbytes(rng.randrange(0, 3000)))
    (root / "big").mkdir()
    for n, size in enumerate(LARGE_SIZES):
        write_random_file(root / "big" / f"large-{n}.bin", size)


# ------------------------------------------------------------------ aws s3 sync
def test_aws_s3_sync_both_ways_then_with_delete(cli: AwsCli, s3, tmp_path: Path) -> None:  # noqa: ANN001
    src, dst = tmp_path / "src", tmp_path / "dst"
    make_tree(src)
    cli("s3", "mb", "s3://sync")
    cli("s3", "sync", str(src), "s3://sync/tree/")
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket="sync", Prefix="tree/")
    listed = {o["Key"]: o for page in pages for o in page.get("Contents", [])}
    assert len(listed) == SMALL_FILES + len(LARGE_SIZES)
    # The CLI's own thresholds made the large files multipart uploads.
    assert all(listed[f"tree/big/large-{n}.bin"]["ETag"].endswith(f'-{-(-size // (8 * MiB))}"')
               for n, size in enumerate(LARGE_SIZES))  # fmt: skip

    cli("s3", "sync", "s3://sync/tree/", str(dst))
    assert tree_digest(dst) == tree_digest(src)

    # Change the source: remove, add, rewrite; then sync with --delete both ways.
    for i in range(0, SMALL_FILES, 50):
        (src / f"d{i % 10}" / f"e{i % 7}" / f"file-{i:04d}.bin").unlink()
    (src / "new.txt").write_bytes(b"new file\n")
    (src / "big" / "large-0.bin").write_bytes(os.urandom(9 * MiB))
    cli("s3", "sync", str(src), "s3://sync/tree/", "--delete")
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket="sync", Prefix="tree/")
    remote = {o["Key"][len("tree/"):] for page in pages for o in page.get("Contents", [])}
    assert remote == set(tree_digest(src))

    (dst / "only-local.txt").write_bytes(b"x")
    cli("s3", "sync", "s3://sync/tree/", str(dst), "--delete")
    assert tree_digest(dst) == tree_digest(src)


# ------------------------------------------------------------- boto3 transfers
def test_boto3_download_file_of_a_multipart_object_validates_checksums(s3, tmp_path: Path) -> None:  # noqa: ANN001
    s3.create_bucket(Bucket="xfer")
    src = tmp_path / "src.bin"
    digest = write_random_file(src, 20 * MiB + 7)
    s3.upload_file(str(src), "xfer", "multi.bin")  # 8 MiB parts, CRC32 per part (defaults)
    head = s3.head_object(Bucket="xfer", Key="multi.bin", ChecksumMode="ENABLED")
    assert head["ETag"].endswith('-3"')
    assert head["ChecksumCRC32"].endswith("-3") and head["ChecksumType"] == "COMPOSITE"
    out = tmp_path / "out.bin"
    s3.download_file("xfer", "multi.bin", str(out))
    assert sha256_file(out) == digest
    # A single GET of the whole object gets the composite value, which botocore
    # knows not to validate as a plain CRC32; the bytes must still be right.
    body = s3.get_object(Bucket="xfer", Key="multi.bin", ChecksumMode="ENABLED")["Body"].read()
    assert hashlib.sha256(body).hexdigest() == digest


def test_boto3_single_put_checksum_is_returned_and_validated(s3) -> None:  # noqa: ANN001
    s3.create_bucket(Bucket="cks")
    data = os.urandom(100_000)
    put = s3.put_object(Bucket="cks", Key="k", Body=data, ChecksumAlgorithm="SHA256")
    assert put["ChecksumSHA256"] and put["ChecksumType"] == "FULL_OBJECT"
    got = s3.get_object(Bucket="cks", Key="k", ChecksumMode="ENABLED")
    assert got["ChecksumSHA256"] == put["ChecksumSHA256"] and got["ChecksumType"] == "FULL_OBJECT"
    assert got["Body"].read() == data  # botocore validated the SHA256 while reading
    ranged = s3.get_object(Bucket="cks", Key="k", Range="bytes=0-99", ChecksumMode="ENABLED")
    assert "ChecksumSHA256" not in ranged
    whole = s3.get_object(Bucket="cks", Key="k", Range=f"bytes=0-{len(data) - 1}", ChecksumMode="ENABLED")
    assert whole["ChecksumSHA256"] == put["ChecksumSHA256"]  # a Range covering every byte
    assert whole["Body"].read() == data


def test_multipart_checksum_rules_with_boto3(s3) -> None:  # noqa: ANN001
    s3.create_bucket(Bucket="mpuck")
    init = s3.create_multipart_upload(Bucket="mpuck", Key="k", ChecksumAlgorithm="SHA256")
    assert init["ChecksumAlgorithm"] == "SHA256" and init["ChecksumType"] == "COMPOSITE"
    uid = init["UploadId"]
    part = s3.upload_part(Bucket="mpuck", Key="k", UploadId=uid, PartNumber=1, Body=b"123456789",
                          ChecksumAlgorithm="SHA256")  # fmt: skip
    assert part["ChecksumSHA256"] == "FeKw08M4keuw8e9gnsQZQgwg4yDOlMZfvIwzEkSOsiU="
    with pytest.raises(ClientError) as err:
        s3.complete_multipart_upload(Bucket="mpuck", Key="k", UploadId=uid,
                                     MultipartUpload={"Parts": [{"ETag": part["ETag"], "PartNumber": 1}]})  # fmt: skip
    assert err.value.response["Error"]["Code"] == "InvalidRequest"
    done = s3.complete_multipart_upload(Bucket="mpuck", Key="k", UploadId=uid, MultipartUpload={
        "Parts": [{"ETag": part["ETag"], "PartNumber": 1, "ChecksumSHA256": part["ChecksumSHA256"]}]})  # fmt: skip
    assert done["ChecksumSHA256"] == "KSsNAHVmgy25S/rmic1w0at3KBH9RLn0nYVQ7p6mpJQ=-1"
    with pytest.raises(ClientError) as err:
        s3.create_multipart_upload(Bucket="mpuck", Key="k2", ChecksumAlgorithm="SHA1",
                                   ChecksumType="FULL_OBJECT")  # fmt: skip
    assert err.value.response["Error"]["Code"] == "InvalidRequest"


# ------------------------------------------------------- bucket-level APIs
def test_bucket_cors_and_tagging_with_boto3_and_the_cli(s3, cli: AwsCli) -> None:  # noqa: ANN001
    s3.create_bucket(Bucket="conf")
    rules = {"CORSRules": [{"AllowedOrigins": ["https://app.example"], "AllowedMethods": ["GET"],
                            "AllowedHeaders": ["*"], "ExposeHeaders": ["ETag"],
                            "MaxAgeSeconds": 60}]}  # fmt: skip
    s3.put_bucket_cors(Bucket="conf", CORSConfiguration=rules)
    assert s3.get_bucket_cors(Bucket="conf")["CORSRules"] == rules["CORSRules"]
    s3.delete_bucket_cors(Bucket="conf")
    with pytest.raises(ClientError) as err:
        s3.get_bucket_cors(Bucket="conf")
    assert err.value.response["Error"]["Code"] == "NoSuchCORSConfiguration"

    cli("s3api", "put-bucket-tagging", "--bucket", "conf", "--tagging",
        '{"TagSet": [{"Key": "team", "Value": "storage"}]}')  # fmt: skip
    assert s3.get_bucket_tagging(Bucket="conf")["TagSet"] == [{"Key": "team", "Value": "storage"}]
    out = cli("s3api", "get-bucket-tagging", "--bucket", "conf").stdout
    assert '"storage"' in out
    cli("s3api", "delete-bucket-tagging", "--bucket", "conf")
    with pytest.raises(ClientError) as err:
        s3.get_bucket_tagging(Bucket="conf")
    assert err.value.response["Error"]["Code"] == "NoSuchTagSet"
    out = cli("s3api", "get-bucket-location", "--bucket", "conf").stdout
    assert '"LocationConstraint": null' in out


def test_create_bucket_rules_and_list_buckets_pagination(s3) -> None:  # noqa: ANN001
    for name in ("page-a", "page-b", "page-c"):
        s3.create_bucket(Bucket=name)
    s3.put_object(Bucket="page-a", Key="kept", Body=b"contents")
    # us-east-1: re-creating an own bucket is AWS's legacy 200, and changes nothing.
    again = s3.create_bucket(Bucket="page-a")
    assert again["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert s3.get_object(Bucket="page-a", Key="kept")["Body"].read() == b"contents"
    s3.delete_object(Bucket="page-a", Key="kept")
    with pytest.raises(ClientError) as err:
        s3.create_bucket(Bucket="Bad_Name")
    assert err.value.response["Error"]["Code"] == "InvalidBucketName"
    with pytest.raises(ClientError) as err:
        s3.create_bucket(Bucket="elsewhere", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    assert err.value.response["Error"]["Code"] == "IllegalLocationConstraintException"
    with pytest.raises(ClientError) as err:
        s3.create_bucket(Bucket="explicit", CreateBucketConfiguration={"LocationConstraint": "us-east-1"})
    assert err.value.response["Error"]["Code"] == "InvalidLocationConstraint"

    pages = list(s3.get_paginator("list_buckets").paginate(Prefix="page-", PaginationConfig={"PageSize": 2}))
    assert [[b["Name"] for b in p["Buckets"]] for p in pages] == [["page-a", "page-b"], ["page-c"]]
    assert pages[0]["Buckets"][0]["BucketRegion"] == "us-east-1"


def test_copied_parts_and_full_object_parts_get_computed_checksums(s3) -> None:  # noqa: ANN001
    import base64
    import zlib

    s3.create_bucket(Bucket="mpucopy")
    data = os.urandom(6 * MiB)
    s3.put_object(Bucket="mpucopy", Key="src", Body=data)
    uid = s3.create_multipart_upload(Bucket="mpucopy", Key="dst", ChecksumAlgorithm="CRC32")["UploadId"]
    part = s3.upload_part_copy(Bucket="mpucopy", Key="dst", UploadId=uid, PartNumber=1,
                               CopySource={"Bucket": "mpucopy", "Key": "src"})["CopyPartResult"]  # fmt: skip
    crc = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
    assert part["ChecksumCRC32"] == crc  # computed while copying, as AWS does
    done = s3.complete_multipart_upload(Bucket="mpucopy", Key="dst", UploadId=uid, MultipartUpload={
        "Parts": [{"ETag": part["ETag"], "PartNumber": 1, "ChecksumCRC32": crc}]})  # fmt: skip
    assert done["ChecksumCRC32"].endswith("-1") and done["ChecksumType"] == "COMPOSITE"

    # FULL_OBJECT: the object's CRC is the CRC of all its bytes, combined from the parts.
    init = s3.create_multipart_upload(Bucket="mpucopy", Key="full", ChecksumAlgorithm="CRC32",
                                      ChecksumType="FULL_OBJECT")  # fmt: skip
    assert init["ChecksumType"] == "FULL_OBJECT"
    halves = [data[: 5 * MiB], data[5 * MiB :]]
    parts = [s3.upload_part(Bucket="mpucopy", Key="full", UploadId=init["UploadId"], PartNumber=n,
                            Body=body, ChecksumAlgorithm="CRC32")  # fmt: skip
             for n, body in enumerate(halves, 1)]
    done = s3.complete_multipart_upload(Bucket="mpucopy", Key="full", UploadId=init["UploadId"],
                                        MultipartUpload={"Parts": [
                                            {"ETag": p["ETag"], "PartNumber": n, "ChecksumCRC32": p["ChecksumCRC32"]}
                                            for n, p in enumerate(parts, 1)]})  # fmt: skip
    assert done["ChecksumCRC32"] == crc and done["ChecksumType"] == "FULL_OBJECT"
    got = s3.get_object(Bucket="mpucopy", Key="full", ChecksumMode="ENABLED")
    assert got["ChecksumCRC32"] == crc and got["Body"].read() == data  # botocore validated it
