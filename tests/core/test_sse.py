"""The encrypted package format (titans3/core/sse.py): sizes, ranges, tamper detection."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from titans3.core import sse
from titans3.core.sse import PACKAGE, STORED, TAG

KEY = bytes(range(32))


def test_sizes_count_one_tag_per_package_and_one_package_for_empty() -> None:
    assert sse.stored_size(0) == TAG
    assert sse.stored_size(1) == 1 + TAG
    assert sse.stored_size(PACKAGE) == STORED
    assert sse.stored_size(PACKAGE + 1) == STORED + 1 + TAG
    assert sse.packages(3 * PACKAGE) == 3


def test_round_trip_at_package_boundaries() -> None:
    for n in (0, 1, PACKAGE - 1, PACKAGE, PACKAGE + 1, 3 * PACKAGE):
        plain = bytes(i % 251 for i in range(n))
        stored = sse.encrypt(KEY, plain)
        assert len(stored) == sse.stored_size(n)
        assert sse.decrypt(KEY, stored, n) == plain


def test_ciphertext_hides_the_plaintext() -> None:
    plain = b"MARKER-0123456789" * 10_000
    assert b"MARKER" not in sse.encrypt(KEY, plain)


def test_wrong_key_fails() -> None:
    stored = sse.encrypt(KEY, b"hello")
    with pytest.raises(sse.PackageError):
        sse.decrypt(bytes(32), stored, 5)


def test_flipped_byte_fails_never_returns_wrong_plaintext() -> None:
    plain = bytes(3 * PACKAGE)
    stored = bytearray(sse.encrypt(KEY, plain))
    stored[PACKAGE + 100] ^= 1
    with pytest.raises(sse.PackageError):
        sse.decrypt(KEY, bytes(stored), len(plain))


def test_reordered_packages_fail() -> None:
    plain = bytes(range(256)) * (PACKAGE // 128)  # two full packages, different bytes
    stored = sse.encrypt(KEY, plain + b"x")
    swapped = stored[STORED : 2 * STORED] + stored[:STORED] + stored[2 * STORED :]
    with pytest.raises(sse.PackageError):
        sse.decrypt(KEY, swapped, len(plain) + 1)


def test_truncation_at_a_package_boundary_fails() -> None:
    plain = bytes(2 * PACKAGE + 5)
    stored = sse.encrypt(KEY, plain)
    # Claim the object ended after two packages: package 1 was not sealed as final.
    with pytest.raises(sse.PackageError):
        sse.decrypt(KEY, stored[: 2 * STORED], 2 * PACKAGE)
    # Or keep the size and lose the tail: detected as truncation.
    with pytest.raises(sse.PackageError):
        sse.decrypt(KEY, stored[: 2 * STORED], len(plain))


def test_empty_stream_is_authenticated() -> None:
    stored = sse.encrypt(KEY, b"")
    assert sse.decrypt(KEY, stored, 0) == b""
    with pytest.raises(sse.PackageError):
        sse.decrypt(KEY, b"", 0)
    with pytest.raises(sse.PackageError):
        sse.decrypt(bytes(32), stored, 0)


def test_extended_stream_fails() -> None:
    stored = sse.encrypt(KEY, b"abc")
    with pytest.raises(sse.PackageError):
        sse.decrypt(KEY, stored + b"\0" * 20, 3)


def test_stream_keys_differ_per_salt() -> None:
    dk = sse.new_data_key()
    assert sse.stream_key(dk, b"a" * 16) != sse.stream_key(dk, b"b" * 16)
    assert len(sse.stream_key(dk, sse.new_salt())) == 32


def test_wrapped_key_opens_only_with_its_binding() -> None:
    kek, dk = sse.new_data_key(), sse.new_data_key()
    sealed = sse.wrap_key(kek, dk, "bucket/key")
    assert sse.unwrap_key(kek, sealed, "bucket/key") == dk
    with pytest.raises(sse.KeyUnwrapError):
        sse.unwrap_key(kek, sealed, "bucket/other")
    with pytest.raises(sse.KeyUnwrapError):
        sse.unwrap_key(bytes(32), sealed, "bucket/key")
    with pytest.raises(sse.KeyUnwrapError):
        sse.unwrap_key(kek, "!!!", "bucket/key")


def test_stored_range_names_whole_packages() -> None:
    size = 3 * PACKAGE + 10
    assert sse.stored_range(0, 0, size) == (0, STORED - 1, 0)
    assert sse.stored_range(PACKAGE - 1, PACKAGE, size) == (0, 2 * STORED - 1, 0)
    assert sse.stored_range(3 * PACKAGE, size - 1, size) == (3 * STORED, sse.stored_size(size) - 1, 3)
    with pytest.raises(ValueError):
        sse.stored_range(0, size, size)


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(0, 4 * PACKAGE + 3),
    chunk=st.integers(1, 3 * PACKAGE),
    data=st.data(),
)
def test_any_chunking_and_any_range_round_trip(n: int, chunk: int, data: st.DataObject) -> None:
    plain = (bytes(range(256)) * (n // 256 + 1))[:n]
    enc = sse.Encryptor(KEY)
    stored = b"".join(enc.feed(c) for c in sse.chunks(plain, chunk)) + enc.finish()
    assert len(stored) == sse.stored_size(n)
    dec = sse.Decryptor(KEY, n)
    out = b"".join(dec.feed(c) for c in sse.chunks(stored, data.draw(st.integers(1, 2 * STORED))))
    dec.finish()
    assert out == plain
    if n:
        first = data.draw(st.integers(0, n - 1))
        last = data.draw(st.integers(first, n - 1))
        a, b, _ = sse.stored_range(first, last, n)
        assert sse.decrypt_range(KEY, stored[a : b + 1], n, first, last) == plain[first : last + 1]


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 3 * PACKAGE), pos=st.integers(0, 10**9), bit=st.integers(0, 7))
def test_any_flipped_bit_is_detected(n: int, pos: int, bit: int) -> None:
    stored = bytearray(sse.encrypt(KEY, bytes(n)))
    stored[pos % len(stored)] ^= 1 << bit
    with pytest.raises(sse.PackageError):
        sse.decrypt(KEY, bytes(stored), n)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(0, 4 * PACKAGE), cut=st.integers(1, 10**9))
def test_any_truncation_is_detected(n: int, cut: int) -> None:
    stored = sse.encrypt(KEY, bytes(n))
    short = stored[: len(stored) - 1 - (cut % len(stored))]
    with pytest.raises(sse.PackageError):
        sse.decrypt(KEY, short, n)
