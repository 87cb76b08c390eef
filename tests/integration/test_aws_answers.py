"""AWS's exact answers in the places real clients trip over (issue: "AWS-exact
behaviour in what is already built").  boto3 where a client can send the
request, raw HTTP (``rawhttp``) where it cannot; every test pins the status,
the error code and the headers AWS sends.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import socket
import urllib.parse

import pytest
from botocore.exceptions import ClientError

from .cluster import HOST, Daemon, MiB, s3_client
from .objtools import module_fixtures
from .rawhttp import raw_request, sign

BUCKET = "awsanswers"


d, s3, cli, _no_traceback = module_fixtures(BUCKET, home="aws-answers")


def _code(err: pytest.ExceptionInfo[ClientError]) -> tuple[int, str]:
    r = err.value.response
    return r["ResponseMetadata"]["HTTPStatusCode"], r["Error"]["Code"]


def _raw_exchange(d: Daemon, head: bytes) -> bytes:
    with socket.create_connection((HOST, d.s3_port), timeout=10) as s:
        s.sendall(head)
        raw = b""
        while chunk := s.recv(65536):
            raw += chunk
    return raw


# ------------------------------------------------------ objects and headers
@pytest.mark.parametrize(
    ("value", "wire"),
    [
        ("Hello World\xe9", b"Hello World\xe9"),
        ("r\u00e9sum\u00e9 caf\u00e9", "r\u00e9sum\u00e9 caf\u00e9".encode("latin-1")),
        ("=?UTF-8?B?SGVsbG8gV29ybGTDqQ==?=", b"=?UTF-8?B?SGVsbG8gV29ybGTDqQ==?="),
    ],
    ids=["s3-tests", "accents", "rfc2047"],
)
def test_user_metadata_comes_back_as_set(d: Daemon, s3, value: str, wire: bytes) -> None:  # noqa: ANN001
    """ceph s3-tests' test_object_set_get_unicode_metadata: the header is set
    under botocore (which refuses non-ASCII Metadata, and sends it as UTF-8)
    and must read back as the same value, not as mojibake."""

    def set_header(params, **_):  # noqa: ANN001
        params["headers"]["x-amz-meta-meta1"] = value

    client = s3_client(d)
    client.meta.events.register("before-call.s3.PutObject", set_header)
    client.put_object(Bucket=BUCKET, Key="meta-text", Body=b"bar")
    client.close()
    assert s3.get_object(Bucket=BUCKET, Key="meta-text")["Metadata"]["meta1"] == value
    assert _head_bytes(d, "/" + BUCKET + "/meta-text", b"x-amz-meta-meta1") == wire


def _head_bytes(d: Daemon, path: str, name: bytes) -> bytes:
    """The raw bytes of response header ``name`` of a HEAD (never decoded)."""
    hdrs = sign("HEAD", d.endpoint + path, d.credentials)
    head = "".join(f"{k}: {v}\r\n" for k, v in hdrs.items())
    wire = _raw_exchange(d, f"HEAD {path} HTTP/1.1\r\n{head}Connection: close\r\n\r\n".encode())
    for line in wire.split(b"\r\n"):
        if line.lower().startswith(name + b":"):
            return line.split(b":", 1)[1].strip()
    raise AssertionError(f"no {name!r} header in {wire[:500]!r}")


def test_raw_latin1_and_utf8_metadata_bytes(d: Daemon) -> None:
    """A byte that is not UTF-8 comes back as that byte; UTF-8 text beyond
    ISO-8859-1 comes back as the UTF-8 it was sent as."""
    for key, sent in (("raw-latin1", b"caf\xe9"), ("raw-utf8", "\u65e5\u672c".encode())):
        path = f"/{BUCKET}/{key}"
        hdrs = sign("PUT", d.endpoint + path, d.credentials, {"x-amz-meta-v": sent.decode("latin-1")},
                    hashlib.sha256(b"x").hexdigest())  # fmt: skip
        head = "".join(f"{k}: {v}\r\n" for k, v in hdrs.items())
        raw = _raw_exchange(d, f"PUT {path} HTTP/1.1\r\n{head}Content-Length: 1\r\n"
                               "Connection: close\r\n\r\nx".encode("latin-1"))  # fmt: skip
        assert raw.startswith(b"HTTP/1.1 200 OK"), raw[:300]
        assert _head_bytes(d, path, b"x-amz-meta-v") == sent


def test_content_encoding_keeps_the_clients_spelling(d: Daemon, s3) -> None:  # noqa: ANN001
    s3.put_object(Bucket=BUCKET, Key="ce", Body=b"x", ContentEncoding="deflate, gzip")
    assert s3.head_object(Bucket=BUCKET, Key="ce")["ContentEncoding"] == "deflate, gzip"


@pytest.mark.parametrize("raw_key", ["%AE%8A-", "%C2%AE%C2%8A-"], ids=["not-utf8", "c1-controls"])
@pytest.mark.parametrize("method", ["GET", "PUT"])
def test_a_key_aws_cannot_parse_is_400_invalid_uri(d: Daemon, raw_key: str, method: str) -> None:
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials as BotoCredentials

    path = f"/{BUCKET}/{raw_key}"
    body = b"x" if method == "PUT" else b""
    # botocore's S3 signer signs the path as sent (the generic one would encode "%" again).
    req = AWSRequest(method=method, url=d.endpoint + path,
                     headers={"X-Amz-Content-SHA256": hashlib.sha256(body).hexdigest()})  # fmt: skip
    S3SigV4Auth(BotoCredentials(d.credentials.access_key, d.credentials.secret_key), "s3",
                "us-east-1").add_auth(req)  # fmt: skip
    r = raw_request(d, method, path, body=body, headers=dict(req.headers.items()), signed=False)
    assert r.status == 400
    assert r.error_code() == "InvalidURI"
    assert b"Couldn't parse the specified URI." in r.body


def test_the_s3_tests_unreadable_key_is_400(s3) -> None:  # noqa: ANN001
    with pytest.raises(ClientError) as err:
        s3.get_object(Bucket=BUCKET, Key="\xae\x8a-")
    assert _code(err) == (400, "InvalidURI")
    assert err.value.response["Error"]["Message"] == "Couldn't parse the specified URI."


def test_object_tags_come_back_in_the_order_given(s3) -> None:  # noqa: ANN001
    tags = [{"Key": k, "Value": f"v{i}"} for i, k in enumerate(["zeta", "alpha", "mid", "Beta", "0"])]
    s3.put_object(Bucket=BUCKET, Key="tag-order", Body=b"x")
    s3.put_object_tagging(Bucket=BUCKET, Key="tag-order", Tagging={"TagSet": tags})
    assert s3.get_object_tagging(Bucket=BUCKET, Key="tag-order")["TagSet"] == tags
    header = "&".join(f"{t['Key']}={t['Value']}" for t in reversed(tags))
    s3.put_object(Bucket=BUCKET, Key="tag-order-header", Body=b"x", Tagging=header)
    got = s3.get_object_tagging(Bucket=BUCKET, Key="tag-order-header")["TagSet"]
    assert got == list(reversed(tags))


def test_more_than_ten_object_tags_is_invalid_tag(s3) -> None:  # noqa: ANN001
    s3.put_object(Bucket=BUCKET, Key="many-tags", Body=b"x")
    tags = [{"Key": f"k{i}", "Value": "v"} for i in range(11)]
    with pytest.raises(ClientError) as err:
        s3.put_object_tagging(Bucket=BUCKET, Key="many-tags", Tagging={"TagSet": tags})
    assert _code(err) == (400, "InvalidTag")
    with pytest.raises(ClientError) as err:
        s3.put_object(Bucket=BUCKET, Key="many-tags-2", Body=b"x",
                      Tagging="&".join(f"k{i}=v" for i in range(11)))  # fmt: skip
    assert _code(err) == (400, "InvalidTag")
    assert s3.get_object_tagging(Bucket=BUCKET, Key="many-tags")["TagSet"] == []


@pytest.mark.parametrize(
    ("algorithm", "header", "wrong"),
    [
        ("SHA256", "ChecksumSHA256", base64.b64encode(hashlib.sha256(b"other").digest()).decode()),
        ("CRC64NVME", "ChecksumCRC64NVME", "AAAAAAAAAAA="),
        ("CRC32", "ChecksumCRC32", "AAAAAA=="),
        ("SHA1", "ChecksumSHA1", base64.b64encode(hashlib.sha1(b"other").digest()).decode()),
        # Malformed values (a truncated digest, as ceph's s3-tests send) cannot match either.
        ("SHA256", "ChecksumSHA256", base64.b64encode(hashlib.sha256(b"payload").digest()).decode()[:-2]),
        ("CRC64NVME", "ChecksumCRC64NVME", "AAAAAAAAAA"),
    ],
)
def test_a_wrong_checksum_is_bad_digest(s3, algorithm: str, header: str, wrong: str) -> None:  # noqa: ANN001
    with pytest.raises(ClientError) as err:
        s3.put_object(Bucket=BUCKET, Key=f"bad-{algorithm}", Body=b"payload", **{header: wrong})
    assert _code(err) == (400, "BadDigest")
    with pytest.raises(ClientError) as err:
        s3.head_object(Bucket=BUCKET, Key=f"bad-{algorithm}")
    assert _code(err)[0] == 404


def test_large_object_checksum_round_trip(s3) -> None:  # noqa: ANN001
    body = os.urandom(3 * MiB)
    s3.put_object(Bucket=BUCKET, Key="ck-large", Body=io.BytesIO(body), ChecksumAlgorithm="SHA256")
    got = s3.head_object(Bucket=BUCKET, Key="ck-large", ChecksumMode="ENABLED")
    assert got["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(body).digest()).decode()


# ------------------------------------------------------- conditional writes
def test_put_if_none_match_etag_and_if_match_star(s3) -> None:  # noqa: ANN001
    first = s3.put_object(Bucket=BUCKET, Key="cond", Body=b"one")["ETag"]
    with pytest.raises(ClientError) as err:  # the current object has that ETag
        s3.put_object(Bucket=BUCKET, Key="cond", Body=b"two", IfNoneMatch=first)
    assert _code(err) == (412, "PreconditionFailed")
    s3.put_object(Bucket=BUCKET, Key="cond", Body=b"two", IfNoneMatch='"0123456789abcdef"')
    s3.put_object(Bucket=BUCKET, Key="cond", Body=b"three", IfMatch="*")
    assert s3.get_object(Bucket=BUCKET, Key="cond")["Body"].read() == b"three"
    with pytest.raises(ClientError) as err:  # If-Match: * needs an object
        s3.put_object(Bucket=BUCKET, Key="cond-absent", Body=b"x", IfMatch="*")
    assert _code(err) == (404, "NoSuchKey")
    s3.put_object(Bucket=BUCKET, Key="cond-absent", Body=b"x", IfNoneMatch=first)  # absent: holds


def _multipart(s3, key: str) -> tuple[str, list[dict[str, object]]]:  # noqa: ANN001
    upload = s3.create_multipart_upload(Bucket=BUCKET, Key=key)["UploadId"]
    etag = s3.upload_part(Bucket=BUCKET, Key=key, UploadId=upload, PartNumber=1, Body=b"p" * 100)["ETag"]
    return upload, [{"PartNumber": 1, "ETag": etag}]


@pytest.mark.parametrize(
    ("condition", "exists", "outcome"),
    [
        ({"IfNoneMatch": "*"}, True, (412, "PreconditionFailed")),
        ({"IfNoneMatch": "*"}, False, 200),
        ({"IfMatch": "*"}, True, 200),
        ({"IfMatch": "*"}, False, (404, "NoSuchKey")),
        ({"IfNoneMatch": "current"}, True, (412, "PreconditionFailed")),
        ({"IfNoneMatch": '"ffffffffffffffffffffffffffffffff"'}, True, 200),
        ({"IfMatch": "current"}, True, 200),
        ({"IfMatch": '"ffffffffffffffffffffffffffffffff"'}, True, (412, "PreconditionFailed")),
    ],
)
def test_complete_multipart_upload_evaluates_both_conditions(
    s3, condition: dict[str, str], exists: bool, outcome: object  # noqa: ANN001
) -> None:
    key = f"cond-mpu-{abs(hash((tuple(condition.items()), exists)))}"
    current = s3.put_object(Bucket=BUCKET, Key=key, Body=b"old")["ETag"] if exists else None
    condition = {k: (current if v == "current" else v) for k, v in condition.items()}
    upload, parts = _multipart(s3, key)
    call = lambda: s3.complete_multipart_upload(  # noqa: E731
        Bucket=BUCKET, Key=key, UploadId=upload, MultipartUpload={"Parts": parts}, **condition)
    if outcome == 200:
        etag = call()["ETag"]
        assert s3.head_object(Bucket=BUCKET, Key=key)["ETag"] == etag
    else:
        with pytest.raises(ClientError) as err:
            call()
        assert _code(err) == outcome
        if exists:
            assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == b"old"


# ---------------------------------------------------------------- multipart
def test_a_repeated_complete_answers_200_with_the_same_etag(s3) -> None:  # noqa: ANN001
    """Clients retry Complete after a lost response: AWS answers the retry 200."""
    key = "complete-twice"
    upload, parts = _multipart(s3, key)
    first = s3.complete_multipart_upload(Bucket=BUCKET, Key=key, UploadId=upload,
                                         MultipartUpload={"Parts": parts})  # fmt: skip
    again = s3.complete_multipart_upload(Bucket=BUCKET, Key=key, UploadId=upload,
                                         MultipartUpload={"Parts": parts})  # fmt: skip
    assert again["ETag"] == first["ETag"] == s3.head_object(Bucket=BUCKET, Key=key)["ETag"]
    assert again["ResponseMetadata"]["HTTPStatusCode"] == 200
    # Another part list is not the same Complete, and the upload itself is gone.
    with pytest.raises(ClientError) as err:
        s3.complete_multipart_upload(Bucket=BUCKET, Key=key, UploadId=upload, MultipartUpload={
            "Parts": [{"PartNumber": 1, "ETag": '"00000000000000000000000000000000"'}]})
    assert _code(err) == (404, "NoSuchUpload")
    with pytest.raises(ClientError) as err:
        s3.upload_part(Bucket=BUCKET, Key=key, UploadId=upload, PartNumber=2, Body=b"x")
    assert _code(err) == (404, "NoSuchUpload")


def _upload_part_with_trailer(d: Daemon, key: str, upload: str, n: int, data: bytes,
                              algorithm: str) -> dict[str, str]:  # fmt: skip
    """UploadPart the way SDKs do over TLS: aws-chunked, checksum in a trailer."""
    from botocore import httpchecksum

    checksum_cls = {"SHA256": httpchecksum.Sha256Checksum, "CRC32": httpchecksum.Crc32Checksum,
                    "SHA1": httpchecksum.Sha1Checksum}[algorithm]  # fmt: skip
    trailer = f"x-amz-checksum-{algorithm.lower()}"
    body = httpchecksum.AwsChunkedWrapper(io.BytesIO(data), checksum_cls, trailer,
                                          chunk_size=64 * 1024).read()  # fmt: skip
    path = f"/{BUCKET}/{key}?partNumber={n}&uploadId={urllib.parse.quote(upload, safe='')}"
    headers = {"Content-Encoding": "aws-chunked", "x-amz-decoded-content-length": str(len(data)),
               "x-amz-trailer": trailer, "x-amz-sdk-checksum-algorithm": algorithm}  # fmt: skip
    hdrs = sign("PUT", d.endpoint + path, d.credentials, headers,
                "STREAMING-UNSIGNED-PAYLOAD-TRAILER")  # fmt: skip
    r = raw_request(d, "PUT", path, body=body, headers=hdrs, signed=False)
    assert r.status == 200, r.body
    return r.headers


@pytest.mark.parametrize("algorithm", ["SHA256", "CRC32"])
def test_multipart_with_a_checksum_completes_when_parts_sent_trailers(
    d: Daemon, s3, algorithm: str  # noqa: ANN001
) -> None:
    key = f"mpu-trailer-{algorithm}"
    upload = s3.create_multipart_upload(Bucket=BUCKET, Key=key, ChecksumAlgorithm=algorithm)["UploadId"]
    chunks = [os.urandom(5 * MiB), os.urandom(1234)]
    parts = []
    for n, chunk in enumerate(chunks, start=1):
        headers = _upload_part_with_trailer(d, key, upload, n, chunk, algorithm)
        parts.append({"PartNumber": n, "ETag": headers["etag"],
                      f"Checksum{algorithm}": headers[f"x-amz-checksum-{algorithm.lower()}"]})
    listed = s3.list_parts(Bucket=BUCKET, Key=key, UploadId=upload)["Parts"]
    assert [p[f"Checksum{algorithm}"] for p in listed] == [p[f"Checksum{algorithm}"] for p in parts]
    done = s3.complete_multipart_upload(Bucket=BUCKET, Key=key, UploadId=upload,
                                        MultipartUpload={"Parts": parts})  # fmt: skip
    assert done[f"Checksum{algorithm}"].endswith("-2")
    got = s3.get_object(Bucket=BUCKET, Key=key, ChecksumMode="ENABLED")
    assert got["Body"].read() == b"".join(chunks)
    assert got[f"Checksum{algorithm}"] == done[f"Checksum{algorithm}"]
    attrs = s3.get_object_attributes(Bucket=BUCKET, Key=key, ObjectAttributes=["ObjectParts"])
    assert [p[f"Checksum{algorithm}"] for p in attrs["ObjectParts"]["Parts"]] == [
        p[f"Checksum{algorithm}"] for p in parts]
    # A COMPOSITE upload's Complete must list every part's checksum (AWS's rule and message).
    key2 = key + "-bare"
    upload = s3.create_multipart_upload(Bucket=BUCKET, Key=key2, ChecksumAlgorithm=algorithm)["UploadId"]
    headers = _upload_part_with_trailer(d, key2, upload, 1, chunks[1], algorithm)
    with pytest.raises(ClientError) as err:
        s3.complete_multipart_upload(Bucket=BUCKET, Key=key2, UploadId=upload, MultipartUpload={
            "Parts": [{"PartNumber": 1, "ETag": headers["etag"]}]})
    assert _code(err) == (400, "InvalidRequest")
    assert "must include the checksum for each part" in err.value.response["Error"]["Message"]


def test_get_object_attributes_of_a_simple_object(s3) -> None:  # noqa: ANN001
    body = b"attributes"
    put = s3.put_object(Bucket=BUCKET, Key="attrs", Body=body, ChecksumAlgorithm="SHA256")
    got = s3.get_object_attributes(Bucket=BUCKET, Key="attrs", ObjectAttributes=[
        "ETag", "Checksum", "ObjectParts", "StorageClass", "ObjectSize"])
    assert got["ETag"] == put["ETag"].strip('"')
    assert got["Checksum"]["ChecksumSHA256"] == put["ChecksumSHA256"]
    assert got["Checksum"]["ChecksumType"] == "FULL_OBJECT"
    assert got["StorageClass"] == "STANDARD" and got["ObjectSize"] == len(body)
    assert "ObjectParts" not in got
    assert got["LastModified"] == s3.head_object(Bucket=BUCKET, Key="attrs")["LastModified"]
    with pytest.raises(ClientError) as err:
        s3.get_object_attributes(Bucket=BUCKET, Key="no-such-attrs", ObjectAttributes=["ETag"])
    assert _code(err) == (404, "NoSuchKey")


def test_get_object_attributes_pages_the_parts_of_a_multipart_object(s3) -> None:  # noqa: ANN001
    key = "attrs-mpu"
    upload = s3.create_multipart_upload(Bucket=BUCKET, Key=key, ChecksumAlgorithm="CRC32")["UploadId"]
    chunks = [os.urandom(5 * MiB), os.urandom(5 * MiB), os.urandom(10)]
    parts = []
    for n, chunk in enumerate(chunks, start=1):
        r = s3.upload_part(Bucket=BUCKET, Key=key, UploadId=upload, PartNumber=n, Body=chunk,
                           ChecksumAlgorithm="CRC32")  # fmt: skip
        parts.append({"PartNumber": n, "ETag": r["ETag"], "ChecksumCRC32": r["ChecksumCRC32"]})
    done = s3.complete_multipart_upload(Bucket=BUCKET, Key=key, UploadId=upload,
                                        MultipartUpload={"Parts": parts})  # fmt: skip
    page = s3.get_object_attributes(Bucket=BUCKET, Key=key, MaxParts=2,
                                    ObjectAttributes=["ObjectParts", "Checksum"])  # fmt: skip
    op = page["ObjectParts"]
    assert op["TotalPartsCount"] == 3 and op["IsTruncated"] and op["NextPartNumberMarker"] == 2
    assert [(p["PartNumber"], p["Size"], p["ChecksumCRC32"]) for p in op["Parts"]] == [
        (1, 5 * MiB, parts[0]["ChecksumCRC32"]), (2, 5 * MiB, parts[1]["ChecksumCRC32"])]
    assert page["Checksum"]["ChecksumCRC32"] == done["ChecksumCRC32"].rsplit("-", 1)[0]
    assert page["Checksum"]["ChecksumType"] == "COMPOSITE"
    rest = s3.get_object_attributes(Bucket=BUCKET, Key=key, PartNumberMarker=2,
                                    ObjectAttributes=["ObjectParts"])["ObjectParts"]  # fmt: skip
    assert [p["PartNumber"] for p in rest["Parts"]] == [3] and not rest["IsTruncated"]


# ------------------------------------------------------ buckets, versioning
def test_list_objects_v1_fields_come_back_decoded(d: Daemon, s3) -> None:  # noqa: ANN001
    """boto3 asks for encoding-type=url on its own and decodes what AWS encodes
    (Marker, NextMarker, Delimiter, Key, CommonPrefixes) -- for v1 AWS leaves
    the top-level Prefix unencoded, so the caller sees every field as given."""
    prefix, marker = "v1 list/é+&", "v1 list/é+&a"
    for name in ("a", "b", "c/d"):
        s3.put_object(Bucket=BUCKET, Key=prefix + name, Body=b"x")
    got = s3.list_objects(Bucket=BUCKET, Prefix=prefix, Delimiter="/", Marker=marker, MaxKeys=1)
    assert (got["Prefix"], got["Delimiter"], got["Marker"]) == (prefix, "/", marker)
    assert [c["Key"] for c in got["Contents"]] == [prefix + "b"] and got["IsTruncated"]
    assert got["NextMarker"] == prefix + "b"
    # Without encoding-type nothing is encoded; with it, everything AWS encodes is.
    query = "prefix=" + urllib.parse.quote(prefix, safe="") + "&delimiter=%2F"
    plain = raw_request(d, "GET", f"/{BUCKET}?{query}")
    assert f"<Prefix>{prefix.replace('&', '&amp;')}</Prefix>".encode() in plain.body
    assert b"<Delimiter>/</Delimiter>" in plain.body
    encoded = raw_request(d, "GET", f"/{BUCKET}?{query}&encoding-type=url")
    assert b"<EncodingType>url</EncodingType>" in encoded.body
    assert b"<Key>" + urllib.parse.quote(prefix + "a", safe="/").encode() + b"</Key>" in encoded.body
    assert f"<Prefix>{prefix.replace('&', '&amp;')}</Prefix>".encode() in encoded.body


def test_create_bucket_on_an_own_bucket_in_us_east_1_is_200_and_keeps_it(s3) -> None:  # noqa: ANN001
    s3.put_object(Bucket=BUCKET, Key="survives-recreate", Body=b"kept")
    again = s3.create_bucket(Bucket=BUCKET)
    assert again["ResponseMetadata"]["HTTPStatusCode"] == 200 and again["Location"] == f"/{BUCKET}"
    assert s3.get_object(Bucket=BUCKET, Key="survives-recreate")["Body"].read() == b"kept"


def test_a_put_into_a_suspended_bucket_names_no_version(s3) -> None:  # noqa: ANN001
    bucket = "awsanswers-suspended"
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    enabled = s3.put_object(Bucket=bucket, Key="k", Body=b"v1")
    assert enabled["VersionId"] not in (None, "null")
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})
    put = s3.put_object(Bucket=bucket, Key="k", Body=b"v2")
    assert "VersionId" not in put and "x-amz-version-id" not in put["ResponseMetadata"]["HTTPHeaders"]
    copy = s3.copy_object(Bucket=bucket, Key="k2", CopySource={"Bucket": bucket, "Key": "k"})
    assert "VersionId" not in copy
    upload = s3.create_multipart_upload(Bucket=bucket, Key="k3")["UploadId"]
    etag = s3.upload_part(Bucket=bucket, Key="k3", UploadId=upload, PartNumber=1, Body=b"p")["ETag"]
    done = s3.complete_multipart_upload(Bucket=bucket, Key="k3", UploadId=upload,
                                        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]})
    assert "VersionId" not in done
    assert s3.head_object(Bucket=bucket, Key="k")["VersionId"] == "null"


def _head_404_headers(s3, bucket: str, key: str) -> dict[str, str]:  # noqa: ANN001
    with pytest.raises(ClientError) as err:
        s3.head_object(Bucket=bucket, Key=key)
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    return err.value.response["ResponseMetadata"]["HTTPHeaders"]


def test_404s_say_whether_a_delete_marker_caused_them(s3) -> None:  # noqa: ANN001
    s3.put_object(Bucket=BUCKET, Key="gone", Body=b"x")
    s3.delete_object(Bucket=BUCKET, Key="gone")
    assert _head_404_headers(s3, BUCKET, "gone")["x-amz-delete-marker"] == "false"
    with pytest.raises(ClientError) as err:
        s3.get_object(Bucket=BUCKET, Key="gone")
    assert err.value.response["ResponseMetadata"]["HTTPHeaders"]["x-amz-delete-marker"] == "false"
    assert _code(err) == (404, "NoSuchKey")
    bucket = "awsanswers-versioned"
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    marker = s3.delete_object(Bucket=bucket, Key="k")["VersionId"]
    headers = _head_404_headers(s3, bucket, "k")
    assert headers["x-amz-delete-marker"] == "true" and headers["x-amz-version-id"] == marker
    with pytest.raises(ClientError) as err:
        s3.get_object(Bucket=bucket, Key="k")
    assert err.value.response["ResponseMetadata"]["HTTPHeaders"]["x-amz-delete-marker"] == "true"


# --------------------------------------------------------------------- auth
@pytest.mark.parametrize("expect", [False, True], ids=["plain", "expect-100"])
def test_an_expired_presigned_put_is_403_request_has_expired(d: Daemon, s3, expect: bool) -> None:  # noqa: ANN001
    import subprocess
    import time

    presigner = s3_client(d, signature_version="s3v4")
    url = presigner.generate_presigned_url("put_object", Params={"Bucket": BUCKET, "Key": "late-put"},
                                           ExpiresIn=1)  # fmt: skip
    presigner.close()
    time.sleep(2.1)
    args = ["curl", "-sS", "--noproxy", "*", "-X", "PUT", "--data-binary", "@-", "-w", "\n%{http_code}"]
    if expect:
        args += ["-H", "Expect: 100-continue"]
    proc = subprocess.run([*args, url], input=os.urandom(2 * MiB), capture_output=True, timeout=60,
                          check=False)  # fmt: skip
    body, _, status = proc.stdout.rpartition(b"\n")
    assert status == b"403", proc.stderr
    assert b"<Code>AccessDenied</Code>" in body and b"Request has expired" in body
    with pytest.raises(ClientError) as err:
        s3.head_object(Bucket=BUCKET, Key="late-put")
    assert _code(err)[0] == 404


def test_a_browser_form_upload_answers_what_the_compatibility_page_says(d: Daemon, s3) -> None:  # noqa: ANN001
    """PostObject carries its credentials in the form, so it is judged as the
    operation (501, as documented), not refused as an anonymous request (403)."""
    import subprocess

    from .cluster import REPO

    row = next(line for line in (REPO / "docs" / "s3-compatibility.md").read_text().splitlines()
               if line.startswith("| PostObject"))  # fmt: skip
    assert "| not supported | 501" in row
    proc = subprocess.run(
        ["curl", "-sS", "--noproxy", "*", "-F", "key=form-upload", "-F", "file=@-;filename=f.txt",
         "-w", "\n%{http_code}", f"{d.endpoint}/{BUCKET}"],
        input=b"form data", capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    body, _, status = proc.stdout.rpartition(b"\n")
    assert status == b"501", proc.stdout + proc.stderr
    assert b"<Code>NotImplemented</Code>" in body and b"<RequestId>" in body
    with pytest.raises(ClientError) as err:
        s3.head_object(Bucket=BUCKET, Key="form-upload")
    assert _code(err)[0] == 404
    # An unsigned POST that is not a form is still anonymous: 403.
    r = raw_request(d, "POST", f"/{BUCKET}?delete", body=b"<Delete/>", signed=False)
    assert (r.status, r.error_code()) == (403, "AccessDenied")
