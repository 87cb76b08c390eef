"""Lifecycle against the real daemon with boto3, a 2-second "day"
(TITANS3_LIFECYCLE_DAY) and passes every second: objects under the prefix expire,
noncurrent versions beyond the limit go, incomplete uploads are aborted, locked
versions stay; ``titanctl lifecycle status`` and the status page show the worker."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from .cluster import Daemon, s3_client
from .durability import status, wait_for
from .objtools import clean_log, s3_error
from .test_titanctl import titanctl

DAY = 2.0


@pytest.fixture(scope="module")
def d(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    from . import cluster

    base = tmp_path_factory.mktemp("lifecycle")
    daemon = Daemon(base / "data", base / "titans3.log", drives=6,
                    env={"TITANS3_LIFECYCLE_DAY": str(DAY), "TITANS3_LIFECYCLE_INTERVAL": "1"})
    cluster.LIVE.append(daemon)
    daemon.start()
    try:
        yield daemon
    finally:
        daemon.stop()
        cluster.LIVE.remove(daemon)


@pytest.fixture(scope="module")
def s3(d: Daemon) -> Iterator[object]:
    client = s3_client(d)
    yield client
    client.close()


@pytest.fixture(autouse=True)
def _no_traceback(d: Daemon) -> Iterator[None]:
    with clean_log(d):
        yield


def _keys(s3, bucket: str) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]


def test_configuration_round_trip_and_errors(s3) -> None:
    s3.create_bucket(Bucket="lc-config")
    assert s3_error(s3.get_bucket_lifecycle_configuration, Bucket="lc-config")[:2] == \
        (404, "NoSuchLifecycleConfiguration")
    rules = [{"ID": "logs", "Status": "Enabled", "Filter": {"Prefix": "logs/"},
              "Expiration": {"Days": 30},
              "NoncurrentVersionExpiration": {"NoncurrentDays": 7, "NewerNoncurrentVersions": 2}},
             {"ID": "mpu", "Status": "Disabled", "Filter": {},
              "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 3}}]
    s3.put_bucket_lifecycle_configuration(Bucket="lc-config", LifecycleConfiguration={"Rules": rules})
    got = s3.get_bucket_lifecycle_configuration(Bucket="lc-config")["Rules"]
    assert [r["ID"] for r in got] == ["logs", "mpu"]
    assert got[0]["Expiration"] == {"Days": 30} and got[0]["Filter"] == {"Prefix": "logs/"}
    assert got[0]["NoncurrentVersionExpiration"] == {"NoncurrentDays": 7, "NewerNoncurrentVersions": 2}
    bad = [{"ID": "x", "Status": "Enabled", "Filter": {}, "Expiration": {"Days": 0}}]
    assert s3_error(s3.put_bucket_lifecycle_configuration, Bucket="lc-config",
                    LifecycleConfiguration={"Rules": bad})[:2] == (400, "InvalidArgument")
    s3.delete_bucket_lifecycle(Bucket="lc-config")
    assert s3_error(s3.get_bucket_lifecycle_configuration, Bucket="lc-config")[0] == 404


def test_x_amz_expiration_on_put_head_and_get(s3) -> None:
    s3.create_bucket(Bucket="lc-header")
    s3.put_bucket_lifecycle_configuration(Bucket="lc-header", LifecycleConfiguration={"Rules": [
        {"ID": "far", "Status": "Enabled", "Filter": {"Prefix": "never-here/"},
         "Expiration": {"Days": 3650}},
        {"ID": "mine", "Status": "Enabled", "Filter": {"Prefix": "h/"},
         "Expiration": {"Days": 1000}}]})
    put = s3.put_object(Bucket="lc-header", Key="h/1", Body=b"x")
    assert 'rule-id="mine"' in put["Expiration"] and put["Expiration"].startswith('expiry-date="')
    assert 'rule-id="mine"' in s3.head_object(Bucket="lc-header", Key="h/1")["Expiration"]
    assert 'rule-id="mine"' in s3.get_object(Bucket="lc-header", Key="h/1")["Expiration"]
    s3.put_object(Bucket="lc-header", Key="other", Body=b"x")
    assert "Expiration" not in s3.head_object(Bucket="lc-header", Key="other")
    s3.delete_bucket_lifecycle(Bucket="lc-header")  # keep the worker's passes short


def test_rules_fire_by_themselves_and_locked_versions_stay(s3, d) -> None:
    s3.create_bucket(Bucket="lc-run", ObjectLockEnabledForBucket=True)  # versioned
    for i in range(5):
        s3.put_object(Bucket="lc-run", Key=f"tmp/{i}", Body=b"t")
    s3.put_object(Bucket="lc-run", Key="keep/x", Body=b"k")
    locked = s3.put_object(Bucket="lc-run", Key="doc", Body=b"v0",
                           ObjectLockLegalHoldStatus="ON")["VersionId"]
    for i in range(1, 5):
        s3.put_object(Bucket="lc-run", Key="doc", Body=f"v{i}".encode())
    up = s3.create_multipart_upload(Bucket="lc-run", Key="tmp/upload")["UploadId"]
    s3.put_bucket_lifecycle_configuration(Bucket="lc-run", LifecycleConfiguration={"Rules": [
        {"ID": "tmp", "Status": "Enabled", "Filter": {"Prefix": "tmp/"}, "Expiration": {"Days": 1}},
        {"ID": "nc", "Status": "Enabled", "Filter": {"Prefix": "doc"},
         "NoncurrentVersionExpiration": {"NoncurrentDays": 1, "NewerNoncurrentVersions": 1}},
        {"ID": "mpu", "Status": "Enabled", "Filter": {"Prefix": "tmp/"},
         "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}}]})

    def settled() -> bool:
        versions = s3.list_object_versions(Bucket="lc-run", Prefix="doc").get("Versions", [])
        return (_keys(s3, "lc-run") == ["doc", "keep/x"] and len(versions) == 3
                and not s3.list_multipart_uploads(Bucket="lc-run").get("Uploads"))

    wait_for("lifecycle to expire, trim and abort", settled, timeout=60)
    versions = s3.list_object_versions(Bucket="lc-run", Prefix="doc")["Versions"]
    assert locked in [v["VersionId"] for v in versions]  # the legal hold kept v0
    assert s3.get_object(Bucket="lc-run", Key="doc")["Body"].read() == b"v4"
    assert s3_error(s3.list_parts, Bucket="lc-run", Key="tmp/upload", UploadId=up)[1] == "NoSuchUpload"
    # Expired tmp/ objects left delete markers (a versioned bucket), never purged data.
    markers = s3.list_object_versions(Bucket="lc-run", Prefix="tmp/").get("DeleteMarkers", [])
    assert len([m for m in markers if m["IsLatest"]]) == 5

    r = titanctl("lifecycle", "status", "--json", endpoint=d.endpoint)
    assert r.returncode == 0, r.stderr
    stats = json.loads(r.stdout)["lifecycle"]
    assert stats["expired"] >= 5 and stats["noncurrent_expired"] >= 2
    assert stats["uploads_aborted"] >= 1 and stats["locked_kept"] >= 1 and stats["day_seconds"] == DAY
    text = titanctl("lifecycle", "status", endpoint=d.endpoint).stdout
    assert "lifecycle:" in text and "kept by object lock" in text
    assert status(d)["workers"]["lifecycle"]["locked_kept"] >= 1  # admin repair status carries it too


def test_the_status_page_lists_the_lifecycle_worker(d) -> None:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{d.web_port}/api/status", timeout=10) as resp:
        doc = json.loads(resp.read())
    assert "lifecycle" in [w["name"] for w in doc["workers"]]
