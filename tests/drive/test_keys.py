"""LMDB key encoding and the listing walk (titans3/drive/keys.py), pure.

The store here is a sorted list behind the same cursor calls LMDB offers, so
the order properties are checked against ``sorted()`` of the raw keys.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from titans3.drive import keys
from titans3.drive.keys import GROUP_KEY_LEN, L, encode_key, prefix_successor, walk_listing

B = b"bucket01"
OTHER = b"bucket02"


class FakeTxn:
    """dict-backed stand-in for an LMDB txn + cursor (binary key order)."""

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}
        self.steps = 0  # cursor next() calls
        self.seeks = 0

    def get(self, key: bytes, default: bytes | None = None, db: Any = None) -> bytes | None:
        assert len(key) <= keys.LMDB_MAX_KEY
        return self.data.get(key, default)

    def put(self, key: bytes, value: bytes, db: Any = None) -> bool:
        assert len(key) <= keys.LMDB_MAX_KEY
        self.data[key] = value
        return True

    def delete(self, key: bytes, value: bytes = b"", db: Any = None) -> bool:
        return self.data.pop(key, None) is not None

    def cursor(self) -> FakeCursor:
        return FakeCursor(self)


class FakeCursor:
    def __init__(self, txn: FakeTxn) -> None:
        self.txn = txn
        self.items = sorted(txn.data.items())
        self.i = 0

    def set_range(self, key: bytes) -> bool:
        self.txn.seeks += 1
        self.i = bisect_left(self.items, key, key=lambda kv: kv[0])
        return self.i < len(self.items)

    def next(self) -> bool:
        self.txn.steps += 1
        self.i += 1
        return self.i < len(self.items)

    def key(self) -> bytes:
        return self.items[self.i][0]

    def value(self) -> bytes:
        return self.items[self.i][1]


def store(all_keys: list[bytes], bucket: bytes = B, txn: FakeTxn | None = None) -> FakeTxn:
    txn = txn or FakeTxn()
    for k in all_keys:
        keys.update_record(txn, None, bucket, k, lambda _cur, k=k: b"v:" + k)
    return txn


def reference(
    all_keys: list[bytes], prefix: bytes, start_after: bytes | None, delimiter: bytes | None, limit: int
) -> list[tuple[bytes, bool]]:
    """S3 listing semantics on plain sorted keys."""
    out: list[tuple[bytes, bool]] = []
    for k in sorted(set(all_keys)):
        if not k.startswith(prefix) or (start_after is not None and k <= start_after):
            continue
        if delimiter:
            i = k.find(delimiter, len(prefix))
            if i >= 0:
                cp = k[: i + len(delimiter)]
                if start_after is not None and cp <= start_after:
                    continue
                if not out or out[-1] != (cp, True):
                    out.append((cp, True))
                continue
        out.append((k, False))
    return out[:limit]


def listed(txn: FakeTxn, **kw: Any) -> list[tuple[bytes, bool]]:
    rows = walk_listing(txn.cursor(), B, **kw)
    for k, v in rows:
        if v is not None:
            assert v == b"v:" + k  # the value travels with its own key
    return [(k, v is None) for k, v in rows]


# ---------------------------------------------------------------- encoding
def test_short_keys_are_stored_plain_and_long_keys_in_groups() -> None:
    assert L == 502
    assert encode_key(B, b"a" * L) == (B + b"a" * L, None)
    lk, suffix = encode_key(B, b"a" * L + b"tail")
    assert lk == B + b"a" * L + b"\x00" and len(lk) == GROUP_KEY_LEN == 511
    assert suffix == b"tail"


def test_encoding_validates_bucket_id_and_key_length() -> None:
    with pytest.raises(ValueError):
        encode_key(b"short", b"k")
    with pytest.raises(ValueError):
        encode_key(B, b"k" * 1025)
    assert encode_key(B, b"k" * 1024)[1] == b"k" * (1024 - L)


def test_group_records_hold_many_suffixes_in_order() -> None:
    base = b"p" * L
    txn = store([base + b"b", base + b"a", base + b"c" * 100, base])
    assert len(txn.data) == 2  # the plain key P and P's group
    assert keys.read_record(txn, None, B, base + b"a") == b"v:" + base + b"a"
    assert keys.read_record(txn, None, B, base + b"zz") is None
    assert keys.read_record(txn, None, B, base) == b"v:" + base
    group = keys.unpack_group(txn.data[B + base + b"\x00"])
    assert [s for s, _ in group] == [b"a", b"b", b"c" * 100]


def test_removing_the_last_key_of_a_group_removes_the_group() -> None:
    base = b"r" * L
    txn = store([base + b"1", base + b"2", b"short"])
    keys.update_record(txn, None, B, base + b"1", lambda cur: None)
    assert keys.read_record(txn, None, B, base + b"2") == b"v:" + base + b"2"
    keys.update_record(txn, None, B, base + b"2", lambda cur: None)
    keys.update_record(txn, None, B, b"short", lambda cur: None)
    keys.update_record(txn, None, B, b"never-there", lambda cur: None)
    assert txn.data == {}


def test_prefix_successor() -> None:
    assert prefix_successor(b"a/") == b"a0"
    assert prefix_successor(b"a\xff\xff") == b"b"
    assert prefix_successor(b"\xff\xff") is None


# -------------------------------------------------------------- order (hypothesis)
ALPHABET = b"\x00\x01/ab\xfe\xff"

short_keys = st.binary(min_size=1, max_size=12).map(lambda b: bytes(ALPHABET[c % len(ALPHABET)] for c in b))


@st.composite
def key_sets(draw: st.DrawFn) -> list[bytes]:
    """Keys around the L-byte boundary: shared long prefixes, exact-L keys,
    1,024-byte keys and keys that are prefixes of each other."""
    stems = draw(st.lists(short_keys, min_size=1, max_size=4))
    out: list[bytes] = []
    for stem in stems:
        p = (stem * (L // len(stem) + 1))[: L - draw(st.integers(0, 3))]
        for tail in draw(st.lists(st.binary(max_size=6), min_size=1, max_size=6)):
            out.append(p + tail)
        out.append(p[: L])
        n = draw(st.integers(0, 1024 - len(p)))
        out.append((p + stem * 600)[: len(p) + n])
        out.append((p + b"\xff" * 600)[:1024])
    out += draw(st.lists(short_keys, max_size=10))
    return [k for k in out if 0 < len(k) <= 1024]


@settings(max_examples=150, deadline=None)
@given(all_keys=key_sets())
def test_full_listing_is_exact_binary_order(all_keys: list[bytes]) -> None:
    txn = store(all_keys)
    store([b"zzz", b"\x00"], bucket=OTHER, txn=txn)  # other buckets never leak in
    assert listed(txn, limit=10**6) == [(k, False) for k in sorted(set(all_keys))]


@settings(max_examples=300, deadline=None)
@given(
    all_keys=key_sets(),
    data=st.data(),
    delimiter=st.sampled_from([None, b"/", b"a", b"\xff", b"ab"]),
    limit=st.integers(1, 40),
)
def test_prefix_start_after_delimiter_match_s3_semantics(
    all_keys: list[bytes], data: st.DataObject, delimiter: bytes | None, limit: int
) -> None:
    txn = store(all_keys)
    pick = data.draw(st.sampled_from(sorted(set(all_keys))))
    prefix = pick[: data.draw(st.integers(0, len(pick)))]
    start_after = data.draw(
        st.one_of(
            st.none(),
            st.sampled_from(sorted(set(all_keys))),  # often inside a group
            st.sampled_from(sorted(set(all_keys))).map(lambda k: k[: len(k) // 2]),
            short_keys,
        )
    )
    got = listed(txn, prefix=prefix, start_after=start_after, delimiter=delimiter, limit=limit)
    assert got == reference(all_keys, prefix, start_after, delimiter, limit)


@settings(max_examples=100, deadline=None)
@given(all_keys=key_sets(), delimiter=st.sampled_from([None, b"/", b"a"]), page=st.integers(1, 7))
def test_paging_with_the_last_entry_as_marker_lists_everything_once(
    all_keys: list[bytes], delimiter: bytes | None, page: int
) -> None:
    txn = store(all_keys)
    pages: list[tuple[bytes, bool]] = []
    marker = None
    while True:
        got = listed(txn, start_after=marker, delimiter=delimiter, limit=page)
        pages += got
        if len(got) < page:
            break
        marker = got[-1][0]
    assert pages == reference(all_keys, b"", None, delimiter, 10**6)


# ------------------------------------------------------------ push-down
def test_delimiter_skips_over_a_collapsed_prefix_instead_of_walking_it() -> None:
    many = [b"photos/%05d.jpg" % i for i in range(5000)]
    txn = store([b"a.txt", *many, b"zebra"])
    got = listed(txn, delimiter=b"/")
    assert got == [(b"a.txt", False), (b"photos/", True), (b"zebra", False)]
    assert txn.steps < 10 and txn.seeks <= 3


def test_a_marker_equal_to_a_common_prefix_skips_that_prefix() -> None:
    txn = store([b"a/1", b"a/2", b"b/1", b"c"])
    assert listed(txn, delimiter=b"/", start_after=b"a/") == [(b"b/", True), (b"c", False)]


def test_prefix_and_limit_stop_the_walk_early() -> None:
    txn = store([b"x%04d" % i for i in range(1000)] + [b"y"])
    got = listed(txn, prefix=b"x0", limit=5)
    assert [k for k, _ in got] == [b"x0000", b"x0001", b"x0002", b"x0003", b"x0004"]
    assert txn.steps <= 5
    assert listed(txn, prefix=b"x", start_after=b"y") == []
    assert listed(txn, limit=0) == []


def test_scan_range_honours_prefix_marker_and_limit() -> None:
    txn = FakeTxn()
    for k in [b"a", b"b1", b"b2", b"b3", b"c"]:
        txn.put(k, k.upper())
    assert keys.scan_range(txn.cursor(), prefix=b"b") == [(b"b1", b"B1"), (b"b2", b"B2"), (b"b3", b"B3")]
    assert keys.scan_range(txn.cursor(), prefix=b"b", start_after=b"b1", limit=1) == [(b"b2", b"B2")]
    assert keys.scan_range(txn.cursor(), start_after=b"b3") == [(b"c", b"C")]
    assert keys.scan_range(txn.cursor(), prefix=b"b", start_after=b"c") == []
    assert keys.scan_range(txn.cursor(), prefix=b"b", start_after=b"a") == keys.scan_range(txn.cursor(), prefix=b"b")
    assert keys.scan_range(txn.cursor(), limit=0) == []


def test_delimiter_inside_a_long_key_group() -> None:
    p = b"d" * (L - 2)
    all_keys = [p + b"/x/1", p + b"/x/2", p + b"/y", p + b"zz/" + b"q" * 400, p]
    txn = store(all_keys)
    assert listed(txn, prefix=p + b"/", delimiter=b"/") == [(p + b"/x/", True), (p + b"/y", False)]
    assert listed(txn, prefix=p, delimiter=b"/") == [(p, False), (p + b"/", True), (p + b"zz/", True)]
