"""Storage-class transitions within the cluster, against the real daemon.

One 6-drive host (STANDARD = 4+2) with ``STANDARD_IA=2+2,GLACIER_IR=3+3``
mapped and a 1-second lifecycle "day": PUT with ``x-amz-storage-class``
writes the class's scheme directly; a lifecycle ``Transition`` re-encodes
plain, inline, SSE-S3, SSE-C and multipart versions (current and noncurrent)
keeping every byte, version id and ETag; ``titanctl object inspect`` shows
the new scheme; repair and scrub work on transitioned versions; a SIGKILL in
the middle of transitions leaves every object readable.
"""

from __future__ import annotations

import base64
import hashlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .cluster import Daemon, s3_client
from .durability import WORKER_ENV, admin, fragment_files, inspect, wait_for
from .objtools import clean_log, cli_for, cli_json, s3_error
from .test_titanctl import titanctl

ENV = {**WORKER_ENV, "TITANS3_LIFECYCLE_DAY": "1", "TITANS3_LIFECYCLE_INTERVAL": "1",
       "TITANS3_STORAGE_CLASSES": "STANDARD_IA=2+2,GLACIER_IR=3+3"}
SSEC_KEY = os.urandom(32)
SSEC = {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": base64.b64encode(SSEC_KEY).decode(),
        "SSECustomerKeyMD5": base64.b64encode(hashlib.md5(SSEC_KEY).digest()).decode()}
MARKER = b"TRANSITION-PLAINTEXT-MARKER-"


def _start(base: Path, **env: str) -> Daemon:
    from . import cluster

    d = Daemon(base / "data", base / "titans3.log", drives=6, env={**ENV, **env})
    cluster.LIVE.append(d)
    d.start()
    return d


def _stop(d: Daemon) -> None:
    from . import cluster

    d.stop()
    cluster.LIVE.remove(d)


@pytest.fixture(scope="module")
def d(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    daemon = _start(tmp_path_factory.mktemp("transition"))
    try:
        yield daemon
    finally:
        _stop(daemon)


@pytest.fixture(scope="module")
def s3(d: Daemon) -> Iterator[object]:
    client = s3_client(d)
    yield client
    client.close()


@pytest.fixture(autouse=True)
def _no_traceback(d: Daemon) -> Iterator[None]:
    with clean_log(d):
        yield


def _scheme(d: Daemon, bucket: str, key: str, version_id: str | None = None) -> tuple[int, int]:
    doc = inspect(d, bucket, key)
    v = next(v for v in doc["versions"] if version_id in (None, v["version_id"]))
    return v["ec"]["k"], v["ec"]["m"]


def _transition(s3, bucket: str, prefix: str, cls: str = "STANDARD_IA", noncurrent: bool = False) -> None:
    rule = {"ID": f"to-{cls}", "Status": "Enabled", "Filter": {"Prefix": prefix},
            "Transitions": [{"Days": 1, "StorageClass": cls}]}
    if noncurrent:
        rule["NoncurrentVersionTransitions"] = [{"NoncurrentDays": 1, "StorageClass": cls}]
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": [rule]})


def test_put_with_a_mapped_storage_class_writes_its_scheme(d: Daemon, s3, tmp_path: Path) -> None:
    s3.create_bucket(Bucket="sc-put")
    body = os.urandom(3 << 20)
    put = s3.put_object(Bucket="sc-put", Key="ia", Body=body, StorageClass="STANDARD_IA")
    head = s3.head_object(Bucket="sc-put", Key="ia")
    assert head["StorageClass"] == "STANDARD_IA" and head["ETag"] == put["ETag"]
    assert s3.get_object(Bucket="sc-put", Key="ia")["Body"].read() == body
    assert _scheme(d, "sc-put", "ia") == (2, 2)
    s3.put_object(Bucket="sc-put", Key="std", Body=b"x")
    assert "StorageClass" not in s3.head_object(Bucket="sc-put", Key="std")  # AWS omits STANDARD
    assert _scheme(d, "sc-put", "std") == (4, 2)
    listed = {o["Key"]: o for o in s3.list_objects_v2(Bucket="sc-put")["Contents"]}
    assert listed["ia"]["StorageClass"] == "STANDARD_IA" and listed["std"]["StorageClass"] == "STANDARD"
    # The AWS CLI's own flag, and the errors for classes that are not mapped / not S3's.
    cli = cli_for(d, tmp_path)
    src = tmp_path / "f.bin"
    src.write_bytes(body[:100_000])
    cli("s3", "cp", str(src), "s3://sc-put/cli", "--storage-class", "GLACIER_IR")
    assert cli_json(cli, "s3api", "head-object", "--bucket", "sc-put", "--key", "cli")["StorageClass"] \
        == "GLACIER_IR"
    assert _scheme(d, "sc-put", "cli") == (3, 3)
    # A multipart upload created with a class: completed, then re-encoded into it.
    up = s3.create_multipart_upload(Bucket="sc-put", Key="mpu", StorageClass="STANDARD_IA")
    part = os.urandom(5 << 20)
    etag = s3.upload_part(Bucket="sc-put", Key="mpu", PartNumber=1, UploadId=up["UploadId"],
                          Body=part)["ETag"]
    done = s3.complete_multipart_upload(Bucket="sc-put", Key="mpu", UploadId=up["UploadId"],
                                        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]})
    wait_for("the completed upload in 2+2", lambda: _scheme(d, "sc-put", "mpu") == (2, 2), timeout=30)
    got = s3.get_object(Bucket="sc-put", Key="mpu")
    assert got["Body"].read() == part and got["ETag"] == done["ETag"]
    assert got["StorageClass"] == "STANDARD_IA"
    assert s3_error(s3.create_multipart_upload, Bucket="sc-put", Key="x",
                    StorageClass="ONEZONE_IA")[:2] == (400, "InvalidStorageClass")
    # CopyObject onto itself with another class re-writes it in that class (a new version).
    s3.copy_object(Bucket="sc-put", Key="ia", CopySource={"Bucket": "sc-put", "Key": "ia"},
                   StorageClass="GLACIER_IR")
    assert s3.head_object(Bucket="sc-put", Key="ia")["StorageClass"] == "GLACIER_IR"
    assert _scheme(d, "sc-put", "ia") == (3, 3)
    assert s3.get_object(Bucket="sc-put", Key="ia")["Body"].read() == body
    for cls in ("ONEZONE_IA", "NOT_A_CLASS"):
        assert s3_error(s3.put_object, Bucket="sc-put", Key="bad", Body=b"x",
                        StorageClass=cls)[:2] == (400, "InvalidStorageClass")
    bad = {"ID": "x", "Status": "Enabled", "Filter": {},
           "Transitions": [{"Days": 1, "StorageClass": "ONEZONE_IA"}]}
    assert s3_error(s3.put_bucket_lifecycle_configuration, Bucket="sc-put",
                    LifecycleConfiguration={"Rules": [bad]})[:2] == (400, "InvalidStorageClass")


def test_lifecycle_transition_keeps_bytes_version_ids_and_etags(d: Daemon, s3) -> None:
    b = "sc-life"
    s3.create_bucket(Bucket=b)
    s3.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": "Enabled"})
    bodies = {"t/plain": os.urandom(3 << 20) + b"tail", "t/inline": os.urandom(1000),
              "t/sse-s3": MARKER * 50_000, "t/sse-c": MARKER * 30_000, "t/mpu": b""}
    extra = {"t/sse-s3": {"ServerSideEncryption": "AES256"}, "t/sse-c": SSEC}
    old = s3.put_object(Bucket=b, Key="t/plain", Body=b"the old version")  # becomes noncurrent
    puts = {}
    for key, body in bodies.items():
        if key == "t/mpu":
            continue
        puts[key] = s3.put_object(Bucket=b, Key=key, Body=body, **extra.get(key, {}))
    up = s3.create_multipart_upload(Bucket=b, Key="t/mpu")
    parts = [os.urandom(5 << 20), os.urandom(1 << 20)]
    done = [{"PartNumber": i + 1, "ETag": s3.upload_part(Bucket=b, Key="t/mpu", PartNumber=i + 1,
                                                       UploadId=up["UploadId"], Body=p)["ETag"]}
            for i, p in enumerate(parts)]
    puts["t/mpu"] = s3.complete_multipart_upload(Bucket=b, Key="t/mpu", UploadId=up["UploadId"],
                                                 MultipartUpload={"Parts": done})
    bodies["t/mpu"] = b"".join(parts)
    s3.put_object(Bucket=b, Key="keep/x", Body=b"not under the prefix")
    for key in bodies:
        assert _scheme(d, b, key) == (4, 2)
    _transition(s3, b, "t/", noncurrent=True)
    wait_for("every version under t/ in 2+2", lambda: all(
        _scheme(d, b, k) == (2, 2) for k in bodies) and _scheme(d, b, "t/plain", old["VersionId"]) == (2, 2),
        timeout=90)
    for key, body in bodies.items():
        got = s3.get_object(Bucket=b, Key=key, **({"SSECustomerAlgorithm": "AES256",
                            "SSECustomerKey": SSEC["SSECustomerKey"], "SSECustomerKeyMD5":
                            SSEC["SSECustomerKeyMD5"]} if key == "t/sse-c" else {}))
        assert got["Body"].read() == body, key
        assert got["VersionId"] == puts[key]["VersionId"] and got["ETag"] == puts[key]["ETag"], key
        assert got["StorageClass"] == "STANDARD_IA", key
        # A range across a segment boundary decodes from the new scheme too.
        if len(body) > (1 << 20) + 10 and key != "t/sse-c":
            rng = s3.get_object(Bucket=b, Key=key, Range=f"bytes={(1 << 20) - 5}-{(1 << 20) + 4}")
            assert rng["Body"].read() == body[(1 << 20) - 5:(1 << 20) + 5]
    assert s3.head_object(Bucket=b, Key="t/sse-s3")["ServerSideEncryption"] == "AES256"
    assert s3_error(s3.get_object, Bucket=b, Key="t/sse-c")[0] == 400  # still needs its key
    oldget = s3.get_object(Bucket=b, Key="t/plain", VersionId=old["VersionId"])
    assert oldget["Body"].read() == b"the old version" and oldget["ETag"] == old["ETag"]
    assert _scheme(d, b, "keep/x") == (4, 2)
    # Re-encoded as ciphertext: the fragment files still hold none of the plaintext.
    for path in d.fragment_files():
        assert MARKER not in path.read_bytes(), path
    versions = s3.list_object_versions(Bucket=b, Prefix="t/plain")["Versions"]
    assert sorted(v["VersionId"] for v in versions) == sorted([old["VersionId"], puts["t/plain"]["VersionId"]])
    # titanctl object inspect shows the new scheme and class.
    out = titanctl("object", "inspect", b, "t/plain", endpoint=d.endpoint)
    assert out.returncode == 0, out.stderr
    assert "EC 2+2" in out.stdout and "STANDARD_IA" in out.stdout, out.stdout
    st = admin(d, "GET", "lifecycle/status")["lifecycle"]
    assert st["transitioned"] >= len(bodies) + 1
    out = titanctl("lifecycle", "status", endpoint=d.endpoint)
    assert "transitioned to another storage class: " in out.stdout, out.stdout


def test_repair_and_scrub_work_on_transitioned_objects(d: Daemon, s3) -> None:
    b = "sc-repair"
    s3.create_bucket(Bucket=b)
    body = os.urandom(2 << 20)
    put = s3.put_object(Bucket=b, Key="t/obj", Body=body)
    _transition(s3, b, "t/")
    wait_for("the transition", lambda: _scheme(d, b, "t/obj") == (2, 2), timeout=60)
    s3.delete_bucket_lifecycle(Bucket=b)
    v = inspect(d, b, "t/obj")["versions"][0]
    data_id = v["streams"][0]["data_id"]
    files = fragment_files(d)[data_id]
    assert len(files) == 4  # 2+2: the old 4+2 fragments are gone
    files[0].unlink()  # a lost fragment: repair rebuilds it in the new scheme
    admin(d, "POST", "repair/object", bucket=b, key="t/obj")
    wait_for("repair", lambda: inspect(d, b, "t/obj", deep=True)["versions"][0]["healthy_fragments"] == 4)
    # A flipped payload byte: the scrubber finds and repairs it.
    victim = fragment_files(d)[data_id][1]
    raw = bytearray(victim.read_bytes())
    raw[4096 + 16 + 100] ^= 0xFF
    victim.write_bytes(bytes(raw))
    admin(d, "POST", "scrub/start")
    time.sleep(1.0)
    wait_for("scrub + repair", lambda: inspect(d, b, "t/obj", deep=True)["healthy"], timeout=90)
    got = s3.get_object(Bucket=b, Key="t/obj")
    assert got["Body"].read() == body and got["ETag"] == put["ETag"]
    assert _scheme(d, b, "t/obj") == (2, 2)


def test_sigkill_mid_transition_leaves_every_object_readable(tmp_path: Path) -> None:
    d = _start(tmp_path, TITANS3_LIFECYCLE_RATE="3")
    try:
        s3 = s3_client(d)
        s3.create_bucket(Bucket="sc-kill")
        bodies = {f"t/{i:02d}": os.urandom((3 << 20) + i) for i in range(12)}
        puts = {k: s3.put_object(Bucket="sc-kill", Key=k, Body=v) for k, v in bodies.items()}
        _transition(s3, "sc-kill", "t/", cls="GLACIER_IR")
        wait_for("some transitions", lambda: admin(d, "GET", "lifecycle/status")["lifecycle"]["transitioned"] >= 3,
                 timeout=60, every=0.05)
        s3.close()
        d.kill()
        # Restart with the worker held back (first pass after 30 s) to read the crash state.
        d._env_extra["TITANS3_LIFECYCLE_INTERVAL"] = "3600"
        d.start()
        s3 = s3_client(d)

        def check() -> list[tuple[int, int]]:
            schemes = []
            for k, body in bodies.items():
                got = s3.get_object(Bucket="sc-kill", Key=k)
                assert got["Body"].read() == body, k
                assert got["ETag"] == puts[k]["ETag"], k
                schemes.append(_scheme(d, "sc-kill", k))
            return schemes

        first = check()
        assert set(first) == {(4, 2), (3, 3)}, first  # killed part way through the pass
        admin(d, "POST", "lifecycle/start")
        wait_for("all transitioned after the restart",
                 lambda: all(s == (3, 3) for s in (_scheme(d, "sc-kill", k) for k in bodies)), timeout=90)
        assert set(check()) == {(3, 3)}
        for k in bodies:
            assert inspect(d, "sc-kill", k, deep=True)["healthy"], k
        s3.close()
    finally:
        _stop(d)
