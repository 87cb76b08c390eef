"""Every request into the audit log: who, what, from where, with what outcome.

Called once per request by ``S3App.dispatch`` after the reply is known (the
IAM API records its own).  The record's fields are the issue's list: caller
(user name, ``root``, ``anonymous``, or ``unauthenticated`` when the
signature did not verify), access key id, source address, operation,
bucket/key (or admin path), status, bytes in (Content-Length) and out, and
the request id that also went to the client.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from titans3.s3.authorize import AccessControl

__all__ = ["record"]

_SECRET_ARGS = frozenset({"document"})  # long or sensitive admin arguments not copied into records


def _caller_name(control: AccessControl, auth: Any) -> str:
    if auth is None:
        return "unauthenticated"
    if not auth.access_key:
        return "anonymous"
    p = control.directory.principal(auth.access_key)
    if p is None:
        return "unknown"
    ident = p.identity
    return ident.name or ident.kind


def record(control: AccessControl, route: Any, auth: Any, headers: Mapping[str, str], client: str | None,
           reply: Any, request_id: str, method: str) -> None:  # fmt: skip
    """One audit record for a request that reached authentication."""
    if control.audit is None:
        return
    length = headers.get("content-length")
    control.audit.record({
        "user": _caller_name(control, auth), "key": auth.access_key or None if auth else None,
        "src": client, "op": route.op if route is not None else method,
        "bucket": route.bucket if route is not None else None,
        "object": route.key if route is not None and route.op != "Admin" else None,
        "admin": route.key if route is not None and route.op == "Admin" else None,
        "args": {k: v for k, v in route.query.items() if k not in _SECRET_ARGS} or None
        if route is not None and route.op == "Admin" else None,
        "status": reply.status, "bytes_in": int(length) if length and length.isdigit() else 0,
        "bytes_out": reply.length if isinstance(reply.length, int) else len(reply.body)
        if isinstance(reply.body, bytes) else 0, "request_id": request_id,
    })  # fmt: skip

