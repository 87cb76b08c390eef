"""POST policies: AWS's SigV4 example byte for byte, botocore's form, and each rule."""

from __future__ import annotations

import base64
import datetime as dt
import json

import pytest

from titans3.core.errors import AccessDenied, InvalidPolicyDocument
from titans3.s3 import sigv4
from titans3.s3.postpolicy import check_fields, parse_post_policy

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
# AWS's "Example: Browser-Based Upload using HTTP POST (Using AWS Signature Version 4)".
AWS_POLICY = (
    '{ "expiration": "2015-12-30T12:00:00.000Z",\r\n  "conditions": [\r\n'
    '    {"bucket": "sigv4examplebucket"},\r\n    ["starts-with", "$key", "user/user1/"],\r\n'
    '    {"acl": "public-read"},\r\n'
    '    {"success_action_redirect": "http://sigv4examplebucket.s3.amazonaws.com/successful_upload.html"},\r\n'
    '    ["starts-with", "$Content-Type", "image/"],\r\n    {"x-amz-meta-uuid": "14365123651274"},\r\n'
    '    {"x-amz-server-side-encryption": "AES256"},\r\n    ["starts-with", "$x-amz-meta-tag", ""],\r\n\r\n'
    '    {"x-amz-credential": "AKIAIOSFODNN7EXAMPLE/20151229/us-east-1/s3/aws4_request"},\r\n'
    '    {"x-amz-algorithm": "AWS4-HMAC-SHA256"},\r\n    {"x-amz-date": "20151229T000000Z" }\r\n  ]\r\n}'
)
AWS_FIELDS = {
    "key": "user/user1/photo.jpg", "acl": "public-read",
    "success_action_redirect": "http://sigv4examplebucket.s3.amazonaws.com/successful_upload.html",
    "content-type": "image/jpeg", "x-amz-meta-uuid": "14365123651274",
    "x-amz-server-side-encryption": "AES256",
    "x-amz-credential": "AKIAIOSFODNN7EXAMPLE/20151229/us-east-1/s3/aws4_request",
    "x-amz-algorithm": "AWS4-HMAC-SHA256", "x-amz-date": "20151229T000000Z", "x-amz-meta-tag": "",
    "policy": "", "x-amz-signature": "",
}  # fmt: skip
BEFORE = dt.datetime(2015, 12, 29, 1, tzinfo=dt.UTC)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_aws_example_signature_and_policy():
    policy_b64 = b64(AWS_POLICY)
    assert policy_b64.startswith("eyAiZXhwaXJhdGlvbiI6ICIyMDE1LTEyLTMwVDEyOjAwOjAwLjAwMFoiLA0K")
    key = sigv4.derive_signing_key(SECRET, "20151229", "us-east-1")
    assert sigv4.sign(key, policy_b64) == "8afdbf4008c03f22c2cd3cdb72e4afbb1f6a588f3255ac628749a66d7f09699e"
    policy = parse_post_policy(policy_b64)
    assert policy.expiration == dt.datetime(2015, 12, 30, 12, tzinfo=dt.UTC)
    check_fields(policy, AWS_FIELDS, bucket="sigv4examplebucket", now=BEFORE)


def test_botocore_presigned_post_vector():
    # generate_presigned_post("sigv4examplebucket", "user/user1/photo.jpg") at 2015-12-29T00:00:00Z.
    policy_b64 = ("eyJleHBpcmF0aW9uIjogIjIwMTUtMTItMjlUMDE6MDA6MDBaIiwgImNvbmRpdGlvbnMiOiBbeyJidWNrZXQiOiAic2ln"
                  "djRleGFtcGxlYnVja2V0In0sIHsia2V5IjogInVzZXIvdXNlcjEvcGhvdG8uanBnIn0sIHsieC1hbXotYWxnb3JpdGht"
                  "IjogIkFXUzQtSE1BQy1TSEEyNTYifSwgeyJ4LWFtei1jcmVkZW50aWFsIjogIkFLSUFJT1NGT0ROTjdFWEFNUExFLzIw"
                  "MTUxMjI5L3VzLWVhc3QtMS9zMy9hd3M0X3JlcXVlc3QifSwgeyJ4LWFtei1kYXRlIjogIjIwMTUxMjI5VDAwMDAwMFoi"
                  "fV19")  # fmt: skip
    key = sigv4.derive_signing_key(SECRET, "20151229", "us-east-1")
    assert sigv4.sign(key, policy_b64) == "3364624b39010d9b06f5d9b8c9a18a6e478d261c048159c92f2fd6fa885f14e6"
    fields = {"key": "user/user1/photo.jpg", "x-amz-algorithm": "AWS4-HMAC-SHA256",
              "x-amz-credential": "AKIAIOSFODNN7EXAMPLE/20151229/us-east-1/s3/aws4_request",
              "x-amz-date": "20151229T000000Z", "policy": policy_b64, "x-amz-signature": "x"}  # fmt: skip
    check_fields(parse_post_policy(policy_b64), fields, bucket="sigv4examplebucket",
                 now=dt.datetime(2015, 12, 29, 0, 30, tzinfo=dt.UTC))  # fmt: skip
    with pytest.raises(AccessDenied, match="Policy expired"):
        check_fields(parse_post_policy(policy_b64), fields, bucket="sigv4examplebucket",
                     now=dt.datetime(2015, 12, 29, 1, tzinfo=dt.UTC))  # fmt: skip


def policy_of(*conditions: object, expiration: str = "2030-01-01T00:00:00Z") -> str:
    return b64(json.dumps({"expiration": expiration, "conditions": list(conditions)}))


NOW = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("conditions", "fields", "message"),
    [
        ([["eq", "$key", "a"]], {"key": "b"}, 'Policy Condition failed: ["eq", "$key", "a"]'),
        ([{"key": "a"}], {"key": "b"}, 'Policy Condition failed: ["eq", "$key", "a"]'),
        ([["starts-with", "$key", "user/"]], {"key": "USER/x"}, "starts-with"),
        ([["starts-with", "$Content-Type", "image/"]], {"content-type": "image/png,text/plain"}, "starts-with"),
        ([["starts-with", "$x-amz-meta-tag", ""]], {}, "starts-with"),  # a condition on a missing field fails
        ([{"key": "a"}], {"key": "a", "x-amz-meta-extra": "1"}, "Extra input fields: x-amz-meta-extra"),
        ([["eq", "key", "a"]], {"key": "a"}, 'Policy Condition failed: ["eq", "key", "a"]'),
    ],
)
def test_failed_conditions_are_access_denied(conditions, fields, message):
    with pytest.raises(AccessDenied) as caught:
        check_fields(parse_post_policy(policy_of(*conditions)), fields, bucket="b", now=NOW)
    assert "Invalid according to Policy: " in caught.value.message and message in caught.value.message


def test_what_passes():
    p = parse_post_policy(policy_of(["StArTs-WiTh", "$CoNtEnT-TyPe", "image/"], {"bUcKeT": "b"},
                                    ["content-length-range", "5", 10], {"key": "k"}))  # fmt: skip
    check_fields(p, {"content-type": "image/jpg,image/png", "key": "k", "x-ignore-me": "1", "file": ""},
                 bucket="b", now=NOW)  # fmt: skip
    assert p.length_range == (5, 10)
    v2 = parse_post_policy(policy_of({"key": "k"}))
    check_fields(v2, {"key": "k", "awsaccesskeyid": "A", "signature": "s"}, bucket="b", now=NOW, sigv2=True)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("not base64!", "invalid Base64 encoding."),
        (b64("{"), "Invalid JSON."),
        (b64(json.dumps({"conditions": []})), "Policy missing expiration."),
        (b64(json.dumps({"expiration": "2030-01-01T00:00:00Z"})), "Policy missing conditions."),
        (b64(json.dumps({"EXPIRATION": "x", "conditions": []})), "Unexpected: 'expiration'"),
        (policy_of(expiration="2030-01-01 00:00:00"), "Invalid 'expiration' value"),
        (b64(json.dumps({"expiration": "2030-01-01T00:00:00Z", "conditions": {}})), "must be a List"),
        (policy_of({}), "Simple-Conditions must have exactly one property specified."),
        (policy_of({"Content-Length": 6199034}), "value must be a string."),
        (policy_of(["content-length-range", 0]), "wrong number of arguments."),
        (policy_of(["content-length-range", -1, 0]), "negative"),
        (policy_of(["matches", "$key", "x"]), "unknown operation 'matches'"),
        (policy_of([]), "missing operation identifier"),
    ],
)
def test_policies_that_are_not_valid(document, message):
    with pytest.raises(InvalidPolicyDocument) as caught:
        parse_post_policy(document)
    assert caught.value.message.startswith("Invalid Policy: ") and message in caught.value.message
