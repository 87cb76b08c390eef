"""A front's ASGI app: its own S3 app, except for requests the owner must serve.

Theory of operation
-------------------
Most S3 operations run in the front: the S3 app parses, authenticates,
authorizes and renders, and only the object-layer calls cross to the owner
(``proxy.StoreProxy``).  A few requests are forwarded whole to the owner's
S3 app instead (``service.OwnerService._http``):

* the admin API (``/titans3/admin/v1/...``): it drives workers, drives and
  the cluster, which only the owner has;
* the IAM query API: it changes the directory, whose writer is the owner;
  the owner answers only once every front has the change;
* CopyObject and UploadPartCopy: their handlers give the object layer a
  ``check_source`` callback evaluated mid-copy, which cannot cross a
  process boundary -- and a copy moves its data inside the owner anyway;
  CompleteMultipartUpload likewise (its ``checksums`` callback is called
  with the parts the owner chose).

The forwarded request keeps its raw path, query and headers (SigV4 signs
those bytes), its body streams to the owner one chunk per pull, and the
answer streams back the same way.  What the owner's app learned about the
request (operation, bucket, key) comes back with the answer, so this
process's observer counts and logs it like any other.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from titans3.core import metrics
from titans3.core.errors import S3Error, ServiceUnavailable
from titans3.front.rpc import Peer, PeerGone
from titans3.s3 import auth as s3auth
from titans3.s3 import iam_api, routing

__all__ = ["OWNER_OPS", "FrontApp"]

OWNER_OPS = frozenset({"Admin", "CopyObject", "UploadPartCopy", "CompleteMultipartUpload"})
_SCOPE_KEYS = ("type", "method", "path", "raw_path", "query_string", "headers", "client", "scheme",
               "http_version", "root_path")


class FrontApp:
    def __init__(self, s3_app: Any, peer: Peer, domain: str | None) -> None:
        self.s3_app = s3_app
        self.peer = peer
        self.domain = domain

    def owner_serves(self, scope: dict[str, Any]) -> bool:
        method = scope["method"].upper()
        raw_path, raw_query = s3auth.raw_target(
            scope.get("raw_path") or scope["path"].encode("utf-8"), scope.get("query_string", b"")
        )
        headers = s3auth.headers_from_scope(scope["headers"])
        if iam_api.is_iam_request(method, raw_path, headers):
            return True
        try:
            route = routing.classify(method, raw_path, routing.parse_query(raw_query), headers, self.domain)
        except S3Error:
            return False  # the front's app answers the error
        return route.op in OWNER_OPS

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not self.owner_serves(scope):
            await self.s3_app(scope, receive, send)
            return
        await self.forward(scope, receive, send)

    async def forward(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        async def body() -> AsyncIterator[bytes]:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise ConnectionResetError("the client went away")
                if message.get("body"):
                    yield message["body"]
                if not message.get("more_body", False):
                    return

        sent = {k: scope[k] for k in _SCOPE_KEYS if k in scope}
        try:
            (status, headers, note), down = await self.peer.call("http", sent, up=body())
        except PeerGone:
            await _unavailable(send)
            return
        metrics.annotate(scope, **note)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        try:
            if down is not None:
                async for chunk in down:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except PeerGone:
            return  # the owner died mid-answer: the client sees a short body
        finally:
            if down is not None:
                await down.aclose()


async def _unavailable(send: Any) -> None:
    from titans3.s3 import xml

    err = ServiceUnavailable("The storage process is not answering; retry.")
    body = xml.error(err.code, err.message, resource="/", request_id="", host_id="")
    await send({"type": "http.response.start", "status": 503,
                "headers": [(b"content-type", b"application/xml"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body, "more_body": False})
