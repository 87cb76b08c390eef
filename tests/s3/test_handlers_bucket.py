"""Bucket and listing operations through the app (titans3.s3.handlers_bucket)."""

from __future__ import annotations

from urllib.parse import quote

from .s3harness import (
    call,
    make_app,
    put_bucket,
    run,
)


def test_recreating_an_own_bucket_outside_us_east_1_is_409():
    async def main():
        app, _ = make_app(region="eu-central-1")
        body = (b"<CreateBucketConfiguration><LocationConstraint>eu-central-1"
                b"</LocationConstraint></CreateBucketConfiguration>")  # fmt: skip
        first = await call(app, "PUT", "/alpha", body=body, region="eu-central-1")
        again = await call(app, "PUT", "/alpha", body=body, region="eu-central-1")
        return first, again

    first, again = run(main)
    assert first.status == 200
    assert (again.status, again.code) == (409, "BucketAlreadyOwnedByYou")


def test_bucket_lifecycle_and_its_conflicts():
    async def main():
        app, _ = make_app()
        assert (await put_bucket(app, "alpha")).headers["location"] == "/alpha"
        await call(app, "PUT", "/alpha/kept", body=b"still here")
        again = await put_bucket(app, "alpha")  # us-east-1's legacy answer: 200, nothing touched
        assert again.status == 200 and again.headers["location"] == "/alpha"
        assert (await call(app, "GET", "/alpha/kept")).body == b"still here"
        await call(app, "DELETE", "/alpha/kept")
        assert (await put_bucket(app, "Bad_Name")).code == "InvalidBucketName"
        await put_bucket(app, "beta")
        listing = (await call(app, "GET", "/")).xml()
        assert [b.findtext("Name") for b in listing.iter("Bucket")] == ["alpha", "beta"]
        assert listing.findtext("Owner/DisplayName") == "titans3"
        assert len(listing.findtext("Owner/ID")) == 64
        assert (await call(app, "HEAD", "/alpha")).headers["x-amz-bucket-region"] == "us-east-1"
        await call(app, "PUT", "/alpha/k", body=b"1")
        busy = await call(app, "DELETE", "/alpha")
        assert (busy.status, busy.code) == (409, "BucketNotEmpty")
        assert (await call(app, "DELETE", "/alpha/k")).status == 204
        assert (await call(app, "DELETE", "/alpha")).status == 204
        assert (await call(app, "HEAD", "/alpha")).status == 404

    run(main)


def test_create_bucket_location_constraint_must_match_the_region():
    cfg = (
        b'<CreateBucketConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        b"<LocationConstraint>%s</LocationConstraint></CreateBucketConfiguration>"
    )

    async def main():
        app, _ = make_app(region="eu-central-1")
        eu = "eu-central-1"
        ok = await call(app, "PUT", "/one", body=cfg % b"eu-central-1", region=eu)
        wrong = await call(app, "PUT", "/two", body=cfg % b"us-west-2", region=eu)
        bad = await call(app, "PUT", "/three", body=b"<CreateBucketConfiguration><x/>", region=eu)
        location = await call(app, "GET", "/one", "location", region=eu)
        return ok, wrong, bad, location

    ok, wrong, bad, location = run(main)
    assert ok.status == 200
    assert (wrong.status, wrong.code) == (400, "IllegalLocationConstraintException")
    assert (bad.status, bad.code) == (400, "MalformedXML")
    assert location.xml().text == "eu-central-1"


def test_list_objects_v2_pages_with_opaque_continuation_tokens():
    async def main():
        app, _ = make_app()
        await put_bucket(app)
        keys = [f"k{i:03d}" for i in range(25)] + ["dir/a", "dir/b", "zz"]
        for k in keys:
            await call(app, "PUT", f"/bkt/{k}", body=b"1")
        seen, token, pages = [], None, 0
        while True:
            query = "list-type=2&max-keys=10" + (f"&continuation-token={quote(token, safe='')}" if token else "")
            page = (await call(app, "GET", "/bkt", query)).xml()
            pages += 1
            assert int(page.findtext("KeyCount")) == len(page.findall("Contents"))
            seen += [c.findtext("Key") for c in page.findall("Contents")]
            if page.findtext("IsTruncated") == "false":
                assert page.find("NextContinuationToken") is None
                break
            token = page.findtext("NextContinuationToken")
            assert token and not token.startswith("k")  # opaque, not the key itself
        assert seen == sorted(keys) and pages == 3
        bad = await call(app, "GET", "/bkt", "list-type=2&continuation-token=%25%25%25")
        assert (bad.status, bad.code) == (400, "InvalidArgument")

    run(main)


def test_list_objects_v2_prefix_delimiter_start_after_and_owner():
    async def main():
        app, _ = make_app()
        await put_bucket(app)
        for k in ["photos/2006/a.jpg", "photos/2006/b.jpg", "photos/2007/c.jpg", "photos/x.jpg", "other"]:
            await call(app, "PUT", f"/bkt/{k}", body=b"1")
        page = (await call(app, "GET", "/bkt", "list-type=2&prefix=photos%2F&delimiter=%2F")).xml()
        assert [p.findtext("Prefix") for p in page.findall("CommonPrefixes")] == ["photos/2006/", "photos/2007/"]
        assert [c.findtext("Key") for c in page.findall("Contents")] == ["photos/x.jpg"]
        assert page.findtext("KeyCount") == "3" and page.findtext("Delimiter") == "/"
        assert page.find("Contents/Owner") is None
        page = (await call(app, "GET", "/bkt", "list-type=2&start-after=photos%2F2007%2F&fetch-owner=true")).xml()
        assert [c.findtext("Key") for c in page.findall("Contents")] == ["photos/2007/c.jpg", "photos/x.jpg"]
        assert page.findtext("StartAfter") == "photos/2007/"
        assert page.find("Contents/Owner/ID") is not None
        empty = (await call(app, "GET", "/bkt", "list-type=2&max-keys=0")).xml()
        assert empty.findtext("KeyCount") == "0" and empty.findtext("IsTruncated") == "false"
        bad = await call(app, "GET", "/bkt", "list-type=2&max-keys=-1")
        assert (bad.status, bad.code) == (400, "InvalidArgument")

    run(main)


def test_list_encoding_type_url():
    async def main():
        app, _ = make_app()
        await put_bucket(app)
        await call(app, "PUT", "/bkt/" + quote("a b+c", safe=""), body=b"1")
        return (await call(app, "GET", "/bkt", "list-type=2&encoding-type=url")).xml()

    page = run(main)
    assert page.findtext("EncodingType") == "url"
    assert page.findtext("Contents/Key") == "a%20b%2Bc"


def test_list_objects_v1_marker_and_next_marker():
    async def main():
        app, _ = make_app()
        await put_bucket(app)
        for k in "abcde":
            await call(app, "PUT", f"/bkt/{k}", body=b"1")
        first = (await call(app, "GET", "/bkt", "max-keys=2")).xml()
        assert [c.findtext("Key") for c in first.findall("Contents")] == ["a", "b"]
        assert first.findtext("NextMarker") == "b" and first.findtext("IsTruncated") == "true"
        assert first.find("Contents/Owner/ID") is not None
        rest = (await call(app, "GET", "/bkt", "marker=b")).xml()
        assert [c.findtext("Key") for c in rest.findall("Contents")] == ["c", "d", "e"]
        assert rest.findtext("Marker") == "b" and rest.find("NextMarker") is None

    run(main)
