"""The upload payload stream (titans3.s3.body.RequestBody)."""

from __future__ import annotations

import base64
import hashlib
import io
import zlib

import pytest
import trio
from botocore.httpchecksum import AwsChunkedWrapper, Crc32Checksum

from titans3.core.errors import (
    BadDigest,
    EntityTooLarge,
    IncompleteBody,
    InvalidArgument,
    MissingContentLength,
    XAmzContentSHA256Mismatch,
)
from titans3.s3.body import RequestBody
from titans3.s3.sigv4 import AuthResult, PayloadMode


def auth(mode: PayloadMode, sha: str | None = None) -> AuthResult:
    return AuthResult("AK", "us-east-1", "s3", "20260101", "20260101T000000Z", b"k", "seed",
                      mode, sha, False, "20260101/us-east-1/s3/aws4_request")  # fmt: skip


async def source(data: bytes, piece: int = 1000):
    for i in range(0, len(data), piece):
        yield data[i : i + piece]


def trailer_body(data: bytes, crc_b64: str | None = None) -> bytes:
    encoded = AwsChunkedWrapper(io.BytesIO(data), checksum_cls=Crc32Checksum,
                                checksum_name="x-amz-checksum-crc32", chunk_size=4096).read()  # fmt: skip
    if crc_b64 is not None:
        cut = encoded.rindex(b"x-amz-checksum-crc32:")
        encoded = encoded[:cut] + b"x-amz-checksum-crc32:" + crc_b64.encode() + b"\r\n\r\n"
    return encoded


TRAILER_HEADERS = {"x-amz-trailer": "x-amz-checksum-crc32"}


def streamed(data: bytes, crc_b64: str | None = None) -> RequestBody:
    encoded = trailer_body(data, crc_b64)
    headers = TRAILER_HEADERS | {"x-amz-decoded-content-length": str(len(data)),
                                 "content-length": str(len(encoded))}  # fmt: skip
    return RequestBody(source(encoded, 777), auth=auth(PayloadMode.STREAMING_UNSIGNED_TRAILER),
                       headers=headers)  # fmt: skip


async def read_exactly(body: RequestBody, size: int) -> bytes:
    """A consumer that stops as soon as it has ``size`` bytes (never sees StopAsyncIteration)."""
    out = bytearray()
    async for piece in body:
        out += piece
        if len(out) >= size:
            break
    return bytes(out)


def test_trailer_is_verified_before_the_last_byte_is_handed_out():
    data = bytes(range(256)) * 100
    crc = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()

    async def main():
        body = streamed(data)
        got = await read_exactly(body, len(data))
        return got, body.verify()

    got, verified = trio.run(main)
    assert got == data
    assert verified == {"CRC32": crc}


def test_a_bad_trailer_checksum_withholds_the_last_piece():
    data = bytes(range(256)) * 100

    async def main():
        body = streamed(data, crc_b64="AAAAAA==")
        seen = bytearray()
        with pytest.raises(BadDigest):
            async for piece in body:
                seen += piece
        with pytest.raises(BadDigest):
            body.verify()
        return bytes(seen)

    seen = trio.run(main)
    assert len(seen) < len(data)


def test_signed_payload_sha256_is_checked_at_the_end():
    data = b"payload" * 1000

    async def main(sha: str) -> bytes:
        body = RequestBody(source(data), auth=auth(PayloadMode.SHA256, sha),
                           headers={"content-length": str(len(data))})  # fmt: skip
        return await body.read_all()

    assert trio.run(main, hashlib.sha256(data).hexdigest()) == data
    with pytest.raises(XAmzContentSHA256Mismatch):
        trio.run(main, hashlib.sha256(b"other").hexdigest())


def test_a_body_shorter_than_its_content_length_is_incomplete():
    async def main():
        body = RequestBody(source(b"x" * 10), auth=auth(PayloadMode.UNSIGNED),
                           headers={"content-length": "11"})  # fmt: skip
        await body.read_all()

    with pytest.raises(IncompleteBody):
        trio.run(main)


def test_verify_before_the_end_is_incomplete_body():
    body = RequestBody(source(b"x"), auth=auth(PayloadMode.UNSIGNED), headers={"content-length": "1"})
    with pytest.raises(IncompleteBody):
        body.verify()


@pytest.mark.parametrize(
    ("headers", "error"),
    [
        ({}, MissingContentLength),
        ({"content-length": "1e3"}, InvalidArgument),
        ({"content-length": str(5 * 1024**3 + 1)}, EntityTooLarge),
    ],
)
def test_length_headers_are_checked_up_front(headers, error):
    with pytest.raises(error):
        RequestBody(source(b""), auth=auth(PayloadMode.UNSIGNED), headers=headers)


def test_large_blocks_are_hashed_off_the_event_loop_with_the_same_result():
    data = bytes(range(256)) * 8192  # 2 MiB, delivered in 1 MiB blocks

    async def main():
        body = RequestBody(source(data, 1 << 20), auth=auth(PayloadMode.SHA256, hashlib.sha256(data).hexdigest()),
                           headers={"content-length": str(len(data)), "x-amz-checksum-crc32":
                                    base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()})  # fmt: skip
        return await body.read_all(), body.verify()

    got, verified = trio.run(main)
    assert got == data and set(verified) == {"CRC32"}
