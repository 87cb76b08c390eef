"""The status page's login, in headless Chromium against the real daemon.

* Before a password is set, the page (on loopback) shows the drives read-only
  and the form to set one; no action button is there.
* Setting the password logs the browser in; the session cookie is HttpOnly
  and SameSite=Strict (and the page's own script cannot read it).
* Actions are refused without a login and without the CSRF token -- each
  refusal made by the browser itself -- and the drive is still serving.
* 20 wrong passwords in a row pause logins: the right password is refused
  until the pause (4 s here) is over, then works.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from .browser import Browser
from .cluster import Daemon

PASSWORD = "correct horse battery staple"
LOCKOUT = 4.0


@pytest.fixture
def node(daemon_factory: Callable[..., Daemon], tmp_path: Path) -> Daemon:
    return daemon_factory(drives=6, env={
        "TITANS3_WEB_LOCKOUT": str(LOCKOUT),
        "TITANS3_SETUP_CODE_FILE": str(tmp_path / "no-setup-code"),  # a dev node: loopback only
    })


@pytest.fixture
def browser(tmp_path: Path):
    with Browser(tmp_path / "chromium") as b:
        yield b


def set_password(b: Browser, url: str) -> None:
    b.open(url)
    b.fill("#password", PASSWORD)
    b.fill("#repeat", PASSWORD)
    b.click("#password-submit")


def drive_states(b: Browser) -> list[str]:
    return [cells[2].split()[0] for _, cells in b.rows("#drives")]


def test_before_a_password_loopback_sees_the_status_and_the_setup_form(node: Daemon, browser: Browser) -> None:
    browser.open(node.web_endpoint + "/")
    assert browser.has("#setup-password")
    assert drive_states(browser) == ["online"] * 6
    assert not browser.has("button.drain")  # read-only until someone logs in
    # A too short password is refused with the reason; nothing is set.
    browser.fill("#password", "short")
    browser.fill("#repeat", "short")
    browser.click("#password-submit")
    assert "at least 10 characters" in browser.text()
    assert browser.has("#setup-password")


def test_actions_need_a_login_and_the_csrf_token(node: Daemon, browser: Browser, tmp_path: Path) -> None:
    url = node.web_endpoint + "/"
    set_password(browser, url)
    assert "Admin password set" in browser.text()
    assert browser.has("button.drain") and browser.has("#logout")
    cookie = browser.cookies()["titans3_session"]
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
    assert "titans3_session" not in browser.js("return document.cookie")

    # Logged in, but the form lost its CSRF token: refused, the drive still serves.
    browser.js("document.querySelector('button.drain[data-index=\"1\"]').form"
               ".querySelector('input[name=csrf]').remove()")
    browser.click('button.drain[data-index="1"]')
    assert "CSRF" in browser.text()
    browser.open(url)
    assert drive_states(browser)[1] == "online"
    # A wrong token is refused the same way.
    browser.js("document.querySelector('button.drain[data-index=\"1\"]').form"
               ".querySelector('input[name=csrf]').value = 'forged'")
    browser.click('button.drain[data-index="1"]')
    assert "CSRF" in browser.text()

    # Without a login: another browser (no session) posts the same form.
    with Browser(tmp_path / "stranger") as other:
        other.open(url)
        assert other.has("#login") and not other.has("#drives")  # no status without a login
        other.js("const f=document.createElement('form');f.method='post';f.action='/actions/drain';"
                 "for(const [k,v] of [['index','1'],['csrf',document.querySelector('input[name=csrf]').value]]){"
                 "const i=document.createElement('input');i.name=k;i.value=v;f.appendChild(i)}"
                 "document.body.appendChild(f);window._f=f")
        old = other.el("html")
        other.js("window._f.submit()")
        other.wait(lambda: other._stale(old), what="the refusal page")
        assert "log in first" in other.text()
    # The API and the fragment refuse too; /metrics stays open for scrapers.
    assert httpx.get(url + "api/status", timeout=10).status_code == 401
    assert httpx.get(url + "fragment", timeout=10).status_code == 401
    assert httpx.post(url + "actions/drain", data={"index": "1"}, timeout=10).status_code == 401
    assert httpx.get(url + "metrics", timeout=10).status_code == 200
    browser.open(url)
    assert drive_states(browser) == ["online"] * 6


def test_twenty_wrong_passwords_in_a_row_pause_logins(node: Daemon, browser: Browser) -> None:
    url = node.web_endpoint + "/"
    set_password(browser, url)
    browser.click("#logout")
    assert browser.has("#login")
    for i in range(20):
        browser.fill("#password", f"wrong password {i}")
        browser.click("#login-submit")
        assert "Wrong password" in browser.text(), i
    started = time.monotonic()
    browser.fill("#password", PASSWORD)
    browser.click("#login-submit")
    assert "Too many wrong passwords" in browser.text()
    assert browser.has("#login") and not browser.has("#logout")
    metrics = httpx.get(url + "metrics", timeout=10).text
    assert 'titans3_web_logins_total{result="wrong_password"} 20.0' in metrics
    assert "titans3_web_login_failures_in_a_row 20.0" in metrics
    time.sleep(max(0.0, LOCKOUT + 0.5 - (time.monotonic() - started)))
    browser.fill("#password", PASSWORD)
    browser.click("#login-submit")
    assert browser.has("#logout"), browser.text()[:500]
    assert drive_states(browser) == ["online"] * 6


def test_a_lost_password_is_reset_with_titanctl_and_a_new_setup_code(
        node: Daemon, browser: Browser, tmp_path: Path) -> None:
    import subprocess

    from .cluster import ROOT, TITANCTL, clean_env

    url = node.web_endpoint + "/"
    set_password(browser, url)
    assert browser.has("#logout")
    out = subprocess.run(
        [str(TITANCTL), "--endpoint", node.endpoint, "web", "reset-password"], capture_output=True,
        text=True, timeout=60, check=True,
        env=clean_env({"TITANS3_ROOT_ACCESS_KEY": ROOT.access_key, "TITANS3_ROOT_SECRET_KEY": ROOT.secret_key}))
    code = out.stdout.split("setup code: ", 1)[1].split()[0]
    assert (tmp_path / "no-setup-code").read_text().strip() == code

    def prompted() -> bool:  # the page reads the record again within 2 s
        browser.open(url)
        return browser.has("#setup-code")

    Browser.wait(prompted, timeout=10, what="the setup code prompt")
    assert not browser.has("#logout")  # the old session is over
    browser.fill("#code", code)
    browser.click("#code-submit")
    browser.fill("#password", "a brand new admin password")
    browser.fill("#repeat", "a brand new admin password")
    browser.click("#password-submit")
    assert browser.has("#logout") and not (tmp_path / "no-setup-code").exists()
    browser.click("#logout")
    browser.fill("#password", PASSWORD)
    browser.click("#login-submit")
    assert "Wrong password" in browser.text()
