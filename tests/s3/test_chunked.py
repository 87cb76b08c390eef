"""aws-chunked decoding: AWS's published chunked and trailer examples, botocore's bodies,
and the framing errors S3 answers with IncompleteBody / MalformedTrailerError."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import io
import random

import pytest
from botocore.httpchecksum import (
    AwsChunkedWrapper,
    Crc32Checksum,
    CrtCrc32cChecksum,
    CrtCrc64NvmeChecksum,
    Sha1Checksum,
    Sha256Checksum,
)

from titans3.core import errors
from titans3.s3 import sigv4
from titans3.s3.checksums import ChecksumSet, requested_checksums
from titans3.s3.chunked import (
    ChunkedDecoder,
    MalformedTrailerError,
    declared_trailers,
    decoded_content_length,
)
from titans3.s3.sigv4 import EMPTY_SHA256, AuthResult, PayloadMode

AK = "AKIAIOSFODNN7EXAMPLE"
SK = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
T0 = dt.datetime(2013, 5, 24, tzinfo=dt.UTC)
SCOPE = "20130524/us-east-1/s3/aws4_request"
PAYLOAD = b"a" * 66560

# sigv4-streaming: seed 4f232c43..., 64 KiB + 1 KiB + final chunk.
SIGNED_EXAMPLE = (
    b"10000;chunk-signature=ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648\r\n"
    + b"a" * 65536
    + b"\r\n400;chunk-signature=0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497\r\n"
    + b"a" * 1024
    + b"\r\n0;chunk-signature=b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9\r\n"
    + b"\r\n"
)
# sigv4-streaming-trailers: seed 106e2a8a..., same chunks, CRC32C trailer.
TRAILER_EXAMPLE_CHUNKS = (
    b"10000;chunk-signature=b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2\r\n"
    + b"a" * 65536
    + b"\r\n400;chunk-signature=1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7\r\n"
    + b"a" * 1024
    + b"\r\n0;chunk-signature=2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992\r\n"
)
TRAILER_EXAMPLE_TRAILERS = (
    b"x-amz-checksum-crc32c:sOO8/Q==\r\n"
    b"x-amz-trailer-signature:d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435\r\n"
)


def _example_auth(mode: PayloadMode) -> AuthResult:
    """The AWS example requests, authenticated by the real verifier."""
    if mode is PayloadMode.STREAMING_SIGNED:
        signed = ("content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;"
                  "x-amz-decoded-content-length;x-amz-storage-class")  # fmt: skip
        seed = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
    else:
        signed = ("content-encoding;host;x-amz-content-sha256;x-amz-date;"
                  "x-amz-decoded-content-length;x-amz-storage-class;x-amz-trailer")  # fmt: skip
        seed = "106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e"
    headers = {
        "host": "s3.amazonaws.com",
        "x-amz-date": "20130524T000000Z",
        "x-amz-storage-class": "REDUCED_REDUNDANCY",
        "x-amz-content-sha256": mode.value,
        "content-encoding": "aws-chunked",
        "x-amz-decoded-content-length": "66560",
        "content-length": "66824",
        "x-amz-trailer": "x-amz-checksum-crc32c",
        "authorization": f"AWS4-HMAC-SHA256 Credential={AK}/{SCOPE},SignedHeaders={signed},"
        f"Signature={seed}",
    }
    if mode is PayloadMode.STREAMING_SIGNED:
        del headers["x-amz-trailer"]
    return sigv4.verify_request("PUT", "/examplebucket/chunkObject.txt", "", headers,
                                get_secret={AK: SK}.get, now=T0)  # fmt: skip


def _auth(mode: PayloadMode) -> AuthResult:
    key = sigv4.derive_signing_key(SK, "20130524", "us-east-1")
    return AuthResult(access_key=AK, region="us-east-1", service="s3", date="20130524",
                      amz_date="20130524T000000Z", signing_key=key, seed_signature="ab" * 32,
                      payload_mode=mode, payload_sha256=None, presigned=False, scope=SCOPE)  # fmt: skip


def _decode(decoder: ChunkedDecoder, body: bytes, step: int | None = None) -> tuple[bytes, dict]:
    out = bytearray()
    step = step or len(body) or 1
    for start in range(0, len(body), step):
        for piece in decoder.feed(body[start : start + step]):
            out += piece
    return bytes(out), decoder.finish()


def _signed_body(auth: AuthResult, chunks: list[bytes], trailers: dict[str, str] | None) -> bytes:
    """What an SDK sends in the signed streaming modes (formula checked by the AWS vectors)."""
    previous, out = auth.seed_signature, []
    for chunk in [*chunks, b""]:
        to_sign = "\n".join(("AWS4-HMAC-SHA256-PAYLOAD", auth.amz_date, auth.scope, previous,
                             EMPTY_SHA256, hashlib.sha256(chunk).hexdigest()))  # fmt: skip
        previous = sigv4.sign(auth.signing_key, to_sign)
        out.append(b"%x;chunk-signature=%s\r\n" % (len(chunk), previous.encode()))
        out.append(chunk + b"\r\n" if chunk else b"")
    if trailers is None:
        return b"".join(out) + b"\r\n"
    canonical = "".join(f"{n}:{v}\n" for n, v in sorted(trailers.items()))
    to_sign = "\n".join(("AWS4-HMAC-SHA256-TRAILER", auth.amz_date, auth.scope, previous,
                         hashlib.sha256(canonical.encode()).hexdigest()))  # fmt: skip
    out += [f"{n}:{v}\r\n".encode() for n, v in trailers.items()]
    out.append(f"x-amz-trailer-signature:{sigv4.sign(auth.signing_key, to_sign)}\r\n\r\n".encode())
    return b"".join(out)


# ----------------------------------------------------------- AWS's examples
@pytest.mark.parametrize("step", [None, 1, 2, 7, 88, 89, 90, 4096, 65625, 65626])
def test_aws_signed_chunked_example_decodes(step):
    decoder = ChunkedDecoder(_example_auth(PayloadMode.STREAMING_SIGNED), decoded_length=66560)
    payload, trailers = _decode(decoder, SIGNED_EXAMPLE, step)
    assert payload == PAYLOAD
    assert trailers == {}
    assert decoder.bytes_decoded == 66560
    assert len(SIGNED_EXAMPLE) == 66824  # the example's Content-Length


@pytest.mark.parametrize(
    "tamper",
    [
        lambda b: b.replace(b"a" * 10, b"a" * 9 + b"b", 1),  # chunk 1 data
        lambda b: b[:-300] + b"b" + b[-299:],  # chunk 2 data
        lambda b: b.replace(b"ad80c730", b"ad80c731"),  # chunk 1 signature
        lambda b: b.replace(b"b6c6ea8a", b"b6c6ea8b"),  # final chunk signature
    ],
)
def test_tampered_signed_example_is_signature_does_not_match(tamper):
    decoder = ChunkedDecoder(_example_auth(PayloadMode.STREAMING_SIGNED))
    with pytest.raises(errors.SignatureDoesNotMatch):
        _decode(decoder, tamper(SIGNED_EXAMPLE), 1000)


def test_signed_chunk_without_signature_is_incomplete_body():
    body = SIGNED_EXAMPLE.replace(
        b"400;chunk-signature=0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
        b"400",
    )
    with pytest.raises(errors.IncompleteBody, match="terminated unexpectedly"):
        _decode(ChunkedDecoder(_example_auth(PayloadMode.STREAMING_SIGNED)), body)


@pytest.mark.parametrize(
    "ending",
    [
        b"",  # final CRLF omitted
        b"\r\n",  # as AWS and the SDKs send it
    ],
)
@pytest.mark.parametrize("extra_blank", [False, True])
def test_aws_signed_trailer_example_decodes(ending, extra_blank):
    auth = _example_auth(PayloadMode.STREAMING_SIGNED_TRAILER)
    body = TRAILER_EXAMPLE_CHUNKS + (b"\r\n" if extra_blank else b"") + TRAILER_EXAMPLE_TRAILERS
    decoder = ChunkedDecoder(auth, trailer_names=["x-amz-checksum-crc32c"], decoded_length=66560)
    payload, trailers = _decode(decoder, body + ending, 4000)
    assert payload == PAYLOAD
    assert trailers == {"x-amz-checksum-crc32c": "sOO8/Q=="}
    cset = ChecksumSet(["CRC32C"])
    cset.update(payload)
    assert cset.verify(trailers) == {"CRC32C": "sOO8/Q=="}


def test_tampered_trailer_value_is_signature_does_not_match():
    body = TRAILER_EXAMPLE_CHUNKS + TRAILER_EXAMPLE_TRAILERS.replace(b"sOO8", b"sOO9") + b"\r\n"
    decoder = ChunkedDecoder(_example_auth(PayloadMode.STREAMING_SIGNED_TRAILER),
                             trailer_names=["x-amz-checksum-crc32c"])  # fmt: skip
    with pytest.raises(errors.SignatureDoesNotMatch):
        _decode(decoder, body)


def test_signed_trailers_without_trailer_signature_are_incomplete_body():
    body = TRAILER_EXAMPLE_CHUNKS + b"x-amz-checksum-crc32c:sOO8/Q==\r\n\r\n"
    decoder = ChunkedDecoder(_example_auth(PayloadMode.STREAMING_SIGNED_TRAILER),
                             trailer_names=["x-amz-checksum-crc32c"])  # fmt: skip
    with pytest.raises(errors.IncompleteBody):
        _decode(decoder, body)


# ---------------------------------------------------------- signed, general
@pytest.mark.parametrize("trailers", [None, {"x-amz-checksum-sha256": "x"}])
def test_signed_bodies_with_random_chunking_round_trip(trailers):
    rng = random.Random(7)
    mode = PayloadMode.STREAMING_SIGNED_TRAILER if trailers else PayloadMode.STREAMING_SIGNED
    auth = _auth(mode)
    chunks = [rng.randbytes(rng.choice([1, 100, 8192, 65536, 100_000])) for _ in range(20)]
    body = _signed_body(auth, chunks, trailers)
    decoder = ChunkedDecoder(auth, trailer_names=list(trailers or ()),
                             decoded_length=sum(map(len, chunks)))  # fmt: skip
    payload, got = _decode(decoder, body, 65_000)
    assert payload == b"".join(chunks)
    assert got == (trailers or {})


def test_signed_chunks_cannot_be_reordered():
    auth = _auth(PayloadMode.STREAMING_SIGNED)
    body = _signed_body(auth, [b"x" * 10, b"y" * 10], None)
    first, second = body.index(b"a;"), body.index(b"a;", 5)
    swapped = body[second : body.index(b"0;")] + body[first:second] + body[body.index(b"0;") :]
    with pytest.raises(errors.SignatureDoesNotMatch):
        _decode(ChunkedDecoder(auth), swapped)


# ------------------------------------------------------------- botocore bodies
BOTOCORE_CHECKSUMS = {
    "CRC32": Crc32Checksum,
    "CRC32C": CrtCrc32cChecksum,
    "CRC64NVME": CrtCrc64NvmeChecksum,
    "SHA1": Sha1Checksum,
    "SHA256": Sha256Checksum,
}


@pytest.mark.parametrize("algo", sorted(BOTOCORE_CHECKSUMS))
@pytest.mark.parametrize("size", [0, 1, 1 << 20, (1 << 20) + 1, 3 << 20])
def test_botocore_aws_chunked_trailer_bodies_decode_and_verify(algo, size):
    data = random.Random(size).randbytes(size)
    name = f"x-amz-checksum-{algo.lower()}"
    wrapper = AwsChunkedWrapper(io.BytesIO(data), BOTOCORE_CHECKSUMS[algo], name)
    body = wrapper.read()
    headers = {"x-amz-trailer": name, "x-amz-decoded-content-length": str(size)}
    decoder = ChunkedDecoder(_auth(PayloadMode.STREAMING_UNSIGNED_TRAILER),
                             trailer_names=declared_trailers(headers),
                             decoded_length=decoded_content_length(headers))  # fmt: skip
    cset = ChecksumSet(requested_checksums(headers))
    for start in range(0, len(body), 1 << 16):
        for piece in decoder.feed(body[start : start + (1 << 16)]):
            cset.update(piece)
    trailers = decoder.finish()
    reference = BOTOCORE_CHECKSUMS[algo]()
    reference.update(data)
    assert cset.verify(trailers) == {algo: reference.b64digest()}
    assert decoder.bytes_decoded == size


def test_botocore_client_put_over_https_sends_a_body_we_decode(botocore_client, utcnow):
    client, sent = botocore_client("https://127.0.0.1:9443")
    data = random.Random(1).randbytes(3 * 1024 * 1024 + 5)
    client.put_object(Bucket="b", Key="k", Body=data)
    client.upload_part(Bucket="b", Key="k", UploadId="u", PartNumber=1, Body=data,
                       ChecksumAlgorithm="CRC32C")  # fmt: skip
    for wire in sent:
        auth = sigv4.verify_request(wire.method, wire.path, wire.query, wire.headers,
                                    get_secret={AK: SK}.get, now=utcnow)  # fmt: skip
        assert auth.payload_mode is PayloadMode.STREAMING_UNSIGNED_TRAILER
        decoder = ChunkedDecoder(auth, trailer_names=declared_trailers(wire.headers),
                                 decoded_length=decoded_content_length(wire.headers))  # fmt: skip
        cset = ChecksumSet(requested_checksums(wire.headers))
        for piece in decoder.feed(wire.body):
            cset.update(piece)
        assert set(cset.verify(decoder.finish())) == set(requested_checksums(wire.headers))
        assert decoder.bytes_decoded == len(data)


# ------------------------------------------------------------- framing errors
UNSIGNED = PayloadMode.STREAMING_UNSIGNED_TRAILER
GOOD = b"5\r\nhello\r\n0\r\nx-amz-checksum-crc32:NhCmhg==\r\n\r\n"


def _unsigned(**kw) -> ChunkedDecoder:
    kw.setdefault("trailer_names", ["x-amz-checksum-crc32"])
    return ChunkedDecoder(_auth(UNSIGNED), **kw)


def test_unsigned_trailer_body_decodes_and_pieces_are_slices_of_the_input():
    decoder = _unsigned(decoded_length=5)
    pieces = decoder.feed(GOOD)
    assert [bytes(p) for p in pieces] == [b"hello"]
    assert isinstance(pieces[0], memoryview) and pieces[0].obj is GOOD
    assert decoder.finish() == {"x-amz-checksum-crc32": "NhCmhg=="}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"zz\r\nhello\r\n0\r\n\r\n", "terminated unexpectedly"),  # size not hex
        (b"0x5\r\nhello\r\n0\r\n\r\n", "terminated unexpectedly"),
        (b"5\r\nhelloXX0\r\n\r\n", "terminated unexpectedly"),  # no CRLF after data
        (b"5\r\nhel", "terminated unexpectedly"),  # truncated in data
        (b"5\r\nhello\r\n", "terminated unexpectedly"),  # no final chunk
        (b"5\r\nhello\r\n0\r\nx-amz-checksum-crc32:NhCm", "terminated unexpectedly"),
        (GOOD + b"5\r\n", "terminated unexpectedly"),  # data after the end
        (b"5" * 5000, "terminated unexpectedly"),  # a header line that never ends
    ],
)
def test_bad_framing_is_incomplete_body(body, message):
    with pytest.raises(errors.IncompleteBody, match=message):
        _decode(_unsigned(), body)


@pytest.mark.parametrize(
    ("body", "declared"),
    [
        (b"5\r\nhello\r\n0\r\n\r\n", ["x-amz-checksum-crc32"]),  # declared, never sent
        (GOOD, []),  # sent, never declared
        (GOOD, ["x-amz-checksum-crc32c"]),  # a different one
        (b"5\r\nhello\r\n0\r\nno-colon\r\n\r\n", ["x-amz-checksum-crc32"]),
        (b"5\r\nhello\r\n0\r\nx-amz-trailer-signature:ab\r\n\r\n", []),  # unsigned mode
        (GOOD.replace(b"\r\n\r\n", b"\r\nx-amz-checksum-crc32:NhCmhg==\r\n\r\n"),
         ["x-amz-checksum-crc32"]),  # repeated
    ],
)  # fmt: skip
def test_trailers_not_matching_x_amz_trailer_are_malformed(body, declared):
    with pytest.raises(MalformedTrailerError) as caught:
        _decode(_unsigned(trailer_names=declared), body)
    assert caught.value.code == "MalformedTrailerError" and caught.value.status == 400


def test_more_bytes_than_declared_fail_at_the_chunk_header():
    decoder = _unsigned(decoded_length=4)
    with pytest.raises(errors.IncompleteBody) as caught:
        decoder.feed(b"5\r\n")
    assert caught.value.extra == {"NumberBytesExpected": "4", "NumberBytesProvided": "5"}


def test_fewer_bytes_than_declared_fail_at_the_end():
    with pytest.raises(errors.IncompleteBody) as caught:
        _decode(_unsigned(decoded_length=6), GOOD)
    assert caught.value.extra == {"NumberBytesExpected": "6", "NumberBytesProvided": "5"}


def test_a_failed_decoder_stays_failed():
    decoder = _unsigned()
    with pytest.raises(errors.IncompleteBody):
        decoder.feed(b"zz\r\n")
    with pytest.raises(errors.IncompleteBody):
        decoder.feed(b"5\r\nhello\r\n")
    with pytest.raises(errors.IncompleteBody):
        decoder.finish()


def test_unsigned_mode_ignores_chunk_extensions():
    body = b"5;foo=bar\r\nhello\r\n0;x=y\r\nx-amz-checksum-crc32:NhCmhg==\r\n"
    assert _decode(_unsigned(decoded_length=5), body) == (
        b"hello", {"x-amz-checksum-crc32": "NhCmhg=="}
    )


def test_non_streaming_auth_cannot_build_a_decoder():
    with pytest.raises(ValueError):
        ChunkedDecoder(_auth(PayloadMode.UNSIGNED))


def test_decoded_content_length_header_rules():
    assert decoded_content_length({"x-amz-decoded-content-length": "66560"}) == 66560
    with pytest.raises(errors.MissingContentLength):
        decoded_content_length({})
    with pytest.raises(errors.MissingContentLength):
        decoded_content_length({"x-amz-decoded-content-length": "abc"})
    with pytest.raises(errors.InvalidArgument):
        decoded_content_length({"x-amz-decoded-content-length": "-1"})


def test_declared_trailers_are_lower_case_names():
    assert declared_trailers({"x-amz-trailer": "X-Amz-Checksum-CRC32, ,"}) == (
        "x-amz-checksum-crc32",
    )
    assert declared_trailers({}) == ()


def test_chunk_signatures_are_compared_in_constant_time(monkeypatch):
    decoder = ChunkedDecoder(_example_auth(PayloadMode.STREAMING_SIGNED))
    calls = []
    real = hmac.compare_digest
    monkeypatch.setattr(hmac, "compare_digest", lambda a, b: calls.append(1) or real(a, b))
    _decode(decoder, SIGNED_EXAMPLE)
    assert len(calls) == 3
