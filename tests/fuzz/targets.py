"""Fuzz targets: every parser that reads bytes a client, a peer or a disk controls.

Theory of operation
-------------------
Each target takes raw ``bytes`` (what atheris mutates; the hypothesis tests
feed the same functions) and states the parser's contract: it returns a value,
or raises the *typed* error the front maps to a clean answer (an ``S3Error``
for S3 input, ``AuthError`` for the peer port, ``FragmentFormatError`` for a
fragment file, ``DriveError``/``ValueError`` for a peer's wire document).
Anything else -- ``IndexError``, ``UnicodeDecodeError``, ``OverflowError``, a
``ValueError`` leaking out of ``int()`` -- is a bug: on the S3 port it would be
a 500 where the client expects a 400 (or a traceback in the log).  Targets also
check what the result must satisfy (a resolved range lies inside the object,
a decoded aws-chunked body never exceeds what was framed).

:data:`TARGETS` names them for ``scripts/fuzz.sh`` (atheris, coverage-guided)
and ``tests/fuzz/test_fuzz.py`` (hypothesis, in CI).
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable

import msgpack

from titans3.core.errors import DriveError, S3Error
from titans3.drive import fragment as fmt
from titans3.drive import wire
from titans3.peer.auth import AuthError, Verifier
from titans3.s3 import ranges, routing, sigv4, xml, xml_objects
from titans3.s3 import tagging as s3_tagging
from titans3.s3.chunked import ChunkedDecoder, declared_trailers, decoded_content_length
from titans3.s3.cors import parse_cors_configuration
from titans3.s3.handlers_copy import parse_copy_range, parse_copy_source
from titans3.s3.handlers_object import evaluate_preconditions

NOW = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
ACCESS, SECRET = "AKIAFUZZFUZZFUZZFUZZ", "fuzz-secret-key-0123456789abcdefghijklmn"


def _text(data: bytes) -> str:
    return data.decode("latin-1")  # what an HTTP server hands over: any byte is a char


def _fields(data: bytes, n: int) -> list[str]:
    """``n`` text fields cut from ``data`` at NUL bytes (missing ones empty)."""
    parts = data.split(b"\0", n - 1)
    return [_text(p) for p in parts] + [""] * (n - len(parts))


def _headers(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.split("\n"):
        name, _, value = line.partition(":")
        if name.strip():
            out[name.strip().lower()] = value.strip()
    return out


# ------------------------------------------------------------------- SigV4/V2
def sigv4_verify(data: bytes) -> None:
    method, path, query, head = _fields(data, 4)
    headers = _headers(head)
    try:
        r = sigv4.verify_request(method or "GET", path or "/", query, headers,
                                 get_secret=lambda ak: SECRET if ak == ACCESS else None, now=NOW)
    except S3Error:
        return
    assert r.access_key == ACCESS  # only a right signature gets through, never a guess


# ---------------------------------------------------------------- aws-chunked
def _auth(mode: sigv4.PayloadMode) -> sigv4.AuthResult:
    date, amz = "20260102", "20260102T030405Z"
    scope = sigv4.scope_of(date, "us-east-1")
    return sigv4.AuthResult(ACCESS, "us-east-1", "s3", date, amz,
                            sigv4.derive_signing_key(SECRET, date, "us-east-1"), "0" * 64, mode,
                            None, False, scope)


_STREAMING = [m for m in sigv4.PayloadMode if m.streaming]


def chunked_decode(data: bytes) -> None:
    if not data:
        return
    mode = _STREAMING[data[0] % len(_STREAMING)]
    splits = data[1] if len(data) > 1 else 7
    body = data[2:]
    dec = ChunkedDecoder(_auth(mode), trailer_names=["x-amz-checksum-crc32"] if data[0] & 8 else (),
                         decoded_length=len(body) if data[0] & 16 else None)
    out = 0
    step = max(1, splits)
    try:
        for i in range(0, len(body), step):
            out += sum(len(x) for x in dec.feed(body[i : i + step]))
        dec.finish()
    except S3Error:
        return
    assert out == dec.bytes_decoded <= len(body)


def chunked_headers(data: bytes) -> None:
    headers = _headers(_text(data))
    try:
        n = decoded_content_length(headers)
        declared_trailers(headers)
    except S3Error:
        return
    assert n is None or n >= 0


# ------------------------------------------------------------- Range / If-*
def range_header(data: bytes) -> None:
    size = int.from_bytes(data[:3], "big") if data else 0
    try:
        r = ranges.parse_range(_text(data[3:]))
        got = ranges.resolve_range(r, size)
    except S3Error:
        return
    if got is not None:
        first, last = got
        assert 0 <= first <= last < size, (r, size, got)


def copy_source(data: bytes) -> None:
    src, rng = _fields(data, 2)
    try:
        bucket, key, vid = parse_copy_source(src)
        assert isinstance(bucket, str) and isinstance(key, str)
    except S3Error:
        pass
    try:
        got = parse_copy_range(rng)
    except S3Error:
        return
    assert got is None or 0 <= got[0] <= got[1]


def conditional_headers(data: bytes) -> None:
    headers = _headers(_text(data))
    try:
        r = evaluate_preconditions(headers, "0123456789abcdef", 1_700_000_000 * 10**9)
    except S3Error as e:
        assert e.status == 412
        return
    assert r in (None, 304)


# --------------------------------------------------------------- S3 routing
def route(data: bytes) -> None:
    method, path, query, head = _fields(data, 4)
    headers = _headers(head)
    try:
        routing.classify(method or "GET", path or "/", routing.parse_query(query), headers,
                         domain="s3.example" if data[:1] == b"v" else None)
    except S3Error:
        return


# ------------------------------------------------------------ S3 XML bodies
XML_PARSERS: dict[str, Callable[[bytes], object]] = {
    "complete_multipart": xml.parse_complete_multipart_upload,
    "create_bucket": xml.parse_create_bucket_configuration,
    "delete_objects": xml_objects.parse_delete,
    "versioning": xml_objects.parse_versioning_configuration,
    "object_tagging": xml_objects.parse_tagging,
    "bucket_tagging": s3_tagging.parse_tagging,
    "cors": parse_cors_configuration,
}


def xml_bodies(data: bytes) -> None:
    for parse in XML_PARSERS.values():
        try:
            parse(data)
        except S3Error:
            continue


# ------------------------------------------------------------ fragment file
def fragment_header(data: bytes) -> None:
    try:
        h = fmt.unpack_header(data)
    except fmt.FragmentFormatError:
        return
    assert fmt.unpack_header(h.pack()) == h


def fragment_blocks(data: bytes) -> None:
    """A framed payload with arbitrary damage: the exact payload or FragmentFormatError."""
    if len(data) < 4:
        return
    payload = data[4 : 4 + 3 * fmt.PAYLOAD]
    framed = bytearray(fmt.frame(payload))
    if not framed:
        return
    where = int.from_bytes(data[:3], "big") % max(1, len(framed))
    framed[where] ^= data[3] or 1
    br = fmt.blocks_for_range(0, len(payload), len(payload))
    try:
        views = fmt.verify_and_extract(bytes(framed), br.first_block, 0, len(payload), len(payload))
    except fmt.FragmentFormatError:
        return
    assert b"".join(bytes(v) for v in views) == payload  # damage only where no checksum covers


# ---------------------------------------------------------------- peer port
_VERIFIER = Verifier("fuzz-cluster-secret-0123456789", clock=lambda: 1_767_323_045.0)


def peer_auth(data: bytes) -> None:
    method, target, head = _fields(data, 3)
    try:
        v = _VERIFIER.check_headers(method, target, _headers(head))
        _VERIFIER.check_body(v, data)
    except AuthError:
        return
    raise AssertionError("an unsigned request passed the peer verifier")


def peer_wire(data: bytes) -> None:
    try:
        doc = wire.unpack(data)
    except (ValueError, msgpack.UnpackException):
        return
    with contextlib.suppress(DriveError, ValueError):
        wire.raise_doc(500, doc, "d0")
    try:
        if isinstance(doc, list):
            wire.records_in(doc)
            wire.entries_in(doc)
        if isinstance(doc, dict):
            wire.stat_in(doc)
    except (ValueError, KeyError, TypeError):  # what the peer client maps to a DriveError
        return


TARGETS: dict[str, Callable[[bytes], None]] = {
    "sigv4": sigv4_verify,
    "chunked": chunked_decode,
    "chunked_headers": chunked_headers,
    "range": range_header,
    "copy_source": copy_source,
    "conditional": conditional_headers,
    "route": route,
    "xml": xml_bodies,
    "fragment_header": fragment_header,
    "fragment_blocks": fragment_blocks,
    "peer_auth": peer_auth,
    "peer_wire": peer_wire,
}
