"""SigV4 verification and signing, against AWS's published examples, botocore and awscrt.

Published vectors: "Signature Calculations for the Authorization Header: Transferring
Payload in a Single Chunk", "Authenticating Requests: Using Query Parameters",
"... Transferring Payload in Multiple Chunks" and "... trailing headers" (S3 API
reference), all with AKIAIOSFODNN7EXAMPLE at 20130524T000000Z.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from urllib.parse import urlsplit

import pytest
from awscrt import auth as crt_auth
from awscrt import http as crt_http
from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from titans3.core import errors
from titans3.s3 import signer, sigv4, sigv4_canonical
from titans3.s3.sigv4 import EMPTY_SHA256, PayloadMode, verify_request

AK = "AKIAIOSFODNN7EXAMPLE"
SK = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
T0 = dt.datetime(2013, 5, 24, tzinfo=dt.UTC)
HOST = "examplebucket.s3.amazonaws.com"
CRED = f"Credential={AK}/20130524/us-east-1/s3/aws4_request"


def _authz(signed: str, signature: str) -> str:
    return f"AWS4-HMAC-SHA256 {CRED},SignedHeaders={signed},Signature={signature}"


def _get_object_headers(**extra: str) -> dict[str, str]:
    headers = {
        "host": HOST,
        "range": "bytes=0-9",
        "x-amz-content-sha256": EMPTY_SHA256,
        "x-amz-date": "20130524T000000Z",
        "authorization": _authz(
            "host;range;x-amz-content-sha256;x-amz-date",
            "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
        ),
    }
    headers.update(extra)
    return headers


def _verify(method, path, query, headers, secrets, now=T0, **kw):
    return verify_request(method, path, query, headers, get_secret=secrets, now=now, **kw)


# ----------------------------------------------------------- published vectors
def test_get_object_example_intermediate_values_match_aws():
    creq = sigv4.canonical_request(
        "GET", "/test.txt", "", ["host", "range", "x-amz-content-sha256", "x-amz-date"],
        _get_object_headers(), EMPTY_SHA256,
    )  # fmt: skip
    assert hashlib.sha256(creq.encode()).hexdigest() == (
        "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972"
    )
    key = sigv4.derive_signing_key(SK, "20130524", "us-east-1")
    sts = sigv4.string_to_sign("20130524T000000Z", "20130524/us-east-1/s3/aws4_request", creq)
    assert sigv4.sign(key, sts) == "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"


def test_get_object_example_verifies(secrets):
    result = _verify("GET", "/test.txt", "", _get_object_headers(), secrets)
    assert result.access_key == AK
    assert result.scope == "20130524/us-east-1/s3/aws4_request"
    assert result.payload_mode is PayloadMode.SHA256
    assert result.payload_sha256 == EMPTY_SHA256
    assert not result.presigned
    assert result.seed_signature.startswith("f0e8bdb8")


def test_put_object_example_verifies(secrets):
    body = b"Welcome to Amazon S3."
    payload = hashlib.sha256(body).hexdigest()
    assert payload == "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072"
    headers = {
        "host": HOST,
        "date": "Fri, 24 May 2013 00:00:00 GMT",
        "x-amz-date": "20130524T000000Z",
        "x-amz-storage-class": "REDUCED_REDUNDANCY",
        "x-amz-content-sha256": payload,
        "authorization": _authz(
            "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class",
            "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd",
        ),
    }
    result = _verify("PUT", "/test%24file.text", "", headers, secrets)
    assert result.payload_sha256 == payload
    # A '$' sent raw on the wire is the same key: the re-encoded candidate matches.
    assert _verify("PUT", "/test$file.text", "", headers, secrets).access_key == AK


@pytest.mark.parametrize(
    ("query", "signature"),
    [
        ("lifecycle", "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"),
        ("max-keys=2&prefix=J", "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"),
        ("prefix=J&max-keys=2", "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"),
    ],
)
def test_bucket_examples_verify(secrets, query, signature):
    headers = {
        "host": HOST,
        "x-amz-date": "20130524T000000Z",
        "x-amz-content-sha256": EMPTY_SHA256,
        "authorization": _authz("host;x-amz-content-sha256;x-amz-date", signature),
    }
    assert _verify("GET", "/", query, headers, secrets).access_key == AK


@pytest.mark.parametrize(
    ("method", "url", "extra", "payload", "signature"),
    [
        ("GET", "https://examplebucket.s3.amazonaws.com/test.txt", {"range": "bytes=0-9"}, EMPTY_SHA256,
         "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"),
        ("PUT", "https://examplebucket.s3.amazonaws.com/test%24file.text",
         {"Date": "Fri, 24 May 2013 00:00:00 GMT", "x-amz-storage-class": "REDUCED_REDUNDANCY"},
         "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072",
         "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"),
        ("GET", "https://examplebucket.s3.amazonaws.com/?lifecycle", {}, EMPTY_SHA256,
         "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"),
        ("GET", "https://examplebucket.s3.amazonaws.com/?max-keys=2&prefix=J", {}, EMPTY_SHA256,
         "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"),
    ],
)  # fmt: skip
def test_sign_request_reproduces_published_signatures(method, url, extra, payload, signature):
    added = signer.sign_request(method, url, extra, access_key=AK, secret_key=SK,
                               payload_sha256=payload, now=T0)  # fmt: skip
    assert added["authorization"].endswith(f"Signature={signature}")
    assert added["host"] == HOST
    assert added["x-amz-date"] == "20130524T000000Z"
    assert added["x-amz-content-sha256"] == payload


def test_presign_url_reproduces_published_example(secrets):
    url = signer.presign_url(
        "GET", f"https://{HOST}/test.txt", access_key=AK, secret_key=SK, expires=86400, now=T0
    )
    parts = urlsplit(url)
    assert parts.query.endswith(
        "X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
    )
    result = _verify("GET", parts.path, parts.query, {"host": HOST}, secrets)
    assert result.presigned
    assert result.payload_mode is PayloadMode.UNSIGNED


def test_published_presigned_url_verifies_until_it_expires(secrets):
    query = (
        "X-Amz-Algorithm=AWS4-HMAC-SHA256"
        "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request"
        "&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"
        "&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
    )
    last_valid = T0 + dt.timedelta(seconds=86400)
    assert _verify("GET", "/test.txt", query, {"host": HOST}, secrets, now=last_valid).presigned
    with pytest.raises(errors.AccessDenied, match="Request has expired") as caught:
        _verify("GET", "/test.txt", query, {"host": HOST}, secrets,
                now=last_valid + dt.timedelta(seconds=1))  # fmt: skip
    assert caught.value.extra["X-Amz-Expires"] == "86400"
    with pytest.raises(errors.AccessDenied, match="Request is not yet valid"):
        _verify("GET", "/test.txt", query, {"host": HOST}, secrets,
                now=T0 - dt.timedelta(minutes=16))  # fmt: skip


@pytest.mark.parametrize(
    ("mode", "signed", "seed", "trailer"),
    [
        (PayloadMode.STREAMING_SIGNED,
         "content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;"
         "x-amz-decoded-content-length;x-amz-storage-class",
         "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9", None),
        (PayloadMode.STREAMING_SIGNED_TRAILER,
         "content-encoding;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;"
         "x-amz-storage-class;x-amz-trailer",
         "106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e",
         "x-amz-checksum-crc32c"),
    ],
)  # fmt: skip
def test_streaming_seed_signature_examples_verify(secrets, mode, signed, seed, trailer):
    headers = {
        "host": "s3.amazonaws.com",
        "x-amz-date": "20130524T000000Z",
        "x-amz-storage-class": "REDUCED_REDUNDANCY",
        "x-amz-content-sha256": mode.value,
        "content-encoding": "aws-chunked",
        "x-amz-decoded-content-length": "66560",
        "content-length": "66824",
        "authorization": _authz(signed, seed),
    }
    if trailer:
        headers["x-amz-trailer"] = trailer
    result = _verify("PUT", "/examplebucket/chunkObject.txt", "", headers, secrets)
    assert result.payload_mode is mode
    assert result.seed_signature == seed
    assert result.amz_date == "20130524T000000Z"
    assert result.signing_key == sigv4.derive_signing_key(SK, "20130524", "us-east-1")


# ---------------------------------------------------------------- rejections
def test_request_without_any_auth_is_access_denied(secrets):
    with pytest.raises(errors.AccessDenied):
        _verify("GET", "/b/k", "", {"host": HOST}, secrets)
    assert sigv4.is_anonymous("", {"host": HOST})
    assert not sigv4.is_anonymous("", _get_object_headers())


@pytest.mark.parametrize(
    ("query", "headers"),
    [
        ("", {"authorization": "AWS AKIAIOSFODNN7EXAMPLE:frJIUN8DYpKDtOLCwo//yllqDzg="}),
        ("AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Expires=1141889120&Signature=vjbyPxybd%2F", {}),
    ],
)
def test_sigv2_is_refused_with_aws_message(secrets, query, headers):
    with pytest.raises(errors.InvalidRequest) as caught:
        _verify("GET", "/b/k", query, {"host": HOST, **headers}, secrets)
    assert caught.value.message == sigv4.SIGV2_NOT_SUPPORTED


def test_header_and_query_auth_together_is_invalid_argument(secrets):
    with pytest.raises(errors.InvalidArgument, match="Only one auth mechanism"):
        _verify("GET", "/test.txt", "X-Amz-Signature=x", _get_object_headers(), secrets)


@pytest.mark.parametrize(
    ("authorization", "error", "message"),
    [
        ("Bearer abc", errors.InvalidArgument, "Unsupported Authorization Type"),
        (f"AWS4-HMAC-SHA256 {CRED},SignedHeaders=host", errors.AuthorizationHeaderMalformed,
         "requires three components"),
        ("AWS4-HMAC-SHA256 Credential=AK/2013/us-east-1/s3/aws4_request,SignedHeaders=host,"
         "Signature=00", errors.AuthorizationHeaderMalformed, "Credential is mal-formed"),
        (f"AWS4-HMAC-SHA256 Credential={AK}/20130524/us-east-1/s3,SignedHeaders=host,Signature=0",
         errors.AuthorizationHeaderMalformed, "Credential is mal-formed"),
        (f"AWS4-HMAC-SHA256 Credential={AK}/20130524/us-east-1/ec2/aws4_request,SignedHeaders=host,"
         "Signature=0", errors.AuthorizationHeaderMalformed, 'incorrect service "ec2"'),
        (f"AWS4-HMAC-SHA256 Credential={AK}/20130525/us-east-1/s3/aws4_request,SignedHeaders=host,"
         "Signature=0", errors.AuthorizationHeaderMalformed, "not the same as X-Amz-Date"),
        ("AWS4-ECDSA-P256-SHA256 Credential=x", errors.NotImplementedS3, "4A"),
    ],
)  # fmt: skip
def test_malformed_authorization_headers_are_rejected(secrets, authorization, error, message):
    with pytest.raises(error, match=message):
        _verify("GET", "/test.txt", "", _get_object_headers(authorization=authorization), secrets)


def test_wrong_region_is_rejected_only_when_a_region_is_required(secrets):
    with pytest.raises(errors.AuthorizationHeaderMalformed, match="region 'us-east-1' is wrong") as c:
        _verify("GET", "/test.txt", "", _get_object_headers(), secrets, region="eu-west-1")
    assert c.value.extra == {"Region": "eu-west-1"}
    assert _verify("GET", "/test.txt", "", _get_object_headers(), secrets, region="us-east-1")


def test_unknown_access_key_is_invalid_access_key_id():
    with pytest.raises(errors.InvalidAccessKeyId) as caught:
        _verify("GET", "/test.txt", "", _get_object_headers(), lambda key: None)
    assert caught.value.extra["AWSAccessKeyId"] == AK


@pytest.mark.parametrize(
    ("path", "query", "change"),
    [
        ("/test.txt", "", {"range": "bytes=0-10"}),
        ("/test.tx", "", {}),
        ("/test.txt", "versionId=1", {}),
        ("/test.txt", "", {"x-amz-content-sha256": "UNSIGNED-PAYLOAD"}),
    ],
)
def test_any_change_to_a_signed_request_breaks_the_signature(secrets, path, query, change):
    with pytest.raises(errors.SignatureDoesNotMatch) as caught:
        _verify("GET", path, query, _get_object_headers(**change), secrets)
    assert caught.value.extra["SignatureProvided"].startswith("f0e8bdb8")
    assert caught.value.extra["CanonicalRequest"].startswith("GET\n")
    assert "StringToSign" in caught.value.extra


def test_wrong_secret_is_signature_does_not_match():
    with pytest.raises(errors.SignatureDoesNotMatch):
        _verify("GET", "/test.txt", "", _get_object_headers(), lambda key: SK + "x")


@pytest.mark.parametrize("offset", [dt.timedelta(minutes=15, seconds=1), -dt.timedelta(minutes=16)])
def test_header_auth_outside_fifteen_minutes_is_request_time_too_skewed(secrets, offset):
    with pytest.raises(errors.RequestTimeTooSkewed) as caught:
        _verify("GET", "/test.txt", "", _get_object_headers(), secrets, now=T0 + offset)
    assert caught.value.extra["RequestTime"] == "20130524T000000Z"
    assert caught.value.extra["MaxAllowedSkewMilliseconds"] == "900000"


def test_header_auth_at_exactly_fifteen_minutes_is_accepted(secrets):
    now = T0 + dt.timedelta(minutes=15)
    assert _verify("GET", "/test.txt", "", _get_object_headers(), secrets, now=now).access_key == AK


@pytest.mark.parametrize("date_headers", [{}, {"x-amz-date": "yesterday"}])
def test_missing_or_bad_date_is_access_denied(secrets, date_headers):
    headers = _get_object_headers()
    del headers["x-amz-date"]
    headers.update(date_headers)
    with pytest.raises(errors.AccessDenied, match="valid Date or x-amz-date"):
        _verify("GET", "/test.txt", "", headers, secrets)


def test_missing_content_sha256_is_invalid_request(secrets):
    headers = _get_object_headers()
    del headers["x-amz-content-sha256"]
    with pytest.raises(errors.InvalidRequest, match="Missing required header for this request: "
                       "x-amz-content-sha256"):  # fmt: skip
        _verify("GET", "/test.txt", "", headers, secrets)


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("not-a-hash", errors.InvalidArgument),
        ("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85", errors.InvalidArgument),
        ("STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD", errors.NotImplementedS3),
    ],
)
def test_invalid_content_sha256_values_are_rejected(secrets, value, error):
    with pytest.raises(error) as caught:
        _verify("GET", "/test.txt", "", _get_object_headers(**{"x-amz-content-sha256": value}),
                secrets)  # fmt: skip
    if error is errors.InvalidArgument:
        assert caught.value.extra == {"ArgumentName": "x-amz-content-sha256", "ArgumentValue": value}


def test_unsigned_amz_headers_are_refused_like_aws(secrets):
    headers = _get_object_headers(**{"x-amz-meta-a": "1", "x-amz-acl": "private"})
    with pytest.raises(errors.AccessDenied, match="headers present in the request which were not"):
        _verify("GET", "/test.txt", "", headers, secrets)
    # Ordinary headers may go unsigned.
    headers = _get_object_headers(**{"user-agent": "x", "content-type": "text/plain"})
    assert _verify("GET", "/test.txt", "", headers, secrets).access_key == AK


def test_unsigned_amz_header_names_are_listed(secrets):
    headers = _get_object_headers(**{"x-amz-meta-b": "1", "x-amz-acl": "private"})
    with pytest.raises(errors.AccessDenied) as caught:
        _verify("GET", "/test.txt", "", headers, secrets)
    assert caught.value.extra == {"HeadersNotSigned": "x-amz-acl, x-amz-meta-b"}


# ------------------------------------------------------------ presigned query
def _presigned(secrets, *, method="GET"):
    url = signer.presign_url(method, "http://127.0.0.1:9000/b/k", access_key=AK, secret_key=SK,
                            expires=3600, now=T0)  # fmt: skip
    return urlsplit(url)


@pytest.mark.parametrize(
    ("edit", "error", "message"),
    [
        (lambda q: q.replace("&X-Amz-Expires=3600", ""), errors.AuthorizationQueryParametersError,
         "requires the X-Amz-Algorithm"),
        (lambda q: q.replace("X-Amz-Expires=3600", "X-Amz-Expires=604801"),
         errors.AuthorizationQueryParametersError, "less than a week"),
        (lambda q: q.replace("X-Amz-Expires=3600", "X-Amz-Expires=-1"),
         errors.AuthorizationQueryParametersError, "non-negative"),
        (lambda q: q.replace("X-Amz-Expires=3600", "X-Amz-Expires=soon"),
         errors.AuthorizationQueryParametersError, "should be a number"),
        (lambda q: q.replace("AWS4-HMAC-SHA256", "AWS4-HMAC-SHA1"),
         errors.AuthorizationQueryParametersError, "only supports"),
        (lambda q: q.replace("X-Amz-Date=20130524T000000Z", "X-Amz-Date=2013-05-24"),
         errors.AuthorizationQueryParametersError, "ISO8601 Long Format"),
        (lambda q: q.replace("%2Fs3%2F", "%2Fsqs%2F"), errors.AuthorizationQueryParametersError,
         'incorrect service "sqs"'),
        (lambda q: q.replace("X-Amz-SignedHeaders=host", "X-Amz-SignedHeaders=host%3Brange"),
         errors.SignatureDoesNotMatch, "signature we calculated"),
        (lambda q: q + "&versionId=2", errors.SignatureDoesNotMatch, "signature we calculated"),
    ],
)  # fmt: skip
def test_bad_presigned_urls_are_rejected(secrets, edit, error, message):
    parts = _presigned(secrets)
    with pytest.raises(error, match=message):
        _verify("GET", parts.path, edit(parts.query), {"host": parts.netloc}, secrets)


def test_presigned_url_for_other_method_or_path_fails(secrets):
    parts = _presigned(secrets, method="PUT")
    with pytest.raises(errors.SignatureDoesNotMatch):
        _verify("GET", parts.path, parts.query, {"host": parts.netloc}, secrets)
    with pytest.raises(errors.SignatureDoesNotMatch):
        _verify("PUT", "/b/other", parts.query, {"host": parts.netloc}, secrets)
    assert _verify("PUT", parts.path, parts.query, {"host": parts.netloc}, secrets).presigned


def test_presigned_request_with_unsigned_amz_header_is_refused(secrets):
    parts = _presigned(secrets, method="PUT")
    headers = {"host": parts.netloc, "x-amz-acl": "public-read"}
    with pytest.raises(errors.AccessDenied, match="not signed"):
        _verify("PUT", parts.path, parts.query, headers, secrets)


def test_presigned_request_may_carry_unsigned_content_sha256(secrets):
    parts = _presigned(secrets, method="PUT")
    headers = {"host": parts.netloc, "x-amz-content-sha256": "UNSIGNED-PAYLOAD"}
    assert _verify("PUT", parts.path, parts.query, headers, secrets).presigned


# ------------------------------------------------------------- payload modes
@pytest.mark.parametrize("mode", [m for m in PayloadMode if m is not PayloadMode.SHA256])
def test_every_literal_payload_mode_is_recognised(secrets, mode):
    added = signer.sign_request("PUT", "http://127.0.0.1:9000/b/k", {}, access_key=AK,
                               secret_key=SK, payload_sha256=mode.value, now=T0)  # fmt: skip
    result = _verify("PUT", "/b/k", "", added, secrets)
    assert result.payload_mode is mode
    assert result.payload_sha256 is None


def test_sha256_payload_is_reported_in_lower_case(secrets):
    upper = hashlib.sha256(b"x").hexdigest().upper()
    added = signer.sign_request("PUT", "http://h/b/k", {}, access_key=AK, secret_key=SK,
                               payload_sha256=upper, now=T0)  # fmt: skip
    assert _verify("PUT", "/b/k", "", added, secrets).payload_sha256 == upper.lower()


# --------------------------------------------------- cross-check with botocore
KEYS = [
    "plain.txt",
    "dir/sub dir/file with spaces.bin",
    "a+b=c&d;e,f:g@h$i!j*k'l(m)n~o",
    "ünïcödé/日本語/emoji-🙂",
    "percent%20literal%2Fslash",
    "double//slash/./dot/../x",
    "trailing/",
]


def _botocore_wire(method, url, headers, body=b""):
    request = AWSRequest(method=method, url=url, headers=headers, data=body)
    S3SigV4Auth(Credentials(AK, SK), "s3", "us-east-1").add_auth(request)
    parts = urlsplit(request.url)
    lowered = {k.lower(): v for k, v in request.headers.items()}
    lowered["host"] = parts.netloc  # added by the HTTP client, signed by botocore
    return parts.path, parts.query, lowered


@pytest.mark.parametrize("key", KEYS)
def test_botocore_header_signatures_verify(secrets, utcnow, key):
    url = "http://127.0.0.1:9000/bucket/" + sigv4.uri_encode(key, keep_slash=True)
    url += "?partNumber=3&uploadId=a%2Bb%20c&x-id=UploadPart"
    body = b"payload"
    path, query, headers = _botocore_wire(
        "PUT", url, {"x-amz-meta-name": "  spaced   value ", "Content-Type": "a/b"}, body
    )
    result = _verify("PUT", path, query, headers, secrets, now=utcnow)
    assert result.payload_sha256 == hashlib.sha256(body).hexdigest()


@pytest.mark.parametrize("key", KEYS)
def test_botocore_presigned_urls_verify(secrets, utcnow, key):
    url = "http://127.0.0.1:9000/bucket/" + sigv4.uri_encode(key, keep_slash=True)
    url += "?response-content-disposition=attachment%3B%20filename%3D%22x%20y.txt%22"
    request = AWSRequest(method="GET", url=url, headers={})
    S3SigV4QueryAuth(Credentials(AK, SK), "s3", "us-east-1", expires=300).add_auth(request)
    parts = urlsplit(request.url)
    result = _verify("GET", parts.path, parts.query, {"host": "127.0.0.1:9000"}, secrets,
                     now=utcnow)  # fmt: skip
    assert result.presigned
    assert result.payload_mode is PayloadMode.UNSIGNED


def test_botocore_client_operations_verify(secrets, utcnow, botocore_client):
    client, sent = botocore_client()
    client.put_object(Bucket="bkt", Key="a b/ü+c", Body=b"hello", Metadata={"k": "v"},
                      ACL="private", Tagging="a=b&c=d")  # fmt: skip
    client.get_object(Bucket="bkt", Key="x y", Range="bytes=0-9", VersionId="v+1")
    client.list_objects_v2(Bucket="bkt", Prefix="a b/ü+&=", Delimiter="/", StartAfter="x~y")
    client.copy_object(Bucket="bkt", Key="dst", CopySource={"Bucket": "src", "Key": "k ü"})
    client.delete_objects(Bucket="bkt", Delete={"Objects": [{"Key": "a"}, {"Key": "b"}]})
    client.create_multipart_upload(Bucket="bkt", Key="mp")
    client.upload_part(Bucket="bkt", Key="mp", UploadId="u/1+2", PartNumber=2, Body=b"p" * 100)
    assert len(sent) == 7
    for wire in sent:
        result = _verify(wire.method, wire.path, wire.query, wire.headers, secrets, now=utcnow)
        assert result.access_key == AK


def test_botocore_client_presigned_urls_verify(secrets, utcnow, botocore_client):
    client, _ = botocore_client()
    for method, op in [("GET", "get_object"), ("PUT", "put_object"), ("HEAD", "head_object")]:
        url = client.generate_presigned_url(op, Params={"Bucket": "b", "Key": "k ü/x+y"},
                                            ExpiresIn=600)  # fmt: skip
        parts = urlsplit(url)
        result = _verify(method, parts.path, parts.query, {"host": parts.netloc}, secrets,
                         now=utcnow)  # fmt: skip
        assert result.presigned


def test_sign_request_output_matches_botocore(utcnow):
    url = "http://127.0.0.1:9000/bkt/" + sigv4.uri_encode("k ü+x", keep_slash=True) + "?acl="
    headers = {"x-amz-meta-a": "b", "Content-Type": "text/plain"}
    ours = signer.sign_request("PUT", url, headers, access_key=AK, secret_key=SK,
                              payload_sha256=EMPTY_SHA256, now=utcnow)  # fmt: skip
    request = AWSRequest(method="PUT", url=url, headers=dict(headers), data=b"")
    request.context["timestamp"] = utcnow.strftime("%Y%m%dT%H%M%SZ")
    boto = S3SigV4Auth(Credentials(AK, SK), "s3", "us-east-1")
    boto._modify_request_before_signing(request)
    creq = boto.canonical_request(request)
    botocore_signature = boto.signature(boto.string_to_sign(request, creq), request)
    assert ours["authorization"].endswith(f"Signature={botocore_signature}")


# ------------------------------------------------------ cross-check with awscrt
def _crt_signed(method, path, headers, *, query_auth, body_value):
    request = crt_http.HttpRequest(method, path, headers=crt_http.HttpHeaders(list(headers.items())))
    config = crt_auth.AwsSigningConfig(
        algorithm=crt_auth.AwsSigningAlgorithm.V4,
        signature_type=(
            crt_auth.AwsSignatureType.HTTP_REQUEST_QUERY_PARAMS
            if query_auth
            else crt_auth.AwsSignatureType.HTTP_REQUEST_HEADERS
        ),
        credentials_provider=crt_auth.AwsCredentialsProvider.new_static(AK, SK),
        region="us-east-1",
        service="s3",
        date=T0,
        use_double_uri_encode=False,
        should_normalize_uri_path=False,
        signed_body_value=body_value,
        signed_body_header_type=(
            crt_auth.AwsSignedBodyHeaderType.NONE
            if query_auth
            else crt_auth.AwsSignedBodyHeaderType.X_AMZ_CONTENT_SHA_256
        ),
        expiration_in_seconds=900 if query_auth else None,
    )
    crt_auth.aws_sign_request(request, config).result()
    path, _, query = request.path.partition("?")
    return path, query, {k.lower(): v for k, v in request.headers}


@pytest.mark.parametrize("query_auth", [False, True])
@pytest.mark.parametrize("key", KEYS)
def test_awscrt_signatures_verify(secrets, key, query_auth):
    path = "/bucket/" + sigv4.uri_encode(key, keep_slash=True) + "?prefix=a%20b%2Bc&list-type=2"
    body = "UNSIGNED-PAYLOAD" if query_auth else "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
    wire_path, query, headers = _crt_signed(
        "PUT", path, {"host": "127.0.0.1:9000", "x-amz-meta-x": "a  b"},
        query_auth=query_auth, body_value=body,
    )  # fmt: skip
    result = _verify("PUT", wire_path, query, headers, secrets)
    assert result.presigned is query_auth


# ------------------------------------------------------ what the verifier remembers
def test_a_rotated_secret_is_not_verified_with_the_old_days_signing_key(secrets):
    assert _verify("GET", "/test.txt", "", _get_object_headers(), secrets)  # the key is now cached
    with pytest.raises(errors.SignatureDoesNotMatch):
        _verify("GET", "/test.txt", "", _get_object_headers(), lambda key: SK + "rotated")
    assert _verify("GET", "/test.txt", "", _get_object_headers(), secrets)


def test_a_cached_signing_key_equals_the_derived_one():
    sigv4_canonical._KEYS.clear()
    first = sigv4.derive_signing_key(SK, "20130524", "us-east-1")
    assert sigv4.derive_signing_key(SK, "20130524", "us-east-1") is first
    assert sigv4.derive_signing_key(SK, "20130525", "us-east-1") != first
    assert sigv4.derive_signing_key(SK, "20130524", "us-east-1", "iam") != first


def test_a_credential_accepted_once_is_still_checked_against_the_region(secrets):
    assert _verify("GET", "/test.txt", "", _get_object_headers(), secrets, region="us-east-1")
    with pytest.raises(errors.AuthorizationHeaderMalformed, match="region 'us-east-1' is wrong"):
        _verify("GET", "/test.txt", "", _get_object_headers(), secrets, region="eu-west-1")


def test_a_bad_credential_fails_every_time(secrets):
    bad = f"AWS4-HMAC-SHA256 Credential={AK}/2013052/us-east-1/s3/aws4_request,SignedHeaders=host,Signature=0"
    for _ in range(2):
        with pytest.raises(errors.AuthorizationHeaderMalformed, match="mal-formed"):
            _verify("GET", "/test.txt", "", _get_object_headers(authorization=bad), secrets)


def test_a_repeated_date_is_parsed_to_the_same_instant_and_a_bad_one_still_fails(secrets):
    assert sigv4._parse_amz_date("20130524T000000Z") == T0
    assert sigv4._parse_amz_date("20130524T000000Z") == T0
    assert sigv4._parse_amz_date("20130524T250000Z") is None
    assert sigv4._parse_amz_date("20130524T000001Z") == T0 + dt.timedelta(seconds=1)
