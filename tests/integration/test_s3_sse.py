"""Server-side encryption against the real daemon with boto3: SSE-S3, SSE-C and
SSE-KMS on PUT, GET, HEAD, range GETs at package boundaries, multipart, CopyObject
and UploadPartCopy between every pair of encryptions, and no plaintext on the drives."""

from __future__ import annotations

import base64
import hashlib
import os
import random
from pathlib import Path

import pytest

from .cluster import MiB
from .durability import all_healthy, flip_random_payload_byte, fragment_files, inspect, wait_for
from .objtools import cli_json, module_fixtures, s3_error

BUCKET = "sse-bucket"
PKG = 64 * 1024
MARKER = b"SSE-PLAINTEXT-MARKER-5c1e9b"
CK = os.urandom(32)
CK2 = os.urandom(32)

d, s3, cli, _no_traceback = module_fixtures(BUCKET, home="aws-sse")


def _c(key: bytes, prefix: str = "SSECustomer") -> dict[str, str]:
    return {f"{prefix}Algorithm": "AES256", f"{prefix}Key": base64.b64encode(key).decode(),
            f"{prefix}KeyMD5": base64.b64encode(hashlib.md5(key).digest()).decode()}


def _copy_c(key: bytes) -> dict[str, str]:
    return _c(key, "CopySourceSSECustomer")


MODES = {
    "none": ({}, {}),
    "s3": ({"ServerSideEncryption": "AES256"}, {}),
    "c": (_c(CK), _c(CK)),
    "kms": ({"ServerSideEncryption": "aws:kms"}, {}),
}


def _data(n: int) -> bytes:
    piece = MARKER + os.urandom(200)
    return (piece * (n // len(piece) + 1))[:n]


def _on_disk(root: Path) -> bytes:
    out = bytearray()
    for p in root.rglob("*"):
        if p.is_file() and not p.name.endswith(".log"):
            out += p.read_bytes()
    return bytes(out)


def _expect_sse(resp: dict, mode: str) -> None:
    if mode == "s3":
        assert resp["ServerSideEncryption"] == "AES256"
    elif mode == "kms":
        assert resp["ServerSideEncryption"] == "aws:kms"
        assert resp["SSEKMSKeyId"].startswith("arn:aws:kms:")
    elif mode == "c":
        assert resp["SSECustomerAlgorithm"] == "AES256"
        assert resp["SSECustomerKeyMD5"] == _c(CK)["SSECustomerKeyMD5"]
    else:
        assert "ServerSideEncryption" not in resp and "SSECustomerAlgorithm" not in resp


@pytest.mark.parametrize("mode", ["s3", "c", "kms"])
def test_put_get_head_and_ranges_at_package_boundaries(s3, mode: str) -> None:
    put_kw, read_kw = MODES[mode]
    data = _data(3 * PKG + 777)
    key = f"obj-{mode}"
    put = s3.put_object(Bucket=BUCKET, Key=key, Body=data, **put_kw)
    _expect_sse(put, mode)
    md5 = hashlib.md5(data).hexdigest()
    assert (put["ETag"].strip('"') == md5) == (mode == "s3")  # AWS: SSE-C/KMS ETags are not MD5s
    got = s3.get_object(Bucket=BUCKET, Key=key, **read_kw)
    _expect_sse(got, mode)
    assert got["Body"].read() == data
    head = s3.head_object(Bucket=BUCKET, Key=key, **read_kw)
    assert head["ContentLength"] == len(data)
    _expect_sse(head, mode)
    for first, last in [(0, 0), (PKG - 1, PKG), (PKG, 2 * PKG - 1), (2 * PKG - 3, 3 * PKG + 2),
                        (len(data) - 1, len(data) - 1)]:
        r = s3.get_object(Bucket=BUCKET, Key=key, Range=f"bytes={first}-{last}", **read_kw)
        assert r["Body"].read() == data[first : last + 1]
        assert r["ContentRange"] == f"bytes {first}-{last}/{len(data)}"
    r = s3.get_object(Bucket=BUCKET, Key=key, Range="bytes=-100", **read_kw)
    assert r["Body"].read() == data[-100:]


def test_sse_c_errors_are_aws_errors(s3) -> None:
    s3.put_object(Bucket=BUCKET, Key="c-err", Body=b"secret" * 100, **_c(CK))
    assert s3_error(s3.get_object, Bucket=BUCKET, Key="c-err")[:2] == (400, "InvalidRequest")
    assert s3_error(s3.get_object, Bucket=BUCKET, Key="c-err", **_c(CK2))[:2] == (403, "AccessDenied")
    assert s3_error(s3.head_object, Bucket=BUCKET, Key="c-err")[0] == 400
    assert s3_error(s3.head_object, Bucket=BUCKET, Key="c-err", **_c(CK2))[0] == 403
    s3.put_object(Bucket=BUCKET, Key="plain", Body=b"x")
    assert s3_error(s3.get_object, Bucket=BUCKET, Key="plain", **_c(CK))[:2] == (400, "InvalidRequest")
    bad = dict(_c(CK), SSECustomerKeyMD5=base64.b64encode(b"0" * 16).decode())
    # boto3 fills in the MD5 itself unless given; a wrong one is refused.
    assert s3_error(s3.put_object, Bucket=BUCKET, Key="bad", Body=b"x", **bad)[:2] == \
        (400, "InvalidArgument")
    assert s3_error(s3.put_object, Bucket=BUCKET, Key="bad", Body=b"x",
                    ServerSideEncryption="bogus")[:2] == (400, "InvalidArgument")
    assert s3_error(s3.put_object, Bucket=BUCKET, Key="bad", Body=b"x", SSEKMSKeyId="nope")[:2] == \
        (400, "InvalidArgument")
    assert s3_error(s3.put_object, Bucket=BUCKET, Key="bad", Body=b"x", ServerSideEncryption="aws:kms",
                    SSEKMSKeyId="no-such-key")[:2] == (400, "KMS.NotFoundException")


@pytest.mark.parametrize("mode", ["s3", "c", "kms"])
def test_multipart_upload_encrypts_every_part(s3, mode: str) -> None:
    put_kw, read_kw = MODES[mode]
    key = f"mp-{mode}"
    up = s3.create_multipart_upload(Bucket=BUCKET, Key=key, **put_kw)
    p1, p2 = _data(5 * MiB), _data(PKG + 3)
    etags = []
    for n, body in ((1, p1), (2, p2)):
        r = s3.upload_part(Bucket=BUCKET, Key=key, UploadId=up["UploadId"], PartNumber=n, Body=body,
                           **read_kw)
        etags.append(r["ETag"])
        _expect_sse(r, mode)
    if mode == "c":
        assert s3_error(s3.upload_part, Bucket=BUCKET, Key=key, UploadId=up["UploadId"],
                        PartNumber=3, Body=b"x")[0] == 400
    done = s3.complete_multipart_upload(
        Bucket=BUCKET, Key=key, UploadId=up["UploadId"],
        MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in zip((1, 2), etags, strict=True)]})
    _expect_sse(done, "none" if mode == "c" else mode)
    whole = p1 + p2
    assert s3.get_object(Bucket=BUCKET, Key=key, **read_kw)["Body"].read() == whole
    lo, hi = len(p1) - PKG - 1, len(p1) + PKG
    r = s3.get_object(Bucket=BUCKET, Key=key, Range=f"bytes={lo}-{hi}", **read_kw)
    assert r["Body"].read() == whole[lo : hi + 1]
    r = s3.get_object(Bucket=BUCKET, Key=key, PartNumber=2, **read_kw)
    assert r["Body"].read() == p2 and r["PartsCount"] == 2


PAIRS = [(a, b) for a in MODES for b in MODES]


@pytest.mark.parametrize(("src", "dst"), PAIRS)
def test_copy_and_upload_part_copy_between_every_pair(s3, src: str, dst: str) -> None:
    src_kw, src_read = MODES[src]
    dst_kw = dict(_c(CK2)) if dst == "c" else dict(MODES[dst][0])
    dst_read = _c(CK2) if dst == "c" else {}
    data = _data(2 * PKG + 99)
    skey, dkey = f"cp-src-{src}-{dst}", f"cp-dst-{src}-{dst}"
    s3.put_object(Bucket=BUCKET, Key=skey, Body=data, **src_kw)
    copy_c = _copy_c(CK) if src == "c" else {}
    r = s3.copy_object(Bucket=BUCKET, Key=dkey, CopySource={"Bucket": BUCKET, "Key": skey},
                       **dst_kw, **copy_c)
    if dst in ("s3", "kms"):
        assert r["ServerSideEncryption"] == dst_kw["ServerSideEncryption"]
    assert s3.get_object(Bucket=BUCKET, Key=dkey, **dst_read)["Body"].read() == data
    if src == "c":  # the copy source's key is required
        assert s3_error(s3.copy_object, Bucket=BUCKET, Key=dkey + "x",
                        CopySource={"Bucket": BUCKET, "Key": skey})[0] == 400
    up = s3.create_multipart_upload(Bucket=BUCKET, Key=dkey + "-mp", **dst_kw)
    part = s3.upload_part_copy(Bucket=BUCKET, Key=dkey + "-mp", UploadId=up["UploadId"], PartNumber=1,
                               CopySource={"Bucket": BUCKET, "Key": skey},
                               CopySourceRange=f"bytes={PKG - 5}-{2 * PKG + 5}", **copy_c, **dst_read)
    s3.complete_multipart_upload(
        Bucket=BUCKET, Key=dkey + "-mp", UploadId=up["UploadId"],
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["CopyPartResult"]["ETag"]}]})
    got = s3.get_object(Bucket=BUCKET, Key=dkey + "-mp", **dst_read)["Body"].read()
    assert got == data[PKG - 5 : 2 * PKG + 6]


def test_drives_hold_no_plaintext_of_encrypted_objects(s3, d) -> None:
    secret, control = b"GREP-SECRET-2b7d41e0", b"GREP-CONTROL-9e03aa17"
    for mode in ("s3", "c", "kms"):
        put_kw, _ = MODES[mode]
        s3.put_object(Bucket=BUCKET, Key=f"grep-small-{mode}", Body=secret * 500, **put_kw)  # inline
        s3.put_object(Bucket=BUCKET, Key=f"grep-big-{mode}", Body=secret * 100_000, **put_kw)
    # The control: an unencrypted object's marker is found, so the grep can fail.
    s3.put_object(Bucket=BUCKET, Key="grep-control", Body=control * 100_000)
    blob = _on_disk(Path(d.data_dir))
    assert control in blob
    assert secret not in blob


@pytest.mark.parametrize("mode", ["s3", "kms"])
def test_a_flipped_ciphertext_byte_is_repaired_never_wrong(s3, d, mode: str) -> None:
    put_kw, _ = MODES[mode]
    key = f"flip-{mode}"
    data = _data(3 * MiB)
    s3.put_object(Bucket=BUCKET, Key=key, Body=data, **put_kw)
    doc = inspect(d, BUCKET, key)["versions"][0]
    assert doc["encryption"] == {"s3": "SSE-S3", "kms": "SSE-KMS"}[mode]
    assert doc["streams"][0]["size"] > len(data)  # stored bytes: a tag per 64 KiB package
    data_id = doc["streams"][0]["data_id"]
    files = fragment_files(d)[data_id]
    rng = random.Random(7)
    for path in files[:2]:  # two of six fragments: still k=4 good ones
        flip_random_payload_byte(path, rng)
    for _ in range(2):
        assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == data
    # The read queued the object for repair, which rebuilds the sealed fragments
    # (stored sizes, not plaintext sizes) until a deep check finds all six healthy.
    wait_for("repair of the encrypted object", lambda: not all_healthy(d, BUCKET, [key]), timeout=90)
    assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == data


def test_customer_keys_reach_neither_the_drives_nor_any_log(s3, d) -> None:
    s3.put_object(Bucket=BUCKET, Key="ck-trace", Body=b"x" * 5000, **_c(CK))
    assert s3_error(s3.get_object, Bucket=BUCKET, Key="ck-trace", **_c(CK2))[0] == 403
    b64 = [base64.b64encode(k) for k in (CK, CK2)]
    everything = bytearray()
    for p in Path(d.data_dir).rglob("*"):
        if p.is_file():
            everything += p.read_bytes()
    everything += Path(d.log_path).read_bytes()
    for secret in (CK, CK2, *b64):
        assert secret not in everything


def test_the_aws_cli_copies_with_every_kind_of_encryption(cli, tmp_path: Path) -> None:
    src = tmp_path / "src.bin"
    data = _data(8 * MiB + 3)  # multipart for `aws s3 cp` (8 MiB threshold)
    src.write_bytes(data)
    keyfile = tmp_path / "sse-c.key"
    keyfile.write_bytes(CK)
    runs = {
        "cli-s3": (["--sse", "AES256"], []),
        "cli-kms": (["--sse", "aws:kms"], []),
        "cli-c": (["--sse-c", "AES256", "--sse-c-key", f"fileb://{keyfile}"],
                  ["--sse-c", "AES256", "--sse-c-key", f"fileb://{keyfile}"]),
    }
    for key, (put, get) in runs.items():
        cli("s3", "cp", str(src), f"s3://{BUCKET}/{key}", *put)
        out = tmp_path / f"{key}.out"
        cli("s3", "cp", f"s3://{BUCKET}/{key}", str(out), *get)
        assert out.read_bytes() == data, key
    head = cli_json(cli, "s3api", "head-object", "--bucket", BUCKET, "--key", "cli-kms")
    assert head["ServerSideEncryption"] == "aws:kms"
    # Without its key an SSE-C object cannot be read: a clear failure, not bytes.
    r = cli("s3", "cp", f"s3://{BUCKET}/cli-c", str(tmp_path / "nokey"), check=False)
    assert r.returncode != 0 and not (tmp_path / "nokey").exists()
