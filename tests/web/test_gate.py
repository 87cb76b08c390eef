"""Who the status page answers before a password exists, by client address.

Every address this machine may bind is loopback (127.0.0.0/8), so a client
from elsewhere cannot be made for real here; the page's ASGI app is called
with such a client address instead, over a real host (LocalDrives in a temp
directory, the daemon's own ``build_host``).
"""

from __future__ import annotations

from pathlib import Path

import trio

from titans3.core.config import load
from titans3.daemon import build_host
from titans3.web.app import create_web_app


async def call(app, path: str, client: str, method: str = "GET", body: bytes = b"",
               cookie: str = "") -> tuple[int, bytes]:
    headers = [(b"host", b"192.0.2.1:9001")]
    if cookie:
        headers.append((b"cookie", cookie.encode()))
    if body:
        headers.append((b"content-type", b"application/x-www-form-urlencoded"))
        headers.append((b"content-length", str(len(body)).encode()))
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
             "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
             "root_path": "", "headers": headers, "client": (client, 40000),
             "server": ("192.0.2.1", 9001), "extensions": {}}
    sent: list[dict] = []
    events = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict:
        if events:
            return events.pop(0)
        await trio.sleep_forever()
        raise AssertionError

    async def send(message: dict) -> None:
        sent.append(message)

    await app(scope, receive, send)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    return status, b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


def host_for(tmp: Path, code_file: Path) -> object:
    cfg = load(flags={"data": str(tmp / "data"), "drives": 1,
                      "setup_code_file": str(code_file)}, environ={})
    return build_host(cfg)


def test_before_a_password_only_loopback_or_the_setup_code_gets_an_answer(tmp_path: Path) -> None:
    code_file = tmp_path / "setup-code"

    async def main() -> None:
        host = await host_for(tmp_path, code_file)
        try:
            app = create_web_app(host)
            status, body = await call(app, "/", "192.0.2.10")
            assert status == 200 and b'id="refused"' in body and b'id="drives"' not in body
            assert (await call(app, "/api/status", "192.0.2.10"))[0] == 401
            assert (await call(app, "/fragment", "192.0.2.10"))[0] == 401
            status, body = await call(app, "/", "127.0.0.1")
            assert b'id="setup-password"' in body and b'id="drives"' in body
            # A remote POST of the password form is refused (no session, no token).
            st, _ = await call(app, "/setup/password", "192.0.2.10", "POST",
                               b"password=aaaaaaaaaaaa&repeat=aaaaaaaaaaaa")
            assert st == 403
            # An appliance that wrote a setup code: the code prompt, for anyone, and nothing else.
            code_file.write_text("ABCD-EFGH\n")
            for client in ("192.0.2.10", "127.0.0.1"):
                status, body = await call(app, "/", client)
                assert b'id="setup-code"' in body and b'id="drives"' not in body, client
            assert (await call(app, "/api/status", "127.0.0.1"))[0] == 401
        finally:
            for d in host.drives:
                await d.close()

    trio.run(main)
