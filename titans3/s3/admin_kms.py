"""Admin API calls for the built-in KMS (registered in :mod:`titans3.s3.admin`).

=======  ==========================  ================================================
method   path (under /titans3/admin/) what
=======  ==========================  ================================================
GET      v1/kms/keys                 every key: id, ARN, enabled, versions, rotated
POST     v1/kms/keys                 ``?description=D&alias=A``: a new key
POST     v1/kms/rotate               ``?key=ID``: a new key version (old ones stay)
POST     v1/kms/disable              ``?key=ID``: refuse the key until enabled
POST     v1/kms/enable               ``?key=ID``
=======  ==========================  ================================================

The backend is the daemon's ``Host``; its ``kms`` is the built-in key manager
(``objects/kms.py``).  Answers never contain key material.  The internal
SSE-S3 key cannot be disabled here (that would make every SSE-S3 object
unreadable at once); it can be rotated.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any

from titans3.core import kms as kmsmod
from titans3.core.errors import InvalidArgument, NotImplementedS3, S3Error
from titans3.s3.context import S3Context

KMSNotFound = type("NotFoundException", (S3Error,), {
    "code": "NotFoundException", "status": 404, "default_message": "The KMS key does not exist."})
KMSInvalid = type("KMSInvalidStateException", (S3Error,), {
    "code": "KMSInvalidStateException", "status": 409, "default_message": "The KMS key refuses that."})


def _kms(ctx: S3Context) -> Any:
    kms = getattr(ctx.admin, "kms", None)
    if kms is None or not hasattr(kms, "list_keys"):
        raise NotImplementedS3("The built-in KMS is not running on this node.")
    return kms


def _key(ctx: S3Context) -> str:
    value = ctx.query.get("key", "").strip()
    if not value:
        raise InvalidArgument("Missing query parameter 'key'", ArgumentName="key")
    return value


def _doc(info: kmsmod.KeyInfo) -> dict[str, Any]:
    return asdict(info)


async def _guard(fn: Callable[[], Awaitable[kmsmod.KeyInfo]]) -> dict[str, Any]:
    try:
        return {"key": _doc(await fn())}
    except kmsmod.KeyNotFound as e:
        raise KMSNotFound(str(e)) from None
    except kmsmod.KMSError as e:
        raise KMSInvalid(str(e)) from None


async def _list(ctx: S3Context) -> dict[str, Any]:
    return {"keys": [_doc(k) for k in await _kms(ctx).list_keys()]}


async def _create(ctx: S3Context) -> dict[str, Any]:
    kms = _kms(ctx)
    return await _guard(lambda: kms.create_key(description=ctx.query.get("description", ""),
                                               alias=ctx.query.get("alias", "").removeprefix("alias/")))


async def _rotate(ctx: S3Context) -> dict[str, Any]:
    kms, key = _kms(ctx), _key(ctx)
    return await _guard(lambda: kms.rotate_key(key))


def _toggle(enabled: bool) -> Callable[[S3Context], Awaitable[dict[str, Any]]]:
    async def call(ctx: S3Context) -> dict[str, Any]:
        kms, key = _kms(ctx), _key(ctx)
        if not enabled and key == kmsmod.SSE_S3_KEY:
            raise KMSInvalid("The SSE-S3 key cannot be disabled.")
        return await _guard(lambda: kms.set_key_enabled(key, enabled))

    return call


ROUTES: dict[tuple[str, str], Callable[[S3Context], Awaitable[dict[str, Any]]]] = {
    ("GET", "v1/kms/keys"): _list,
    ("POST", "v1/kms/keys"): _create,
    ("POST", "v1/kms/rotate"): _rotate,
    ("POST", "v1/kms/disable"): _toggle(False),
    ("POST", "v1/kms/enable"): _toggle(True),
}
