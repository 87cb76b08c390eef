"""The condition keys of a request, and the operation table."""

from __future__ import annotations

import re

from titans3.iam.actions import ResourceKind, kind_of
from titans3.iam.evaluate import ANONYMOUS, Identity
from titans3.s3.access_ops import OPS, condition_context
from titans3.s3.routing import _BUCKET_DEFAULT, _BUCKET_OPS, _OBJECT_DEFAULT, _OBJECT_OPS

USER = Identity("user", "123456789012", "arn:aws:iam::123456789012:user/bob", "b" * 64, "bob", "AIDABOB")


def keys(op: str, who: Identity = USER, headers: dict | None = None, query: dict | None = None, **kw):  # noqa: ANN201
    args = {"source_ip": "127.0.0.1", "secure": False, "account": "123456789012", "signature_version": "AWS4-HMAC-SHA256",
            "auth_type": "REST-HEADER", "amz_date": "20240101T000000Z", **kw}  # fmt: skip
    return condition_context(op=op, who=who, headers=headers or {}, query=query or {}, **args)


def test_global_keys():
    k = keys("GetObject", headers={"user-agent": "aws-cli/2"})
    assert k.get("aws:sourceip") == ["127.0.0.1"] and k.get("aws:securetransport") == ["false"]
    assert k.get("aws:username") == ["bob"] and k.get("aws:userid") == ["AIDABOB"]
    assert k.get("aws:principaltype") == ["User"] and k.get("aws:useragent") == ["aws-cli/2"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", k.get("aws:currenttime")[0])
    assert int(k.get("s3:signatureage")[0]) > 0
    anon = keys("GetObject", who=ANONYMOUS, signature_version=None, auth_type=None)
    assert anon.get("aws:userid") == ["anonymous"] and anon.get("aws:username") is None
    assert anon.get("s3:signatureversion") is None and "aws:principalarn" not in anon


def test_s3_keys_per_operation():
    assert keys("ListObjectsV2", query={"prefix": "home/", "max-keys": "5"}).get("s3:max-keys") == ["5"]
    assert keys("GetObject", query={"prefix": "home/"}).get("s3:prefix") is None  # listings only
    put = keys("PutObject", headers={"x-amz-tagging": "Project=Blue&Env=prod", "x-amz-acl": " public-read ",
                                     "x-amz-server-side-encryption": "AES256"})  # fmt: skip
    assert put.get("s3:requestobjecttag/project") == ["Blue"]
    assert put.get("s3:requestobjecttagkeys") == ["Project", "Env"]
    assert put.get("s3:x-amz-acl") == ["public-read"] and put.get("s3:x-amz-server-side-encryption") == ["AES256"]
    copy = keys("CopyObject", headers={"x-amz-copy-source": "/src/a%20b.txt?versionId=1"})
    assert copy.get("s3:x-amz-copy-source") == ["src/a b.txt"]
    assert keys("GetObject", query={"versionId": "v1"}).get("s3:versionid") == ["v1"]
    assert dict(put)["s3:x-amz-acl"] == ["public-read"] and len(put) == len(dict(put))


def test_every_routed_operation_has_an_iam_action():
    routed = {op for table in (_BUCKET_OPS, _OBJECT_OPS) for rows in table.values() for _, op in rows}
    routed |= set(_BUCKET_DEFAULT.values()) | set(_OBJECT_DEFAULT.values()) | {
        "ListObjectsV2", "CopyObject", "UploadPartCopy", "ListBuckets"}
    routed -= {"PreflightRequest"}
    assert sorted(op for op in routed if op not in OPS) == []
    for op, (action, versioned, kind) in OPS.items():
        assert kind_of(action) is kind or (kind is ResourceKind.BUCKET and op == "DeleteObjects"), (op, action)
        assert versioned is None or kind_of(versioned) is kind, op
