"""Browser uploads: forms built by boto3's ``generate_presigned_post`` (SigV4 and
the default SigV2), posted as multipart/form-data; success and each broken condition."""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET

import httpx
import pytest

from .access import error_code, make_user
from .cluster import Credentials, Daemon, s3_client

BUCKET = "uploads"


@pytest.fixture(scope="module")
def d(module_daemon: Daemon) -> Daemon:
    s3_client(module_daemon).create_bucket(Bucket=BUCKET)
    return module_daemon


def presigner(d: Daemon, credentials: Credentials | None = None, v4: bool = True):  # noqa: ANN201
    return s3_client(d, credentials, **({"signature_version": "s3v4"} if v4 else {}))


def post(form: dict, file: tuple[str, bytes] = ("photo.jpg", b"jpeg bytes"), extra: dict | None = None,
         url: str | None = None) -> httpx.Response:  # fmt: skip
    data = {**form["fields"], **(extra or {})}
    return httpx.post(url or form["url"], data=data, files={"file": file}, timeout=60)


def failure(r: httpx.Response) -> tuple[int, str | None, str]:
    root = ET.fromstring(r.content)
    return r.status_code, root.findtext("Code"), root.findtext("Message") or ""


@pytest.mark.parametrize("v4", [True, False], ids=["sigv4", "sigv2-default"])
def test_a_presigned_post_form_uploads(d: Daemon, v4: bool) -> None:
    s3 = presigner(d, v4=v4)
    form = s3.generate_presigned_post(BUCKET, "user/eric/${filename}",
                                      Fields={"Content-Type": "image/jpeg", "x-amz-meta-uuid": "14365123651274"},
                                      Conditions=[["starts-with", "$Content-Type", "image/"],
                                                  {"x-amz-meta-uuid": "14365123651274"},
                                                  ["content-length-range", 1, 1024]])  # fmt: skip
    assert ("x-amz-signature" in form["fields"]) is v4 and ("signature" in form["fields"]) is not v4
    r = post(form)
    assert r.status_code == 204, r.text
    assert r.headers["ETag"].startswith('"') and r.headers["Location"].endswith("/user%2Feric%2Fphoto.jpg")
    got = s3_client(d).get_object(Bucket=BUCKET, Key="user/eric/photo.jpg")
    assert got["Body"].read() == b"jpeg bytes"
    assert got["ContentType"] == "image/jpeg" and got["Metadata"] == {"uuid": "14365123651274"}
    s3.close()


def test_success_action_status_and_redirect(d: Daemon) -> None:
    s3 = presigner(d)
    form = s3.generate_presigned_post(BUCKET, "status.txt", Fields={"success_action_status": "201"},
                                      Conditions=[{"success_action_status": "201"}])  # fmt: skip
    r = post(form, ("s.txt", b"status"))
    assert r.status_code == 201
    doc = ET.fromstring(r.content)
    assert (doc.tag, doc.findtext("Bucket"), doc.findtext("Key")) == ("PostResponse", BUCKET, "status.txt")
    assert doc.findtext("ETag") == r.headers["ETag"]
    target = "https://app.example/done?from=form"
    form = s3.generate_presigned_post(BUCKET, "redirected.txt", Fields={"success_action_redirect": target},
                                      Conditions=[{"success_action_redirect": target}])  # fmt: skip
    r = post(form, ("r.txt", b"redirect"))
    assert r.status_code == 303
    assert r.headers["Location"].startswith(target + "&bucket=uploads&key=redirected.txt&etag=%22")
    s3.close()


def test_each_broken_condition_gets_aws_error(d: Daemon) -> None:
    s3 = presigner(d)
    base = s3.generate_presigned_post(BUCKET, "in/${filename}", Conditions=[["content-length-range", 5, 10]])
    cases = {
        "too large": (post(base, ("a.txt", b"x" * 11)), (400, "EntityTooLarge", "exceeds the maximum allowed size")),
        "too small": (post(base, ("a.txt", b"x" * 4)), (400, "EntityTooSmall", "smaller than the minimum")),
        "key outside the prefix": (post(base, extra={"key": "out/a.txt"}),
                                   (403, "AccessDenied", 'Policy Condition failed: ["starts-with", "$key", "in/"]')),
        "a field no condition covers": (post(base, ("a.txt", b"x" * 5), extra={"x-amz-meta-extra": "1"}),
                                        (403, "AccessDenied", "Extra input fields: x-amz-meta-extra")),
        "policy edited after signing": (post(base, extra={"policy": base["fields"]["policy"][:-4] + "AAA="}),
                                        (403, "SignatureDoesNotMatch", "")),
        "no signature": (post(base, extra={"x-amz-signature": ""}),
                         (400, "InvalidArgument", "must contain a field named 'X-Amz-Signature'")),
    }  # fmt: skip
    s3_client(d).create_bucket(Bucket="other-bucket")
    cases["posted to another bucket"] = (post(base, ("a.txt", b"x" * 6), url=base["url"].replace(
        f"/{BUCKET}", "/other-bucket")), (403, "AccessDenied", 'Policy Condition failed: ["eq", "$bucket", "uploads"]'))
    for name, (resp, (status, code, words)) in cases.items():
        got = failure(resp)
        assert got[:2] == (status, code) and words in got[2], (name, got)
    expiring = s3.generate_presigned_post(BUCKET, "late.txt", ExpiresIn=1)
    time.sleep(2.1)
    assert failure(post(expiring)) == (403, "AccessDenied", "Invalid according to Policy: Policy expired.")
    unknown = presigner(d, Credentials("AKIAUNKNOWNUNKNOWN00", "x" * 40))
    form = unknown.generate_presigned_post(BUCKET, "k.txt")
    assert failure(post(form))[:2] == (403, "InvalidAccessKeyId")
    not_form = httpx.post(base["url"], content=b"key=a", headers={"Content-Type": "text/plain"})
    assert failure(not_form)[:2] == (412, "PreconditionFailed")
    no_file = httpx.post(base["url"], data=base["fields"], files={"other": ("a", b"x")})
    assert failure(no_file)[:2] == (400, "InvalidArgument")
    assert "exactly one file" in failure(no_file)[2]
    # Nothing of the refused uploads was stored.
    assert "Contents" not in s3_client(d).list_objects_v2(Bucket=BUCKET, Prefix="in/")
    s3.close()
    unknown.close()


def test_the_signer_must_be_allowed_to_put(d: Daemon) -> None:
    creds, _ = make_user(d.endpoint, "uploader", policy={"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:PutObject", "Resource": f"arn:aws:s3:::{BUCKET}/drop/*"}]})
    s3 = presigner(d, creds)
    assert post(s3.generate_presigned_post(BUCKET, "drop/ok.txt")).status_code == 204
    r = post(s3.generate_presigned_post(BUCKET, "elsewhere/no.txt"))
    assert failure(r)[:2] == (403, "AccessDenied")
    # Without a policy the form is anonymous: a private bucket refuses it.
    r = httpx.post(f"{d.endpoint}/{BUCKET}", data={"key": "anon.txt"}, files={"file": ("a", b"x")})
    assert (r.status_code, error_code(r.content)) == (403, "AccessDenied")
    s3.close()
