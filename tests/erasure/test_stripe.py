"""Stripe arithmetic against a brute-force model of segments and fragment streams."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from titans3.erasure.stripe import Layout, layout_for, resolve_range, segments_for_range


@dataclass(frozen=True)
class Scheme:
    k: int
    m: int
    segment_size: int


def pyeclib_like(k: int):
    """Header + ceil(L/k): the shape of the real codec's sizes."""
    return lambda length: 80 + -(-length // k)


def odd_sizes(length: int) -> int:
    """Any function will do for the arithmetic; make it non-linear."""
    return 3 + (length * 7) % 11 + length // 3


class Model:
    """Materialise every segment and every fragment position explicitly."""

    def __init__(self, size: int, seg: int, fragment_size_of):
        self.segments = [(s, min(s + seg, size)) for s in range(0, size, seg)]
        self.frag_sizes = [fragment_size_of(end - start) for start, end in self.segments]
        self.offsets = [0]
        for f in self.frag_sizes:
            self.offsets.append(self.offsets[-1] + f)


sizes = st.integers(min_value=0, max_value=5000)
segment_sizes = st.integers(min_value=1, max_value=700)
ks = st.integers(min_value=1, max_value=12)
size_fns = st.sampled_from(["pyeclib", "odd"])


def make(size: int, seg: int, k: int, which: str) -> tuple[Layout, Model]:
    fn = pyeclib_like(k) if which == "pyeclib" else odd_sizes
    return layout_for(size, Scheme(k, 2, seg), fn), Model(size, seg, fn)


@given(sizes, segment_sizes, ks, size_fns)
def test_layout_matches_materialised_segments(size, seg, k, which):
    layout, model = make(size, seg, k, which)
    assert layout.num_segments == len(model.segments)
    assert layout.fragment_length() == model.offsets[-1]
    assert (layout.k, layout.n, layout.size, layout.segment_size) == (k, k + 2, size, seg)
    for s, (start, end) in enumerate(model.segments):
        assert layout.segment_bounds(s) == (start, end)
        assert layout.segment_length(s) == end - start
        assert layout.segment_fragment_size(s) == model.frag_sizes[s]


@given(sizes, segment_sizes, ks, size_fns, st.data())
def test_fragment_range_covers_exactly_the_chosen_segments(size, seg, k, which, data):
    layout, model = make(size, seg, k, which)
    assume(layout.num_segments > 0)
    a = data.draw(st.integers(0, layout.num_segments - 1))
    b = data.draw(st.integers(a, layout.num_segments - 1))
    offset, length = layout.fragment_range(a, b)
    assert offset == model.offsets[a]
    assert offset + length == model.offsets[b + 1]


@given(sizes, segment_sizes, st.data())
def test_segments_for_range_yields_exactly_the_requested_bytes(size, seg, data):
    assume(size > 0)
    layout, model = make(size, seg, 4, "pyeclib")
    first = data.draw(st.integers(0, size - 1))
    last = data.draw(st.integers(first, size - 1))
    obj = bytes(i % 251 for i in range(size))

    first_seg, last_seg, skip, take = segments_for_range(layout, first, last)
    decoded = b"".join(obj[slice(*model.segments[s])] for s in range(first_seg, last_seg + 1))
    assert decoded[skip : skip + take] == obj[first : last + 1]
    # minimal: the first and last segment each hold a requested byte
    assert model.segments[first_seg][0] <= first < model.segments[first_seg][1]
    assert model.segments[last_seg][0] <= last < model.segments[last_seg][1]


def rfc_model(first, last, size):
    """Resolve a range by listing the selected byte positions (RFC 9110 §14.1.2)."""
    if first is None:
        chosen = [p for p in range(size) if p >= size - last] if last > 0 else []
    else:
        chosen = [p for p in range(size) if p >= first and (last is None or p <= last)]
    return (chosen[0], chosen[-1]) if chosen else None


small = st.integers(min_value=0, max_value=300)


@given(small, st.one_of(st.none(), small), small)
def test_resolve_range_matches_rfc_model_for_first_last(first, last, size):
    assume(last is None or last >= first)
    assert resolve_range(first, last, size) == rfc_model(first, last, size)


@given(small, small)
def test_resolve_range_matches_rfc_model_for_suffixes(suffix, size):
    assert resolve_range(None, suffix, size) == rfc_model(None, suffix, size)


@pytest.mark.parametrize(
    ("first", "last", "expected"),
    [
        (0, 499, (0, 499)),  # RFC 9110 examples on a 10000-byte representation
        (500, 999, (500, 999)),
        (None, 500, (9500, 9999)),
        (9500, None, (9500, 9999)),
        (0, 0, (0, 0)),
        (None, 1, (9999, 9999)),
        (9990, 20000, (9990, 9999)),  # last clamped
        (None, 20000, (0, 9999)),  # suffix longer than the object: all of it
        (10000, None, None),  # starts at the end: 416
        (10000, 10005, None),
        (None, 0, None),  # zero-length suffix: 416
    ],
)
def test_resolve_range_examples(first, last, expected):
    assert resolve_range(first, last, 10000) == expected


@pytest.mark.parametrize("spec", [(0, None), (None, 5), (0, 0)])
def test_no_range_of_an_empty_object_is_satisfiable(spec):
    assert resolve_range(*spec, 0) is None


@pytest.mark.parametrize("spec", [(5, 4), (-1, None), (None, -1), (None, None)])
def test_invalid_range_specs_raise(spec):
    with pytest.raises(ValueError):
        resolve_range(*spec, 100)


def test_empty_object_has_no_segments_and_empty_streams():
    layout = layout_for(0, Scheme(4, 2, 1 << 20), pyeclib_like(4))
    assert layout.num_segments == 0
    assert layout.fragment_length() == 0
    assert layout.last_fragment_size == 0
    assert layout.fragment_size == 80 + (1 << 18)
    with pytest.raises(ValueError):
        layout.segment_bounds(0)
    with pytest.raises(ValueError):
        segments_for_range(layout, 0, 0)


def test_one_byte_object_is_one_short_segment():
    layout = layout_for(1, Scheme(4, 2, 1 << 20), pyeclib_like(4))
    assert (layout.num_segments, layout.last_fragment_size) == (1, 81)
    assert layout.fragment_range(0, 0) == (0, 81)
    assert segments_for_range(layout, 0, 0) == (0, 0, 0, 1)


def test_exact_multiple_of_segment_size_has_no_short_segment():
    layout = layout_for(3 << 20, Scheme(4, 2, 1 << 20), pyeclib_like(4))
    assert layout.num_segments == 3
    assert layout.last_fragment_size == layout.fragment_size
    assert layout.fragment_range(1, 2) == (layout.fragment_size, 2 * layout.fragment_size)


def test_reversed_or_out_of_bounds_segment_ranges_raise():
    layout = layout_for(5000, Scheme(2, 2, 1000), pyeclib_like(2))
    with pytest.raises(ValueError):
        layout.fragment_range(3, 2)
    with pytest.raises(ValueError):
        layout.fragment_range(0, 5)
    with pytest.raises(ValueError):
        segments_for_range(layout, 10, 5000)
    with pytest.raises(ValueError):
        layout_for(-1, Scheme(2, 2, 1000), pyeclib_like(2))
