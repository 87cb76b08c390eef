"""Bad requests get the S3 error a client expects (status + XML ``<Code>``), never a traceback.

Each test sends its bad input to a daemon shared by this module and then checks
that the log lines its requests produced contain no ``Traceback``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from .cluster import HOST, Credentials, Daemon, s3_client
from .rawhttp import Response, parse_raw_response, raw_request, send_raw_bytes, sign

BUCKET = "badinput"


@pytest.fixture(scope="module")
def d(module_daemon: Daemon) -> Daemon:
    s3_client(module_daemon).create_bucket(Bucket=BUCKET)
    return module_daemon


@pytest.fixture(autouse=True)
def no_traceback_in_log(d: Daemon) -> Iterator[None]:
    mark = d.log_mark()
    yield
    time.sleep(0.3)  # an error is sometimes logged just after the response went out
    new = d.log_since(mark)
    assert "Traceback" not in new, f"daemon logged a traceback:\n{new[-4000:]}"
    assert d.running, f"daemon died:\n{d.log_tail()}"


def assert_s3_error(r: Response, status: int, *codes: str) -> None:
    code = r.error_code()
    assert r.status == status and code in codes, (
        f"want {status} {'/'.join(codes)}, got {r.status} code={code!r} body={r.body[:600]!r}"
    )


def test_wrong_secret_is_403_signature_does_not_match(d: Daemon) -> None:
    wrong = Credentials(d.credentials.access_key, d.credentials.secret_key[::-1])
    for method, path in [("GET", "/"), ("GET", f"/{BUCKET}"), ("PUT", f"/{BUCKET}/x")]:
        r = raw_request(d, method, path, body=b"data" if method == "PUT" else b"",
                        credentials=wrong)  # fmt: skip
        assert_s3_error(r, 403, "SignatureDoesNotMatch")


def test_unknown_access_key_is_403_invalid_access_key_id(d: Daemon) -> None:
    r = raw_request(d, "GET", "/", credentials=Credentials("AKIDOESNOTEXIST00000", "x" * 40))
    assert_s3_error(r, 403, "InvalidAccessKeyId")


def test_unknown_bucket_is_404_no_such_bucket(d: Daemon) -> None:
    for method, path in [
        ("GET", "/no-such-bucket-here"),
        ("GET", "/no-such-bucket-here/some/key"),
        ("PUT", "/no-such-bucket-here/some/key"),
    ]:
        r = raw_request(d, method, path, body=b"x" if method == "PUT" else b"")
        assert_s3_error(r, 404, "NoSuchBucket")


MALFORMED = {
    "truncated": b"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber>",
    "not-xml": b"this is not xml at all",
    "doctype": b"<?xml version='1.0'?><!DOCTYPE x [<!ENTITY a 'aaaa'>]><x>&a;</x>",
    # Well-formed, but a part number that is not a number: AWS says MalformedXML;
    # InvalidArgument is tolerated here only.
    "bad-part-number": b"<CompleteMultipartUpload><Part><PartNumber>one</PartNumber>"
    b"<ETag>x</ETag></Part></CompleteMultipartUpload>",
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_complete_multipart_xml_is_400_malformed_xml(d: Daemon, case: str) -> None:
    s3 = s3_client(d)
    upload = s3.create_multipart_upload(Bucket=BUCKET, Key="mpu")["UploadId"]
    s3.upload_part(Bucket=BUCKET, Key="mpu", UploadId=upload, PartNumber=1, Body=b"p" * 1000)
    r = raw_request(d, "POST", f"/{BUCKET}/mpu?uploadId={upload}", body=MALFORMED[case])
    codes = ("MalformedXML", "InvalidArgument") if case == "bad-part-number" else ("MalformedXML",)
    assert_s3_error(r, 400, *codes)
    s3.abort_multipart_upload(Bucket=BUCKET, Key="mpu", UploadId=upload)


def _raw_put(d: Daemon, extra_header_lines: list[str], body: bytes = b"hello") -> Response:
    """A correctly signed PUT whose framing headers are then replaced by ``extra_header_lines``."""
    path = f"/{BUCKET}/raw"
    hdrs = sign("PUT", d.endpoint + path, d.credentials, {}, "UNSIGNED-PAYLOAD")
    lines = [f"PUT {path} HTTP/1.1"] + [f"{k}: {v}" for k, v in hdrs.items()]
    lines += extra_header_lines + ["Connection: close"]
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
    return parse_raw_response(send_raw_bytes(d.s3_port, raw))


@pytest.mark.parametrize(
    "content_length",
    [["Content-Length: abc"], ["Content-Length: -5"], ["Content-Length: 5", "Content-Length: 7"]],
    ids=["non-numeric", "negative", "conflicting"],
)
def test_bad_content_length_is_400_with_s3_xml(d: Daemon, content_length: list[str]) -> None:
    r = _raw_put(d, content_length)
    assert r.status == 400, f"got {r.status}: {r.body[:300]!r}"
    assert r.error_code() is not None, f"400 without an S3 XML error body: {r.body[:300]!r}"


def test_garbage_authorization_header_is_4xx_s3_error(d: Daemon) -> None:
    r = raw_request(d, "GET", f"/{BUCKET}", signed=False,
                    headers={"Authorization": "AWS4-HMAC-SHA256 garbage,,,=", "Host":
                             f"{HOST}:{d.s3_port}", "X-Amz-Date": "20990101T000000Z"})  # fmt: skip
    assert r.status in (400, 403), f"got {r.status}: {r.body[:300]!r}"
    assert r.error_code() in (
        "AuthorizationHeaderMalformed", "InvalidArgument", "AccessDenied", "InvalidRequest",
    ), r.body[:300]  # fmt: skip


def test_garbage_content_sha256_is_400(d: Daemon) -> None:
    path = f"/{BUCKET}/sha"
    hdrs = sign("PUT", d.endpoint + path, d.credentials, {}, "not-a-sha256")
    r = raw_request(d, "PUT", path, body=b"hello", headers=hdrs, signed=False)
    assert_s3_error(r, 400, "InvalidArgument", "XAmzContentSHA256Mismatch")


def test_wrong_content_sha256_is_400_mismatch(d: Daemon) -> None:
    path = f"/{BUCKET}/sha"
    hdrs = sign("PUT", d.endpoint + path, d.credentials, {}, "0" * 64)
    r = raw_request(d, "PUT", path, body=b"hello", headers=hdrs, signed=False)
    assert_s3_error(r, 400, "XAmzContentSHA256Mismatch")
    gone = raw_request(d, "GET", path)
    assert_s3_error(gone, 404, "NoSuchKey")


def test_bad_content_md5_is_400_invalid_digest(d: Daemon) -> None:
    r = raw_request(d, "PUT", f"/{BUCKET}/md5", body=b"hello",
                    headers={"Content-MD5": "not base64 md5!"})  # fmt: skip
    assert_s3_error(r, 400, "InvalidDigest")


def test_garbage_x_amz_date_is_403(d: Daemon) -> None:
    path = f"/{BUCKET}"
    hdrs = sign("GET", d.endpoint + path, d.credentials)
    hdrs["X-Amz-Date"] = "yesterday-ish"
    r = raw_request(d, "GET", path, headers=hdrs, signed=False)
    assert r.status in (400, 403), f"got {r.status}: {r.body[:300]!r}"
    assert r.error_code() is not None, r.body[:300]


def test_numbers_longer_than_python_converts_get_s3_answers_not_500(d: Daemon) -> None:
    """Found by tests/fuzz: int() refuses > 4,300 digits, and every isdigit()-then-int()
    parser turned such a header or parameter into a 500."""
    huge, zeros_one = "9" * 5000, "0" * 5000 + "1"
    raw_request(d, "PUT", f"/{BUCKET}/digits", body=b"0123456789")
    r = raw_request(d, "GET", f"/{BUCKET}/digits", headers={"Range": f"bytes=2-{huge}"})
    assert r.status == 206 and r.body == b"23456789", r
    r = raw_request(d, "GET", f"/{BUCKET}/digits", headers={"Range": f"bytes={huge}-"})
    assert_s3_error(r, 416, "InvalidRange")
    r = raw_request(d, "GET", f"/{BUCKET}/digits", headers={"Range": f"bytes={zeros_one}-"})
    assert r.status == 206 and r.body == b"123456789", r
    r = raw_request(d, "GET", f"/{BUCKET}?list-type=2&max-keys={zeros_one}")
    assert r.status == 200 and b"<MaxKeys>1</MaxKeys>" in r.body, r
    r = raw_request(d, "GET", f"/{BUCKET}/digits?partNumber={huge}")
    assert_s3_error(r, 400, "InvalidArgument")
    r = raw_request(d, "GET", f"/{BUCKET}?versions&max-keys={huge}")
    assert_s3_error(r, 400, "InvalidArgument")
    r = raw_request(d, "GET", f"/{BUCKET}?uploads&max-uploads={huge}")
    assert_s3_error(r, 400, "InvalidArgument")
