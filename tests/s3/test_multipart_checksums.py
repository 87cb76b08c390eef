"""Multipart checksum rules (titans3.s3.multipart_checksums).

Vectors: the body ``123456789`` has CRC32 ``y/Q5Jg==`` and SHA256
``FeKw08M4...``; S3 answers a one-part COMPOSITE upload of it with
``7kxlUA==-1`` (CRC32) and ``KSsNAHVm...-1`` (SHA256), as recorded against AWS
by OpenStack Swift's s3api functional tests.
"""

from __future__ import annotations

import base64
import zlib

import pytest
from awscrt import checksums as crt

from titans3.core.errors import BadDigest, InvalidArgument, InvalidPart, InvalidRequest
from titans3.objects.types import PartInfo
from titans3.s3 import multipart_checksums as mc
from titans3.s3.xml import CompletedPart

CRC32 = "y/Q5Jg=="
SHA256 = "FeKw08M4keuw8e9gnsQZQgwg4yDOlMZfvIwzEkSOsiU="


def one_part(algo: str, value: str) -> tuple[list[CompletedPart], list[PartInfo]]:
    return [CompletedPart(1, "e", {algo: value})], [PartInfo(1, 9, "e", 0, {algo: value})]


@pytest.mark.parametrize(
    ("algo", "value", "expected"),
    [("CRC32", CRC32, "7kxlUA==-1"),
     ("SHA256", SHA256, "KSsNAHVmgy25S/rmic1w0at3KBH9RLn0nYVQ7p6mpJQ=-1")],
)  # fmt: skip
def test_composite_checksum_matches_s3(algo: str, value: str, expected: str) -> None:
    listed, chosen = one_part(algo, value)
    assert mc.complete_checksums(algo, "COMPOSITE", listed, chosen, None) == {algo: expected}


def test_full_object_crc_is_the_crc_of_the_whole_object() -> None:
    parts = [b"a" * 1000, b"b" * 333, b"c"]
    b64 = lambda n, w: base64.b64encode(n.to_bytes(w, "big")).decode()  # noqa: E731
    for algo, fn, width in [("CRC32", zlib.crc32, 4), ("CRC32C", crt.crc32c, 4),
                            ("CRC64NVME", crt.crc64nvme, 8)]:  # fmt: skip
        chosen = [PartInfo(i + 1, len(p), "e", 0, {algo: b64(fn(p), width)}) for i, p in enumerate(parts)]
        listed = [CompletedPart(p.number, "e", dict(p.checksums)) for p in chosen]
        got = mc.complete_checksums(algo, "FULL_OBJECT", listed, chosen, None)
        assert got == {algo: b64(fn(b"".join(parts)), width)}
        # Part checksums are optional in a FULL_OBJECT Complete.
        bare = [CompletedPart(p.number, "e") for p in chosen]
        assert mc.complete_checksums(algo, "FULL_OBJECT", bare, chosen, None) == got


def test_composite_complete_must_list_every_part_checksum() -> None:
    _, chosen = one_part("CRC32", CRC32)
    with pytest.raises(InvalidRequest) as err:
        mc.complete_checksums("CRC32", "COMPOSITE", [CompletedPart(1, "e")], chosen, None)
    assert err.value.message == (
        "The upload was created using a crc32 checksum. The complete request must include the "
        "checksum for each part. It was missing for part 1 in the request."
    )


def test_listed_checksum_must_be_the_stored_one() -> None:
    _, chosen = one_part("CRC32", CRC32)
    with pytest.raises(InvalidPart):
        mc.complete_checksums("CRC32", "COMPOSITE", [CompletedPart(1, "e", {"CRC32": "z/Q5Jg=="})],
                              chosen, None)  # fmt: skip


def test_listed_checksum_that_is_not_base64_is_invalid_argument() -> None:
    _, chosen = one_part("CRC32", CRC32)
    with pytest.raises(InvalidArgument) as err:
        mc.complete_checksums("CRC32", "COMPOSITE", [CompletedPart(1, "e", {"CRC32": "y/Q5Jh=="})],
                              chosen, None)  # fmt: skip
    assert err.value.extra == {"ArgumentName": "Checksum", "ArgumentValue": "CRC32:y/Q5Jh==;"}


def test_upload_without_algorithm_stores_nothing_and_refuses_listed_checksums() -> None:
    listed, chosen = one_part("CRC32", CRC32)
    assert mc.complete_checksums(None, None, [CompletedPart(1, "e")], chosen, None) == {}
    with pytest.raises(InvalidPart):
        mc.complete_checksums(None, None, listed, chosen, None)


@pytest.mark.parametrize(
    ("header", "error"),
    [
        (("CRC32", "7kxlUA=="), None),
        (("CRC32", "7kxlUA==-1"), None),
        (("CRC32", "7kxlUA==-a"), InvalidRequest),
        (("CRC32", "not base64"), InvalidRequest),
        (("CRC32", "7kxlUA==-2"), BadDigest),
        (("CRC32", "8kxlUA=="), BadDigest),
        (("SHA256", SHA256), InvalidRequest),
    ],
)
def test_client_object_checksum_on_complete(header: tuple[str, str], error: type | None) -> None:
    listed, chosen = one_part("CRC32", CRC32)
    if error is None:
        assert mc.complete_checksums("CRC32", "COMPOSITE", listed, chosen, header)
    else:
        with pytest.raises(error):
            mc.complete_checksums("CRC32", "COMPOSITE", listed, chosen, header)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, (None, None)),
        ({"x-amz-checksum-algorithm": "crc32"}, ("CRC32", "COMPOSITE")),
        ({"x-amz-checksum-algorithm": "CRC64NVME"}, ("CRC64NVME", "FULL_OBJECT")),
        ({"x-amz-checksum-algorithm": "CRC32C", "x-amz-checksum-type": "FULL_OBJECT"},
         ("CRC32C", "FULL_OBJECT")),
        ({"x-amz-checksum-algorithm": "SHA1"}, ("SHA1", "COMPOSITE")),
    ],
)  # fmt: skip
def test_upload_checksum_defaults(headers: dict[str, str], expected: tuple) -> None:
    assert mc.upload_checksum(headers) == expected


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({"x-amz-checksum-algorithm": "SHA256", "x-amz-checksum-type": "FULL_OBJECT"},
         "The FULL_OBJECT checksum type cannot be used with the sha256 checksum algorithm."),
        ({"x-amz-checksum-algorithm": "CRC64NVME", "x-amz-checksum-type": "COMPOSITE"},
         "The COMPOSITE checksum type cannot be used with the crc64nvme checksum algorithm."),
        ({"x-amz-checksum-algorithm": "MD4"}, None),
        ({"x-amz-checksum-type": "COMPOSITE"}, None),
        ({"x-amz-checksum-algorithm": "CRC32", "x-amz-checksum-type": "PARTIAL"},
         "Value for x-amz-checksum-type header is invalid."),
    ],
)  # fmt: skip
def test_upload_checksum_refusals(headers: dict[str, str], message: str | None) -> None:
    with pytest.raises(InvalidRequest) as err:
        mc.upload_checksum(headers)
    if message is not None:
        assert err.value.message == message


def test_checksum_type_of_stored_values() -> None:
    assert mc.checksum_type("7kxlUA==-3") == "COMPOSITE"
    assert mc.checksum_type(CRC32) == "FULL_OBJECT"


def test_complete_must_repeat_the_upload_checksum_type() -> None:
    listed, chosen = one_part("CRC32", CRC32)
    assert mc.complete_checksums("CRC32", "COMPOSITE", listed, chosen, None, requested_type="composite")
    with pytest.raises(InvalidRequest) as err:
        mc.complete_checksums("CRC32", "COMPOSITE", listed, chosen, None, requested_type="FULL_OBJECT")
    assert err.value.message == (
        "The upload was created using the COMPOSITE checksum mode. The complete request must use "
        "the same checksum mode."
    )
