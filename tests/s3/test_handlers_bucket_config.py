"""Bucket configuration through the app: CORS (incl. preflight and headers on
actual requests), tagging, ListBuckets paging, CreateBucket locations, and
multipart checksums end to end (titans3.s3.handlers_bucket_config & co.)."""

from __future__ import annotations

import base64
import hashlib

from .s3harness import call, make_app, put_bucket, run

CORS_XML = (
    b"<CORSConfiguration><CORSRule><AllowedOrigin>https://app.example</AllowedOrigin>"
    b"<AllowedMethod>GET</AllowedMethod><AllowedMethod>PUT</AllowedMethod>"
    b"<AllowedHeader>x-amz-*</AllowedHeader><ExposeHeader>ETag</ExposeHeader>"
    b"<MaxAgeSeconds>600</MaxAgeSeconds></CORSRule></CORSConfiguration>"
)
TAGS_XML = (
    b"<Tagging><TagSet><Tag><Key>Project</Key><Value>One</Value></Tag>"
    b"<Tag><Key>User</Key><Value>jsmith</Value></Tag></TagSet></Tagging>"
)


def md5_header(body: bytes) -> dict[str, str]:
    return {"Content-MD5": base64.b64encode(hashlib.md5(body).digest()).decode()}


def test_cors_configuration_lifecycle():
    async def main():
        app, _ = make_app()
        await put_bucket(app)
        missing = await call(app, "GET", "/bkt", "cors")
        no_md5 = await call(app, "PUT", "/bkt", "cors", body=CORS_XML)
        bad_md5 = await call(app, "PUT", "/bkt", "cors", body=CORS_XML, headers=md5_header(b"x"))
        bad = await call(app, "PUT", "/bkt", "cors", body=b"<CORSConfiguration/>",
                         headers=md5_header(b"<CORSConfiguration/>"))  # fmt: skip
        put = await call(app, "PUT", "/bkt", "cors", body=CORS_XML, headers=md5_header(CORS_XML))
        got = await call(app, "GET", "/bkt", "cors")
        deleted = await call(app, "DELETE", "/bkt", "cors")
        again = await call(app, "GET", "/bkt", "cors")
        nobucket = await call(app, "GET", "/nobkt", "cors")
        return missing, no_md5, bad_md5, bad, put, got, deleted, again, nobucket

    missing, no_md5, bad_md5, bad, put, got, deleted, again, nobucket = run(main)
    assert (missing.status, missing.code) == (404, "NoSuchCORSConfiguration")
    assert missing.xml().findtext("BucketName") == "bkt"
    assert (no_md5.status, no_md5.code) == (400, "InvalidRequest")
    assert (bad_md5.status, bad_md5.code) == (400, "BadDigest")
    assert (bad.status, bad.code) == (400, "MalformedXML")
    assert put.status == 200
    rule = got.xml().find("CORSRule")
    assert [m.text for m in rule.findall("AllowedMethod")] == ["GET", "PUT"]
    assert rule.findtext("MaxAgeSeconds") == "600"
    assert deleted.status == 204
    assert (again.status, again.code) == (404, "NoSuchCORSConfiguration")
    assert (nobucket.status, nobucket.code) == (404, "NoSuchBucket")


def test_preflight_is_answered_without_credentials():
    async def main():
        app, _ = make_app()
        await put_bucket(app)
        opts = {"Origin": "https://app.example", "Access-Control-Request-Method": "PUT",
                "Access-Control-Request-Headers": "X-Amz-Date, x-amz-content-sha256"}  # fmt: skip
        before = await call(app, "OPTIONS", "/bkt/key", headers=opts, sign=False)
        await call(app, "PUT", "/bkt", "cors", body=CORS_XML, headers=md5_header(CORS_XML))
        ok = await call(app, "OPTIONS", "/bkt/key", headers=opts, sign=False)
        foreign = await call(app, "OPTIONS", "/bkt/key", sign=False,
                             headers={**opts, "Origin": "https://evil.example"})  # fmt: skip
        no_origin = await call(app, "OPTIONS", "/bkt/key", sign=False,
                               headers={"Access-Control-Request-Method": "GET"})  # fmt: skip
        no_bucket = await call(app, "OPTIONS", "/nobkt/key", headers=opts, sign=False)
        return before, ok, foreign, no_origin, no_bucket

    before, ok, foreign, no_origin, no_bucket = run(main)
    assert (before.status, before.code) == (403, "AccessForbidden")
    assert b"CORS is not enabled for this bucket" in before.body
    assert ok.status == 200 and ok.body == b""
    assert ok.headers["access-control-allow-origin"] == "https://app.example"
    assert ok.headers["access-control-allow-methods"] == "GET, PUT"
    assert ok.headers["access-control-allow-headers"] == "x-amz-date, x-amz-content-sha256"
    assert ok.headers["access-control-max-age"] == "600"
    assert ok.headers["access-control-allow-credentials"] == "true"
    assert "x-amz-request-id" in ok.headers
    assert (foreign.status, foreign.code) == (403, "AccessForbidden")
    assert foreign.xml().findtext("ResourceType") == "OBJECT"
    assert (no_origin.status, no_origin.code) == (400, "BadRequest")
    assert (no_bucket.status, no_bucket.code) == (403, "AccessForbidden")
    assert b"Bucket not found" in no_bucket.body


def test_actual_requests_with_origin_get_cors_headers_even_on_errors():
    async def main():
        app, _ = make_app()
        await put_bucket(app)
        await call(app, "PUT", "/bkt", "cors", body=CORS_XML, headers=md5_header(CORS_XML))
        origin = {"Origin": "https://app.example"}
        found = await call(app, "PUT", "/bkt/k", body=b"x", headers=origin)
        missing = await call(app, "GET", "/bkt/nope", headers=origin)
        anonymous = await call(app, "GET", "/bkt/k", headers=origin, sign=False)
        foreign = await call(app, "GET", "/bkt/k", headers={"Origin": "https://evil.example"})
        delete = await call(app, "DELETE", "/bkt/k", headers=origin)  # DELETE not allowed
        return found, missing, anonymous, foreign, delete

    found, missing, anonymous, foreign, delete = run(main)
    assert found.status == 200
    assert found.headers["access-control-allow-origin"] == "https://app.example"
    assert found.headers["access-control-expose-headers"] == "ETag"
    assert missing.status == 404 and missing.headers["access-control-allow-methods"] == "GET, PUT"
    assert anonymous.status == 403 and "access-control-allow-origin" in anonymous.headers
    assert foreign.status == 200 and "access-control-allow-origin" not in foreign.headers
    assert delete.status == 204 and "access-control-allow-origin" not in delete.headers


def test_bucket_tagging_lifecycle():
    async def main():
        app, _ = make_app()
        await put_bucket(app)
        missing = await call(app, "GET", "/bkt", "tagging")
        put = await call(app, "PUT", "/bkt", "tagging", body=TAGS_XML, headers=md5_header(TAGS_XML))
        got = await call(app, "GET", "/bkt", "tagging")
        dup = b"<Tagging><TagSet>" + b"<Tag><Key>a</Key><Value>1</Value></Tag>" * 2 + b"</TagSet></Tagging>"
        bad = await call(app, "PUT", "/bkt", "tagging", body=dup, headers=md5_header(dup))
        still = await call(app, "GET", "/bkt", "tagging")
        deleted = await call(app, "DELETE", "/bkt", "tagging")
        gone = await call(app, "GET", "/bkt", "tagging")
        return missing, put, got, bad, still, deleted, gone

    missing, put, got, bad, still, deleted, gone = run(main)
    assert (missing.status, missing.code) == (404, "NoSuchTagSet")
    assert put.status == 204
    tags = [(t.findtext("Key"), t.findtext("Value")) for t in got.xml().iter("Tag")]
    assert tags == [("Project", "One"), ("User", "jsmith")]
    assert (bad.status, bad.code) == (400, "InvalidTag")
    assert still.body == got.body  # a refused Put changes nothing
    assert deleted.status == 204
    assert (gone.status, gone.code) == (404, "NoSuchTagSet")


def test_list_buckets_pages_with_max_buckets_and_prefix():
    async def main():
        app, _ = make_app()
        for name in ("alpha", "beta", "gamma", "delta"):
            await put_bucket(app, name)
        first = (await call(app, "GET", "/", "max-buckets=2")).xml()
        token = first.findtext("ContinuationToken")
        second = (await call(app, "GET", "/", f"max-buckets=2&continuation-token={token}")).xml()
        prefixed = (await call(app, "GET", "/", "prefix=d")).xml()
        other_region = (await call(app, "GET", "/", "bucket-region=eu-west-1")).xml()
        bad = await call(app, "GET", "/", "max-buckets=0")
        bad_token = await call(app, "GET", "/", "continuation-token=%21%21")
        return first, token, second, prefixed, other_region, bad, bad_token

    first, token, second, prefixed, other_region, bad, bad_token = run(main)
    names = lambda doc: [b.findtext("Name") for b in doc.iter("Bucket")]  # noqa: E731
    assert names(first) == ["alpha", "beta"] and token
    assert names(second) == ["delta", "gamma"] and second.find("ContinuationToken") is None
    assert first.find("Buckets/Bucket").findtext("BucketRegion") == "us-east-1"
    assert names(prefixed) == ["delta"] and prefixed.findtext("Prefix") == "d"
    assert names(other_region) == []
    assert (bad.status, bad.code) == (400, "InvalidArgument")
    assert (bad_token.status, bad_token.code) == (400, "InvalidArgument")


def test_create_bucket_location_constraint_as_a_us_east_1_endpoint():
    cfg = b"<CreateBucketConfiguration><LocationConstraint>%s</LocationConstraint></CreateBucketConfiguration>"

    async def main():
        app, _ = make_app()
        explicit = await call(app, "PUT", "/one", body=cfg % b"us-east-1")
        other = await call(app, "PUT", "/two", body=cfg % b"eu-west-1")
        unknown = await call(app, "PUT", "/three", body=cfg % b"moon-1")
        empty = await call(app, "PUT", "/four", body=b"<CreateBucketConfiguration/>")
        location = await call(app, "GET", "/four", "location")
        return explicit, other, unknown, empty, location

    explicit, other, unknown, empty, location = run(main)
    assert (explicit.status, explicit.code) == (400, "InvalidLocationConstraint")
    assert (other.status, other.code) == (400, "IllegalLocationConstraintException")
    assert (unknown.status, unknown.code) == (400, "InvalidLocationConstraint")
    assert empty.status == 200
    assert location.xml().text is None  # us-east-1 is the empty LocationConstraint


def _complete_body(parts: list[tuple[int, str, str | None]], algo: str = "CRC32") -> bytes:
    items = "".join(
        f"<Part><PartNumber>{n}</PartNumber><ETag>{e}</ETag>"
        + (f"<Checksum{algo}>{c}</Checksum{algo}>" if c else "") + "</Part>"
        for n, e, c in parts
    )  # fmt: skip
    return f"<CompleteMultipartUpload>{items}</CompleteMultipartUpload>".encode()


def test_multipart_with_checksum_algorithm_stores_the_composite_checksum():
    async def main():
        app, _ = make_app()
        await put_bucket(app)
        init = await call(app, "POST", "/bkt/k", "uploads",
                          headers={"x-amz-checksum-algorithm": "CRC32"})  # fmt: skip
        upload = init.xml().findtext("UploadId")
        q = f"partNumber=1&uploadId={upload}"
        bare = await call(app, "PUT", "/bkt/k", q, body=b"123456789")
        part = await call(app, "PUT", "/bkt/k", q, body=b"123456789",
                          headers={"x-amz-checksum-crc32": "y/Q5Jg=="})  # fmt: skip
        etag = part.headers["etag"]
        missing = await call(app, "POST", "/bkt/k", f"uploadId={upload}",
                             body=_complete_body([(1, etag, None)]))  # fmt: skip
        done = await call(app, "POST", "/bkt/k", f"uploadId={upload}",
                          body=_complete_body([(1, etag, "y/Q5Jg==")]),
                          headers={"x-amz-checksum-crc32": "7kxlUA==-1"})  # fmt: skip
        head = await call(app, "HEAD", "/bkt/k", headers={"x-amz-checksum-mode": "ENABLED"})
        plain = await call(app, "HEAD", "/bkt/k")
        return init, bare, missing, done, head, plain

    init, bare, missing, done, head, plain = run(main)
    assert init.headers["x-amz-checksum-algorithm"] == "CRC32"
    assert init.headers["x-amz-checksum-type"] == "COMPOSITE"
    assert (bare.status, bare.code) == (400, "InvalidRequest")
    assert b"expected checksum Type: crc32, actual checksum Type: null" in bare.body
    assert (missing.status, missing.code) == (400, "InvalidRequest")
    assert done.status == 200, done.body
    assert done.xml().findtext("ChecksumCRC32") == "7kxlUA==-1"
    assert done.xml().findtext("ChecksumType") == "COMPOSITE"
    assert head.headers["x-amz-checksum-crc32"] == "7kxlUA==-1"
    assert head.headers["x-amz-checksum-type"] == "COMPOSITE"
    assert "x-amz-checksum-crc32" not in plain.headers
