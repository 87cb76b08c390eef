"""Property-based fuzzing (hypothesis) of every parser in tests/fuzz/targets.py.

Two kinds of test per parser: raw bytes into the target (its contract: a
value or the typed error), and *structured* inputs that reach deep -- headers
that look like the real ones with hostile values, SigV4 requests signed by
botocore (an independent implementation) and then tampered with, aws-chunked
bodies framed right and then cut or split anywhere, XML documents of the
right shape with hostile leaves.  ``TITANS3_FUZZ_EXAMPLES`` (default 150)
sets how many examples each test draws; ``scripts/fuzz.sh`` runs them longer
and then runs atheris.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import urllib.parse
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz import targets
from titans3.core.errors import S3Error
from titans3.s3 import ranges, sigv4
from titans3.s3.chunked import ChunkedDecoder

EXAMPLES = int(os.environ.get("TITANS3_FUZZ_EXAMPLES", "150"))
fuzz = settings(max_examples=EXAMPLES, deadline=None, derandomize=False,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# Values that break parsers: long digit runs (int() refuses > 4300 digits),
# signs, whitespace, non-ASCII digits, NULs, huge numbers, hex.
nasty_number = st.one_of(
    st.integers(min_value=0, max_value=2**70).map(str),
    st.integers(min_value=4290, max_value=6000).map(lambda n: "9" * n),
    st.sampled_from(["-1", "+5", " 7", "0x10", "１２", "٣", "1e3", "", "00000000000000000001"]),
    st.text(max_size=30),
)
header_value = st.one_of(st.text(max_size=80), nasty_number,
                         st.binary(max_size=60).map(lambda b: b.decode("latin-1")))


@pytest.mark.parametrize("name", sorted(targets.TARGETS))
@fuzz
@given(data=st.binary(max_size=2048))
def test_every_target_survives_arbitrary_bytes(name: str, data: bytes) -> None:
    targets.TARGETS[name](data)


# ----------------------------------------------------------------- ranges
@fuzz
@given(first=nasty_number, last=nasty_number, size=st.integers(0, 2**40),
       spaces=st.sampled_from(["", " ", "\t"]))
def test_a_range_header_resolves_inside_the_object_or_is_refused(first, last, size, spaces) -> None:
    header = f"bytes{spaces}={spaces}{first}{spaces}-{spaces}{last}"
    try:
        got = ranges.resolve_range(ranges.parse_range(header), size)
    except S3Error as e:
        assert e.status == 416
        return
    if got is not None:
        assert 0 <= got[0] <= got[1] < size


@fuzz
@given(name=st.sampled_from(["if-match", "if-none-match", "if-modified-since",
                             "if-unmodified-since"]),
       value=st.one_of(header_value, st.datetimes(min_value=dt.datetime(1, 1, 1)).map(
           lambda d: d.strftime("%a, %d %b %Y %H:%M:%S GMT")),
           st.integers(-10**6, 10**7).map(lambda y: f"Mon, 01 Jan {y} 00:00:00 GMT")))
def test_conditional_headers_give_412_304_or_proceed(name: str, value: str) -> None:
    targets.conditional_headers(f"{name}: {value}".encode("utf-8", "surrogateescape"))


@fuzz
@given(src=st.text(max_size=200), rng=st.one_of(
    st.tuples(nasty_number, nasty_number).map(lambda t: f"bytes={t[0]}-{t[1]}"), st.text(max_size=40)))
def test_copy_source_and_copy_range_parse_or_refuse(src: str, rng: str) -> None:
    targets.copy_source(src.encode("utf-8", "surrogateescape") + b"\0"
                        + rng.encode("utf-8", "surrogateescape"))


# ------------------------------------------------------------------ SigV4
def _signed(method: str, path: str, query: str, headers: dict[str, str], body: bytes) -> dict[str, str]:
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    url = "http://127.0.0.1:9000" + path + ("?" + query if query else "")
    hdrs = dict(headers)
    hdrs["X-Amz-Content-SHA256"] = hashlib.sha256(body).hexdigest()
    req = AWSRequest(method=method, url=url, headers=hdrs, data=body)
    S3SigV4Auth(Credentials(targets.ACCESS, targets.SECRET), "s3", "us-east-1").add_auth(req)
    out = {k.lower(): v for k, v in req.headers.items()}
    out["host"] = "127.0.0.1:9000"
    return out


path_segment = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=20)


@fuzz
@given(method=st.sampled_from(["GET", "PUT", "POST", "DELETE", "HEAD"]),
       segments=st.lists(path_segment, min_size=1, max_size=4),
       params=st.lists(st.tuples(st.text(max_size=8), st.text(max_size=12)), max_size=4),
       extra=st.dictionaries(st.sampled_from(["x-amz-meta-a", "content-type", "x-amz-acl",
                                              "cache-control"]), st.text(
                                                  st.characters(min_codepoint=32, max_codepoint=126),
                                                  max_size=30), max_size=3),
       body=st.binary(max_size=64), tamper=st.integers(0, 10**6))
def test_sigv4_accepts_what_botocore_signs_and_refuses_any_tampering(
        method, segments, params, extra, body, tamper) -> None:
    path = "/" + "/".join(urllib.parse.quote(s, safe="") for s in segments)
    query = urllib.parse.urlencode(params, quote_via=urllib.parse.quote)
    headers = _signed(method, path, query, extra, body)
    now = dt.datetime.now(dt.UTC)  # botocore signs with the wall clock
    r = sigv4.verify_request(method, path, query, headers,
                             get_secret=lambda ak: targets.SECRET if ak == targets.ACCESS else None,
                             now=now)
    assert r.access_key == targets.ACCESS and r.payload_sha256 == hashlib.sha256(body).hexdigest()
    # Change one character of the signature, the path or a signed header: refused.
    which = tamper % 3
    if which == 0:
        auth = headers["authorization"]
        i = len(auth) - 1 - tamper % 64
        headers["authorization"] = auth[:i] + ("0" if auth[i] != "0" else "1") + auth[i + 1:]
    elif which == 1:
        path = path + "x"
    else:
        d = headers["x-amz-date"]
        headers["x-amz-date"] = d[:-2] + ("0" if d[-2] != "0" else "1") + "Z"
    with pytest.raises(S3Error) as e:
        sigv4.verify_request(method, path, query, headers,
                             get_secret=lambda ak: targets.SECRET if ak == targets.ACCESS else None,
                             now=now)
    assert e.value.status in (400, 403)


@fuzz
@given(auth=st.one_of(
    st.tuples(st.sampled_from(["AWS4-HMAC-SHA256 ", "AWS ", "AWS4-HMAC-SHA256", "Bearer "]),
              st.lists(st.tuples(st.sampled_from(["Credential", "SignedHeaders", "Signature", "x"]),
                                 header_value), max_size=4))
    .map(lambda t: t[0] + ", ".join(f"{k}={v}" for k, v in t[1])),
    header_value),
    date=st.one_of(header_value, st.just("20260102T030405Z")),
    sha=st.one_of(header_value, st.sampled_from(["UNSIGNED-PAYLOAD", "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
                                                  "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"])),
    query=st.one_of(st.text(max_size=60), st.lists(st.tuples(
        st.sampled_from(["X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Signature", "X-Amz-Date",
                         "X-Amz-Expires", "X-Amz-SignedHeaders", "AWSAccessKeyId", "Signature",
                         "Expires"]), header_value), max_size=6).map(
        lambda kv: urllib.parse.urlencode(kv))))
def test_sigv4_and_sigv2_shaped_garbage_is_refused_with_an_s3_error(auth, date, sha, query) -> None:
    headers = {"host": "h", "x-amz-date": date, "x-amz-content-sha256": sha, "authorization": auth}
    if not auth:
        del headers["authorization"]
    with pytest.raises(S3Error):
        sigv4.verify_request("GET", "/b/k", query, headers,
                             get_secret=lambda ak: targets.SECRET if ak == targets.ACCESS else None,
                             now=targets.NOW)


# ------------------------------------------------------------ aws-chunked
def _unsigned_chunked(body: bytes, sizes: list[int], *, crc_trailer: bool) -> bytes:
    out = bytearray()
    i = 0
    for n in sizes:
        piece = body[i : i + n]
        if not piece:
            break
        out += f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
        i += len(piece)
    if i < len(body):
        out += f"{len(body) - i:x}\r\n".encode() + body[i:] + b"\r\n"
    out += b"0\r\n"
    if crc_trailer:
        import base64

        crc = base64.b64encode(zlib.crc32(body).to_bytes(4, "big")).decode()
        out += f"x-amz-checksum-crc32:{crc}\r\n".encode()
    out += b"\r\n"
    return bytes(out)


@fuzz
@given(body=st.binary(max_size=3000), sizes=st.lists(st.integers(1, 700), max_size=8),
       cut=st.integers(1, 97), crc=st.booleans(), damage=st.one_of(st.none(), st.integers(0, 10**6)))
def test_aws_chunked_decodes_exactly_what_was_framed_or_refuses(body, sizes, cut, crc, damage) -> None:
    framed = bytearray(_unsigned_chunked(body, sizes, crc_trailer=crc))
    if damage is not None:
        framed[damage % len(framed)] ^= 0x41
    mode = sigv4.PayloadMode.STREAMING_UNSIGNED_TRAILER
    dec = ChunkedDecoder(targets._auth(mode), trailer_names=["x-amz-checksum-crc32"] if crc else (),
                         decoded_length=len(body))
    got = bytearray()
    try:
        for i in range(0, len(framed), cut):
            for piece in dec.feed(bytes(framed[i : i + cut])):
                got += piece
        trailers = dec.finish()
    except S3Error as e:
        assert damage is not None, f"a well-framed body was refused: {e!r}"
        assert e.status == 400
        return
    if damage is None:
        assert bytes(got) == body
        assert ("x-amz-checksum-crc32" in trailers) == crc
    else:
        assert len(got) == len(body)  # decoded_length holds even when a damaged frame parses


# ------------------------------------------------------------- XML bodies
def _xml(tag: str, children: list[str]) -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8"?><{tag} '
            f'xmlns="http://s3.amazonaws.com/doc/2006-03-01/">' + "".join(children)
            + f"</{tag}>").encode("utf-8", "surrogateescape")


leaf = st.one_of(nasty_number, st.text(max_size=40).map(
    lambda t: t.replace("&", "&amp;").replace("<", "&lt;")), st.sampled_from(
    ["<x/>", "&#0;", "&#xD800;", "&lt;", "]]>", "<![CDATA[x]]>", "&unknown;"]))


@fuzz
@given(parts=st.lists(st.tuples(leaf, leaf), max_size=5),
       root=st.sampled_from(["CompleteMultipartUpload", "Delete", "Tagging",
                             "VersioningConfiguration", "CORSConfiguration",
                             "CreateBucketConfiguration"]))
def test_s3_xml_bodies_of_the_right_shape_with_hostile_leaves(parts, root) -> None:
    kids = {
        "CompleteMultipartUpload": lambda a, b: f"<Part><PartNumber>{a}</PartNumber><ETag>{b}</ETag></Part>",
        "Delete": lambda a, b: f"<Object><Key>{a}</Key><VersionId>{b}</VersionId></Object><Quiet>{b}</Quiet>",
        "Tagging": lambda a, b: f"<TagSet><Tag><Key>{a}</Key><Value>{b}</Value></Tag></TagSet>",
        "VersioningConfiguration": lambda a, b: f"<Status>{a}</Status><MfaDelete>{b}</MfaDelete>",
        "CORSConfiguration": lambda a, b: (f"<CORSRule><AllowedMethod>{a}</AllowedMethod><AllowedOrigin>"
                                           f"{b}</AllowedOrigin><MaxAgeSeconds>{a}</MaxAgeSeconds></CORSRule>"),
        "CreateBucketConfiguration": lambda a, b: f"<LocationConstraint>{a}</LocationConstraint>",
    }[root]
    targets.xml_bodies(_xml(root, [kids(a, b) for a, b in parts]))


# -------------------------------------------------------------- routing
@fuzz
@given(method=st.sampled_from(["GET", "PUT", "POST", "DELETE", "HEAD", "PATCH", "get"]),
       path=st.text(max_size=80), query=st.lists(st.tuples(st.sampled_from(
           ["uploads", "uploadId", "partNumber", "versionId", "versions", "tagging", "delete",
            "list-type", "max-keys", "x"]), nasty_number), max_size=4),
       host=st.one_of(st.none(), st.text(max_size=30)))
def test_routing_classifies_or_refuses(method, path, query, host) -> None:
    q = urllib.parse.urlencode(query)
    head = f"host: {host}" if host is not None else ""
    targets.route("\0".join([method, path, q, head]).encode("utf-8", "surrogateescape"))


# ------------------------------------------------------------ fragments
@fuzz
@given(payload=st.binary(max_size=3 * 65536), where=st.integers(0, 10**7),
       bit=st.integers(0, 7))
def test_a_fragment_with_any_flipped_bit_reads_back_exactly_or_refuses(payload, where, bit) -> None:
    targets.fragment_blocks((where % 2**24).to_bytes(3, "big") + bytes([1 << bit]) + payload)
