"""SigV2 against the examples of AWS's "Signing and authenticating REST requests"."""

from __future__ import annotations

import datetime as dt
from email.utils import parsedate_to_datetime

import pytest

from titans3.core import errors
from titans3.s3 import sigv2

AK, SK = "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def secrets(key: str) -> str | None:
    return SK if key == AK else None


@pytest.mark.parametrize(
    ("method", "path", "query", "headers", "vhost", "signature"),
    [
        # Object GET (virtual-hosted johnsmith.s3.amazonaws.com)
        ("GET", "/photos/puppy.jpg", "", {"date": "Tue, 27 Mar 2007 19:36:42 +0000"}, "johnsmith",
         "bWq2s1WEIj+Ydj0vQ697zp+IXMU="),
        # Object PUT
        ("PUT", "/photos/puppy.jpg", "", {"content-type": "image/jpeg", "content-length": "94328",
                                           "date": "Tue, 27 Mar 2007 21:15:45 +0000"}, "johnsmith",
         "MyyxeRY7whkBe+bq8fHCL/2kKUg="),
        # List: prefix, max-keys and marker are not signed sub-resources
        ("GET", "/", "prefix=photos&max-keys=50&marker=puppy",
         {"user-agent": "Mozilla/5.0", "date": "Tue, 27 Mar 2007 19:42:41 +0000"}, "johnsmith",
         "htDYFYduRNen8P9ZfE/s9SuKy0U="),
        # Fetch the ACL
        ("GET", "/", "acl", {"date": "Tue, 27 Mar 2007 19:44:46 +0000"}, "johnsmith",
         "c2WLPFtWHVgbEmeEG93a4cG37dM="),
        # Upload with x-amz-* headers, repeated ones joined with ","
        ("PUT", "/db-backup.dat.gz", "", {
            "date": "Tue, 27 Mar 2007 21:06:08 +0000", "x-amz-acl": "public-read",
            "content-type": "application/x-download", "content-md5": "4gJE4saaMU4BqNR0kLY+lw==",
            "x-amz-meta-reviewedby": "joe@johnsmith.net,jane@johnsmith.net",
            "x-amz-meta-filechecksum": "0x02661779", "x-amz-meta-checksumalgorithm": "crc32",
            "content-disposition": "attachment; filename=database.dat", "content-encoding": "gzip",
            "content-length": "5913339"}, "static.johnsmith.net", "ilyl83RwaSoYIEdixDQcA4OnAnc="),
    ],
)
def test_aws_header_examples(method, path, query, headers, vhost, signature):
    when = parsedate_to_datetime(headers["date"])
    text = sigv2.string_to_sign(method, path, query, headers, date=headers["date"], vhost_bucket=vhost)
    assert sigv2.sign(SK, text) == signature
    auth = sigv2.verify_request(method, path, query, {**headers, "authorization": f"AWS {AK}:{signature}"},
                                get_secret=secrets, now=when, region="us-east-1", vhost_bucket=vhost)  # fmt: skip
    assert auth.access_key == AK and not auth.presigned


def test_aws_query_string_example():
    # GET /photos/puppy.jpg?AWSAccessKeyId=...&Expires=1175139620&Signature=NpgCjnDzrM%2BWFzoENXmpNDUsSn8%3D
    query = f"AWSAccessKeyId={AK}&Expires=1175139620&Signature=NpgCjnDzrM%2BWFzoENXmpNDUsSn8%3D"
    before = dt.datetime.fromtimestamp(1175139620 - 60, dt.UTC)
    auth = sigv2.verify_request("GET", "/photos/puppy.jpg", query, {"host": "johnsmith.s3.amazonaws.com"},
                                get_secret=secrets, now=before, region="us-east-1",
                                vhost_bucket="johnsmith")  # fmt: skip
    assert auth.presigned
    after = dt.datetime.fromtimestamp(1175139620 + 1, dt.UTC)
    with pytest.raises(errors.AccessDenied, match="Request has expired"):
        sigv2.verify_request("GET", "/photos/puppy.jpg", query, {}, get_secret=secrets, now=after,
                             region="us-east-1", vhost_bucket="johnsmith")  # fmt: skip


def _header_request(**extra: str) -> dict[str, str]:
    date = "Tue, 27 Mar 2007 19:36:42 +0000"
    return {"date": date, "authorization": f"AWS {AK}:bWq2s1WEIj+Ydj0vQ697zp+IXMU=", **extra}


NOW = dt.datetime(2007, 3, 27, 19, 40, tzinfo=dt.UTC)


def test_forged_signatures_and_unknown_keys():
    with pytest.raises(errors.SignatureDoesNotMatch) as caught:
        sigv2.verify_request("GET", "/photos/kitten.jpg", "", _header_request(), get_secret=secrets, now=NOW,
                             region="us-east-1", vhost_bucket="johnsmith")  # a signature replayed on another key
    assert caught.value.extra["StringToSign"].endswith("/johnsmith/photos/kitten.jpg")
    with pytest.raises(errors.SignatureDoesNotMatch):
        sigv2.verify_request("DELETE", "/photos/puppy.jpg", "", _header_request(), get_secret=secrets,
                             now=NOW, region="us-east-1", vhost_bucket="johnsmith")  # fmt: skip
    with pytest.raises(errors.InvalidAccessKeyId):
        sigv2.verify_request("GET", "/photos/puppy.jpg", "", _header_request(), get_secret=lambda k: None,
                             now=NOW, region="us-east-1", vhost_bucket="johnsmith")  # fmt: skip


def test_header_auth_is_bound_to_the_clock():
    late = NOW + dt.timedelta(minutes=20)
    with pytest.raises(errors.RequestTimeTooSkewed):
        sigv2.verify_request("GET", "/photos/puppy.jpg", "", _header_request(), get_secret=secrets, now=late,
                             region="us-east-1", vhost_bucket="johnsmith")  # fmt: skip
    with pytest.raises(errors.AccessDenied, match="valid Date"):
        sigv2.verify_request("GET", "/x", "", {"authorization": f"AWS {AK}:x"}, get_secret=secrets,
                             now=NOW, region="us-east-1")  # fmt: skip


def test_path_style_and_percent_encoding():
    headers = {"date": "Tue, 27 Mar 2007 19:36:42 +0000"}
    text = sigv2.string_to_sign("GET", "/bkt/a%20b", "versionId=x%2By&foo=1", headers, date=headers["date"])
    assert text.endswith("/bkt/a%20b?versionId=x+y")
    sig = sigv2.sign(SK, sigv2.string_to_sign("GET", "/bkt/a%20b", "", headers, date=headers["date"]))
    # A client that sent "a b" encoded differently still names the same resource.
    sigv2.verify_request("GET", "/bkt/a%20b", "", {**headers, "authorization": f"AWS {AK}:{sig}"},
                         get_secret=secrets, now=NOW, region="us-east-1")  # fmt: skip
    assert sigv2.is_sigv2("", {"authorization": "AWS a:b"}) and not sigv2.is_sigv2("", {})
    assert sigv2.is_sigv2("AWSAccessKeyId=a&Signature=b&Expires=1", {})


def test_a_path_style_bucket_is_signed_with_its_trailing_slash():
    headers = {"date": "Tue, 27 Mar 2007 19:36:42 +0000"}
    sig = sigv2.sign(SK, sigv2.string_to_sign("GET", "/johnsmith/", "", headers, date=headers["date"]))
    sigv2.verify_request("GET", "/johnsmith", "", {**headers, "authorization": f"AWS {AK}:{sig}"},
                         get_secret=secrets, now=NOW, region="us-east-1")  # fmt: skip
