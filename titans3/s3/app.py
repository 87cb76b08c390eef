"""The S3 endpoint: an ASGI application with S3 dispatch and nothing else.

Theory of operation
-------------------
One entry point for every request.  S3 routes on the method and the query
string (``?uploads``, ``?list-type=2``), and its keys contain what web routers
rewrite (``//``, trailing ``/``, ``%2F``), so there is no URL router and no
web framework: :meth:`S3App.__call__` is the ASGI application hypercorn runs,
:meth:`S3App.dispatch` the pipeline, which

1. reads the request exactly as it came off the wire from the ASGI scope
   (``raw_path``, ``query_string``, raw headers) -- SigV4 signs those bytes;
2. authenticates it (``titans3.s3.auth``: SigV4, SigV2, or no credentials);
3. classifies it into an AWS operation (``titans3.s3.routing``);
4. authorizes it and calls the handler registered under that name
   (``titans3.s3.authorize.AccessControl.run`` around ``handlers_*.HANDLERS``;
   a name without a handler is 501 NotImplemented), or the admin API (root
   only); the IAM query API (``aws iam ...``) is recognised before step 2;
5. turns the handler's framework-free ``Reply`` -- or the ``S3Error`` it
   raised -- into the finished answer.

Every request that reached step 2 is written to the audit log (``titans3.accounts.audit``)
with its caller and final status.

Step 5 is the single place for the invariants: every response carries
``x-amz-request-id``, ``x-amz-id-2`` and ``Server: TitanS3``; an ``S3Error``
becomes its XML body and status and is never logged with a traceback; any
other exception is a 500 ``InternalError`` for the client and exactly one
ERROR log line with the traceback (and the request id) for the operator; HEAD
answers keep the Content-Length of the resource and send no body; streamed
bodies always have an explicit Content-Length.

The wire side -- receiving the body lazily (backpressure, and the
``Expect: 100-continue`` answer), sending the reply, reading a stream's first
chunk before the status line, stopping a stream when the client leaves -- is
``titans3.s3.asgi``.  Quart is kept where it earns its keep (the status page,
the peer API); on this path a profile showed it costing more than the S3 work.

Deployment notes for whoever runs this app under hypercorn: set
``include_server_header = False`` (hypercorn would add a second ``Server``)
and install ``titans3.core.http11`` (AWS's ``100-continue`` answers and
reason phrases; ``titans3.daemon`` does).
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any
from urllib.parse import unquote

from titans3.core import metrics
from titans3.core.errors import InternalError, NotImplementedS3, S3Error
from titans3.s3 import admin as admin_api
from titans3.s3 import (
    asgi,
    audit_hook,
    handlers_access,
    handlers_bucket,
    handlers_bucket_config,
    handlers_dataprot,
    handlers_multipart,
    handlers_object,
    handlers_post,
    iam_api,
    object_ops,
    request_ids,
    routing,
    xml,
)
from titans3.s3 import auth as s3auth
from titans3.s3.auth import Credentials
from titans3.s3.authorize import AccessControl, StaticDirectory
from titans3.s3.context import XML_CONTENT_TYPE, Handler, Reply, S3Context, S3Settings

log = logging.getLogger("titans3.s3")

SERVER = "TitanS3"

HANDLERS: dict[str, Handler] = {
    **handlers_bucket.HANDLERS,
    **handlers_object.HANDLERS,
    **handlers_multipart.HANDLERS,
    **handlers_bucket_config.HANDLERS,
    **handlers_dataprot.HANDLERS,
    **object_ops.HANDLERS,
    **handlers_access.HANDLERS,
    **handlers_post.HANDLERS,
}


def owner_for(root_access_key: str) -> xml.Owner:
    """The fixed owner shown in listings: an opaque 64-hex id derived from the root key."""
    digest = hashlib.sha256(b"titans3-owner\0" + root_access_key.encode()).hexdigest()
    return xml.Owner(digest, "titans3")


class Request:
    """One request as dispatch sees it: the ASGI scope, the lazily received body
    and the ids every answer to it carries."""

    __slots__ = ("body", "host_id", "request_id", "scope")

    def __init__(self, scope: dict[str, Any], body: asgi.LazyBody) -> None:
        self.scope = scope
        self.body = body
        self.request_id, self.host_id = request_ids.next_ids()


class S3App:
    """The S3 endpoint as an ASGI application (see module doc)."""

    def __init__(
        self,
        *,
        store: Any,
        credentials: Credentials,
        settings: S3Settings,
        admin: Any = None,
        access: AccessControl | None = None,
    ) -> None:
        self.store = store
        self.credentials = credentials
        self.settings = settings
        self.admin = admin
        self.access = access or AccessControl(
            directory=StaticDirectory(credentials, settings.owner.id, settings.owner.display_name), store=store)
        self.handlers: dict[str, Handler] = dict(HANDLERS)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await asgi.lifespan(receive, send)
            return
        if scope["type"] != "http":
            return  # no websockets on an S3 endpoint: hypercorn closes the connection
        request = Request(scope, asgi.LazyBody(receive, scope["headers"]))
        method: str = scope["method"].upper()
        reply = await self.dispatch(request)

        def late_error(exc: Exception) -> Reply:  # a stream that failed before its first byte
            resource = unquote(scope.get("path", "/"))
            err = self._error_reply(exc, method, resource, request.request_id, request.host_id)
            return self._response(err, method, request.request_id, request.host_id)

        await asgi.send_reply(send, request.body, reply, method, request.request_id, late_error)

    # ------------------------------------------------------------ dispatch
    async def dispatch(self, request: Request) -> Reply:
        scope = request.scope
        method: str = scope["method"].upper()
        request_id = request.request_id
        host_id = request.host_id
        raw_path, raw_query = s3auth.raw_target(
            scope.get("raw_path") or scope["path"].encode("utf-8"), scope.get("query_string", b"")
        )
        headers = s3auth.headers_from_scope(scope["headers"])
        resource = unquote(raw_path)
        route: routing.Route | None = None
        auth_result = None
        client = (scope.get("client") or ("", 0))[0] or None
        if iam_api.is_iam_request(method, raw_path, headers):
            reply = await iam_api.handle(self.access, method, raw_path, raw_query, headers, request.body,
                                         request_id=request_id, client=client, scheme=scope.get("scheme", "http"))  # fmt: skip
            return self._response(reply, method, request_id, host_id)
        try:
            if method == "OPTIONS":  # CORS preflight: browsers send it without credentials
                route = routing.classify(
                    method, raw_path, routing.parse_query(raw_query), headers, self.settings.domain
                )
                resource = route.resource
                reply = await handlers_bucket_config.preflight_reply(self.store, route, headers)
                return self._response(reply, method, request_id, host_id)
            auth_result = s3auth.authenticate(
                method, raw_path, raw_query, headers,
                credentials=self.access.directory, region=self.settings.region,
                sigv2_enabled=self.settings.sigv2, anonymous=True,
                vhost_bucket=routing.vhost_bucket(headers.get("host"), self.settings.domain),
            )  # fmt: skip
            route = routing.classify(
                method, raw_path, routing.parse_query(raw_query), headers, self.settings.domain
            )
            resource = route.resource
            metrics.annotate(scope, op=route.op, bucket=route.bucket, key=route.key,
                             requester=auth_result.access_key)  # core/metrics.py: counters, access log
            ctx = S3Context(
                method=method, route=route, headers=headers, auth=auth_result, store=self.store,
                settings=self.settings, request_id=request_id, scheme=scope.get("scheme", "http"),
                raw_body=request.body, admin=self.admin, client=client,
            )  # fmt: skip
            if route.op == "Admin":
                s3auth.require_root(auth_result, self.credentials)
                reply = await admin_api.handle(ctx)
            else:
                handler = self.handlers.get(route.op)
                if handler is None:
                    raise NotImplementedS3(f"{route.op} is not implemented.")
                reply = await self.access.run(ctx, handler)
        except Exception as exc:  # noqa: BLE001 -- the one place errors become responses
            reply = self._error_reply(exc, method, resource, request_id, host_id)
        audit_hook.record(self.access, route, auth_result, headers, client, reply, request_id, method)
        if "origin" in headers and method != "OPTIONS":  # CORS headers, also on errors
            bucket = route.bucket if route is not None else _quiet_bucket(
                method, raw_path, raw_query, headers, self.settings.domain
            )
            await handlers_bucket_config.add_cors_headers(reply, self.store, bucket, headers, method)
        return self._response(reply, method, request_id, host_id)

    def _error_reply(
        self, exc: Exception, method: str, resource: str, request_id: str, host_id: str
    ) -> Reply:
        err = _s3_error_of(exc)
        if err is None:
            log.error("internal error in %s %s (request %s)", method, resource, request_id,
                      exc_info=exc)  # fmt: skip
            err = InternalError()
        elif err.status >= 500:
            log.warning("%s %s failed (request %s): %s", method, resource, request_id, err)
        else:
            log.debug("%s %s -> %s (request %s)", method, resource, err.code, request_id)
        body = xml.error(
            err.code, err.message, resource=resource, request_id=request_id, host_id=host_id,
            extra=err.extra,
        )  # fmt: skip
        reply = Reply(err.status, [("Content-Type", XML_CONTENT_TYPE)], body)
        if err.code == "InvalidRange" and "ActualObjectSize" in err.extra:
            reply.header("Content-Range", f"bytes */{err.extra['ActualObjectSize']}")
        for name, value in err.headers:
            reply.header(name, value)
        if method == "HEAD":
            reply.length = None  # errors on HEAD: status only, no body, no length
        return reply

    def _response(self, reply: Reply, method: str, request_id: str, host_id: str) -> Reply:
        """``reply`` with the headers every answer carries (module doc, step 5)."""
        reply.headers.append(("x-amz-request-id", request_id))
        reply.headers.append(("x-amz-id-2", host_id))
        reply.headers.append(("Server", SERVER))
        return reply


def _quiet_bucket(
    method: str, raw_path: str, raw_query: str, headers: dict[str, str], domain: str | None
) -> str | None:
    """The bucket a request names, or None when it cannot be classified."""
    try:
        return routing.classify(
            method, raw_path, routing.parse_query(raw_query), headers, domain
        ).bucket
    except S3Error:
        return None


def _s3_error_of(exc: BaseException) -> S3Error | None:
    """The S3Error to report, also from inside an exception group of only S3Errors."""
    if isinstance(exc, S3Error):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        leaves = list(_leaves(exc))
        if leaves and all(isinstance(e, S3Error) for e in leaves):
            return leaves[0]  # type: ignore[return-value]
    return None


def _leaves(group: BaseExceptionGroup) -> Any:
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            yield from _leaves(exc)
        else:
            yield exc


def create_s3_app(
    *,
    store: Any,
    credentials: Credentials,
    region: str = "us-east-1",
    domain: str | None = None,
    admin: Any = None,
    directory: Any = None,
    audit: Any = None,
    sigv2: bool = True,
    lifecycle_day: float = 86400.0,
) -> S3App:
    """The S3 endpoint for ``store``.

    ``credentials``: ``get_secret(access_key) -> str | None`` and
    ``root_access_key``.  ``domain`` enables virtual-host-style addressing
    (``bucket.<domain>``).  ``admin``: object with ``async info() -> HostInfo``
    serving ``/titans3/admin/v1/info`` to the root key; None disables the admin API.
    ``directory``: the account's users and keys (``titans3.accounts.directory``);
    None: every key ``credentials`` knows is the account root.  ``audit``: the
    audit log every request is recorded in.  ``sigv2``: accept SigV2.
    """
    owner = owner_for(credentials.root_access_key)
    if directory is not None:
        owner = xml.Owner(directory.account.canonical_id, directory.account.name)
    settings = S3Settings(region=region, owner=owner, domain=domain, sigv2=sigv2, lifecycle_day=lifecycle_day)
    access = None
    if directory is not None or audit is not None:
        access = AccessControl(directory=directory or StaticDirectory(credentials, owner.id), store=store,
                               audit=audit)  # fmt: skip
    return S3App(store=store, credentials=credentials, settings=settings, admin=admin, access=access)


__all__ = ["S3App", "create_s3_app", "owner_for"]
