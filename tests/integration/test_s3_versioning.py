"""Versioning against the real daemon with boto3 and the AWS CLI: bucket state,
version ids on every response, null-version rules, delete markers,
ListObjectVersions, and concurrent writers to one key."""

from __future__ import annotations

import hashlib
import random
import threading
from pathlib import Path

from .cluster import AwsCli, Daemon, s3_client
from .objtools import cli_json, module_fixtures, s3_error
from .rawhttp import raw_request

d, s3, cli, _no_traceback = module_fixtures(home="aws-versioning")


_n = iter(range(10_000))


def bucket(s3, state: str | None = "Enabled") -> str:
    name = f"ver-{next(_n)}"
    s3.create_bucket(Bucket=name)
    if state:
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": state})
    return name


def body(s3, b: str, k: str, **kw) -> bytes:
    return s3.get_object(Bucket=b, Key=k, **kw)["Body"].read()


# ------------------------------------------------------------------- state
def test_versioning_configuration_round_trip_with_boto3_and_cli(s3, cli: AwsCli) -> None:
    b = bucket(s3, None)
    got = s3.get_bucket_versioning(Bucket=b)
    assert "Status" not in got and "MFADelete" not in got
    cli("s3api", "put-bucket-versioning", "--bucket", b,
        "--versioning-configuration", "Status=Enabled")  # fmt: skip
    assert cli_json(cli, "s3api", "get-bucket-versioning", "--bucket", b)["Status"] == "Enabled"
    s3.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": "Suspended"})
    assert s3.get_bucket_versioning(Bucket=b)["Status"] == "Suspended"


def test_bad_versioning_requests_get_aws_errors(s3, d: Daemon) -> None:
    b = bucket(s3, None)
    status, code, _ = s3_error(s3.put_bucket_versioning, Bucket=b,
                               VersioningConfiguration={"Status": "Enabled", "MFADelete": "Enabled"},
                               MFA="123456 654321")  # fmt: skip
    assert (status, code) == (501, "NotImplemented")
    r = raw_request(d, "PUT", f"/{b}?versioning",
                    body=b"<VersioningConfiguration><Status>On</Status></VersioningConfiguration>")
    assert (r.status, r.error_code()) == (400, "MalformedXML")
    assert s3.get_bucket_versioning(Bucket=b).get("Status") is None
    assert s3_error(s3.get_bucket_versioning, Bucket="no-such-bucket-v")[:2] == (404, "NoSuchBucket")


# ------------------------------------------------------------ version ids
def test_every_response_of_a_versioned_bucket_names_the_version(s3) -> None:
    b = bucket(s3)
    v1 = s3.put_object(Bucket=b, Key="k", Body=b"one")["VersionId"]
    v2 = s3.put_object(Bucket=b, Key="k", Body=b"two")["VersionId"]
    assert v1 != v2 and "null" not in (v1, v2)
    assert s3.head_object(Bucket=b, Key="k")["VersionId"] == v2
    got = s3.get_object(Bucket=b, Key="k", VersionId=v1)
    assert (got["VersionId"], got["Body"].read()) == (v1, b"one")
    assert s3.head_object(Bucket=b, Key="k", VersionId=v1)["ContentLength"] == 3
    gone = s3.delete_object(Bucket=b, Key="k", VersionId=v1)
    assert gone["VersionId"] == v1 and "DeleteMarker" not in gone
    assert s3_error(s3.get_object, Bucket=b, Key="k", VersionId=v1)[:2] == (404, "NoSuchVersion")
    assert s3_error(s3.get_object, Bucket=b, Key="k", VersionId="bogus")[:2] == (400, "InvalidArgument")


def test_never_versioned_bucket_sends_no_version_header(s3) -> None:
    b = bucket(s3, None)
    put = s3.put_object(Bucket=b, Key="k", Body=b"x")
    assert "VersionId" not in put
    assert "VersionId" not in s3.head_object(Bucket=b, Key="k")
    assert "VersionId" not in s3.delete_object(Bucket=b, Key="k")
    assert s3.list_object_versions(Bucket=b).get("Versions") is None


def test_suspended_bucket_overwrites_only_the_null_version(s3) -> None:
    b = bucket(s3, None)
    s3.put_object(Bucket=b, Key="k", Body=b"pre-versioning")
    s3.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": "Enabled"})
    assert s3.head_object(Bucket=b, Key="k")["VersionId"] == "null"
    numbered = s3.put_object(Bucket=b, Key="k", Body=b"numbered")["VersionId"]
    s3.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": "Suspended"})
    # A write that makes the null version names no version (AWS sends no x-amz-version-id).
    assert "VersionId" not in s3.put_object(Bucket=b, Key="k", Body=b"s1")
    assert "VersionId" not in s3.put_object(Bucket=b, Key="k", Body=b"s2")
    assert s3.head_object(Bucket=b, Key="k")["VersionId"] == "null"  # reads still name it
    assert body(s3, b, "k") == b"s2" and body(s3, b, "k", VersionId="null") == b"s2"
    assert body(s3, b, "k", VersionId=numbered) == b"numbered"
    versions = s3.list_object_versions(Bucket=b)["Versions"]
    assert [(v["VersionId"], v["IsLatest"]) for v in versions] == [("null", True), (numbered, False)]
    marker = s3.delete_object(Bucket=b, Key="k")
    assert (marker["DeleteMarker"], marker["VersionId"]) == (True, "null")
    listing = s3.list_object_versions(Bucket=b)
    assert [m["VersionId"] for m in listing["DeleteMarkers"]] == ["null"]
    assert [v["VersionId"] for v in listing["Versions"]] == [numbered]
    removed = s3.delete_object(Bucket=b, Key="k", VersionId="null")
    assert (removed["VersionId"], removed["DeleteMarker"]) == ("null", True)
    assert body(s3, b, "k") == b"numbered"
    assert s3_error(s3.head_object, Bucket=b, Key="k", VersionId="null")[0] == 404


def test_delete_marker_reads_are_404_and_405_with_aws_headers(s3, d: Daemon) -> None:
    b = bucket(s3)
    s3.put_object(Bucket=b, Key="k", Body=b"data")
    marker = s3.delete_object(Bucket=b, Key="k")
    assert marker["DeleteMarker"] is True
    status, code, headers = s3_error(s3.get_object, Bucket=b, Key="k")
    assert (status, code, headers["x-amz-delete-marker"]) == (404, "NoSuchKey", "true")
    assert headers["x-amz-version-id"] == marker["VersionId"]
    status, code, headers = s3_error(s3.get_object, Bucket=b, Key="k", VersionId=marker["VersionId"])
    assert (status, code) == (405, "MethodNotAllowed")
    assert headers["x-amz-delete-marker"] == "true" and headers["allow"] == "DELETE"
    assert headers["last-modified"].endswith("GMT")
    head = raw_request(d, "HEAD", f"/{b}/k?versionId={marker['VersionId']}")
    assert head.status == 405 and head.headers.get("x-amz-delete-marker") == "true"
    removed = s3.delete_object(Bucket=b, Key="k", VersionId=marker["VersionId"])
    assert removed["DeleteMarker"] is True and removed["VersionId"] == marker["VersionId"]
    assert body(s3, b, "k") == b"data"


# ---------------------------------------------------------------- listing
def test_list_object_versions_pages_with_markers_delimiter_and_encoding(s3, cli: AwsCli) -> None:
    b = bucket(s3)
    written: dict[str, list[str]] = {}
    for key in ("a", "dir/x", "dir/y", "k e+y", "z"):
        written[key] = [s3.put_object(Bucket=b, Key=key, Body=b"%d" % i)["VersionId"]
                        for i in range(3)]  # fmt: skip
    marker = s3.delete_object(Bucket=b, Key="z")["VersionId"]
    # Small pages via boto3's paginator (key-marker + version-id-marker round trips).
    pages = list(s3.get_paginator("list_object_versions").paginate(
        Bucket=b, PaginationConfig={"PageSize": 2}))  # fmt: skip
    assert len(pages) == 8 and all(p["IsTruncated"] for p in pages[:-1])
    versions = [(v["Key"], v["VersionId"], v["IsLatest"]) for p in pages for v in p.get("Versions", [])]
    want = [(k, vid, i == 0) for k in sorted(written) for i, vid in enumerate(reversed(written[k]))]
    want = [(k, v, latest and k != "z") for k, v, latest in want]
    assert versions == want
    markers = [(m["Key"], m["VersionId"], m["IsLatest"]) for p in pages for m in p.get("DeleteMarkers", [])]
    assert markers == [("z", marker, True)]
    grouped = s3.list_object_versions(Bucket=b, Delimiter="/", Prefix="", EncodingType="url")
    assert [p["Prefix"] for p in grouped["CommonPrefixes"]] == ["dir/"]
    # boto3 decodes only when it added encoding-type itself: here the keys stay encoded.
    assert {v["Key"] for v in grouped["Versions"]} == {"a", "k%20e%2By", "z"}
    # The CLI pages by itself (its own paginator over the same markers).
    out = cli_json(cli, "s3api", "list-object-versions", "--bucket", b, "--prefix", "dir/",
                   "--page-size", "1")  # fmt: skip
    assert [(v["Key"], v["VersionId"]) for v in out["Versions"]] == (
        [("dir/x", v) for v in reversed(written["dir/x"])]
        + [("dir/y", v) for v in reversed(written["dir/y"])])


def test_version_operations_with_the_cli(s3, cli: AwsCli, tmp_path: Path) -> None:
    b = bucket(s3)
    src = tmp_path / "f"
    src.write_bytes(b"cli version one")
    v1 = cli_json(cli, "s3api", "put-object", "--bucket", b, "--key", "k", "--body", str(src))["VersionId"]
    src.write_bytes(b"cli version two")
    cli("s3api", "put-object", "--bucket", b, "--key", "k", "--body", str(src))
    out = tmp_path / "out"
    meta = cli_json(cli, "s3api", "get-object", "--bucket", b, "--key", "k", "--version-id", v1, str(out))
    assert meta["VersionId"] == v1 and out.read_bytes() == b"cli version one"
    cli("s3api", "delete-object", "--bucket", b, "--key", "k", "--version-id", v1)
    assert [v["VersionId"] for v in s3.list_object_versions(Bucket=b)["Versions"]] != [v1]
    assert len(s3.list_object_versions(Bucket=b)["Versions"]) == 1


# ------------------------------------------------------------ concurrency
def _hammer(d: Daemon, b: str, key: str, writers: int, per_writer: int) -> dict[str, bytes]:
    """Threads PUT distinct payloads to one key; returns {sha256: payload} written."""
    written: dict[str, bytes] = {}
    results: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def run(w: int) -> None:
        client = s3_client(d)
        try:
            for i in range(per_writer):
                data = (b"writer %d round %d " % (w, i)) * random.randint(1, 3000)
                vid = client.put_object(Bucket=b, Key=key, Body=data).get("VersionId", "null")
                with lock:
                    written[hashlib.sha256(data).hexdigest()] = data
                    results.append(vid)
        except BaseException as e:  # noqa: BLE001 -- reported by the main thread
            errors.append(e)
        finally:
            client.close()

    threads = [threading.Thread(target=run, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert len(results) == writers * per_writer
    return written


def test_concurrent_writers_to_one_key_in_a_versioned_bucket(s3, d: Daemon) -> None:
    b = bucket(s3)
    written = _hammer(d, b, "hot", writers=6, per_writer=4)
    versions = s3.list_object_versions(Bucket=b)["Versions"]
    assert len(versions) == 24 and sum(v["IsLatest"] for v in versions) == 1
    assert versions[0]["IsLatest"] and len({v["VersionId"] for v in versions}) == 24
    seen = set()
    for v in versions:
        data = body(s3, b, "hot", VersionId=v["VersionId"])
        assert hashlib.md5(data).hexdigest() == v["ETag"].strip('"')
        seen.add(hashlib.sha256(data).hexdigest())
    assert seen == set(written)  # every write is a version, none mixed or lost
    latest = body(s3, b, "hot")
    assert latest == body(s3, b, "hot", VersionId=versions[0]["VersionId"])


def test_concurrent_writers_to_one_key_in_an_unversioned_bucket(s3, d: Daemon) -> None:
    b = bucket(s3, None)
    written = _hammer(d, b, "hot", writers=6, per_writer=3)
    final = body(s3, b, "hot")
    assert hashlib.sha256(final).hexdigest() in written
    listing = s3.list_object_versions(Bucket=b)
    assert [v["VersionId"] for v in listing["Versions"]] == ["null"]
    assert listing["Versions"][0]["ETag"].strip('"') == hashlib.md5(final).hexdigest()
