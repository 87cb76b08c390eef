"""The status page's rate limit, sessions, setup code and loopback rule (pure parts)."""

from __future__ import annotations

from pathlib import Path

from titans3.web.auth import (
    ANONYMOUS_MAX,
    LoginLimiter,
    Sessions,
    SetupCode,
    is_loopback,
    password_problem,
    same_token,
)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_twenty_failures_in_a_row_lock_and_a_success_resets() -> None:
    clock = Clock()
    lim = LoginLimiter(lockout=60, clock=clock)
    for _ in range(19):
        lim.failed()
        assert lim.wait() == 0
    lim.failed()
    assert lim.wait() == 60
    clock.t += 61
    assert lim.wait() == 0
    lim.failed()  # one more wrong answer after the pause locks again at once
    assert lim.wait() == 60
    clock.t += 61
    lim.succeeded()
    for _ in range(19):
        lim.failed()
    assert lim.wait() == 0


def test_sessions_expire_when_idle_and_anonymous_ones_are_bounded() -> None:
    clock = Clock()
    sessions = Sessions(idle=100, clock=clock)
    s = sessions.new(admin=True)
    assert sessions.get(s.sid) is s and s.csrf and s.csrf != s.sid
    clock.t += 99
    assert sessions.get(s.sid) is s
    clock.t += 101
    assert sessions.get(s.sid) is None
    admin = sessions.new(admin=True)
    for _ in range(ANONYMOUS_MAX + 50):
        sessions.new()
    assert sessions.get(admin.sid) is admin  # a flood of anonymous sessions never evicts a login
    assert len(sessions._by_id) == ANONYMOUS_MAX + 1


def test_the_setup_code_is_matched_as_people_type_it_and_used_once(tmp_path: Path) -> None:
    path = tmp_path / "setup-code"
    code = SetupCode(str(path))
    assert code.code() is None and not code.matches("")
    path.write_text("K7QF-93MD-X2PA\n")
    assert code.matches("k7qf 93md x2pa") and code.matches("K7QF93MDX2PA")
    assert not code.matches("K7QF-93MD-X2PB") and not code.matches("")
    code.consume()
    assert not path.exists() and not code.matches("K7QF-93MD-X2PA")


def test_loopback_and_tokens() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("127.0.0.54") and is_loopback("::1")
    assert is_loopback("::ffff:127.0.0.1")
    assert not is_loopback("192.0.2.10") and not is_loopback("") and not is_loopback("<local>")
    assert same_token("abc", "abc") and not same_token("abc", "abd") and not same_token("", "")
    assert password_problem("a" * 10, "a" * 10) is None
    assert "differ" in (password_problem("a" * 10, "b" * 10) or "")
    assert "at least" in (password_problem("short", "short") or "")
