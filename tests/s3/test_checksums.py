"""x-amz-checksum-* and Content-MD5: known vectors, botocore agreement, S3's header rules."""

from __future__ import annotations

import base64
import hashlib

import pytest
from botocore.httpchecksum import (
    Crc32Checksum,
    CrtCrc32cChecksum,
    CrtCrc64NvmeChecksum,
    Sha1Checksum,
    Sha256Checksum,
)

from titans3.core import errors
from titans3.s3 import checksums
from titans3.s3.checksums import ChecksumSet, new_checksum, requested_checksums

BOTOCORE = {
    "CRC32": Crc32Checksum,
    "CRC32C": CrtCrc32cChecksum,
    "CRC64NVME": CrtCrc64NvmeChecksum,
    "SHA1": Sha1Checksum,
    "SHA256": Sha256Checksum,
}


def _b64(value: int, width: int) -> str:
    return base64.b64encode(value.to_bytes(width, "big")).decode()


@pytest.mark.parametrize(
    ("algo", "expected"),
    [
        # The CRC catalogue's check values (input "123456789").
        ("CRC32", _b64(0xCBF43926, 4)),
        ("CRC32C", _b64(0xE3069283, 4)),
        ("CRC64NVME", _b64(0xAE8B14860A799888, 8)),
        ("SHA1", base64.b64encode(hashlib.sha1(b"123456789").digest()).decode()),
        ("SHA256", base64.b64encode(hashlib.sha256(b"123456789").digest()).decode()),
    ],
)
def test_check_values_of_123456789(algo, expected):
    checksum = new_checksum(algo)
    checksum.update(b"123456789")
    assert checksum.b64digest() == expected


def test_crc32c_of_the_aws_trailer_example_payload():
    # sigv4-streaming-trailers: 66560 bytes of 'a' carry x-amz-checksum-crc32c:sOO8/Q==
    checksum = new_checksum("crc32c")
    checksum.update(b"a" * 65536)
    checksum.update(memoryview(b"a" * 1024))
    assert checksum.b64digest() == "sOO8/Q=="


@pytest.mark.parametrize("algo", checksums.ALGORITHMS)
@pytest.mark.parametrize("data", [b"", b"Hello world", bytes(range(256)) * 1000])
def test_checksums_agree_with_botocore(algo, data):
    ours = new_checksum(algo)
    theirs = BOTOCORE[algo]()
    # Feed ours in uneven pieces, as the chunked decoder does.
    view = memoryview(data)
    for start in range(0, len(data), 4097):
        ours.update(view[start : start + 4097])
    theirs.update(data)
    assert ours.b64digest() == theirs.b64digest()
    assert ours.digest() == theirs.digest()


def test_empty_crc_digests_are_zero():
    assert new_checksum("CRC32").b64digest() == "AAAAAA=="
    assert new_checksum("CRC64NVME").b64digest() == "AAAAAAAAAAA="


def test_unknown_algorithm_is_invalid_request():
    with pytest.raises(errors.InvalidRequest):
        new_checksum("MD4")


def test_header_names_round_trip():
    for algo in checksums.ALGORITHMS:
        assert checksums.algo_for_header(checksums.header_for(algo)) == algo
    assert checksums.header_for("crc64nvme") == "x-amz-checksum-crc64nvme"
    assert checksums.algo_for_header("X-Amz-Checksum-SHA256") == "SHA256"
    assert checksums.algo_for_header("x-amz-checksum-type") is None
    assert checksums.algo_for_header("content-md5") is None


# -------------------------------------------------------------------- MD5
def test_content_md5_matching_passes():
    digest = hashlib.md5(b"body").digest()
    checksums.verify_content_md5(base64.b64encode(digest).decode(), digest)


def test_content_md5_mismatch_is_bad_digest():
    with pytest.raises(errors.BadDigest):
        checksums.verify_content_md5(
            base64.b64encode(hashlib.md5(b"other").digest()).decode(), hashlib.md5(b"body").digest()
        )


@pytest.mark.parametrize("value", ["", "not base64!", base64.b64encode(b"short").decode(), "AAAA=AAA"])
def test_content_md5_not_16_bytes_of_base64_is_invalid_digest(value):
    with pytest.raises(errors.InvalidDigest):
        checksums.verify_content_md5(value, hashlib.md5(b"body").digest())


# ------------------------------------------------------- requested checksums
def test_no_checksum_headers_request_nothing():
    assert requested_checksums({"content-type": "a/b", "x-amz-checksum-mode": "ENABLED"}) == {}


def test_value_header_with_matching_sdk_algorithm_as_botocore_sends():
    headers = {"x-amz-checksum-crc32": "iH6F8A==", "x-amz-sdk-checksum-algorithm": "CRC32"}
    assert requested_checksums(headers) == {"CRC32": "iH6F8A=="}


def test_trailer_declares_a_checksum_that_comes_later():
    headers = {"x-amz-trailer": "x-amz-checksum-crc64nvme", "x-amz-sdk-checksum-algorithm": "crc64nvme"}
    assert requested_checksums(headers) == {"CRC64NVME": None}


@pytest.mark.parametrize(
    ("headers", "error", "message"),
    [
        ({"x-amz-checksum-crc32": "AAAAAA==", "x-amz-checksum-sha1": "2jmj7l5rSw0yVb/vlWAYkK/YBwk="},
         errors.InvalidRequest,
         "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed."),
        ({"x-amz-checksum-crc32": "AAAAAA==", "x-amz-trailer": "x-amz-checksum-crc32"},
         errors.InvalidRequest, "Expecting a single x-amz-checksum- header"),
        ({"x-amz-checksum-crc32": "AAAA"}, errors.BadDigest,
         "The CRC32 you specified did not match the calculated checksum."),
        ({"x-amz-checksum-sha256": "AAAAAA=="}, errors.BadDigest,
         "The SHA256 you specified did not match the calculated checksum."),
        ({"x-amz-checksum-crc64nvme": "not base64!"}, errors.BadDigest,
         "The CRC64NVME you specified did not match the calculated checksum."),
        ({"x-amz-checksum-foo": "AAAAAA=="}, errors.InvalidRequest,
         "The algorithm type you specified in x-amz-checksum- header is invalid."),
        ({"x-amz-checksum-sha512": "AAAAAA=="}, errors.NotImplementedS3, "not supported"),
        ({"x-amz-trailer": "x-amz-checksum-foo"}, errors.InvalidRequest,
         "The value specified in the x-amz-trailer header is not supported"),
        ({"x-amz-checksum-crc32": "AAAAAA==", "x-amz-sdk-checksum-algorithm": "CRC32C"},
         errors.InvalidRequest, "Value for x-amz-sdk-checksum-algorithm header is invalid."),
        ({"x-amz-sdk-checksum-algorithm": "CRC32"}, errors.InvalidRequest,
         "x-amz-sdk-checksum-algorithm specified, but no corresponding x-amz-checksum-\\* or "
         "x-amz-trailer headers were found."),
    ],
)  # fmt: skip
def test_invalid_checksum_header_combinations_fail_like_s3(headers, error, message):
    with pytest.raises(error, match=message):
        requested_checksums(headers)


# -------------------------------------------------------------- ChecksumSet
def test_checksum_set_computes_every_algorithm_in_one_pass():
    data = b"Hello world"
    expected = {}
    for algo, cls in BOTOCORE.items():
        reference = cls()
        reference.update(data)
        expected[algo] = reference.b64digest()
    cset = ChecksumSet(checksums.ALGORITHMS)
    cset.update(data[:5])
    cset.update(memoryview(data)[5:])
    assert cset.verify(expected) == expected


def test_checksum_set_accepts_trailer_names_as_keys():
    cset = ChecksumSet(["CRC32"])
    cset.update(b"Hello world")
    assert cset.verify({"x-amz-checksum-crc32": "i9aeUg=="}) == {"CRC32": "i9aeUg=="}


def test_checksum_set_reports_values_nobody_supplied():
    cset = ChecksumSet({"CRC64NVME": None})
    cset.update(b"Hello world")
    assert cset.verify({"CRC64NVME": None}) == {"CRC64NVME": "OOJZ0D8xKts="}


def test_checksum_mismatch_is_bad_digest_with_aws_wording():
    cset = ChecksumSet(["CRC32C"])
    cset.update(b"Hello world")
    with pytest.raises(errors.BadDigest) as caught:
        cset.verify({"CRC32C": "AAAAAA=="})
    assert caught.value.message == "The CRC32C you specified did not match the calculated checksum."


def test_malformed_trailer_value_is_bad_digest():
    cset = ChecksumSet(["CRC32"])
    with pytest.raises(errors.BadDigest, match="CRC32 you specified did not match"):
        cset.verify({"x-amz-checksum-crc32": "nope"})


def test_expected_value_for_an_uncomputed_algorithm_is_a_caller_bug():
    with pytest.raises(ValueError):
        ChecksumSet(["CRC32"]).verify({"SHA1": "2jmj7l5rSw0yVb/vlWAYkK/YBwk="})
