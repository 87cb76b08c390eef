"""Join tokens: what a member accepts and what only the token's holder can open."""

from __future__ import annotations

import pytest

from titans3.cluster import jointoken as jt
from titans3.drive import wire

NOW = 1_800_000_000.0


def request(tok: jt.JoinToken, now: float = NOW) -> dict:
    return jt.redeem_request(tok, joiner_address="10.0.0.7:9100", joiner_host="abc123", now=now)


def test_a_token_round_trips_and_its_request_checks() -> None:
    tok = jt.make("10.0.0.1:9100", NOW)
    text = jt.encode(tok)
    assert text.startswith("t3j1.") and jt.decode(" " + text[:20] + "\n" + text[20:]) == tok
    req = jt.parse_request(wire.pack(request(tok)))
    jt.check_request(tok, req, now=NOW + 10)
    assert tok.key not in wire.pack(req)  # the key never travels
    payload = {"secret": "s" * 40, "segment_size": 1 << 20}
    assert jt.open_answer(tok, req, jt.seal_answer(tok, req, payload)) == payload


@pytest.mark.parametrize("field,value", [("a", "10.0.0.8:9100"), ("h", "other"), ("t", int(NOW) + 1),
                                         ("n", b"n" * 16)])
def test_a_request_changed_in_any_field_is_refused(field: str, value: object) -> None:
    tok = jt.make("10.0.0.1:9100", NOW)
    req = {**request(tok), field: value}
    with pytest.raises(jt.TokenError, match="does not match"):
        jt.check_request(tok, req, now=NOW)


def test_another_token_an_old_request_or_an_expired_token_is_refused() -> None:
    tok, other = jt.make("a:1", NOW), jt.make("a:1", NOW)
    with pytest.raises(jt.TokenError, match="does not match"):
        jt.check_request(other, {**request(tok), "i": other.token_id}, now=NOW)
    with pytest.raises(jt.TokenError, match="clocks"):
        jt.check_request(tok, request(tok, now=NOW - 400), now=NOW)
    with pytest.raises(jt.TokenError, match="expired"):
        jt.check_request(tok, request(tok, now=NOW + jt.TTL + 5), now=NOW + jt.TTL + 5)


def test_an_answer_opens_only_for_its_own_request() -> None:
    tok = jt.make("a:1", NOW)
    r1, r2 = request(tok), request(tok)
    sealed = jt.seal_answer(tok, r1, {"secret": "x"})
    with pytest.raises(jt.TokenError):
        jt.open_answer(tok, r2, sealed)
    with pytest.raises(jt.TokenError):
        jt.open_answer(jt.make("a:1", NOW), r1, sealed)


@pytest.mark.parametrize("text", ["", "t3j2.abc", "t3j1.!!!", "t3j1." + "A" * 40])
def test_damaged_tokens_say_so(text: str) -> None:
    with pytest.raises(jt.TokenError):
        jt.decode(text)


def test_malformed_requests_are_refused() -> None:
    for raw in (b"\xc1", wire.pack([1, 2]), wire.pack({"i": b"x"})):
        with pytest.raises(jt.TokenError, match="malformed"):
            jt.parse_request(raw)
