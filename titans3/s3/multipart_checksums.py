"""Checksums of multipart uploads: the upload's algorithm, per-part rules, the object's value.

Theory of operation
-------------------
Pure functions, no I/O.  A multipart upload created with
``x-amz-checksum-algorithm`` binds its parts and its result:

* :func:`upload_checksum` reads CreateMultipartUpload's algorithm and
  ``x-amz-checksum-type``.  The type defaults to ``FULL_OBJECT`` for
  CRC64NVME and ``COMPOSITE`` otherwise; FULL_OBJECT needs a CRC (it is
  computed by *combining* the part CRCs, which the SHA family cannot do) and
  CRC64NVME is FULL_OBJECT only -- S3's rules and messages.
* Every UploadPart must carry that algorithm's checksum (checked by the store,
  ``objects/multipart.py``: "Checksum Type mismatch occurred ...").
* :func:`complete_checksums` is the store's Complete hook.  For a COMPOSITE
  upload each listed part must name its checksum ("The upload was created
  using a crc32 checksum ... It was missing for part 1 in the request."), and
  a listed checksum must be the stored one (``InvalidPart``, as S3 answers).
  The object's checksum is then ``base64(H(raw part digest 1 ‖ ... ‖ N)) + "-N"``
  (COMPOSITE) or the CRC of the whole object combined from the part CRCs and
  sizes (FULL_OBJECT) -- no byte is read again.  A client may send the
  expected object checksum as ``x-amz-checksum-<algo>`` on Complete
  (``<b64>`` or ``<b64>-N``); a malformed one is ``InvalidRequest``, a
  different one ``BadDigest``.
* An upload created without an algorithm stores no object checksum; listing
  part checksums in its Complete is ``InvalidPart`` (S3 has none to compare).

:func:`checksum_type` tells GET/HEAD which ``x-amz-checksum-type`` a stored
value has: composite values carry the ``-N`` suffix, everything else
(PutObject, FULL_OBJECT uploads) is FULL_OBJECT.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence

from awscrt import checksums as _crt

from titans3.core.errors import BadDigest, InvalidArgument, InvalidPart, InvalidRequest
from titans3.objects import PartInfo
from titans3.s3.checksums import (
    DIGEST_SIZES,
    HEADER_PREFIX,
    Checksum,
    algo_for_header,
    decode_value,
    new_checksum,
)
from titans3.s3.xml import CompletedPart

COMPOSITE = "COMPOSITE"
FULL_OBJECT = "FULL_OBJECT"
_CRC_COMBINE = {
    "CRC32": _crt.combine_crc32,
    "CRC32C": _crt.combine_crc32c,
    "CRC64NVME": _crt.combine_crc64nvme,
}
_NOT_VALUES = frozenset({"x-amz-checksum-mode", "x-amz-checksum-algorithm", "x-amz-checksum-type"})


def checksum_type(value: str) -> str:
    """COMPOSITE for a ``<b64>-N`` value, FULL_OBJECT otherwise."""
    return COMPOSITE if "-" in value else FULL_OBJECT


def upload_checksum(headers: Mapping[str, str]) -> tuple[str | None, str | None]:
    """(algorithm, type) a CreateMultipartUpload asks for; (None, None) without one."""
    raw_algo = headers.get("x-amz-checksum-algorithm")
    raw_type = headers.get("x-amz-checksum-type")
    if raw_algo is None:
        if raw_type is not None:
            raise InvalidRequest(
                "The x-amz-checksum-type header can only be used with the "
                "x-amz-checksum-algorithm header."
            )
        return None, None
    algo = raw_algo.strip().upper()
    if algo not in DIGEST_SIZES:
        raise InvalidRequest(
            "Checksum algorithm provided is unsupported. Please try again with any of the "
            f"valid types: [{', '.join(DIGEST_SIZES)}]"
        )
    kind = (raw_type or (FULL_OBJECT if algo == "CRC64NVME" else COMPOSITE)).strip().upper()
    if kind not in (COMPOSITE, FULL_OBJECT):
        raise InvalidRequest("Value for x-amz-checksum-type header is invalid.")
    if kind == FULL_OBJECT and algo not in _CRC_COMBINE:
        raise InvalidRequest(
            f"The FULL_OBJECT checksum type cannot be used with the {algo.lower()} checksum "
            "algorithm."
        )
    if kind == COMPOSITE and algo == "CRC64NVME":
        raise InvalidRequest(
            "The COMPOSITE checksum type cannot be used with the crc64nvme checksum algorithm."
        )
    return algo, kind


def compute_for_upload_part(algo: str, kind: str | None) -> Checksum | None:
    """UploadPart's ``compute_checksum`` hook: a FULL_OBJECT upload's part that
    came without a checksum gets one computed (as AWS does); a COMPOSITE upload
    requires the client's own."""
    return new_checksum(algo) if kind == FULL_OBJECT else None


def compute_for_part_copy(algo: str, kind: str | None) -> Checksum:
    """UploadPartCopy's hook: a copied part's checksum is always computed."""
    return new_checksum(algo)


def object_checksum_header(headers: Mapping[str, str]) -> tuple[str, str] | None:
    """The ``x-amz-checksum-<algo>`` a Complete request carries: (algo, value) or None."""
    found = [
        (name, value) for name, value in headers.items()
        if name.startswith(HEADER_PREFIX) and name not in _NOT_VALUES
    ]  # fmt: skip
    if not found:
        return None
    if len(found) > 1:
        raise InvalidRequest(
            "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed."
        )
    name, value = found[0]
    algo = algo_for_header(name)
    if algo is None:
        raise InvalidRequest("The algorithm type you specified in x-amz-checksum- header is invalid.")
    return algo, value.strip()


def _check_listed(parts: Sequence[CompletedPart]) -> None:
    for part in parts:
        for algo, value in part.checksums.items():
            if len(part.checksums) > 1 or algo not in DIGEST_SIZES or decode_value(algo, value) is None:
                listed = "".join(f"{a}:{v};" for a, v in part.checksums.items())
                raise InvalidArgument("Invalid Base64 or multiple checksums present in request",
                                      ArgumentName="Checksum", ArgumentValue=listed)  # fmt: skip


def complete_checksums(
    algo: str | None,
    kind: str | None,
    listed: Sequence[CompletedPart],
    chosen: Sequence[PartInfo],
    header: tuple[str, str] | None,
    *,
    upload_id: str = "",
    requested_type: str | None = None,
) -> dict[str, str]:
    """The object's ``{algo: value}`` for a Complete, or the S3 error (see module doc).

    ``listed`` are the request's parts and ``chosen`` the stored parts they
    named, index for index; ``requested_type`` is the Complete's own
    ``x-amz-checksum-type``, which must repeat the upload's.
    """
    _check_listed(listed)
    if requested_type is not None and requested_type.strip().upper() != (kind or ""):
        raise InvalidRequest(
            f"The upload was created using the {kind or 'null'} checksum mode. The complete "
            "request must use the same checksum mode."
        )
    if algo is None:
        for part in listed:
            if part.checksums:
                raise InvalidPart(UploadId=upload_id, PartNumber=str(part.number), ETag=part.etag)
        return {}
    for part, stored in zip(listed, chosen, strict=True):
        given = part.checksums.get(algo)
        if given is None:
            if kind == COMPOSITE or part.checksums:
                raise InvalidRequest(
                    f"The upload was created using a {algo.lower()} checksum. The complete "
                    "request must include the checksum for each part. It was missing for part "
                    f"{part.number} in the request."
                )
        elif stored.checksums.get(algo) != given:
            raise InvalidPart(UploadId=upload_id, PartNumber=str(part.number), ETag=part.etag)
    raw = [decode_value(algo, p.checksums.get(algo, "")) for p in chosen]
    if any(r is None for r in raw):  # cannot happen for parts uploaded under this upload
        raise InvalidPart(UploadId=upload_id)
    digests: list[bytes] = raw  # type: ignore[assignment]
    value = _composite(algo, digests) if kind == COMPOSITE else _combined(algo, digests, chosen)
    if header is not None:
        _verify_client_value(algo, value, header)
    return {algo: value}


def _composite(algo: str, digests: Sequence[bytes]) -> str:
    checksum = new_checksum(algo)
    checksum.update(b"".join(digests))
    return f"{checksum.b64digest()}-{len(digests)}"


def _combined(algo: str, digests: Sequence[bytes], parts: Sequence[PartInfo]) -> str:
    combine = _CRC_COMBINE[algo]
    crc = int.from_bytes(digests[0], "big")
    for digest, part in zip(digests[1:], parts[1:], strict=True):
        crc = combine(crc, int.from_bytes(digest, "big"), part.size)
    return base64.b64encode(crc.to_bytes(DIGEST_SIZES[algo], "big")).decode("ascii")


def _verify_client_value(algo: str, value: str, header: tuple[str, str]) -> None:
    header_algo, given = header
    if header_algo != algo:
        raise InvalidRequest(
            f"Checksum Type mismatch occurred, expected checksum Type: {algo.lower()}, actual "
            f"checksum Type: {header_algo.lower()}"
        )
    b64, dash, count = given.partition("-")
    if decode_value(algo, b64) is None or (dash and not (count.isascii() and count.isdigit())):
        raise InvalidRequest(f"Value for {HEADER_PREFIX}{algo.lower()} header is invalid.")
    mine_b64, _, mine_count = value.partition("-")
    if b64 != mine_b64 or (dash and count != mine_count):
        raise BadDigest(f"The {algo.lower()} you specified did not match the calculated checksum.")
