"""Multipart upload operations through the app (titans3.s3.handlers_multipart)."""

from __future__ import annotations

import logging

from .s3harness import (
    call,
    make_app,
    put_bucket,
    run,
)


def test_malformed_complete_body_is_400_malformed_xml(caplog):
    async def main():
        app, _ = make_app()
        await put_bucket(app)
        init = await call(app, "POST", "/bkt/k", "uploads")
        upload_id = init.xml().findtext("UploadId")
        return await call(app, "POST", "/bkt/k", f"uploadId={upload_id}", body=b"<Complete")

    with caplog.at_level(logging.DEBUG):
        r = run(main)
    assert (r.status, r.code) == (400, "MalformedXML")
    assert not [rec for rec in caplog.records if rec.exc_info]


def test_multipart_upload_complete_flow():
    async def main():
        app, store = make_app()
        await put_bucket(app)
        init = await call(app, "POST", "/bkt/big", "uploads", headers={"Content-Type": "video/mp4",
                                                                       "x-amz-meta-a": "1"})  # fmt: skip
        root = init.xml()
        assert root.tag == "InitiateMultipartUploadResult" and root.findtext("Key") == "big"
        upload = root.findtext("UploadId")
        parts = [b"A" * 10, b"B" * 10, b"C" * 3]
        etags = []
        for n, data in enumerate(parts, 1):
            r = await call(app, "PUT", "/bkt/big", f"partNumber={n}&uploadId={upload}", body=data)
            assert r.status == 200
            etags.append(r.headers["etag"])
        listed = (await call(app, "GET", "/bkt/big", f"uploadId={upload}&max-parts=2")).xml()
        assert [p.findtext("PartNumber") for p in listed.findall("Part")] == ["1", "2"]
        assert listed.findtext("IsTruncated") == "true" and listed.findtext("NextPartNumberMarker") == "2"
        rest = (await call(app, "GET", "/bkt/big", f"uploadId={upload}&part-number-marker=2")).xml()
        assert [p.findtext("PartNumber") for p in rest.findall("Part")] == ["3"]
        body = "<CompleteMultipartUpload>" + "".join(
            f"<Part><PartNumber>{n}</PartNumber><ETag>{e}</ETag></Part>" for n, e in enumerate(etags, 1)
        ) + "</CompleteMultipartUpload>"
        done = await call(app, "POST", "/bkt/big", f"uploadId={upload}", body=body.encode())
        assert done.status == 200, done.body
        result = done.xml()
        assert result.findtext("ETag").endswith('-3"')
        assert result.findtext("Location") == "http://127.0.0.1:9000/bkt/big"
        got = await call(app, "GET", "/bkt/big")
        assert got.body == b"".join(parts) and got.headers["content-type"] == "video/mp4"
        assert got.headers["x-amz-meta-a"] == "1"
        gone = await call(app, "GET", "/bkt/big", f"uploadId={upload}")
        assert (gone.status, gone.code) == (404, "NoSuchUpload")

    run(main)


def test_multipart_errors():
    async def main():
        app, _ = make_app()
        await put_bucket(app)
        upload = (await call(app, "POST", "/bkt/k", "uploads")).xml().findtext("UploadId")
        results = {}
        for bad in ("0", "10001", "x", ""):
            r = await call(app, "PUT", "/bkt/k", f"partNumber={bad}&uploadId={upload}", body=b"1")
            results[bad] = (r.status, r.code)
        e1 = (await call(app, "PUT", "/bkt/k", f"partNumber=1&uploadId={upload}", body=b"1" * 10)).headers["etag"]
        e2 = (await call(app, "PUT", "/bkt/k", f"partNumber=2&uploadId={upload}", body=b"2" * 10)).headers["etag"]
        order = f"<CompleteMultipartUpload><Part><PartNumber>2</PartNumber><ETag>{e2}</ETag></Part><Part><PartNumber>1</PartNumber><ETag>{e1}</ETag></Part></CompleteMultipartUpload>"
        results["order"] = (await call(app, "POST", "/bkt/k", f"uploadId={upload}", body=order.encode())).code
        wrong = "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>\"00\"</ETag></Part></CompleteMultipartUpload>"
        results["part"] = (await call(app, "POST", "/bkt/k", f"uploadId={upload}", body=wrong.encode())).code
        results["abort"] = (await call(app, "DELETE", "/bkt/k", f"uploadId={upload}")).status
        results["after"] = (await call(app, "PUT", "/bkt/k", f"partNumber=3&uploadId={upload}", body=b"1")).code
        return results

    results = run(main)
    for bad in ("0", "10001", "x", ""):
        assert results[bad] == (400, "InvalidArgument")
    assert results["order"] == "InvalidPartOrder"
    assert results["part"] == "InvalidPart"
    assert results["abort"] == 204
    assert results["after"] == "NoSuchUpload"
