"""Codec: any k fragments give the segment back; rebuilt fragments are byte-identical."""

from __future__ import annotations

import itertools
import os
import random
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyeclib.ec_iface import ECDriver

from titans3.core.errors import InternalError
from titans3.erasure import EC_TYPE, Codec, DecodeError, ECScheme, get_codec, segments_for_range

DEFAULT_SCHEMES = sorted({ECScheme.for_drive_count(n) for n in range(1, 13)}, key=lambda s: s.n)
EC_SCHEMES = [s for s in DEFAULT_SCHEMES if not s.is_mirror]


def ids(scheme: ECScheme) -> str:
    return f"{scheme.k}+{scheme.m}"


# ----------------------------------------------------------------------- schemes
def test_default_schemes_follow_the_design_table():
    table = {4: (2, 2), 6: (4, 2), 8: (5, 3), 12: (8, 4), 16: (8, 4), 100: (8, 4)}
    for drives, (k, m) in table.items():
        assert ECScheme.for_drive_count(drives) == ECScheme(k, m)


def test_gaps_in_the_design_table_use_every_drive_with_at_least_two_parity():
    assert [(ECScheme.for_drive_count(n).k, ECScheme.for_drive_count(n).m) for n in (5, 7, 9, 10, 11)] == [
        (3, 2), (5, 2), (6, 3), (7, 3), (8, 3),
    ]  # fmt: skip
    for n in range(4, 40):
        scheme = ECScheme.for_drive_count(n)
        assert scheme.n <= n and scheme.m >= 2


@pytest.mark.parametrize("drives", [1, 2, 3])
def test_tiny_clusters_mirror_on_every_drive(drives):
    scheme = ECScheme.for_drive_count(drives)
    assert (scheme.k, scheme.n, scheme.is_mirror) == (1, drives, True)


@pytest.mark.parametrize(
    ("k", "m", "seg"), [(0, 2, 1024), (2, -1, 1024), (4, 0, 1024), (20, 13, 1024), (4, 2, 0)]
)
def test_invalid_schemes_are_rejected(k, m, seg):
    with pytest.raises(ValueError):
        ECScheme(k, m, seg)


def test_a_cluster_needs_at_least_one_drive():
    with pytest.raises(ValueError):
        ECScheme.for_drive_count(0)


def test_codecs_are_shared_per_scheme():
    assert get_codec(ECScheme(4, 2)) is get_codec(ECScheme(4, 2))
    assert get_codec(ECScheme(4, 2)) is not get_codec(ECScheme(8, 4))


# ------------------------------------------------------------------------- sizes
@pytest.mark.parametrize("scheme", EC_SCHEMES, ids=ids)
def test_fragment_size_is_what_pyeclib_produces(scheme):
    codec = Codec(scheme)
    k = scheme.k
    rng = random.Random(k)
    for length in [1, 2, k - 1, k, k + 1, 4095, 4096, 65537, rng.randrange(1, 1 << 20), 1 << 20]:
        if length < 1:
            continue
        fragments = codec.encode(os.urandom(length))
        assert len(fragments) == scheme.n
        assert {len(f) for f in fragments} == {codec.fragment_size(length)}


def test_full_segment_fragments_have_one_fixed_size():
    codec = get_codec(ECScheme(4, 2))
    layout = codec.layout(10 * (1 << 20) + 5)
    assert layout.fragment_size == 80 + (1 << 18)
    assert layout.last_fragment_size == 80 + 2
    assert codec.fragment_size(0) == 0


# ------------------------------------------------------------- decode/reconstruct
@pytest.mark.parametrize("scheme", EC_SCHEMES, ids=ids)
@pytest.mark.parametrize("length", [1, 1000, 33333])
def test_every_loss_of_m_fragments_still_decodes_and_rebuilds(scheme, length):
    codec = Codec(scheme)
    segment = os.urandom(length)
    fragments = codec.encode(segment)
    for lost in itertools.combinations(range(scheme.n), scheme.m):
        kept = {i: f for i, f in enumerate(fragments) if i not in lost}
        assert codec.decode(kept) == segment
        assert codec.reconstruct(kept, lost) == {i: fragments[i] for i in lost}


def test_full_segment_4_plus_2_survives_every_double_loss():
    codec = get_codec(ECScheme(4, 2))
    segment = os.urandom(1 << 20)
    fragments = codec.encode(segment)
    for lost in itertools.combinations(range(6), 2):
        kept = {i: f for i, f in enumerate(fragments) if i not in lost}
        assert codec.decode(kept) == segment
        assert codec.reconstruct(kept, lost) == {i: fragments[i] for i in lost}


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from(EC_SCHEMES),
    st.binary(min_size=1, max_size=5000),
    st.randoms(use_true_random=False),
)
def test_any_k_or_more_fragments_decode(scheme, segment, rng):
    codec = get_codec(ECScheme(scheme.k, scheme.m, 8192))
    fragments = codec.encode(segment)
    keep = rng.sample(range(scheme.n), rng.randint(scheme.k, scheme.n))
    assert codec.decode({i: fragments[i] for i in keep}) == segment


def test_object_round_trips_through_fragment_streams_with_m_drives_lost():
    """Encode segment by segment into per-drive streams, lose m drives, read back."""
    codec = get_codec(ECScheme(4, 2, 64 << 10))
    obj = os.urandom(3 * (64 << 10) + 12345)
    layout = codec.layout(len(obj))
    streams = [bytearray() for _ in range(6)]
    for s in range(layout.num_segments):
        start, end = layout.segment_bounds(s)
        for i, fragment in enumerate(codec.encode(obj[start:end])):
            streams[i] += fragment
    assert {len(s) for s in streams} == {layout.fragment_length()}

    alive = {1: streams[1], 3: streams[3], 4: streams[4], 5: streams[5]}  # drives 0, 2 lost

    def read(first: int, last: int) -> bytes:
        first_seg, last_seg, skip, take = segments_for_range(layout, first, last)
        out = bytearray()
        for s in range(first_seg, last_seg + 1):
            off, length = layout.fragment_range(s, s)
            out += codec.decode({i: bytes(st[off : off + length]) for i, st in alive.items()})
        return bytes(out[skip : skip + take])

    assert read(0, len(obj) - 1) == obj
    for first, last in [(0, 0), (65535, 65536), (100_000, 200_000), (len(obj) - 7, len(obj) - 1)]:
        assert read(first, last) == obj[first : last + 1]


def test_healthy_decode_equals_pyeclib_decode():
    """Data fragments alone are joined without pyeclib; the result must not differ."""
    driver = ECDriver(k=5, m=3, ec_type=EC_TYPE)
    codec = get_codec(ECScheme(5, 3))
    for length in [1, 4, 5, 6, 99, 1000, 65536, (1 << 20) - 3, 1 << 20]:
        fragments = codec.encode(os.urandom(length))
        assert codec.decode(dict(enumerate(fragments[:5]))) == driver.decode(fragments[:5])


@pytest.mark.parametrize("kind", [bytearray, memoryview])
def test_non_bytes_buffers_are_accepted(kind):
    # liberasurecode aborts the whole process on these unless they are converted
    codec = get_codec(ECScheme(4, 2))
    segment = os.urandom(5000)
    fragments = codec.encode(kind(segment))
    for kept_ids in [(1, 2, 4, 5), (0, 1, 2, 3)]:  # degraded (pyeclib) and healthy (join)
        kept = {i: kind(fragments[i]) for i in kept_ids}
        decoded = codec.decode(kept)
        assert type(decoded) is bytes and decoded == segment
        rebuilt = codec.reconstruct(kept, [0, 4])
        assert rebuilt == {0: fragments[0], 4: fragments[4]}
        assert all(type(f) is bytes for f in rebuilt.values())


@pytest.mark.parametrize("drives", [2, 6, 12])
def test_memoryview_slices_of_one_stream_read_decode(drives):
    """The object reader slices a multi-segment drive read into per-segment views."""
    scheme = ECScheme.for_drive_count(drives, segment_size=4096)
    codec = get_codec(scheme)
    segments = [os.urandom(4096), os.urandom(4096), os.urandom(1000)]
    streams = [b"".join(parts) for parts in zip(*(codec.encode(s) for s in segments), strict=True)]
    layout = codec.layout(4096 * 2 + 1000)
    for s, segment in enumerate(segments):
        off, length = layout.fragment_range(s, s)
        views = {i: memoryview(streams[i])[off : off + length] for i in range(scheme.n)}
        assert codec.decode(views) == segment  # all present: healthy path
        lost = dict(list(views.items())[scheme.m :])  # first m fragments lost
        assert codec.decode(lost) == segment


# ------------------------------------------------------------------------ errors
def test_fewer_than_k_fragments_raise_a_decode_error():
    codec = get_codec(ECScheme(4, 2))
    fragments = codec.encode(os.urandom(1000))
    with pytest.raises(DecodeError, match="3 fragments given, need 4"):
        codec.decode({i: fragments[i] for i in (0, 2, 5)})
    with pytest.raises(DecodeError):
        codec.reconstruct({i: fragments[i] for i in (0, 2, 5)}, [1])


def test_decode_errors_are_internal_errors_for_the_s3_layer():
    assert issubclass(DecodeError, InternalError)
    assert DecodeError("x").status == 500


def test_fragment_under_the_wrong_index_is_rejected():
    codec = get_codec(ECScheme(4, 2))
    f = codec.encode(os.urandom(1000))
    with pytest.raises(DecodeError, match="says it is 1"):
        codec.decode({0: f[0], 2: f[1], 3: f[3], 4: f[4]})


def test_fragments_of_different_segments_are_rejected():
    codec = get_codec(ECScheme(4, 2))
    a, b = codec.encode(os.urandom(1000)), codec.encode(os.urandom(2000))
    with pytest.raises(DecodeError, match="different lengths"):
        codec.decode({0: a[0], 1: a[1], 2: b[2], 3: b[3]})


def test_truncated_fragments_are_rejected():
    codec = get_codec(ECScheme(4, 2))
    f = codec.encode(os.urandom(1000))
    with pytest.raises(DecodeError):
        codec.decode({i: f[i][:50] for i in range(4)})


def test_corrupt_header_is_a_decode_error():
    codec = get_codec(ECScheme(4, 2))
    f = codec.encode(os.urandom(1000))
    broken = bytearray(f[4])
    broken[13] ^= 0xFF  # orig_data_size; the header checksum no longer matches
    with pytest.raises(DecodeError):
        codec.decode({1: f[1], 2: f[2], 3: f[3], 4: bytes(broken)})


def test_unknown_indexes_are_rejected():
    codec = get_codec(ECScheme(4, 2))
    f = codec.encode(os.urandom(1000))
    kept = {i: f[i] for i in range(4)}
    with pytest.raises(ValueError):
        codec.reconstruct(kept, [6])
    with pytest.raises(DecodeError):
        codec.decode({**kept, 7: f[5]})


def test_oversized_segment_is_rejected():
    codec = get_codec(ECScheme(4, 2, 4096))
    with pytest.raises(ValueError):
        codec.encode(bytes(4097))


def test_reconstruct_returns_present_fragments_as_given_and_nothing_for_nothing():
    codec = get_codec(ECScheme(4, 2))
    f = codec.encode(os.urandom(1000))
    kept = {i: f[i] for i in range(5)}
    assert codec.reconstruct(kept, [2, 5, 5]) == {2: f[2], 5: f[5]}
    assert codec.reconstruct(kept, []) == {}


# ------------------------------------------------------------- mirror and empty
@pytest.mark.parametrize("drives", [1, 2, 3])
def test_mirror_fragments_are_the_segment_itself(drives):
    codec = get_codec(ECScheme.for_drive_count(drives))
    segment = os.urandom(3000)
    fragments = codec.encode(segment)
    assert len(fragments) == drives
    assert all(f is fragments[0] for f in fragments) and fragments[0] == segment
    assert codec.fragment_size(3000) == 3000
    for i in range(drives):
        assert codec.decode({i: fragments[i]}) == segment
        others = [j for j in range(drives) if j != i]
        if others:
            assert codec.reconstruct({others[0]: fragments[others[0]]}, [i]) == {i: segment}
    with pytest.raises(DecodeError):
        codec.decode({})


def test_mirror_copies_that_disagree_in_length_are_rejected():
    codec = get_codec(ECScheme.for_drive_count(3))
    with pytest.raises(DecodeError):
        codec.decode({0: b"abc", 1: b"ab"})


@pytest.mark.parametrize("scheme", DEFAULT_SCHEMES, ids=ids)
def test_empty_segment_has_empty_fragments(scheme):
    codec = get_codec(scheme)
    fragments = codec.encode(b"")
    assert fragments == [b""] * scheme.n
    assert codec.decode(dict(enumerate(fragments))) == b""
    assert codec.layout(0).fragment_length() == 0


# ----------------------------------------------------------------------- threads
def test_concurrent_use_from_threads_gives_correct_results():
    codec = get_codec(ECScheme(4, 2, 1 << 16))
    errors: list[BaseException] = []

    def work(seed: int) -> None:
        rng = random.Random(seed)
        try:
            for _ in range(200):
                segment = rng.randbytes(rng.randint(1, 1 << 16))
                fragments = codec.encode(segment)
                lost = rng.sample(range(6), 2)
                kept = {i: f for i, f in enumerate(fragments) if i not in lost}
                assert codec.decode(kept) == segment
                assert codec.reconstruct(kept, lost) == {i: fragments[i] for i in lost}
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
