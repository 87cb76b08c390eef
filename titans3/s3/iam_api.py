"""The IAM query API on the S3 port: what ``aws iam ... --endpoint-url`` sends.

Theory of operation
-------------------
IAM is a *query* API: ``POST /`` with a form-encoded body
(``Action=CreateUser&UserName=alice&Version=2010-05-08``), SigV4-signed for
service ``iam``, answered with ``<ActionResponse><ActionResult>...`` XML in
IAM's namespace, errors as ``<ErrorResponse><Error><Type>Sender</Type>...``.
:func:`is_iam_request` recognises such a request before S3 routing (an S3
request never POSTs a form to ``/``); :func:`handle` reads the bounded body,
verifies the signature over its hash (IAM clients send no
``x-amz-content-sha256``), and runs the action against the directory
(``titans3.accounts.directory``).

Who may call: the root user; a user whose identity policies allow
``iam:<Action>`` on ``arn:aws:iam::<account>:user/<name>`` (AWS's own rule,
so an operator can delegate user management); nobody anonymously.

Actions: CreateUser, GetUser, ListUsers, DeleteUser, CreateAccessKey,
ListAccessKeys, UpdateAccessKey, DeleteAccessKey, PutUserPolicy,
GetUserPolicy, ListUserPolicies, DeleteUserPolicy.  Others answer IAM's
``InvalidAction``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import AsyncIterable, Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl, quote

from titans3.core.errors import S3Error
from titans3.iam.evaluate import Decision, decide
from titans3.s3 import sigv4
from titans3.s3.context import Reply
from titans3.s3.xml import escape

__all__ = ["handle", "is_iam_request"]

NS = "https://iam.amazonaws.com/doc/2010-05-08/"
MAX_BODY = 64 * 1024


class IamApiError(Exception):
    def __init__(self, code: str, message: str, status: int = 400, sender: bool = True) -> None:
        super().__init__(message)
        self.code, self.message, self.status, self.sender = code, message, status, sender


# S3 error codes the object layer raises under the IAM directory, as IAM
# spells them: an IAM client (botocore) decides to retry by IAM's codes.
_IAM_CODE_OF = {"OperationAborted": "ConcurrentModification"}


def iam_error_of(e: S3Error) -> IamApiError:
    """The IAM error for an object-layer failure: racing updates that kept
    losing are IAM's ``ConcurrentModification`` (409, retry); a server-side
    failure keeps its status (503 stays retryable) as IAM's ``ServiceFailure``
    (fault ``Receiver``)."""
    if e.status >= 500:
        return IamApiError("ServiceFailure", e.message, e.status, sender=False)
    return IamApiError(_IAM_CODE_OF.get(e.code, e.code), e.message, e.status)


def is_iam_request(method: str, raw_path: str, headers: Mapping[str, str]) -> bool:
    if method != "POST" or raw_path not in ("/", ""):
        return False
    ctype = headers.get("content-type", "").lower()
    return ctype.startswith("application/x-www-form-urlencoded") and "/iam/aws4_request" in headers.get(
        "authorization", "")


def _iso(ns: int) -> str:
    return dt.datetime.fromtimestamp(ns / 1e9, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _el(name: str, value: str) -> str:
    return f"<{name}>{escape(value)}</{name}>"


def _user_xml(u: Any, account: str) -> str:
    return ("<Path>/</Path>" + _el("UserName", u.name) + _el("UserId", u.user_id)
            + _el("Arn", u.arn(account)) + _el("CreateDate", _iso(u.created_ns)))  # fmt: skip


def _response(action: str, result: str, request_id: str) -> Reply:
    body = (f'<{action}Response xmlns="{NS}">'
            + (f"<{action}Result>{result}</{action}Result>" if result is not None else "")
            + f"<ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata></{action}Response>")  # fmt: skip
    return Reply(200, [("Content-Type", "text/xml")], body.encode())


def _error(e: IamApiError, request_id: str) -> Reply:
    body = (f'<ErrorResponse xmlns="{NS}"><Error><Type>{"Sender" if e.sender else "Receiver"}</Type>'
            f"{_el('Code', e.code)}{_el('Message', e.message)}</Error>"
            f"<RequestId>{request_id}</RequestId></ErrorResponse>")  # fmt: skip
    return Reply(e.status, [("Content-Type", "text/xml")], body.encode())


async def _read(body: AsyncIterable[bytes]) -> bytes:
    out = bytearray()
    async for chunk in body:
        out += chunk
        if len(out) > MAX_BODY:
            raise IamApiError("ValidationError", "The request body is too large.")
    return bytes(out)


def _need(params: Mapping[str, str], name: str) -> str:
    value = params.get(name)
    if not value:
        raise IamApiError("ValidationError", f"1 validation error detected: Value at '{name[0].lower() + name[1:]}' "
                          "failed to satisfy constraint: Member must not be null")  # fmt: skip
    return value


Action = Callable[[Any, Any, Mapping[str, str]], Awaitable[str | None]]


async def _create_user(d: Any, who: Any, p: Mapping[str, str]) -> str:
    u = await d.create_user(_need(p, "UserName"))
    return f"<User>{_user_xml(u, d.account.id)}</User>"


async def _get_user(d: Any, who: Any, p: Mapping[str, str]) -> str:
    name = p.get("UserName") or who.identity.name
    if not name:  # the root user asking about itself
        a = d.account
        return (f"<User>{_el('UserId', a.id)}{_el('Arn', a.root_arn)}"
                f"<CreateDate>{_iso(0)}</CreateDate></User>")  # fmt: skip
    return f"<User>{_user_xml(d.user(name), d.account.id)}</User>"


async def _list_users(d: Any, who: Any, p: Mapping[str, str]) -> str:
    members = "".join(f"<member>{_user_xml(u, d.account.id)}</member>" for u in d.users())
    return f"<Users>{members}</Users><IsTruncated>false</IsTruncated>"


async def _delete_user(d: Any, who: Any, p: Mapping[str, str]) -> None:
    await d.delete_user(_need(p, "UserName"))
    return None


def _name_or_self(who: Any, p: Mapping[str, str]) -> str:
    name = p.get("UserName") or who.identity.name
    if not name:
        raise IamApiError("ValidationError", "The root user has no access keys here: name a user (UserName).")
    return name


async def _create_key(d: Any, who: Any, p: Mapping[str, str]) -> str:
    user, key, secret = await d.create_key(_name_or_self(who, p))
    return ("<AccessKey>" + _el("UserName", user.name) + _el("AccessKeyId", key.id) + _el("Status", key.status)
            + _el("SecretAccessKey", secret) + _el("CreateDate", _iso(key.created_ns)) + "</AccessKey>")  # fmt: skip


async def _list_keys(d: Any, who: Any, p: Mapping[str, str]) -> str:
    user = d.user(_name_or_self(who, p))
    members = "".join(
        "<member>" + _el("UserName", user.name) + _el("AccessKeyId", k.id) + _el("Status", k.status)
        + _el("CreateDate", _iso(k.created_ns)) + "</member>" for k in user.keys
    )  # fmt: skip
    return f"<UserName>{escape(user.name)}</UserName><AccessKeyMetadata>{members}</AccessKeyMetadata>" \
           "<IsTruncated>false</IsTruncated>"  # fmt: skip


async def _update_key(d: Any, who: Any, p: Mapping[str, str]) -> None:
    await d.set_key_status(_need(p, "AccessKeyId"), _need(p, "Status"), user=p.get("UserName"))
    return None


async def _delete_key(d: Any, who: Any, p: Mapping[str, str]) -> None:
    await d.delete_key(_need(p, "AccessKeyId"), user=p.get("UserName"))
    return None


async def _put_policy(d: Any, who: Any, p: Mapping[str, str]) -> None:
    await d.put_user_policy(_need(p, "UserName"), _need(p, "PolicyName"), _need(p, "PolicyDocument"))
    return None


async def _get_policy(d: Any, who: Any, p: Mapping[str, str]) -> str:
    user = d.user(_need(p, "UserName"))
    name = _need(p, "PolicyName")
    if name not in user.policies:
        raise IamApiError("NoSuchEntity", f"The user policy with name {name} cannot be found.", 404)
    # IAM returns the document URL-encoded (RFC 3986), as AWS documents.
    return (_el("UserName", user.name) + _el("PolicyName", name)
            + _el("PolicyDocument", quote(user.policies[name], safe="")))  # fmt: skip


async def _list_policies(d: Any, who: Any, p: Mapping[str, str]) -> str:
    user = d.user(_need(p, "UserName"))
    members = "".join(f"<member>{escape(n)}</member>" for n in sorted(user.policies))
    return f"<PolicyNames>{members}</PolicyNames><IsTruncated>false</IsTruncated>"


async def _delete_policy(d: Any, who: Any, p: Mapping[str, str]) -> None:
    await d.delete_user_policy(_need(p, "UserName"), _need(p, "PolicyName"))
    return None


ACTIONS: dict[str, Action] = {
    "CreateUser": _create_user, "GetUser": _get_user, "ListUsers": _list_users, "DeleteUser": _delete_user,
    "CreateAccessKey": _create_key, "ListAccessKeys": _list_keys, "UpdateAccessKey": _update_key,
    "DeleteAccessKey": _delete_key, "PutUserPolicy": _put_policy, "GetUserPolicy": _get_policy,
    "ListUserPolicies": _list_policies, "DeleteUserPolicy": _delete_policy,
}  # fmt: skip


def _authorize(control: Any, who: Any, action: str, params: Mapping[str, str]) -> None:
    if who.root:
        return
    account = control.directory.account.id
    name = params.get("UserName") or who.identity.name
    resource = f"arn:aws:iam::{account}:user/{name}" if name else "*"
    ctx = {"aws:username": [who.identity.name], "aws:userid": [who.identity.user_id]}
    if decide(who.policies, who.identity, f"iam:{action}", resource, ctx) is not Decision.ALLOW:
        raise IamApiError("AccessDenied", f"User: {who.identity.arn} is not authorized to perform: "
                          f"iam:{action} on resource: {resource}", 403)  # fmt: skip


async def handle(
    control: Any, method: str, raw_path: str, raw_query: str, headers: Mapping[str, str],
    body: AsyncIterable[bytes], *, request_id: str, client: str | None, scheme: str,
) -> Reply:  # fmt: skip
    action = "-"
    user = "unauthenticated"
    key = None
    status = 500
    try:
        raw = await _read(body)
        auth = sigv4.verify_request(method, raw_path, raw_query, headers,
                                    get_secret=control.directory.get_secret, now=dt.datetime.now(dt.UTC),
                                    service="iam", payload_sha256=hashlib.sha256(raw).hexdigest())  # fmt: skip
        key = auth.access_key
        who = control.caller(auth.access_key)
        user = who.identity.name or who.identity.kind
        params = dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
        action = params.get("Action", "")
        fn = ACTIONS.get(action)
        if fn is None:
            raise IamApiError("InvalidAction", f"Could not find operation {action} for version 2010-05-08")
        _authorize(control, who, action, params)
        if not hasattr(control.directory, "create_user"):
            raise IamApiError("ServiceFailure", "This endpoint has no user directory.", 500, sender=False)
        reply = _response(action, await fn(control.directory, who, params), request_id)
    except IamApiError as e:
        reply = _error(e, request_id)
    except S3Error as e:
        reply = _error(iam_error_of(e), request_id)
    except Exception as e:  # noqa: BLE001 -- the directory's typed errors, and never a traceback out
        code, message, st = getattr(e, "code", None), getattr(e, "message", None), getattr(e, "status", None)
        if code is None or message is None:
            raise
        reply = _error(IamApiError(code, message, st or 400), request_id)
    status = reply.status
    if control.audit is not None:
        control.audit.record({"user": user, "key": key, "src": client, "op": f"iam:{action}", "status": status,
                              "request_id": request_id, "scheme": scheme})  # fmt: skip
    return reply
