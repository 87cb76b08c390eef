"""Object operations through the app (titans3.s3.handlers_object, titans3.s3.body):
metadata, ranges, conditionals, integrity checks and streamed (aws-chunked) uploads."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import zlib
from urllib.parse import quote

import pytest
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.httpchecksum import AwsChunkedWrapper, Crc32Checksum

from titans3.s3 import sigv4

from .memstore import MemStore
from .s3harness import (
    HOST,
    ROOT,
    ROOT_SECRET,
    Signer,
    call,
    make_app,
    put_bucket,
    replay,
    run,
    send_raw,
)


def test_put_then_get_roundtrips_bytes_and_stored_headers():
    async def main():
        app, _ = make_app()
        assert (await put_bucket(app)).status == 200
        data = b"hello titans3" * 1000
        r = await call(app, "PUT", "/bkt/dir/obj.txt", body=data, headers={
            "Content-Type": "text/plain", "x-amz-meta-color": "blue", "Cache-Control": "no-cache",
            "Content-Disposition": "attachment", "Content-Language": "en",
            "Expires": "Wed, 21 Oct 2015 07:28:00 GMT",
        })  # fmt: skip
        assert r.status == 200
        assert r.headers["etag"] == f'"{hashlib.md5(data).hexdigest()}"'
        g = await call(app, "GET", "/bkt/dir/obj.txt")
        assert g.status == 200 and g.body == data
        assert g.headers["content-length"] == str(len(data))
        assert g.headers["content-type"] == "text/plain"
        assert g.headers["x-amz-meta-color"] == "blue"
        assert g.headers["cache-control"] == "no-cache"
        assert g.headers["content-disposition"] == "attachment"
        assert g.headers["content-language"] == "en"
        assert g.headers["expires"] == "Wed, 21 Oct 2015 07:28:00 GMT"
        assert g.headers["accept-ranges"] == "bytes"
        assert g.headers["etag"] == r.headers["etag"]
        dt.datetime.strptime(g.headers["last-modified"], "%a, %d %b %Y %H:%M:%S GMT")

    run(main)


def test_object_without_content_type_reads_back_as_binary_octet_stream():
    async def main():
        app, _ = make_app()
        await put_bucket(app)
        await call(app, "PUT", "/bkt/k", body=b"x")
        assert (await call(app, "GET", "/bkt/k")).headers["content-type"] == "binary/octet-stream"

    run(main)


def test_keys_with_slashes_spaces_and_unicode_round_trip_unnormalised():
    async def main():
        app, _ = make_app()
        await put_bucket(app)
        for key in ("a//b/", "sp ace+plus", "ü/€/ü", "a/../b", "pct%2Fliteral"):
            path = "/bkt/" + quote(key, safe="/")
            assert (await call(app, "PUT", path, body=key.encode())).status == 200
            assert (await call(app, "GET", path)).body == key.encode()
        listing = await call(app, "GET", "/bkt", "list-type=2")
        keys = [c.findtext("Key") for c in listing.xml().findall("Contents")]
        assert sorted(keys) == sorted(["a//b/", "sp ace+plus", "ü/€/ü", "a/../b", "pct%2Fliteral"])

    run(main)


def test_ranges_follow_aws_semantics():
    async def main():
        app, _ = make_app()
        await put_bucket(app)
        data = bytes(range(256)) * 8  # 2048 bytes
        await call(app, "PUT", "/bkt/k", body=data)

        async def get(rng):
            return await call(app, "GET", "/bkt/k", headers={"Range": rng})

        r = await get("bytes=0-499")
        assert (r.status, r.body, r.headers["content-range"]) == (206, data[:500], "bytes 0-499/2048")
        assert r.headers["content-length"] == "500"
        r = await get("bytes=-48")
        assert (r.status, r.body) == (206, data[-48:])
        r = await get("bytes=2000-999999")
        assert (r.status, r.body, r.headers["content-range"]) == (206, data[2000:], "bytes 2000-2047/2048")
        for ignored in ("bytes=0-1,5-6", "bytes=9-3", "garbage"):
            r = await get(ignored)
            assert (r.status, r.body) == (200, data)
        r = await get("bytes=2048-")
        assert (r.status, r.code) == (416, "InvalidRange")
        h = await call(app, "HEAD", "/bkt/k", headers={"Range": "bytes=10-19"})
        assert (h.status, h.headers["content-length"], h.headers["content-range"]) == (
            206, "10", "bytes 10-19/2048")  # fmt: skip

    run(main)


def test_conditional_get_and_head():
    async def main():
        app, _ = make_app()
        await put_bucket(app)
        etag = (await call(app, "PUT", "/bkt/k", body=b"abc")).headers["etag"]
        nm = await call(app, "GET", "/bkt/k", headers={"If-None-Match": etag})
        assert (nm.status, nm.body) == (304, b"")
        pf = await call(app, "GET", "/bkt/k", headers={"If-Match": '"other"'})
        assert (pf.status, pf.code) == (412, "PreconditionFailed")
        ok = await call(app, "GET", "/bkt/k", headers={"If-Match": etag})
        assert (ok.status, ok.body) == (200, b"abc")
        later = "Fri, 01 Jan 2100 00:00:00 GMT"
        assert (await call(app, "HEAD", "/bkt/k", headers={"If-Modified-Since": later})).status == 304

    run(main)


def test_response_header_overrides_on_get():
    async def main():
        app, _ = make_app()
        await put_bucket(app)
        await call(app, "PUT", "/bkt/k", body=b"abc", headers={"Content-Type": "text/plain"})
        return await call(app, "GET", "/bkt/k",
                          "response-content-type=application%2Fjson&response-content-disposition=inline")  # fmt: skip

    r = run(main)
    assert r.headers["content-type"] == "application/json"
    assert r.headers["content-disposition"] == "inline"


def test_content_md5_is_checked():
    async def main():
        app, store = make_app()
        await put_bucket(app)
        good = base64.b64encode(hashlib.md5(b"data").digest()).decode()
        bad = base64.b64encode(hashlib.md5(b"other").digest()).decode()
        ok = await call(app, "PUT", "/bkt/ok", body=b"data", headers={"Content-MD5": good})
        mismatch = await call(app, "PUT", "/bkt/bad", body=b"data", headers={"Content-MD5": bad})
        malformed = await call(app, "PUT", "/bkt/bad", body=b"data", headers={"Content-MD5": "xx"})
        return ok, mismatch, malformed, store

    ok, mismatch, malformed, store = run(main)
    assert ok.status == 200
    assert (mismatch.status, mismatch.code) == (400, "BadDigest")
    assert (malformed.status, malformed.code) == (400, "InvalidDigest")
    assert "bad" not in store.buckets["bkt"].objects


def test_checksum_headers_are_verified_and_echoed():
    data = b"checksummed payload"
    crc = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()

    async def main():
        app, store = make_app()
        await put_bucket(app)
        ok = await call(app, "PUT", "/bkt/ok", body=data, headers={"x-amz-checksum-crc32": crc})
        bad = await call(app, "PUT", "/bkt/bad", body=data,
                         headers={"x-amz-checksum-crc32": "AAAAAA=="})  # fmt: skip
        get = await call(app, "GET", "/bkt/ok", headers={"x-amz-checksum-mode": "ENABLED"})
        plain = await call(app, "GET", "/bkt/ok")
        return ok, bad, get, plain, store

    ok, bad, get, plain, store = run(main)
    assert ok.status == 200 and ok.headers["x-amz-checksum-crc32"] == crc
    assert (bad.status, bad.code) == (400, "BadDigest")
    assert "bad" not in store.buckets["bkt"].objects
    assert get.headers["x-amz-checksum-crc32"] == crc
    assert "x-amz-checksum-crc32" not in plain.headers


def test_signed_payload_hash_mismatch_is_rejected_and_nothing_stored():
    async def main():
        app, store = make_app()
        await put_bucket(app)
        sha_of_other = hashlib.sha256(b"AAAA").hexdigest()
        r = await call(app, "PUT", "/bkt/k", body=b"BBBB", payload=sha_of_other)
        return r, store

    r, store = run(main)
    assert (r.status, r.code) == (400, "XAmzContentSHA256Mismatch")
    assert store.buckets["bkt"].objects == {}


def _unsigned_trailer_body(data: bytes, chunk: int = 8192) -> bytes:
    wrapper = AwsChunkedWrapper(io.BytesIO(data), checksum_cls=Crc32Checksum,
                                checksum_name="x-amz-checksum-crc32", chunk_size=chunk)  # fmt: skip
    return wrapper.read()


def test_streamed_upload_with_unsigned_trailer_is_decoded_and_verified():
    data = bytes(range(251)) * 400  # ~100 KB, not a multiple of the chunk size
    encoded = _unsigned_trailer_body(data)
    headers = {
        "Content-Encoding": "aws-chunked,gzip",
        "x-amz-decoded-content-length": str(len(data)),
        "x-amz-trailer": "x-amz-checksum-crc32",
        "x-amz-sdk-checksum-algorithm": "CRC32",
    }

    async def main():
        app, store = make_app()
        await put_bucket(app)
        # Delivered in awkward pieces, as a network would.
        pieces = [encoded[i : i + 7777] for i in range(0, len(encoded), 7777)]
        r = await call(app, "PUT", "/bkt/k", body=pieces, headers=headers,
                       payload="STREAMING-UNSIGNED-PAYLOAD-TRAILER")  # fmt: skip
        g = await call(app, "GET", "/bkt/k")
        return r, g, store

    r, g, store = run(main)
    assert r.status == 200, r.body
    assert r.headers["x-amz-checksum-crc32"] == base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
    assert g.body == data
    assert store.buckets["bkt"].objects["k"].meta["content-encoding"] == "gzip"


def test_streamed_upload_with_a_wrong_trailer_crc_stores_nothing():
    data = b"x" * 20000
    good = _unsigned_trailer_body(data)
    trailer_at = good.rindex(b"x-amz-checksum-crc32:")
    encoded = good[:trailer_at] + b"x-amz-checksum-crc32:AAAAAA==\r\n\r\n"
    headers = {
        "Content-Encoding": "aws-chunked",
        "x-amz-decoded-content-length": str(len(data)),
        "x-amz-trailer": "x-amz-checksum-crc32",
    }

    async def main():
        app, store = make_app()
        await put_bucket(app)
        r = await call(app, "PUT", "/bkt/k", body=encoded, headers=headers,
                       payload="STREAMING-UNSIGNED-PAYLOAD-TRAILER")  # fmt: skip
        return r, store

    r, store = run(main)
    assert (r.status, r.code) == (400, "BadDigest")
    assert store.buckets["bkt"].objects == {}


def _signed_chunks(data: bytes, *, seed: str, key: bytes, amz_date: str, scope: str, size: int) -> bytes:
    out, previous = [], seed
    pieces = [data[i : i + size] for i in range(0, len(data), size)] + [b""]
    for chunk in pieces:
        to_sign = "\n".join(("AWS4-HMAC-SHA256-PAYLOAD", amz_date, scope, previous,
                             sigv4.EMPTY_SHA256, hashlib.sha256(chunk).hexdigest()))  # fmt: skip
        previous = sigv4.sign(key, to_sign)
        out.append(b"%x;chunk-signature=%s\r\n%s\r\n" % (len(chunk), previous.encode(), chunk))
    return b"".join(out)


def _signed_streaming_put(data: bytes, *, tamper: bool = False):
    payload = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
    headers = {"Host": HOST, "Content-Encoding": "aws-chunked",
               "x-amz-decoded-content-length": str(len(data))}  # fmt: skip
    request = AWSRequest(method="PUT", url=f"http://{HOST}/bkt/k", headers=headers, data=b"")
    Signer(Credentials(ROOT, ROOT_SECRET), payload).add_auth(request)
    signed = dict(request.headers.items())
    amz_date = signed["X-Amz-Date"]
    seed = signed["Authorization"].rpartition("Signature=")[2]
    key = sigv4.derive_signing_key(ROOT_SECRET, amz_date[:8], "us-east-1")
    scope = sigv4.scope_of(amz_date[:8], "us-east-1")
    body = _signed_chunks(data, seed=seed, key=key, amz_date=amz_date, scope=scope, size=65536)
    if tamper:
        body = body.replace(b"AAAA", b"AAAB", 1)
    signed["Content-Length"] = str(len(body))
    return signed, body


def test_signed_streaming_chunks_are_decoded_and_a_tampered_chunk_is_refused():
    data = b"AAAA" + bytes(range(256)) * 1000

    async def main():
        app, store = make_app()
        await put_bucket(app)
        headers, body = _signed_streaming_put(data)
        ok = await send_raw(app, "PUT", "/bkt/k", "", headers, [body[:1000], body[1000:]])
        stored = store.buckets["bkt"].objects["k"].data
        headers, body = _signed_streaming_put(data, tamper=True)
        bad = await send_raw(app, "PUT", "/bkt/k2", "", headers | {"Content-Length": str(len(body))}, [body])
        return ok, stored, bad, store

    ok, stored, bad, store = run(main)
    assert ok.status == 200 and stored == data
    assert bad.status == 403 and bad.code == "SignatureDoesNotMatch"
    assert "k2" not in store.buckets["bkt"].objects


def test_botocore_default_put_over_https_streams_with_trailers_and_works(botocore_client):
    """What boto3 / the AWS CLI send with default settings, replayed byte for byte."""
    client, sent = botocore_client("https://127.0.0.1:9000")
    data = bytes(range(256)) * 300
    client.put_object(Bucket="bkt", Key="boto/k", Body=io.BytesIO(data), ContentType="image/png")
    (wire,) = sent
    assert wire.headers.get("x-amz-content-sha256", "").startswith("STREAMING-")
    assert "aws-chunked" in wire.headers.get("content-encoding", "")

    async def main():
        app, store = make_app()
        await store.create_bucket("bkt")
        r = await replay(app, wire)
        return r, store

    r, store = run(main)
    assert r.status == 200, r.body
    obj = store.buckets["bkt"].objects["boto/k"]
    assert obj.data == data
    assert obj.meta.get("content-type") == "image/png"
    assert "content-encoding" not in obj.meta


def test_get_streams_with_explicit_content_length():
    async def main():
        store = MemStore(read_chunk=64 * 1024)  # 64 chunks: more than any queue holds
        app, _ = make_app(store)
        await put_bucket(app)
        data = bytes(range(256)) * (16 * 1024)  # 4 MiB
        await call(app, "PUT", "/bkt/k", body=data)
        return data, await call(app, "GET", "/bkt/k")

    data, r = run(main)
    assert r.body == data
    assert [v for k, v in r.raw_headers if k.lower() == "content-length"] == [str(len(data))]
    assert not [v for k, v in r.raw_headers if k.lower() == "transfer-encoding"]


@pytest.mark.parametrize(
    ("sent", "text", "returned"),
    [
        # botocore sends UTF-8: the text is kept and comes back as ISO-8859-1,
        # which is how botocore decodes it -- the value it set.
        ("Hello World\u00e9".encode(), "Hello World\u00e9", b"Hello World\xe9"),
        (b"Hello World\xe9", "Hello World\u00e9", b"Hello World\xe9"),  # not UTF-8: as is
        ("\u65e5\u672c".encode(), "\u65e5\u672c", "\u65e5\u672c".encode()),  # beyond latin-1
        (b"=?UTF-8?B?SGVsbG8gV29ybGTDqQ==?=", "=?UTF-8?B?SGVsbG8gV29ybGTDqQ==?=",
         b"=?UTF-8?B?SGVsbG8gV29ybGTDqQ==?="),  # RFC 2047: untouched
    ],
)
def test_metadata_text_round_trips(sent: bytes, text: str, returned: bytes):
    # The harness sends and reads header values as latin-1: one character per byte.
    value = sent.decode("latin-1")

    async def main():
        app, store = make_app()
        await put_bucket(app)
        await call(app, "PUT", "/bkt/k", body=b"1", headers={"Content-Disposition": value,
                                                           "x-amz-meta-name": value})  # fmt: skip
        return await call(app, "GET", "/bkt/k"), store

    r, store = run(main)
    assert store.buckets["bkt"].objects["k"].meta["content-disposition"] == text
    assert store.buckets["bkt"].objects["k"].meta["x-amz-meta-name"] == text
    assert r.headers["content-disposition"].encode("latin-1") == returned
    assert r.headers["x-amz-meta-name"].encode("latin-1") == returned


def test_response_overrides_cannot_inject_headers():
    async def main():
        app, _ = make_app()
        await put_bucket(app)
        await call(app, "PUT", "/bkt/k", body=b"1")
        return await call(app, "GET", "/bkt/k", "response-content-type=a%0D%0AX-Evil%3A%201")

    r = run(main)
    assert (r.status, r.code) == (400, "InvalidArgument")
    assert "x-evil" not in r.headers


class _TrackedBody:
    def __init__(self, inner) -> None:
        self.inner = inner
        self.closed = False

    def __aiter__(self):
        return self

    async def __anext__(self) -> bytes:
        return await self.inner.__anext__()

    async def aclose(self) -> None:
        self.closed = True


def test_a_get_that_fails_after_the_store_answered_releases_the_body():
    bodies: list[_TrackedBody] = []

    async def main():
        store = MemStore()
        original = store.get_object

        async def get_object(*args, **kwargs):
            result = await original(*args, **kwargs)
            result.body = _TrackedBody(result.body)
            bodies.append(result.body)
            return result

        store.get_object = get_object
        app, _ = make_app(store)
        await put_bucket(app)
        etag = (await call(app, "PUT", "/bkt/k", body=b"abc")).headers["etag"]
        bad = await call(app, "GET", "/bkt/k", "response-content-type=a%0Ab")
        not_modified = await call(app, "GET", "/bkt/k", headers={"If-None-Match": etag})
        return bad, not_modified

    bad, not_modified = run(main)
    assert (bad.status, not_modified.status) == (400, 304)
    assert [b.closed for b in bodies] == [True, True]


def test_empty_objects_put_get_and_head():
    async def main():
        app, _ = make_app()
        await put_bucket(app)
        put = await call(app, "PUT", "/bkt/empty", headers={"Content-Length": "0"})
        get = await call(app, "GET", "/bkt/empty")
        head = await call(app, "HEAD", "/bkt/empty")
        ranged = await call(app, "GET", "/bkt/empty", headers={"Range": "bytes=0-"})
        return put, get, head, ranged

    put, get, head, ranged = run(main)
    assert put.headers["etag"] == '"d41d8cd98f00b204e9800998ecf8427e"'
    assert (get.status, get.body, get.headers["content-length"]) == (200, b"", "0")
    assert (head.status, head.headers["content-length"]) == (200, "0")
    assert (ranged.status, ranged.code) == (416, "InvalidRange")


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ("deflate, gzip", "deflate, gzip"),
        ("aws-chunked, deflate, gzip", "deflate, gzip"),
        ("deflate, gzip,aws-chunked", "deflate, gzip"),
        ("AWS-Chunked", None),
        ("gzip", "gzip"),
    ],
)
def test_content_encoding_keeps_the_clients_spelling_without_aws_chunked(sent, stored):
    from titans3.s3.handlers_object import extract_meta

    assert extract_meta({"content-encoding": sent}).get("content-encoding") == stored
