"""SSE request headers -> Encryption / customer keys, with AWS's errors (titans3/s3/sse_headers.py)."""

from __future__ import annotations

import base64
import hashlib

import pytest

from titans3.core.errors import InvalidArgument, NotImplementedS3
from titans3.s3 import sse_headers as sh

KEY = bytes(range(32))


def c_headers(key: bytes = KEY, prefix: str = "x-amz-", **over: str) -> dict[str, str]:
    h = {f"{prefix}server-side-encryption-customer-algorithm": "AES256",
         f"{prefix}server-side-encryption-customer-key": base64.b64encode(key).decode(),
         f"{prefix}server-side-encryption-customer-key-md5":
             base64.b64encode(hashlib.md5(key).digest()).decode()}
    h.update(over)
    return h


def test_modes() -> None:
    assert sh.write_encryption({}) is None
    assert sh.write_encryption({"x-amz-server-side-encryption": "AES256"}).mode == "AES256"
    ctx = base64.b64encode(b'{"a":"b"}').decode()
    e = sh.write_encryption({"x-amz-server-side-encryption": "aws:kms",
                             "x-amz-server-side-encryption-aws-kms-key-id": "alias/x",
                             "x-amz-server-side-encryption-context": ctx,
                             "x-amz-server-side-encryption-bucket-key-enabled": "true"})
    assert (e.mode, e.kms_key_id, dict(e.context), e.bucket_key) == ("aws:kms", "alias/x", {"a": "b"}, True)
    e = sh.write_encryption(c_headers())
    assert e.mode == "SSE-C" and e.customer_key == KEY and "customer_key" not in repr(e)
    assert sh.customer_key(c_headers(prefix="x-amz-copy-source-"), prefix="x-amz-copy-source-") == KEY


@pytest.mark.parametrize("headers", [
    {"x-amz-server-side-encryption": "bogus"},
    {"x-amz-server-side-encryption-aws-kms-key-id": "k"},
    {"x-amz-server-side-encryption": "AES256", "x-amz-server-side-encryption-aws-kms-key-id": "k"},
    {"x-amz-server-side-encryption": "aws:kms", "x-amz-server-side-encryption-context": "not-b64!"},
    c_headers(**{"x-amz-server-side-encryption-customer-key-md5": "AAAAAAAAAAAAAAAAAAAAAA=="}),
    c_headers(key=b"short"),
    {**c_headers(), "x-amz-server-side-encryption": "AES256"},
    {"x-amz-server-side-encryption-customer-key": base64.b64encode(KEY).decode()},
])
def test_bad_headers_are_invalid_argument(headers: dict[str, str]) -> None:
    with pytest.raises(InvalidArgument):
        sh.write_encryption(headers)


def test_wrong_algorithm_and_dsse() -> None:
    with pytest.raises(sh.InvalidEncryptionAlgorithmError):
        sh.customer_key(c_headers(**{"x-amz-server-side-encryption-customer-algorithm": "DES"}))
    with pytest.raises(NotImplementedS3):
        sh.write_encryption({"x-amz-server-side-encryption": "aws:kms:dsse"})
