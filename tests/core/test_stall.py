"""titans3.core.stall: which requests the guard wraps (the timing rules are covered over
real sockets in tests/integration/test_hostile_clients.py)."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from titans3.core.stall import StallGuard


def _seen(headers: list[tuple[bytes, bytes]]) -> tuple[bool, bool]:
    """(receive passed through unwrapped, send passed through unwrapped)."""
    got: list[Any] = []

    async def app(scope: dict, receive: Any, send: Any) -> None:
        got.extend([receive, send])

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        pass

    trio.run(StallGuard(app, 5.0), {"type": "http", "headers": headers}, receive, send)
    return got[0] is receive, got[1] is send


@pytest.mark.parametrize("headers", [[], [(b"content-length", b"0")], [(b"host", b"h")]])
def test_a_request_without_a_body_is_not_wrapped(headers: list[tuple[bytes, bytes]]) -> None:
    assert _seen(headers) == (True, True)


@pytest.mark.parametrize("headers", [[(b"content-length", b"5")], [(b"transfer-encoding", b"chunked")]])
def test_a_request_with_a_body_is_guarded(headers: list[tuple[bytes, bytes]]) -> None:
    assert _seen(headers) == (False, False)
