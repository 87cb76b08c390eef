"""The status page: setup, login, the server-rendered status, actions, ``/metrics``.

Theory of operation
-------------------
Routes (the page's own forms post to the ``POST`` ones; every ``POST`` needs
the session's CSRF token, and all but the setup steps an admin login):

==========================  =================================================
``GET  /``                  setup step, login, or the status page
``GET  /fragment``          the live part of the status page (the page polls it)
``GET  /api/status``        the same data as JSON
``GET  /api/history``       the last hour's samples (the graphs) as JSON
``GET  /metrics``           Prometheus text format, no login (scrapers)
``POST /setup/code``        the first-boot setup code
``POST /setup/password``    the admin password, once
``POST /setup/create``      this host becomes a one-host cluster
``POST /setup/join``        join a cluster with a member's join token
``POST /login`` ``/logout``
``POST /actions/...``       drain, replace, claim, join-token, support-bundle
==========================  =================================================

Who sees what is decided in one place, :meth:`WebApp.gate` (see
:mod:`titans3.web.auth` for the rules): before an admin password exists, a
loopback client sees the status read-only with the "set a password" form, a
remote client sees nothing (or the setup-code prompt on an appliance that
wrote one); after, everything but ``/metrics`` needs a login.  ``/metrics``
stays open because a Prometheus scraper cannot log in; it carries counts and
drive ids, no secrets, and the page binds to loopback unless told otherwise.

The page is rendered by the server (:mod:`titans3.web.views`); the same
template for the live part is what ``/fragment`` returns.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, generate_latest
from quart import Response, redirect, request

from titans3.accounts.register import SYSTEM, SystemTable
from titans3.cluster import bootstrap, supportbundle
from titans3.core import hostaddr, metrics
from titans3.core.asgi import ClosingQuartTrio
from titans3.core.config import parse_hostport
from titans3.core.errors import S3Error
from titans3.web import actions, auth, views
from titans3.web.history import History
from titans3.web.prom import StatusCollector
from titans3.web.status import host_status

if TYPE_CHECKING:
    from titans3.cluster.host import HostServices as Host

log = logging.getLogger(__name__)

REFRESH_MS = 2000
AVAILABLE_TTL = 10.0  # s between device probes for the "disks not in use" list


@dataclass
class Gate:
    view: str  # refused | code | password | login | status
    session: auth.Session | None
    password_set: bool
    loopback: bool
    code_required: bool = False  # the appliance wrote a setup code

    @property
    def status_visible(self) -> bool:
        """The status, read-only, to loopback before a password exists (a dev node)."""
        return self.view == "status" or (self.view == "password" and self.loopback
                                          and not self.code_required)


class WebApp:
    """The page's state on this host: sessions, limiter, password, history."""

    def __init__(self, host: Host) -> None:
        cfg = host.config
        self.host = host
        self.sessions = auth.Sessions(idle=cfg.web_session_idle)
        self.limiter = auth.LoginLimiter(lockout=cfg.web_lockout)
        records = SystemTable(lambda: host.store.drives, lambda: host.store.clock, SYSTEM)
        self.password = auth.AdminPassword(records)
        self.setup_code = auth.SetupCode(cfg.setup_code_file)
        self.history = History(cfg.web_sample_interval)
        self._available: tuple[float, list[dict[str, Any]]] | None = None

    # ------------------------------------------------------------ who sees what
    async def gate(self) -> Gate:
        loopback = auth.is_loopback((request.scope.get("client") or ("",))[0])
        session = self.sessions.get(request.cookies.get(auth.COOKIE))
        current = await self.password.current()
        if current is not None:
            admin = session is not None and session.admin and session.password == current
            return Gate("status" if admin else "login", session, True, loopback)
        code = self.setup_code.code() is not None
        if code:
            view = "password" if session is not None and session.code_ok else "code"
        else:
            view = "password" if loopback else "refused"
        return Gate(view, session, False, loopback, code_required=code)

    def cookie(self, resp: Response, session: auth.Session) -> Response:
        resp.set_cookie(auth.COOKIE, session.sid, httponly=True, samesite="Strict", path="/",
                        secure=request.scheme == "https")
        return resp

    def ensure_session(self, gate: Gate) -> auth.Session:
        return gate.session or self.sessions.new()

    async def check_post(self, gate: Gate) -> auth.Session | Response:
        """The session of a POST whose CSRF token and origin are right, or the refusal."""
        form = await request.form
        token = form.get("csrf") or request.headers.get("X-CSRF-Token", "")
        origin = request.headers.get("Origin")
        own = f"{request.scheme}://{request.headers.get('Host', '')}"
        if origin and origin != "null" and origin != own:
            return refusal(403, "refused: the request came from another site")
        if gate.session is None or not auth.same_token(token, gate.session.csrf):
            return refusal(403, "refused: missing or wrong CSRF token (reload the page)")
        return gate.session

    # ------------------------------------------------------------ rendering
    def peer_address(self) -> str:
        """The peer address to suggest: from the name the browser used, unless
        that is loopback (a port forward, a tunnel): then this host's own address."""
        name = (request.headers.get("Host") or "").rsplit(":", 1)[0].strip("[]")
        if hostaddr.is_loopback_name(name):
            name = hostaddr.primary_address() or name
        return bootstrap.default_address(self.host.config, name)

    async def page(self, gate: Gate, status: int = 200, **extra: Any) -> Response:
        session = self.ensure_session(gate)
        notes, session.notes = list(session.notes), []
        common = {"host_name": self.host.store.host, "version": self.host.store.version or "",
                  "csrf": session.csrf, "session_admin": gate.view == "status", "notes": notes,
                  "refresh_ms": REFRESH_MS, **extra}
        if gate.view == "status":
            html = views.render("page.html", **common, **await self.live_values(session, admin=True),
                                peer_address=self.peer_address(), first_setup=False)
        else:
            values = await self.live_values(session, admin=False) if gate.status_visible else {}
            html = views.render("gate.html", **common, **values, view=gate.view,
                                readonly_status=gate.status_visible, code_step=gate.code_required,
                                min_password=auth.MIN_PASSWORD,
                                web_port=parse_hostport(self.host.config.web_listen, "web_listen")[1])
        resp = Response(html, status=status, content_type="text/html; charset=utf-8")
        resp.headers["Cache-Control"] = "no-store"
        resp.headers["X-Frame-Options"] = "DENY"
        resp.headers["Content-Security-Policy"] = (
            "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'unsafe-inline'; "
            "img-src 'self' data:; frame-ancestors 'none'; form-action 'self'")
        return self.cookie(resp, session)

    async def live_values(self, session: auth.Session, *, admin: bool) -> dict[str, Any]:
        s = await host_status(self.host)
        return {"s": s, "worker_rows": views.worker_rows(s), "can_act": admin,
                "charts": views.charts(list(self.history.samples), now=time.time(),
                                       interval=self.history.interval),
                "available": await self.available(),
                "token": session.token}

    async def available(self) -> list[dict[str, Any]]:
        """Blank disks (raw-disk mode), probed at most every AVAILABLE_TTL seconds:
        a probe runs blkid and wipefs per device, too much for every poll."""
        now = time.monotonic()
        if self._available is None or now - self._available[0] > AVAILABLE_TTL:
            self._available = (now, await actions.available_disks(self.host))
        return self._available[1]

    def note(self, session: auth.Session, text: str, *, bad: bool = False) -> None:
        session.notes.append({"text": text, "bad": bad})


def refusal(status: int, text: str) -> Response:
    return Response(text + "\n", status=status, content_type="text/plain; charset=utf-8")


def see_other() -> Response:
    return redirect("/", 303)  # type: ignore[return-value]


def create_web_app(host: Host) -> ClosingQuartTrio:
    app = ClosingQuartTrio("titans3-web")
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024
    web = WebApp(host)
    app.extensions["titans3.web"] = web

    @app.before_serving
    async def start_history() -> None:
        app.nursery.start_soon(web.history.run)

    @app.errorhandler(S3Error)
    async def typed_error(e: S3Error) -> Response:
        # QuorumError (the admin password record unreadable), a refused disk
        # operation outside an action: one line, never a traceback.
        log.warning("status page %s %s: %s", request.method, request.path, e)
        return refusal(e.status if 400 <= e.status < 600 else 500, f"{e.code}: {e.message}")

    @app.get("/")
    async def index() -> Response:
        return await web.page(await web.gate())

    @app.get("/fragment")
    async def fragment() -> Response:
        gate = await web.gate()
        if not gate.status_visible:
            return refusal(401, "log in first")
        session = web.ensure_session(gate)
        html = views.render("live.html", **await web.live_values(session, admin=gate.view == "status"),
                            csrf=session.csrf)
        return Response(html, content_type="text/html; charset=utf-8",
                        headers={"Cache-Control": "no-store"})

    @app.get("/api/status")
    async def status() -> Any:
        gate = await web.gate()
        if not gate.status_visible:
            return refusal(401, "log in first")
        return await host_status(host)

    @app.get("/api/history")
    async def history() -> Any:
        gate = await web.gate()
        if not gate.status_visible:
            return refusal(401, "log in first")
        return {"interval": web.history.interval, "samples": web.history.as_json()}

    @app.get("/metrics")
    async def prometheus() -> Response:
        reg = CollectorRegistry()
        reg.register(StatusCollector(await host_status(host), web))  # type: ignore[arg-type]
        body = generate_latest(reg) + generate_latest(metrics.REGISTRY)
        return Response(body, content_type="text/plain; version=0.0.4")

    # ------------------------------------------------------------ setup
    @app.post("/setup/code")
    async def setup_code() -> Response:
        gate = await web.gate()
        if gate.view != "code":
            return see_other()
        session = await web.check_post(gate)
        if isinstance(session, Response):
            return session
        if (wait := web.limiter.wait()) > 0:
            web.limiter.refuse()
            web.note(session, f"Too many wrong answers: try again in {wait:.0f} s.", bad=True)
            return await web.page(gate, 429)
        if not web.setup_code.matches((await request.form).get("code", "")):
            web.limiter.failed()
            web.note(session, "That is not the setup code shown on the console.", bad=True)
            return await web.page(gate, 401)
        web.limiter.succeeded()
        session.code_ok = True
        return see_other()

    @app.post("/setup/password")
    async def setup_password() -> Response:
        gate = await web.gate()
        if gate.view == "refused":
            return refusal(403, "refused: before a password is set this page answers only on loopback")
        if gate.view != "password":
            return refusal(409, "the admin password is already set (or the setup code is needed first)")
        session = await web.check_post(gate)
        if isinstance(session, Response):
            return session
        form = await request.form
        problem = auth.password_problem(form.get("password", ""), form.get("repeat", ""))
        if problem:
            web.note(session, f"Password not set: {problem}.", bad=True)
            return await web.page(gate, 400)
        if await web.password.is_set():  # another host or tab was faster
            return refusal(409, "the admin password is already set")
        hashed = await web.password.set(form["password"])
        web.setup_code.consume()
        web.sessions.drop_all()  # sessions from before a password reset end here
        new = web.sessions.new(admin=True, password=hashed)
        web.note(new, "Admin password set.")
        log.info("status page: admin password set from %s", request.remote_addr)
        return web.cookie(see_other(), new)

    async def admin_post() -> tuple[Gate, auth.Session] | Response:
        gate = await web.gate()
        if gate.view != "status":
            return refusal(401, "log in first")
        session = await web.check_post(gate)
        return session if isinstance(session, Response) else (gate, session)

    @app.post("/setup/create")
    async def setup_create() -> Response:
        got = await admin_post()
        if isinstance(got, Response):
            return got
        gate, session = got
        address = (await request.form).get("address", "")
        try:
            await bootstrap.create_cluster(host, address)
            web.note(session, f"Cluster created: this node is its first member at {address}.")
        except S3Error as e:
            web.note(session, f"Cluster not created: {e.message}", bad=True)
            return await web.page(gate, 409)
        return see_other()

    @app.post("/setup/join")
    async def setup_join() -> Response:
        got = await admin_post()
        if isinstance(got, Response):
            return got
        gate, session = got
        form = await request.form
        try:
            await bootstrap.join_with_token(host, form.get("token", ""), member=form.get("member", ""),
                                            address=form.get("address", ""),
                                            forget=(auth.PASSWORD_RECORD,))
            web.password.forget()
            web.note(session, "Joined the cluster; data moves to this node in the background "
                              "(see the rebalance worker). Log in with the cluster's admin password.")
        except S3Error as e:
            web.note(session, f"Not joined: {e.message}", bad=True)
            return await web.page(gate, 409)
        return see_other()

    # ------------------------------------------------------------ login
    @app.post("/login")
    async def login() -> Response:
        gate = await web.gate()
        if not gate.password_set:
            return see_other()
        session = await web.check_post(gate)
        if isinstance(session, Response):
            return session
        if (wait := web.limiter.wait()) > 0:
            web.limiter.refuse()
            metrics.WEB_LOGINS.labels("rate_limited").inc()
            web.note(session, f"Too many wrong passwords: logins are paused for {wait:.0f} s.", bad=True)
            return await web.page(gate, 429)
        hashed = await web.password.verify((await request.form).get("password", ""))
        if hashed is None:
            web.limiter.failed()
            metrics.WEB_LOGINS.labels("wrong_password").inc()
            log.warning("status page: wrong password from %s (%d in a row)", request.remote_addr,
                        web.limiter.failures)
            web.note(session, "Wrong password.", bad=True)
            return await web.page(gate, 401)
        web.limiter.succeeded()
        metrics.WEB_LOGINS.labels("ok").inc()
        web.sessions.drop(session.sid)
        return web.cookie(see_other(), web.sessions.new(admin=True, password=hashed))

    @app.post("/logout")
    async def logout() -> Response:
        gate = await web.gate()
        session = await web.check_post(gate)
        if isinstance(session, Response):
            return session
        web.sessions.drop(session.sid)
        return see_other()

    # ------------------------------------------------------------ actions
    @app.post("/actions/<name>")
    async def action(name: str) -> Response:
        got = await admin_post()
        if isinstance(got, Response):
            return got
        gate, session = got
        form = dict(await request.form)
        if name == "support-bundle":
            s = await host_status(host)
            extra = {"status.json": json.dumps(s, indent=2, default=str) + "\n",
                     "history.json": json.dumps(web.history.as_json(), indent=1) + "\n",
                     "metrics.txt": generate_latest(metrics.REGISTRY).decode()}
            filename, data = await supportbundle.build(host, extra)
            return Response(data, content_type="application/gzip", headers={
                "Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"})
        try:
            message = await actions.run(host, name, form, session)
        except S3Error as e:
            web.note(session, f"{name}: {e.message}", bad=True)
            return await web.page(gate, e.status if 400 <= e.status < 500 else 409)
        except KeyError as e:
            return refusal(400, f"missing form field {e}")
        web._available = None  # the disks just changed
        if message:
            web.note(session, message)
        return see_other()

    return app
