"""Request classification (titans3.s3.routing)."""

from __future__ import annotations

import pytest

from titans3.core.errors import (
    InvalidBucketName,
    InvalidURI,
    KeyTooLongError,
    MethodNotAllowed,
)
from titans3.s3.routing import classify, parse_query, validate_bucket_name


def route(method, target, headers=None, domain=None):
    path, _, raw_query = target.partition("?")
    return classify(method, path, parse_query(raw_query), headers or {"host": "127.0.0.1:9000"}, domain)


@pytest.mark.parametrize(
    ("method", "target", "op"),
    [
        ("GET", "/", "ListBuckets"),
        ("PUT", "/bkt", "CreateBucket"),
        ("PUT", "/bkt/", "CreateBucket"),
        ("HEAD", "/bkt", "HeadBucket"),
        ("DELETE", "/bkt", "DeleteBucket"),
        ("GET", "/bkt", "ListObjects"),
        ("GET", "/bkt?list-type=2&prefix=a", "ListObjectsV2"),
        ("GET", "/bkt?location", "GetBucketLocation"),
        ("GET", "/bkt?location=", "GetBucketLocation"),
        ("GET", "/bkt?uploads", "ListMultipartUploads"),
        ("GET", "/bkt?versions", "ListObjectVersions"),
        ("GET", "/bkt?versioning", "GetBucketVersioning"),
        ("PUT", "/bkt?versioning", "PutBucketVersioning"),
        ("PUT", "/bkt?cors", "PutBucketCors"),
        ("DELETE", "/bkt?tagging", "DeleteBucketTagging"),
        ("GET", "/bkt?metrics", "ListBucketMetricsConfigurations"),
        ("GET", "/bkt?metrics&id=m1", "GetBucketMetricsConfiguration"),
        ("POST", "/bkt?delete", "DeleteObjects"),
        ("PUT", "/bkt/key", "PutObject"),
        ("GET", "/bkt/key", "GetObject"),
        ("GET", "/bkt/key?versionId=3", "GetObject"),
        ("HEAD", "/bkt/key", "HeadObject"),
        ("DELETE", "/bkt/key", "DeleteObject"),
        ("POST", "/bkt/key?uploads", "CreateMultipartUpload"),
        ("PUT", "/bkt/key?partNumber=1&uploadId=u", "UploadPart"),
        ("POST", "/bkt/key?uploadId=u", "CompleteMultipartUpload"),
        ("DELETE", "/bkt/key?uploadId=u", "AbortMultipartUpload"),
        ("GET", "/bkt/key?uploadId=u", "ListParts"),
        ("GET", "/bkt/key?tagging", "GetObjectTagging"),
        ("PUT", "/bkt/key?acl", "PutObjectAcl"),
        ("OPTIONS", "/bkt/key", "PreflightRequest"),
    ],
)
def test_operations_are_named_by_method_resource_and_subresource(method, target, op):
    assert route(method, target).op == op


def test_copy_source_header_turns_puts_into_copies():
    h = {"host": "h", "x-amz-copy-source": "/src/k"}
    assert classify("PUT", "/bkt/k", {}, h).op == "CopyObject"
    assert classify("PUT", "/bkt/k", parse_query("partNumber=2&uploadId=u"), h).op == "UploadPartCopy"


def test_bucket_and_key_are_percent_decoded_once_and_never_normalised():
    r = route("GET", "/bkt/a%20b/../c//d%2Bplus+literal%25")
    assert r.bucket == "bkt"
    assert r.key == "a b/../c//d+plus+literal%"
    assert r.resource == "/bkt/a b/../c//d+plus+literal%"


def test_unicode_keys_decode_from_utf8():
    assert route("GET", "/bkt/%C3%BC%E2%82%AC").key == "\u00fc\u20ac"


@pytest.mark.parametrize("path", ["/bkt/%FF%FE", "/bkt/%AE%8A-", "/bkt/%C2%AE%C2%8A-", "/%FFbkt"])
def test_a_path_aws_cannot_parse_is_invalid_uri(path):
    """Not UTF-8, or C1 controls (ceph s3-tests' test_object_read_unreadable key
    ``'\xae\x8a-'``): 400 InvalidURI "Couldn't parse the specified URI." as AWS."""
    with pytest.raises(InvalidURI) as err:
        route("GET", path)
    assert err.value.status == 400
    assert err.value.message == "Couldn't parse the specified URI."


def test_query_values_are_decoded_and_plus_is_space():
    assert parse_query("prefix=a%2Fb+c&delimiter=%2F&uploads") == {
        "prefix": "a/b c",
        "delimiter": "/",
        "uploads": "",
    }


def test_key_of_1024_bytes_is_fine_and_1025_is_too_long():
    assert route("PUT", "/bkt/" + "k" * 1024).key == "k" * 1024
    with pytest.raises(KeyTooLongError):
        route("PUT", "/bkt/" + "k" * 1025)
    with pytest.raises(KeyTooLongError):  # bytes, not characters
        route("PUT", "/bkt/" + "%C3%BC" * 513)


@pytest.mark.parametrize(
    "name",
    ["ab", "a" * 64, "Upper", "under_score", "-start", "end-", "a..b", "a.-b", "a-.b",
     "192.168.5.4", "xn--abc", "sthree-x", "name-s3alias", "name--ol-s3", "titans3", "a b"],
)
def test_invalid_bucket_names_are_refused(name):
    with pytest.raises(InvalidBucketName):
        validate_bucket_name(name)


@pytest.mark.parametrize("name", ["abc", "a" * 63, "my.bucket-1", "1bucket", "192.168.5"])
def test_valid_bucket_names_pass(name):
    validate_bucket_name(name)


def test_invalid_bucket_name_in_a_request_path():
    with pytest.raises(InvalidBucketName):
        route("GET", "/Bad_Bucket/key")


def test_virtual_host_style_takes_the_bucket_from_the_host():
    r = route("GET", "/photos/a.jpg", {"host": "my.bucket.s3.example.com:9000"}, domain="s3.example.com")
    assert (r.op, r.bucket, r.key, r.virtual_host) == ("GetObject", "my.bucket", "photos/a.jpg", True)
    r = route("GET", "/?list-type=2", {"host": "bkt.s3.example.com"}, domain="s3.example.com")
    assert (r.op, r.bucket, r.key) == ("ListObjectsV2", "bkt", None)


def test_host_equal_to_the_domain_or_unrelated_is_path_style():
    assert route("GET", "/bkt/k", {"host": "s3.example.com"}, domain="s3.example.com").bucket == "bkt"
    assert route("GET", "/bkt/k", {"host": "127.0.0.1:9000"}, domain="s3.example.com").bucket == "bkt"
    assert route("GET", "/bkt/k", {"host": "bkt.s3.example.com"}).bucket == "bkt"  # no domain


def test_admin_prefix_is_routed_to_the_admin_api():
    r = route("GET", "/titans3/admin/v1/info")
    assert (r.op, r.bucket, r.key) == ("Admin", None, "v1/info")


@pytest.mark.parametrize(
    ("method", "target"), [("PUT", "/"), ("DELETE", "/"), ("PATCH", "/bkt"), ("POST", "/bkt/key"), ("PATCH", "/bkt/k")]
)
def test_methods_s3_does_not_have_for_a_resource_are_method_not_allowed(method, target):
    with pytest.raises(MethodNotAllowed) as info:
        route(method, target)
    assert info.value.status == 405
