"""Admin API calls for users, access keys, the account and the audit log
(registered in :mod:`titans3.s3.admin`; ``titanctl user|key|audit`` calls them).

=======  ===================================  ==============================================
method   path (under /titans3/admin/)          what
=======  ===================================  ==============================================
GET      v1/users                             every user, with keys (no secrets) and policies
GET      v1/users/show ``?name=``              one user
POST     v1/users/create ``?name=[&email=]``   a new user
POST     v1/users/delete ``?name=[&force=1]``  delete (force: with its keys and policies)
POST     v1/users/disable|enable ``?name=``    every key of the user stops / works again
POST     v1/users/policy/put                  ``?user=&name=&document=``: an inline policy
POST     v1/users/policy/delete               ``?user=&name=``
POST     v1/keys/create ``?user=``             a new key; the answer holds its secret (once)
POST     v1/keys/rotate ``?user=``             a new key; the older active one is deactivated
POST     v1/keys/disable|enable|delete        ``?id=``
GET      v1/account                           account id, canonical id, Block Public Access
POST     v1/account/public-access-block       ``?BlockPublicAcls=true&...`` (delete: ``/delete``)
GET      v1/audit/tail ``?limit=&host=``       the last records of a host's chain
GET      v1/audit/verify                      every drive's copy of every chain, checked
=======  ===================================  ==============================================

The directory's typed errors (``NoSuchEntity``, ``EntityAlreadyExists``,
``LimitExceeded``, ``DeleteConflict``, ``MalformedPolicyDocument`` ...) come
back as S3-style error documents with IAM's codes and statuses.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from titans3.core.errors import InvalidArgument, NotImplementedS3, S3Error
from titans3.iam.publicaccess import XML_NAMES, PublicAccessBlock
from titans3.s3.context import S3Context

__all__ = ["ROUTES"]


def _arg(ctx: S3Context, name: str) -> str:
    value = ctx.query.get(name)
    if not value:
        raise InvalidArgument(f"Missing query parameter {name!r}", ArgumentName=name)
    return value


def _dir(ctx: S3Context) -> Any:
    d = getattr(ctx.admin, "iam", None)
    if d is None:
        raise NotImplementedS3("This endpoint has no user directory.")
    return d


def _as_s3(e: Exception) -> S3Error:
    err = S3Error(getattr(e, "message", str(e)))
    err.code = getattr(e, "code", "InternalError")
    err.status = getattr(e, "status", 500)
    return err


async def _call(fn: Callable[..., Awaitable[Any]], *args: Any, **kw: Any) -> Any:
    from titans3.accounts.directory import IamError

    try:
        return await fn(*args, **kw)
    except IamError as e:
        raise _as_s3(e) from None


def _user_json(u: Any, account: str) -> dict[str, Any]:
    return {"name": u.name, "user_id": u.user_id, "arn": u.arn(account), "canonical_id": u.canonical_id,
            "email": u.email, "disabled": u.disabled, "created_ns": u.created_ns,
            "policies": sorted(u.policies),
            "keys": [{"id": k.id, "status": k.status, "created_ns": k.created_ns} for k in u.keys]}  # fmt: skip


def _one(ctx: S3Context, name: str) -> dict[str, Any]:
    d = _dir(ctx)
    try:
        return {"user": _user_json(d.user(name), d.account.id)}
    except Exception as e:  # noqa: BLE001 -- IamError, typed
        raise _as_s3(e) from None


async def _users(ctx: S3Context) -> dict[str, Any]:
    d = _dir(ctx)
    return {"users": [_user_json(u, d.account.id) for u in d.users()]}


async def _show(ctx: S3Context) -> dict[str, Any]:
    out = _one(ctx, _arg(ctx, "name"))
    out["user"]["policy_documents"] = dict(_dir(ctx).user(_arg(ctx, "name")).policies)
    return out


async def _create_user(ctx: S3Context) -> dict[str, Any]:
    d = _dir(ctx)
    u = await _call(d.create_user, _arg(ctx, "name"), email=ctx.query.get("email", ""))
    return {"user": _user_json(u, d.account.id)}


async def _delete_user(ctx: S3Context) -> dict[str, Any]:
    name = _arg(ctx, "name")
    await _call(_dir(ctx).delete_user, name, force=ctx.query.get("force") == "1")
    return {"deleted": name}


async def _disable(ctx: S3Context) -> dict[str, Any]:
    await _call(_dir(ctx).set_user_disabled, _arg(ctx, "name"), True)
    return _one(ctx, _arg(ctx, "name"))


async def _enable(ctx: S3Context) -> dict[str, Any]:
    await _call(_dir(ctx).set_user_disabled, _arg(ctx, "name"), False)
    return _one(ctx, _arg(ctx, "name"))


async def _put_policy(ctx: S3Context) -> dict[str, Any]:
    await _call(_dir(ctx).put_user_policy, _arg(ctx, "user"), _arg(ctx, "name"), _arg(ctx, "document"))
    return _one(ctx, _arg(ctx, "user"))


async def _delete_policy(ctx: S3Context) -> dict[str, Any]:
    await _call(_dir(ctx).delete_user_policy, _arg(ctx, "user"), _arg(ctx, "name"))
    return _one(ctx, _arg(ctx, "user"))


def _key_json(user: Any, key: Any, secret: str | None) -> dict[str, Any]:
    out = {"user": user.name, "id": key.id, "status": key.status, "created_ns": key.created_ns}
    if secret is not None:
        out["secret"] = secret
    return out


async def _create_key(ctx: S3Context) -> dict[str, Any]:
    user, key, secret = await _call(_dir(ctx).create_key, _arg(ctx, "user"))
    return {"key": _key_json(user, key, secret)}


async def _rotate_key(ctx: S3Context) -> dict[str, Any]:
    """A new key for the user; the previous active keys are deactivated (not
    deleted, so a mistake can be undone); with two keys already, the older
    inactive one -- or the oldest -- is deleted first."""
    d = _dir(ctx)
    name = _arg(ctx, "user")
    try:
        user = d.user(name)
    except Exception as e:  # noqa: BLE001
        raise _as_s3(e) from None
    if len(user.keys) >= 2:
        victim = min((k for k in user.keys if k.status == "Inactive"), key=lambda k: k.created_ns, default=None) \
            or min(user.keys, key=lambda k: k.created_ns)  # fmt: skip
        await _call(d.delete_key, victim.id, user=name)
    previous = [k.id for k in d.user(name).keys if k.status == "Active"]
    user, key, secret = await _call(d.create_key, name)
    for kid in previous:
        await _call(d.set_key_status, kid, "Inactive", user=name)
    return {"key": _key_json(user, key, secret), "deactivated": previous}


async def _key_status(ctx: S3Context, status: str) -> dict[str, Any]:
    user = await _call(_dir(ctx).set_key_status, _arg(ctx, "id"), status)
    key = next(k for k in user.keys if k.id == _arg(ctx, "id"))
    return {"key": _key_json(user, key, None)}


async def _disable_key(ctx: S3Context) -> dict[str, Any]:
    return await _key_status(ctx, "Inactive")


async def _enable_key(ctx: S3Context) -> dict[str, Any]:
    return await _key_status(ctx, "Active")


async def _delete_key(ctx: S3Context) -> dict[str, Any]:
    await _call(_dir(ctx).delete_key, _arg(ctx, "id"))
    return {"deleted": _arg(ctx, "id")}


def _account_json(d: Any) -> dict[str, Any]:
    a = d.account
    return {"account_id": a.id, "canonical_id": a.canonical_id, "name": a.name, "arn": a.root_arn,
            "public_access_block": a.public_access_block.to_dict(), "users": len(d.users()),
            "generation": d.generation}  # fmt: skip


async def _account(ctx: S3Context) -> dict[str, Any]:
    return {"account": _account_json(_dir(ctx))}


async def _put_pab(ctx: S3Context) -> dict[str, Any]:
    values = {}
    for name in XML_NAMES:
        raw = ctx.query.get(name, "false").lower()
        if raw not in ("true", "false"):
            raise InvalidArgument(f"{name} must be true or false", ArgumentName=name, ArgumentValue=raw)
        values[name] = raw == "true"
    d = _dir(ctx)
    await _call(d.set_account_public_access_block, PublicAccessBlock.from_dict(values))
    return {"account": _account_json(d)}


async def _delete_pab(ctx: S3Context) -> dict[str, Any]:
    d = _dir(ctx)
    await _call(d.set_account_public_access_block, None)
    return {"account": _account_json(d)}


def _audit(ctx: S3Context) -> Any:
    a = getattr(ctx.admin, "audit", None)
    if a is None:
        raise NotImplementedS3("The audit log is off on this host (audit = false).")
    return a


async def _tail(ctx: S3Context) -> dict[str, Any]:
    raw = ctx.query.get("limit", "50")
    if not raw.isdigit() or not 0 < int(raw) <= 100_000:
        raise InvalidArgument("limit must be 1..100000", ArgumentName="limit", ArgumentValue=raw)
    a = _audit(ctx)
    host = ctx.query.get("host") or a.host
    return {"host": host, "hosts": await a.hosts(), "records": await a.tail(int(raw), host=host)}


async def _verify(ctx: S3Context) -> dict[str, Any]:
    return await _audit(ctx).verify()


ROUTES: dict[tuple[str, str], Callable[[S3Context], Awaitable[dict[str, Any]]]] = {
    ("GET", "v1/users"): _users,
    ("GET", "v1/users/show"): _show,
    ("POST", "v1/users/create"): _create_user,
    ("POST", "v1/users/delete"): _delete_user,
    ("POST", "v1/users/disable"): _disable,
    ("POST", "v1/users/enable"): _enable,
    ("POST", "v1/users/policy/put"): _put_policy,
    ("POST", "v1/users/policy/delete"): _delete_policy,
    ("POST", "v1/keys/create"): _create_key,
    ("POST", "v1/keys/rotate"): _rotate_key,
    ("POST", "v1/keys/disable"): _disable_key,
    ("POST", "v1/keys/enable"): _enable_key,
    ("POST", "v1/keys/delete"): _delete_key,
    ("GET", "v1/account"): _account,
    ("POST", "v1/account/public-access-block"): _put_pab,
    ("POST", "v1/account/public-access-block/delete"): _delete_pab,
    ("GET", "v1/audit/tail"): _tail,
    ("GET", "v1/audit/verify"): _verify,
}
