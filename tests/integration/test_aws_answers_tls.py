"""AWS's answers where the client's behaviour depends on HTTPS or the region.

Over HTTPS boto3 streams PutObject and UploadPart bodies ``aws-chunked`` with
their checksums in a trailer and adds ``aws-chunked`` to the client's
``Content-Encoding`` (``deflate, gzip,aws-chunked``), so this is where the
spelling of what remains, trailer checksums of multipart parts and the
``Expect: 100-continue`` refusals over TLS meet a real client.  The daemon
serves region ``eu-central-1``, where re-creating an own bucket is 409
``BucketAlreadyOwnedByYou`` (us-east-1's legacy 200 is pinned in
``test_aws_answers.py``).
"""

from __future__ import annotations

import base64
import hashlib
import io
import logging
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from . import cluster
from .cluster import Credentials, MiB
from .peerhosts import LoneHost, free_port_on, running

REGION = "eu-central-1"
BUCKET = "tls-answers"
ADDR = "127.0.0.1"


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoneHost]:
    base = tmp_path_factory.mktemp("aws-tls")
    proc = subprocess.run(
        [str(cluster.TITANCTL), "cluster", "init", "--out", str(base / "ca"), "--hosts", f"host1={ADDR}"],
        capture_output=True, text=True, env=cluster.clean_env(), timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    ca = base / "ca"
    ports = (free_port_on(ADDR), free_port_on(ADDR), free_port_on(ADDR))
    h = LoneHost(ADDR, base, 1, [], ports, drives=6, ca=ca / "ca.pem", extra=[
        "--tls-cert", str(ca / "host1.pem"), "--tls-key", str(ca / "host1-key.pem"),
        "--tls-ca", str(ca / "ca.pem"), "--region", REGION])  # fmt: skip
    with running([h]):
        yield h


def client(host: LoneHost, credentials: Credentials | None = None):  # noqa: ANN201
    """boto3 over HTTPS in the daemon's region, SDK-default checksums, no retries."""
    import boto3
    from botocore.config import Config

    creds = credentials or host.credentials
    cfg = Config(region_name=REGION, s3={"addressing_style": "path"},
                 retries={"total_max_attempts": 1}, connect_timeout=10, read_timeout=120)  # fmt: skip
    return boto3.session.Session().client(
        "s3", endpoint_url=host.endpoint, aws_access_key_id=creds.access_key,
        aws_secret_access_key=creds.secret_key, region_name=REGION, config=cfg, verify=str(host.ca),
    )  # fmt: skip


@pytest.fixture(scope="module")
def s3(host: LoneHost) -> Iterator[object]:
    c = client(host)
    c.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    yield c
    c.close()


@pytest.fixture(autouse=True)
def _no_traceback(host: LoneHost) -> Iterator[None]:
    mark = host.log_mark()
    yield
    log = host.log_since(mark)
    assert "Traceback" not in log and "BusyResourceError" not in log, log[-4000:]


def _sent_headers(c) -> list[dict[str, str]]:  # noqa: ANN001
    """The headers of every request ``c`` sends from now on (names lower-case)."""
    seen: list[dict[str, str]] = []

    def record(request, **_: object) -> None:  # noqa: ANN001
        seen.append({k.lower(): v.decode("latin-1") if isinstance(v, bytes) else v
                     for k, v in request.headers.items()})  # fmt: skip

    c.meta.events.register("before-send.s3.*", record)
    return seen


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def test_content_encoding_keeps_the_clients_spelling_once_aws_chunked_is_gone(host: LoneHost, s3) -> None:  # noqa: ANN001
    c = client(host)
    sent = _sent_headers(c)
    body = os.urandom(200_000)
    put = c.put_object(Bucket=BUCKET, Key="ce", Body=io.BytesIO(body), ContentEncoding="deflate, gzip",
                       ChecksumAlgorithm="SHA256")  # fmt: skip
    c.close()
    assert sent[-1]["content-encoding"] == "deflate, gzip,aws-chunked"  # what boto3 sent
    assert sent[-1]["x-amz-trailer"] == "x-amz-checksum-sha256"
    assert put["ChecksumSHA256"] == _b64(hashlib.sha256(body).digest())
    got = s3.get_object(Bucket=BUCKET, Key="ce", ChecksumMode="ENABLED")
    assert got["ContentEncoding"] == "deflate, gzip"
    assert got["Body"].read() == body
    # aws-chunked alone leaves no Content-Encoding at all.
    s3.put_object(Bucket=BUCKET, Key="ce-none", Body=io.BytesIO(b"plain"))
    assert "ContentEncoding" not in s3.head_object(Bucket=BUCKET, Key="ce-none")


@pytest.mark.parametrize("algorithm", ["SHA256", "CRC32", "CRC64NVME"])
def test_multipart_with_trailer_checksums_completes(host: LoneHost, s3, algorithm: str) -> None:  # noqa: ANN001
    """What boto3 and s3transfer do over HTTPS: CreateMultipartUpload with an
    algorithm, UploadPart with the checksum in an aws-chunked trailer, Complete
    listing each part's checksum."""
    c = client(host)
    sent = _sent_headers(c)
    key = f"mpu-{algorithm}"
    upload = c.create_multipart_upload(Bucket=BUCKET, Key=key, ChecksumAlgorithm=algorithm)["UploadId"]
    chunks = [os.urandom(5 * MiB), os.urandom(777)]
    field = f"Checksum{algorithm}"
    parts = []
    for n, chunk in enumerate(chunks, start=1):
        r = c.upload_part(Bucket=BUCKET, Key=key, UploadId=upload, PartNumber=n, Body=io.BytesIO(chunk),
                          ChecksumAlgorithm=algorithm)  # fmt: skip
        assert sent[-1]["x-amz-trailer"] == f"x-amz-checksum-{algorithm.lower()}"
        parts.append({"PartNumber": n, "ETag": r["ETag"], field: r[field]})
    done = c.complete_multipart_upload(Bucket=BUCKET, Key=key, UploadId=upload,
                                       MultipartUpload={"Parts": parts})  # fmt: skip
    c.close()
    assert done["ResponseMetadata"]["HTTPStatusCode"] == 200
    got = s3.get_object(Bucket=BUCKET, Key=key, ChecksumMode="ENABLED")
    assert got["Body"].read() == b"".join(chunks)
    attrs = s3.get_object_attributes(Bucket=BUCKET, Key=key, ObjectAttributes=["ObjectParts", "Checksum"])
    assert [p[field] for p in attrs["ObjectParts"]["Parts"]] == [p[field] for p in parts]
    assert attrs["ObjectParts"]["TotalPartsCount"] == 2


def test_s3transfer_upload_file_with_a_checksum_algorithm(host: LoneHost, s3, tmp_path: Path) -> None:  # noqa: ANN001
    """``upload_file`` splits at 8 MiB and sends every part's checksum in a trailer."""
    from boto3.s3.transfer import TransferConfig

    path = tmp_path / "big.bin"
    path.write_bytes(os.urandom(17 * MiB + 3))
    s3.upload_file(str(path), BUCKET, "transfer", ExtraArgs={"ChecksumAlgorithm": "SHA256"},
                   Config=TransferConfig(multipart_threshold=8 * MiB, multipart_chunksize=8 * MiB))
    attrs = s3.get_object_attributes(Bucket=BUCKET, Key="transfer", ObjectAttributes=["ObjectParts", "ObjectSize"])
    assert attrs["ObjectSize"] == path.stat().st_size and attrs["ObjectParts"]["TotalPartsCount"] == 3
    data = path.read_bytes()
    want = [_b64(hashlib.sha256(data[i : i + 8 * MiB]).digest()) for i in range(0, len(data), 8 * MiB)]
    assert [p["ChecksumSHA256"] for p in attrs["ObjectParts"]["Parts"]] == want


def test_recreating_an_own_bucket_outside_us_east_1_is_409(s3) -> None:  # noqa: ANN001
    s3.put_object(Bucket=BUCKET, Key="kept", Body=b"still here")
    with pytest.raises(ClientError) as err:
        s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    r = err.value.response
    assert (r["ResponseMetadata"]["HTTPStatusCode"], r["Error"]["Code"]) == (409, "BucketAlreadyOwnedByYou")
    assert r["Error"]["BucketName"] == BUCKET
    assert s3.get_object(Bucket=BUCKET, Key="kept")["Body"].read() == b"still here"
    assert s3.get_bucket_location(Bucket=BUCKET)["LocationConstraint"] == REGION


def test_a_refused_expect_put_over_tls_leaves_the_client_usable(
    host: LoneHost, s3, tmp_path: Path, caplog: pytest.LogCaptureFixture  # noqa: ANN001
) -> None:
    bad = client(host, Credentials(host.credentials.access_key, "not-the-secret-key-00000000000000000000"))
    path = tmp_path / "body.bin"
    path.write_bytes(os.urandom(2 * MiB))
    try:
        for i in range(3):
            caplog.clear()
            with (
                caplog.at_level(logging.DEBUG, logger="botocore.awsrequest"),
                open(path, "rb") as f,
                pytest.raises(ClientError) as err,
            ):
                bad.put_object(Bucket=BUCKET, Key=f"refused-{i}", Body=f)
            assert err.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
            assert "NOT sending request body" in caplog.text
            with pytest.raises(ClientError) as err:
                bad.head_bucket(Bucket=BUCKET)
            assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
            s3.put_object(Bucket=BUCKET, Key="after", Body=io.BytesIO(b"fine"))
            assert s3.get_object(Bucket=BUCKET, Key="after")["Body"].read() == b"fine"
    finally:
        bad.close()
