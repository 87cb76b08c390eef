"""titans3.s3.asgi: the lean ASGI side of the S3 app -- lazy bodies, errors before the
status line, streams that stop when the client leaves, one message for small bodies."""

from __future__ import annotations

import logging

import trio

from titans3.core.errors import QuorumError
from titans3.objects.types import GetResult
from titans3.s3.asgi import LazyBody

from .memstore import MemStore
from .s3harness import AsgiExchange, Signer, asgi_scope, call, make_app, put_bucket, run


def _signed_get(path: str) -> dict[str, str]:
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    from .s3harness import HOST, ROOT, ROOT_SECRET

    request = AWSRequest(method="GET", url=f"http://{HOST}{path}", headers={"Host": HOST})
    Signer(Credentials(ROOT, ROOT_SECRET), None).add_auth(request)
    return dict(request.headers.items())


class _FailingStore(MemStore):
    """A store whose GET streams fail: at once, or after ``good`` chunks."""

    def __init__(self, good: int) -> None:
        super().__init__(read_chunk=1024)
        self.good = good
        self.closed = 0

    async def get_object(self, *args, **kwargs) -> GetResult:  # noqa: ANN002, ANN003
        result = await super().get_object(*args, **kwargs)
        inner, store = result.body, self

        async def failing():
            try:
                n = 0
                async for chunk in inner:
                    if n == store.good:
                        raise QuorumError("too few fragments of this version are reachable")
                    n += 1
                    yield chunk
            finally:
                store.closed += 1

        result.body = failing()
        return result


def test_a_stream_that_fails_before_its_first_byte_is_a_503_xml_answer():
    async def main():
        store = _FailingStore(good=0)
        app, _ = make_app(store)
        await put_bucket(app)
        await call(app, "PUT", "/bkt/k", body=b"x" * 10_000)
        return await call(app, "GET", "/bkt/k"), store

    r, store = run(main)
    assert (r.status, r.code) == (503, "ServiceUnavailable")
    assert r.headers["content-length"] == str(len(r.body))
    assert r.headers["x-amz-request-id"] and r.headers["server"] == "TitanS3"
    assert store.closed == 1


def test_a_stream_that_fails_later_cuts_the_answer_and_logs_once(caplog):
    async def main():
        store = _FailingStore(good=3)
        app, _ = make_app(store)
        await put_bucket(app)
        await call(app, "PUT", "/bkt/k", body=b"x" * 10_000)
        exchange = AsgiExchange(app, asgi_scope("GET", "/bkt/k", "", _signed_get("/bkt/k")))
        with trio.fail_after(5):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(app, exchange.scope, exchange.receive, exchange.send)
                await exchange.send_body([])
        return exchange, store

    with caplog.at_level(logging.ERROR, logger="titans3.s3"):
        exchange, store = run(main)
    assert exchange.status == 200 and len(exchange.body) == 3 * 1024
    assert not exchange.finished.is_set()  # no final message: hypercorn closes the connection
    assert [r.levelname for r in caplog.records] == ["ERROR"]
    assert "aborted" in caplog.records[0].getMessage() and store.closed == 1


def test_a_client_that_leaves_mid_stream_stops_it():
    async def main():
        store = MemStore(read_chunk=1024)
        app, _ = make_app(store)
        await put_bucket(app)
        await call(app, "PUT", "/bkt/k", body=b"x" * 1_000_000)
        exchange = AsgiExchange(app, asgi_scope("GET", "/bkt/k", "", _signed_get("/bkt/k")))
        sent: list[int] = []

        async def send(message: dict) -> None:
            if message["type"] == "http.response.body":
                sent.append(len(message.get("body", b"")))
                if len(sent) == 3:  # the client goes away
                    await exchange._to_app.send({"type": "http.disconnect"})
                await trio.sleep(0.001)

        with trio.fail_after(5):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(app, exchange.scope, exchange.receive, send)
                await exchange._to_app.send({"type": "http.request", "body": b"", "more_body": False})
        return sent

    sent = run(main)
    assert 3 <= len(sent) < 100  # stopped soon, not after all 977 chunks


def test_a_small_body_goes_out_as_one_message():
    async def main():
        app, _ = make_app(MemStore(read_chunk=64 * 1024))
        await put_bucket(app)
        await call(app, "PUT", "/bkt/k", body=b"y" * 4096)
        messages: list[dict] = []
        exchange = AsgiExchange(app, asgi_scope("GET", "/bkt/k", "", _signed_get("/bkt/k")))

        async def send(message: dict) -> None:
            messages.append(message)
            await exchange.send(message)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(app, exchange.scope, exchange.receive, send)
            await exchange.send_body([])
        return messages

    messages = run(main)
    assert [m["type"] for m in messages] == ["http.response.start", "http.response.body"]
    assert messages[1]["body"] == b"y" * 4096 and not messages[1].get("more_body", False)


def test_the_body_is_received_only_when_read():
    async def main():
        received = []

        async def receive():
            received.append(1)
            return {"type": "http.request", "body": b"ab", "more_body": len(received) < 3}

        body = LazyBody(receive, [(b"content-length", b"6")])
        assert received == [] and body.declared
        chunks = [c async for c in body]
        return chunks, received, body

    chunks, received, body = run(main)
    assert chunks == [b"ab", b"ab", b"ab"] and len(received) == 3 and body.complete
    assert not LazyBody(None, [(b"content-length", b"0")]).declared  # type: ignore[arg-type]
