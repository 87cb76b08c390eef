"""Peer request signing (titans3/peer/auth.py)."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from titans3.peer.auth import (
    EMPTY_DIGEST,
    H_AUTH,
    H_CONTENT,
    H_DATE,
    H_NONCE,
    AuthError,
    Signer,
    Verifier,
    body_digest,
)

SECRET = "s3cret-cluster"
T0 = 1_700_000_000.0
NONCE = "00112233445566778899aabbccddeeff"
TARGET = "/peer/v1/drive/0/frag/abcd/write?offset=0"


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def make(window: float = 60.0, **kw: object) -> tuple[Signer, Verifier, Clock, Clock]:
    wall, mono = Clock(T0), Clock(1000.0)
    signer = Signer(SECRET, "host01", clock=wall)
    verifier = Verifier(SECRET, window=window, clock=wall, monotonic=mono, **kw)  # type: ignore[arg-type]
    return signer, verifier, wall, mono


def test_blake3_digests_match_the_published_vectors() -> None:
    assert EMPTY_DIGEST == "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
    assert body_digest(b"hello") == "ea8f163db38682925e4491c5e58d4bb3506ef8c14eb78a86e908c5624a67200f"


def test_signature_is_hmac_sha256_of_the_canonical_string_under_the_derived_key() -> None:
    signer, _, _, _ = make()
    h = signer.headers("put", TARGET, b"hello", nonce=NONCE)
    key = hmac.new(SECRET.encode(), b"titans3 peer request key v1", hashlib.sha256).digest()
    canonical = (
        "TITANS3-PEER-HMAC-SHA256\nPUT\n" + TARGET + "\n1700000000000\n" + NONCE + "\nhost01\n"
        "ea8f163db38682925e4491c5e58d4bb3506ef8c14eb78a86e908c5624a67200f"
    ).encode()
    want = hmac.new(key, canonical, hashlib.sha256).hexdigest()
    assert h == {
        H_DATE: "1700000000000",
        H_NONCE: NONCE,
        H_CONTENT: body_digest(b"hello"),
        H_AUTH: f"TITANS3-PEER-HMAC-SHA256 Sender=host01,Signature={want}",
    }
    # Pinned, so a change of the wire format cannot slip through unnoticed.
    assert want == "8ba66cf8188317421ece17bb2e47db95dd776744ed404457e4bcc4ffed6818e0"


def test_a_signed_request_verifies_with_its_body() -> None:
    signer, verifier, _, _ = make()
    h = signer.headers("PUT", TARGET, b"hello")
    v = verifier.check_headers("PUT", TARGET, h)
    assert v.sender == "host01"
    verifier.check_body(v, b"hello")
    assert verifier.statistics().accepted == 1


@pytest.mark.parametrize(
    "change",
    [
        lambda h: h.pop(H_AUTH),
        lambda h: h.pop(H_DATE),
        lambda h: h.pop(H_NONCE),
        lambda h: h.pop(H_CONTENT),
        lambda h: h.update({H_AUTH: h[H_AUTH][:-1] + ("0" if h[H_AUTH][-1] != "0" else "1")}),
        lambda h: h.update({H_AUTH: h[H_AUTH].replace("host01", "host02")}),
        lambda h: h.update({H_DATE: str(int(h[H_DATE]) + 1)}),
        lambda h: h.update({H_NONCE: "f" * 32}),
        lambda h: h.update({H_CONTENT: body_digest(b"other")}),
        lambda h: h.update({H_AUTH: "AWS4-HMAC-SHA256 Credential=x"}),
    ],
    ids=["no-auth", "no-date", "no-nonce", "no-content", "bad-sig", "other-sender", "other-date",
         "other-nonce", "other-digest", "foreign-scheme"],
)
def test_any_missing_or_altered_header_is_refused(change) -> None:  # type: ignore[no-untyped-def]
    signer, verifier, _, _ = make()
    h = signer.headers("PUT", TARGET, b"hello")
    change(h)
    with pytest.raises(AuthError):
        verifier.check_headers("PUT", TARGET, h)
    assert verifier.statistics().rejected == 1 and verifier.statistics().nonces == 0


def test_method_and_target_are_covered() -> None:
    signer, verifier, _, _ = make()
    h = signer.headers("PUT", TARGET, b"hello")
    with pytest.raises(AuthError):
        verifier.check_headers("POST", TARGET, h)
    with pytest.raises(AuthError):
        verifier.check_headers("PUT", TARGET.replace("offset=0", "offset=1"), h)


def test_another_cluster_secret_does_not_verify() -> None:
    signer = Signer("another-secret", "host01", clock=Clock(T0))
    _, verifier, _, _ = make()
    with pytest.raises(AuthError, match="bad signature"):
        verifier.check_headers("GET", "/peer/v1/heartbeat", signer.headers("GET", "/peer/v1/heartbeat"))


def test_a_body_other_than_the_signed_one_is_refused() -> None:
    signer, verifier, _, _ = make()
    v = verifier.check_headers("PUT", TARGET, signer.headers("PUT", TARGET, b"hello"))
    with pytest.raises(AuthError, match="body"):
        verifier.check_body(v, b"hellO")


def test_a_replay_inside_the_window_is_refused_by_nonce() -> None:
    signer, verifier, wall, mono = make()
    h = signer.headers("GET", "/peer/v1/heartbeat")
    verifier.check_headers("GET", "/peer/v1/heartbeat", h)
    wall.t += 30
    mono.t += 30
    with pytest.raises(AuthError, match="replayed"):
        verifier.check_headers("GET", "/peer/v1/heartbeat", h)


def test_a_replay_outside_the_window_is_refused_by_date() -> None:
    signer, verifier, wall, mono = make()
    h = signer.headers("GET", "/peer/v1/heartbeat")
    verifier.check_headers("GET", "/peer/v1/heartbeat", h)
    wall.t += 61
    mono.t += 200  # the nonce has long been forgotten: the date alone refuses it
    with pytest.raises(AuthError, match="dated"):
        verifier.check_headers("GET", "/peer/v1/heartbeat", h)
    assert verifier.statistics().nonces == 0


def test_clock_skew_inside_the_window_is_accepted_both_ways() -> None:
    signer, verifier, wall, _ = make()
    for skew in (-59.0, 59.0):
        h = signer.headers("GET", "/x", date_ms=int((T0 + skew) * 1000))
        verifier.check_headers("GET", "/x", h)
    h = signer.headers("GET", "/x", date_ms=int((T0 + 61) * 1000))
    with pytest.raises(AuthError):
        verifier.check_headers("GET", "/x", h)


def test_nonces_are_forgotten_after_twice_the_window_only() -> None:
    signer, verifier, wall, mono = make(window=10.0)
    for _ in range(5):
        verifier.check_headers("GET", "/x", signer.headers("GET", "/x"))
    mono.t += 19.9
    wall.t += 19.9
    verifier.check_headers("GET", "/x", signer.headers("GET", "/x"))
    assert verifier.statistics().nonces == 6
    mono.t += 0.2
    verifier.check_headers("GET", "/x", signer.headers("GET", "/x"))
    assert verifier.statistics().nonces == 2


def test_a_full_replay_cache_refuses_instead_of_growing() -> None:
    signer, verifier, _, _ = make(max_nonces=3)
    for _ in range(3):
        verifier.check_headers("GET", "/x", signer.headers("GET", "/x"))
    with pytest.raises(AuthError, match="full"):
        verifier.check_headers("GET", "/x", signer.headers("GET", "/x"))


def test_an_empty_cluster_secret_is_rejected() -> None:
    with pytest.raises(ValueError):
        Signer("", "h")
    with pytest.raises(ValueError):
        Verifier(b"")
