"""The S3 app's request pipeline (titans3.s3.app): authentication, dispatch, the
one error path, response invariants, streaming, addressing, the admin API."""

from __future__ import annotations

import hashlib
import json
import logging

import pytest
import trio
from botocore.auth import S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from .memstore import MemStore
from .s3harness import (
    HOST,
    QUEUE_MESSAGES,
    ROOT,
    ROOT_SECRET,
    USER,
    USER_SECRET,
    AsgiExchange,
    Signer,
    asgi_scope,
    call,
    make_app,
    put_bucket,
    run,
    send_raw,
)


def test_every_response_carries_request_id_headers_and_server():
    async def main():
        app, _ = make_app()
        for resp in (await call(app, "GET", "/"), await call(app, "GET", "/nobucket")):
            assert len(resp.headers["x-amz-request-id"]) == 16
            assert resp.headers["x-amz-id-2"]
            assert resp.headers["server"] == "TitanS3"
            if resp.status >= 400:
                assert resp.xml().findtext("RequestId") == resp.headers["x-amz-request-id"]
                assert resp.xml().findtext("HostId") == resp.headers["x-amz-id-2"]

    run(main)


def test_head_object_keeps_content_length_and_sends_no_body():
    async def main():
        app, _ = make_app()
        await put_bucket(app)
        await call(app, "PUT", "/bkt/k", body=b"z" * 12345)
        h = await call(app, "HEAD", "/bkt/k")
        assert h.status == 200
        assert h.body == b""
        assert [v for k, v in h.raw_headers if k.lower() == "content-length"] == ["12345"]
        assert h.headers["etag"] == f'"{hashlib.md5(b"z" * 12345).hexdigest()}"'

    run(main)


def test_head_errors_have_the_status_and_no_body():
    async def main():
        app, _ = make_app()
        await put_bucket(app)
        missing = await call(app, "HEAD", "/bkt/missing")
        assert missing.status == 404 and missing.body == b""
        no_bucket = await call(app, "HEAD", "/nobucket")
        assert no_bucket.status == 404 and no_bucket.body == b""

    run(main)


def test_wrong_signature_is_403_signature_does_not_match_without_traceback(caplog):
    async def main():
        app, _ = make_app()
        return await call(app, "GET", "/", secret="not-the-secret")

    with caplog.at_level(logging.DEBUG):
        r = run(main)
    assert r.status == 403 and r.code == "SignatureDoesNotMatch"
    assert r.headers["content-type"] == "application/xml"
    assert not [rec for rec in caplog.records if rec.exc_info]


def test_unknown_access_key_and_anonymous_requests_are_refused():
    async def main():
        app, _ = make_app()
        unknown = await call(app, "GET", "/", key="AKIANOBODY0000000000")
        anonymous = await call(app, "GET", "/", sign=False)
        return unknown, anonymous

    unknown, anonymous = run(main)
    assert (unknown.status, unknown.code) == (403, "InvalidAccessKeyId")
    assert (anonymous.status, anonymous.code) == (403, "AccessDenied")


def test_a_browser_form_post_is_postobject_not_an_anonymous_request():
    """The form carries the credentials: 501 as documented, before authentication;
    a form POST that is not PostObject (a key path) is still anonymous."""
    form = {"Content-Type": "multipart/form-data; boundary=b"}
    body = b'--b\r\nContent-Disposition: form-data; name="key"\r\n\r\nk\r\n--b--\r\n'

    async def main():
        app, _ = make_app()
        await put_bucket(app, "forms")
        post = await call(app, "POST", "/forms", headers=form, body=body, sign=False)
        elsewhere = await call(app, "POST", "/forms/k", headers=form, body=body, sign=False)
        return post, elsewhere

    post, elsewhere = run(main)
    assert (post.status, post.code) == (501, "NotImplemented")
    assert post.headers["x-amz-request-id"]
    assert (elsewhere.status, elsewhere.code) == (403, "AccessDenied")


def test_unknown_bucket_is_404_no_such_bucket_with_resource(caplog):
    async def main():
        app, _ = make_app()
        return await call(app, "GET", "/nobucket", "list-type=2")

    with caplog.at_level(logging.DEBUG):
        r = run(main)
    assert (r.status, r.code) == (404, "NoSuchBucket")
    assert r.xml().findtext("Resource") == "/nobucket"
    assert r.xml().findtext("BucketName") == "nobucket"
    assert not [rec for rec in caplog.records if rec.exc_info]


def test_unimplemented_operation_is_501_not_implemented():
    async def main():
        app, _ = make_app()
        await put_bucket(app)
        return await call(app, "GET", "/bkt", "replication")

    r = run(main)
    assert (r.status, r.code) == (501, "NotImplemented")
    assert "GetBucketReplication" in r.xml().findtext("Message")


def test_method_s3_lacks_is_405_xml():
    async def main():
        app, _ = make_app()
        return await call(app, "PATCH", "/bkt/k")

    r = run(main)
    assert (r.status, r.code) == (405, "MethodNotAllowed")


def test_unexpected_exception_is_500_internal_error_and_one_logged_traceback(caplog):
    async def main():
        app, store = make_app()
        store.fail_with = RuntimeError("disk on fire: secret detail")
        return await call(app, "GET", "/")

    with caplog.at_level(logging.DEBUG):
        r = run(main)
    assert (r.status, r.code) == (500, "InternalError")
    assert b"disk on fire" not in r.body and b"Traceback" not in r.body
    errors = [rec for rec in caplog.records if rec.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info is not None
    assert r.headers["x-amz-request-id"] in errors[0].getMessage()


def test_s3_errors_inside_an_exception_group_keep_their_code():
    async def main():
        app, store = make_app()
        from titans3.core.errors import SlowDown

        store.fail_with = ExceptionGroup("quorum", [SlowDown(), SlowDown()])
        return await call(app, "GET", "/")

    r = run(main)
    assert (r.status, r.code) == (503, "SlowDown")


@pytest.mark.parametrize(
    ("headers", "payload"),
    [
        ({"Content-Length": "abc"}, None),
        ({"Content-Length": "-5"}, None),
        ({"x-amz-decoded-content-length": "ten", "Content-Encoding": "aws-chunked"},
         "STREAMING-UNSIGNED-PAYLOAD-TRAILER"),
    ],
)
def test_malformed_length_headers_are_400_with_an_s3_error_body(headers, payload):
    async def main():
        app, _ = make_app()
        await put_bucket(app)
        return await call(app, "PUT", "/bkt/k", headers=headers, payload=payload or "UNSIGNED-PAYLOAD")

    r = run(main)
    assert r.status == 400 and r.code == "InvalidArgument"


def test_requests_signed_for_another_region_name_the_right_one():
    async def main():
        app, _ = make_app(region="eu-central-1")
        return await call(app, "GET", "/")  # signed for us-east-1

    r = run(main)
    assert (r.status, r.code) == (400, "AuthorizationHeaderMalformed")
    assert r.xml().findtext("Region") == "eu-central-1"


def test_upload_backpressure_bounds_what_is_buffered():
    """With a slow store the network may not run ahead of it by more than what is
    in flight: one block being hashed and the server's 10-message queue -- the
    app receives a message only when the store asks for more.  (Without
    backpressure: the whole 32 MiB.)"""
    message = 64 * 1024
    total = 32 * 1024 * 1024

    async def main():
        store = MemStore()

        async def slow(n: int) -> None:
            await trio.sleep(n / 200e6)  # a store writing at 200 MB/s

        store.chunk_delay = slow
        app, _ = make_app(store)
        await put_bucket(app)
        request = AWSRequest(method="PUT", url=f"http://{HOST}/bkt/big",
                             headers={"Host": HOST, "Content-Length": str(total)}, data=b"")  # fmt: skip
        Signer(Credentials(ROOT, ROOT_SECRET), "UNSIGNED-PAYLOAD").add_auth(request)
        exchange = AsgiExchange(app, asgi_scope("PUT", "/bkt/big", "", dict(request.headers.items())))
        ahead = 0
        chunk = b"\0" * message

        class Measured(list):
            def __iter__(self):
                for sent, c in enumerate(super().__iter__(), 1):
                    nonlocal ahead
                    ahead = max(ahead, sent * message - store.consumed)
                    yield c

        resp = await exchange.run(Measured([chunk] * (total // message)))
        assert resp.status == 200
        assert len(store.buckets["bkt"].objects["big"].data) == total
        return ahead

    ahead = run(main)
    assert ahead <= (QUEUE_MESSAGES + 4) * message, f"the network ran {ahead} bytes ahead"


def test_s3_path_has_no_web_framework():
    """The S3 app is a plain ASGI callable; Quart stays out of the hot path (and so
    do its 16 MiB body limit and 60 s timeouts)."""
    import quart

    app, _ = make_app()
    assert not isinstance(app, quart.Quart)
    assert callable(app)


def test_virtual_host_style_with_a_configured_domain():
    async def main():
        app, _ = make_app(domain="s3.example.test")
        assert (await call(app, "PUT", "/", host="vbkt.s3.example.test")).status == 200
        assert (await call(app, "PUT", "/k", host="vbkt.s3.example.test", body=b"v")).status == 200
        return await call(app, "GET", "/vbkt/k", host="s3.example.test")

    r = run(main)
    assert (r.status, r.body) == (200, b"v")


def test_presigned_get_url_works():
    async def main():
        app, _ = make_app()
        await put_bucket(app)
        await call(app, "PUT", "/bkt/k", body=b"shared")
        request = AWSRequest(method="GET", url=f"http://{HOST}/bkt/k", headers={})
        S3SigV4QueryAuth(Credentials(ROOT, ROOT_SECRET), "s3", "us-east-1", expires=60).add_auth(request)
        query = request.url.partition("?")[2]
        return await send_raw(app, "GET", "/bkt/k", query, {"Host": HOST}, [b""])

    r = run(main)
    assert (r.status, r.body) == (200, b"shared")


def test_admin_info_is_json_for_the_root_key_only():
    async def main():
        app, _ = make_app()
        root = await call(app, "GET", "/titans3/admin/v1/info")
        user = await call(app, "GET", "/titans3/admin/v1/info", key=USER, secret=USER_SECRET)
        unknown = await call(app, "GET", "/titans3/admin/v1/nothing")
        disabled_app, _ = make_app(admin=None)
        disabled = await call(disabled_app, "GET", "/titans3/admin/v1/info")
        return root, user, unknown, disabled

    root, user, unknown, disabled = run(main)
    assert root.status == 200 and root.headers["content-type"] == "application/json"
    assert json.loads(root.body) == {
        "host": "node-1",
        "version": "0.1.0",
        "ec": {"k": 4, "m": 2},
        "drives": [{"drive_id": "d1", "path": "/srv/d1", "state": "online", "capacity": 1000,
                    "used": 400, "free": 600, "errors": 0}],
    }  # fmt: skip
    assert (user.status, user.code) == (403, "AccessDenied")
    assert (unknown.status, unknown.code) == (501, "NotImplemented")
    assert (disabled.status, disabled.code) == (501, "NotImplemented")


def test_non_root_keys_use_the_s3_api():
    async def main():
        app, _ = make_app()
        return await call(app, "GET", "/", key=USER, secret=USER_SECRET)

    assert run(main).status == 200
