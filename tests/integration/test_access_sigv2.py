"""Signature Version 2 (on by default) beside SigV4: boto3's default presigned URLs
in us-east-1, ``s3cmd --signature-v2``, and forged, expired and replayed signatures of
both versions refused with 403; the switch that refuses SigV2 altogether."""

from __future__ import annotations

import datetime as dt
import email.utils
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from titans3.s3 import signer

from .access import curl, error_code
from .cluster import BIN, HOST, Credentials, Daemon, clean_env, s3_client
from .rawhttp import raw_request, sign

BUCKET = "legacy"
S3CMD = BIN / "s3cmd"


@pytest.fixture(scope="module")
def d(module_daemon: Daemon) -> Daemon:
    s3 = s3_client(module_daemon)
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="a.txt", Body=b"alpha")
    s3.put_object(Bucket=BUCKET, Key="b.txt", Body=b"bravo")
    return module_daemon


def v2_headers(d: Daemon, method: str, path: str, *, creds: Credentials | None = None,
               when: dt.datetime | None = None) -> dict[str, str]:  # fmt: skip
    """Headers signed by botocore's own SigV2 signer (HmacV1Auth), at ``when``."""
    from urllib.parse import urlsplit

    from botocore.auth import HmacV1Auth
    from botocore.compat import HTTPHeaders
    from botocore.credentials import Credentials as BotoCredentials

    c = creds or d.credentials
    headers = HTTPHeaders()
    auth = HmacV1Auth(BotoCredentials(c.access_key, c.secret_key))
    date = email.utils.formatdate((when or dt.datetime.now(dt.UTC)).timestamp(), usegmt=True)
    auth._get_date = lambda: date  # type: ignore[method-assign]  # botocore stamps "now" otherwise
    signature = auth.get_signature(method, urlsplit(d.endpoint + path), headers, auth_path=path)
    return {"Date": headers["Date"], "Authorization": f"AWS {c.access_key}:{signature}"}


def test_boto3_default_presigned_urls_are_sigv2_and_work(d: Daemon) -> None:
    s3 = s3_client(d)  # no signature_version: botocore presigns with SigV2 in us-east-1
    url = s3.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": "a.txt"})
    assert "AWSAccessKeyId=" in url and "Signature=" in url and "X-Amz-Signature" not in url
    assert curl(url) == (200, b"alpha")
    put = s3.generate_presigned_url("put_object", Params={"Bucket": BUCKET, "Key": "presigned.txt"})
    assert httpx.put(put, content=b"put by url").status_code == 200
    assert s3.get_object(Bucket=BUCKET, Key="presigned.txt")["Body"].read() == b"put by url"
    status, body = curl(url.replace("a.txt", "b.txt"))  # the signature of another key
    assert (status, error_code(body)) == (403, "SignatureDoesNotMatch")
    s3.close()


def test_s3cmd_with_signature_v2(d: Daemon, tmp_path: Path) -> None:
    cfg = tmp_path / "s3cfg"
    cfg.write_text("[default]\n"
                   f"access_key = {d.credentials.access_key}\nsecret_key = {d.credentials.secret_key}\n"
                   f"host_base = {HOST}:{d.s3_port}\nhost_bucket = {HOST}:{d.s3_port}\n"
                   "bucket_location = us-east-1\nuse_https = False\n")  # fmt: skip

    def s3cmd(*args: str) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([str(S3CMD), "-c", str(cfg), "--signature-v2", *args], capture_output=True,
                              text=True, timeout=300, env=clean_env({"HOME": str(tmp_path)}), check=False)  # fmt: skip
        assert proc.returncode == 0, f"s3cmd {args}: {proc.stdout}\n{proc.stderr}"
        return proc

    src = tmp_path / "v2.txt"
    src.write_text("uploaded with SigV2\n")
    s3cmd("mb", "s3://v2bucket")
    s3cmd("put", str(src), "s3://v2bucket/dir/v2.txt")
    assert "s3://v2bucket/dir/v2.txt" in s3cmd("ls", "-r", "s3://v2bucket").stdout
    s3cmd("get", "s3://v2bucket/dir/v2.txt", str(tmp_path / "back.txt"))
    assert (tmp_path / "back.txt").read_text() == src.read_text()
    s3cmd("del", "s3://v2bucket/dir/v2.txt")
    s3cmd("rb", "s3://v2bucket")


def _send(d: Daemon, method: str, path: str, headers: dict[str, str]) -> tuple[int, str | None]:
    r = raw_request(d, method, path, headers=headers, signed=False)
    return r.status, r.error_code()


def test_forged_expired_and_replayed_signatures_of_both_versions_are_refused(d: Daemon) -> None:
    s3 = s3_client(d)
    good = v2_headers(d, "GET", f"/{BUCKET}/a.txt")
    assert _send(d, "GET", f"/{BUCKET}/a.txt", good) == (200, None)
    forged = {**good, "Authorization": good["Authorization"][:-6] + "AAAAA="}
    old = v2_headers(d, "GET", f"/{BUCKET}/a.txt", when=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=20))
    wrong_key = v2_headers(d, "GET", f"/{BUCKET}/a.txt", creds=Credentials("AKIAWHOISTHIS0000000", "x" * 40))
    url4 = f"{d.endpoint}/{BUCKET}/a.txt"
    signed4 = sign("GET", url4, d.credentials)
    assert _send(d, "GET", f"/{BUCKET}/a.txt", signed4) == (200, None)
    forged4 = {**signed4, "Authorization": signed4["Authorization"][:-4] + "0000"}
    old4 = signer.sign_request("GET", url4, {}, access_key=d.credentials.access_key,
                               secret_key=d.credentials.secret_key,
                               now=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=20))  # fmt: skip
    cases = {
        "v2 forged": (("GET", f"/{BUCKET}/a.txt", forged), (403, "SignatureDoesNotMatch")),
        "v2 replayed on another key": (("GET", f"/{BUCKET}/b.txt", good), (403, "SignatureDoesNotMatch")),
        "v2 replayed as a DELETE": (("DELETE", f"/{BUCKET}/a.txt", good), (403, "SignatureDoesNotMatch")),
        "v2 replayed 20 minutes later": (("GET", f"/{BUCKET}/a.txt", old), (403, "RequestTimeTooSkewed")),
        "v2 unknown key": (("GET", f"/{BUCKET}/a.txt", wrong_key), (403, "InvalidAccessKeyId")),
        "v4 forged": (("GET", f"/{BUCKET}/a.txt", forged4), (403, "SignatureDoesNotMatch")),
        "v4 replayed on another key": (("GET", f"/{BUCKET}/b.txt", signed4), (403, "SignatureDoesNotMatch")),
        "v4 replayed 20 minutes later": (("GET", f"/{BUCKET}/a.txt", old4), (403, "RequestTimeTooSkewed")),
    }
    got = {name: _send(d, *req) for name, (req, _) in cases.items()}
    assert got == {name: want for name, (_, want) in cases.items()}, got
    v2_url = s3.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": "a.txt"}, ExpiresIn=1)
    v4 = s3_client(d, signature_version="s3v4")
    v4_url = v4.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": "a.txt"}, ExpiresIn=1)
    time.sleep(2.1)
    for url in (v2_url, v4_url):
        status, body = curl(url)
        assert (status, error_code(body)) == (403, "AccessDenied") and b"Request has expired" in body, url
    s3.close()
    v4.close()


def test_sigv2_can_be_refused(daemon_factory) -> None:  # noqa: ANN001
    d = daemon_factory(drives=4, env={"TITANS3_SIGV2": "false"})
    s3_client(d).create_bucket(Bucket=BUCKET)
    status, code = _send(d, "GET", f"/{BUCKET}", v2_headers(d, "GET", f"/{BUCKET}"))
    assert (status, code) == (400, "InvalidRequest")
    url = s3_client(d).generate_presigned_url("list_objects", Params={"Bucket": BUCKET})
    status, body = curl(url)
    assert status == 400 and b"Please use AWS4-HMAC-SHA256" in body
    form = s3_client(d).generate_presigned_post(BUCKET, "form.txt")  # SigV2 fields by default
    r = httpx.post(form["url"], data=form["fields"], files={"file": ("f", b"x")})
    assert (r.status_code, error_code(r.content)) == (400, "InvalidRequest")
    assert s3_client(d).list_objects_v2(Bucket=BUCKET)["KeyCount"] == 0  # SigV4 still works
