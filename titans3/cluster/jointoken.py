"""Join tokens: how a blank host gets the cluster secret without a shell (pure).

Theory of operation
-------------------
A member's status page issues a token; a person copies it into the new
host's page together with the member's address.  The token is everything the
new host needs to start talking to the cluster, and nothing that stays useful:

``t3j1.`` + base64url(msgpack ``[member peer address, id (9 bytes), key
(32 bytes), expiry (unix s)]``)

* **short-lived** -- it expires (15 minutes by default) and the issuing host
  keeps it only in memory (a restart voids it);
* **single-use** -- the issuing host forgets it when it is redeemed;
* **HMAC-bound** -- the new host never sends the key.  Its redeem request
  (``POST /peer/v1/join/redeem`` on the member, the one peer route without
  the cluster-secret signature, because the new host has no secret yet)
  carries the token id, the new host's peer address, host id, a time and a
  nonce, authenticated with HMAC-SHA256 under the key.  The member checks it
  (constant time, ±5 minutes) before the token is spent, so a forged request
  cannot even burn a token;
* **the answer is sealed to the request** -- the cluster secret and the
  cluster's erasure settings come back under AES-256-GCM with a key derived
  (HKDF-SHA256) from the token key and the request nonce, the request bytes
  as associated data: readable only by whoever holds the token, useless for
  any other request, safe on the plain-HTTP peer port.

With the secret installed the new host asks the member, now with a signed
peer call, to run the ordinary join (``membership.join``) for its address.
This module is the sans-I/O part: bytes and values in, bytes and values out.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

import msgpack
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

PREFIX = "t3j1."
TTL = 900.0
WINDOW = 300.0  # s of clock difference a redeem request may have
_MAC_LABEL = b"titans3-join-redeem-v1\0"
_SEAL_LABEL = b"titans3-join-seal-v1\0"


class TokenError(ValueError):
    """A token or a redeem message that must be refused; the message says why."""


@dataclass(frozen=True, slots=True)
class JoinToken:
    address: str  # the issuing member's peer address
    token_id: bytes
    key: bytes
    expires: int


def make(address: str, now: float, ttl: float = TTL) -> JoinToken:
    return JoinToken(address, secrets.token_bytes(9), secrets.token_bytes(32), int(now + ttl))


def encode(tok: JoinToken) -> str:
    raw = msgpack.packb([tok.address, tok.token_id, tok.key, tok.expires], use_bin_type=True)
    return PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(text: str) -> JoinToken:
    text = "".join(text.split())
    if not text.startswith(PREFIX):
        raise TokenError("not a TitanS3 join token (it starts with t3j1.)")
    body = text[len(PREFIX):]
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        address, token_id, key, expires = msgpack.unpackb(raw, raw=False)
    except (ValueError, TypeError, msgpack.UnpackException):
        raise TokenError("the join token is damaged (copy it again)") from None
    if not (isinstance(address, str) and isinstance(token_id, bytes) and len(token_id) == 9
            and isinstance(key, bytes) and len(key) == 32 and isinstance(expires, int)):
        raise TokenError("the join token is damaged (copy it again)")
    return JoinToken(address, token_id, key, expires)


def _canonical(req: dict[str, Any]) -> bytes:
    return msgpack.packb([req["i"], req["a"], req["h"], req["t"], req["n"]], use_bin_type=True)


def redeem_request(tok: JoinToken, *, joiner_address: str, joiner_host: str, now: float,
                   nonce: bytes | None = None) -> dict[str, Any]:
    """The new host's redeem request for ``tok`` (the key itself is not in it)."""
    req: dict[str, Any] = {"i": tok.token_id, "a": joiner_address, "h": joiner_host,
                           "t": int(now), "n": nonce or secrets.token_bytes(16)}
    req["mac"] = hmac.new(tok.key, _MAC_LABEL + _canonical(req), hashlib.sha256).digest()
    return req


def parse_request(raw: bytes) -> dict[str, Any]:
    try:
        req = msgpack.unpackb(raw, raw=False)
    except (ValueError, msgpack.UnpackException):
        raise TokenError("malformed redeem request") from None
    if not (isinstance(req, dict) and isinstance(req.get("i"), bytes) and isinstance(req.get("a"), str)
            and isinstance(req.get("h"), str) and isinstance(req.get("t"), int)
            and isinstance(req.get("n"), bytes) and len(req["n"]) >= 16
            and isinstance(req.get("mac"), bytes)):
        raise TokenError("malformed redeem request")
    return req


def check_request(tok: JoinToken, req: dict[str, Any], *, now: float) -> None:
    """Raise :class:`TokenError` unless ``req`` was made with ``tok`` just now."""
    want = hmac.new(tok.key, _MAC_LABEL + _canonical(req), hashlib.sha256).digest()
    if not hmac.compare_digest(want, req["mac"]):
        raise TokenError("the join token does not match (a different or mistyped token)")
    if abs(now - req["t"]) > WINDOW:
        raise TokenError("the two hosts' clocks differ by more than 5 minutes")
    if now > tok.expires:
        raise TokenError("the join token has expired: make a new one on the member's page")


def _seal_key(tok_key: bytes, req: dict[str, Any]) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=req["n"],
                info=_SEAL_LABEL + req["i"]).derive(tok_key)


def seal_answer(tok: JoinToken, req: dict[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
    nonce = secrets.token_bytes(12)
    ct = AESGCM(_seal_key(tok.key, req)).encrypt(
        nonce, msgpack.packb(payload, use_bin_type=True), _canonical(req))
    return {"n": nonce, "c": ct}


def open_answer(tok: JoinToken, req: dict[str, Any], answer: Any) -> dict[str, Any]:
    if not (isinstance(answer, dict) and isinstance(answer.get("n"), bytes)
            and isinstance(answer.get("c"), bytes)):
        raise TokenError("the member sent a malformed answer")
    try:
        raw = AESGCM(_seal_key(tok.key, req)).decrypt(answer["n"], answer["c"], _canonical(req))
    except InvalidTag:
        raise TokenError("the member's answer does not open with this token") from None
    payload = msgpack.unpackb(raw, raw=False)
    if not isinstance(payload, dict):
        raise TokenError("the member sent a malformed answer")
    return payload
