"""The CPO dashboard (config section ``[dashboard]``, off unless configured): the network at a glance,
behind the dashboard password. Read-only, except retrying a failed chain job and deciding held sessions.

Pages: ``/login``; ``/`` with stations and connectors (live status), sessions in flight, held sessions
with their reason and evidence (settle at the last trusted reading, or reject: ``POST
/held/{session}/settle|reject``, through the daemon's HeldDesk as ``core-client sessions settle-held``),
the chain job queue, chain head and the operator's gas balance, revenue settled today and this month,
failed and rejected sessions with their reasons; with several instances on one PostgreSQL, every
instance (role, alive, the charge points it holds) and who leads, the same on the dashboard of any of them. ``/`` refreshes its panels every few seconds (htmx)."""

from __future__ import annotations

import ipaddress
import logging
import secrets
import time
from collections import deque
from pathlib import Path

from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from core_client.config import DashboardSettings
from core_client.sessions.held import Refused
from core_client.web.dashboard_source import DashboardSource
from ev_network.session_ids import parse_session_id
from ev_network.web import CsrfError, check_csrf, session_middleware, static_mount, templates

TEMPLATES = templates(Path(__file__).resolve().parent / "templates")
REFRESH_S = 3
MAX_GUESSES = 5  # wrong passwords from one address within GUESS_WINDOW_S: then it is locked out
GUESS_WINDOW_S = 60
MAX_TRACKED = 10_000  # addresses remembered (old ones dropped beyond)
log = logging.getLogger("core_client.dashboard")


class Guesses:
    """Wrong passwords per client address: after :data:`MAX_GUESSES` within :data:`GUESS_WINDOW_S`, the
    address is locked out until the oldest of them is that old (the right password too is refused)."""

    def __init__(self) -> None:
        self.wrong: dict[str, deque[float]] = {}

    def locked_for(self, address: str, now: float) -> float:
        """Seconds the address stays locked out (0: it may try)."""
        recent = self.wrong.get(address)
        while recent and now - recent[0] > GUESS_WINDOW_S:
            recent.popleft()
        return GUESS_WINDOW_S - (now - recent[0]) if recent and len(recent) >= MAX_GUESSES else 0.0

    def add(self, address: str, now: float) -> int:
        if len(self.wrong) > MAX_TRACKED and address not in self.wrong:
            self.wrong = {a: d for a, d in self.wrong.items() if d and now - d[-1] <= GUESS_WINDOW_S}
        recent = self.wrong.setdefault(address, deque())
        recent.append(now)
        return len(recent)


class KnownHost:
    """ASGI middleware: a request whose ``Host`` names neither an IP address, ``localhost`` nor the
    dashboard's configured host is refused (403): a DNS name that merely resolves here (DNS rebinding)
    gets nothing from the dashboard."""

    def __init__(self, app: ASGIApp, host: str) -> None:
        self.app, self.names = app, {"localhost", host.lower()}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not self.known(Headers(scope=scope).get("host", "")):
            await PlainTextResponse("this dashboard answers only to its own address\n", 403)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def known(self, host: str) -> bool:
        if host.startswith("["):  # [IPv6]:port
            name = host[1:].partition("]")[0]
        else:
            name = host.partition(":")[0] if host.count(":") == 1 else host
        name = name.lower()
        try:
            ipaddress.ip_address(name)
        except ValueError:
            return name in self.names
        return True


def create_dashboard_app(source: DashboardSource, settings: DashboardSettings, tls: bool = False) -> Starlette:
    """The dashboard's ASGI app over ``source`` (``tls``: served over HTTPS, its cookie Secure). A login lives on the server (``logins``): logging out
    ends it, whatever copy of the cookie is still around; wrong passwords are logged and lock the
    address out (:class:`Guesses`)."""
    logins: dict[str, float] = {}  # login id (in the signed cookie) -> when it was last used
    guesses = Guesses()

    def logged_in(request: Request) -> bool:
        login, now = request.session.get("login"), time.time()
        seen = logins.get(login) if isinstance(login, str) else None
        if seen is None or now - seen > settings.idle_timeout_s:
            if isinstance(login, str):
                logins.pop(login, None)
            request.session.pop("login", None)
            return False
        logins[login] = now
        return True

    def page(request: Request, name: str, status: int = 200, **context: object) -> Response:
        return TEMPLATES.TemplateResponse(request, name, {"app_name": "EV Network: CPO dashboard", **context}, status)

    async def login_form(request: Request) -> Response:
        return page(request, "login.html", error=request.query_params.get("error"))

    async def login(request: Request) -> Response:
        await check_csrf(request)
        address, now = request.client.host if request.client else "?", time.time()
        locked = guesses.locked_for(address, now)
        if locked:
            error = f"too many wrong passwords: try again in {locked:.0f} s"
            return page(request, "login.html", status=429, error=error)
        form = await request.form()
        if not settings.check_password(str(form.get("password", ""))):
            count = guesses.add(address, now)
            log.warning("dashboard: wrong password from %s (%d in the last %d s)", address, count, GUESS_WINDOW_S)
            return page(request, "login.html", status=401, error="wrong password")
        for old in [k for k, seen in logins.items() if now - seen > settings.idle_timeout_s]:
            del logins[old]
        login_id = secrets.token_urlsafe(24)
        logins[login_id] = now
        request.session["login"] = login_id
        return RedirectResponse("/", status_code=303)

    async def logout(request: Request) -> Response:
        await check_csrf(request)
        login = request.session.get("login")
        if isinstance(login, str):
            logins.pop(login, None)  # ended here: an old copy of the cookie no longer gets in
        request.session.clear()
        return RedirectResponse("/login", status_code=303)

    async def overview(request: Request) -> Response:
        if not logged_in(request):
            return RedirectResponse("/login", status_code=303)
        name = "panels.html" if request.headers.get("hx-request") else "dashboard.html"
        now = time.time()
        return page(
            request,
            name,
            chain=await source.chain(),
            **await source.panels(now),
            refresh_s=REFRESH_S,
            notice=request.session.pop("notice", None),
            error=request.session.pop("error", None),
        )

    async def retry(request: Request) -> Response:
        if not logged_in(request):
            return RedirectResponse("/login", status_code=303)
        await check_csrf(request)
        request.session["notice"] = await source.retry_job(int(request.path_params["job_id"]))
        return RedirectResponse("/", status_code=303)

    async def decide(request: Request) -> Response:
        """The operator's decision on a held session: the desk's answer as a notice, its refusal as an error."""
        if not logged_in(request):
            return RedirectResponse("/login", status_code=303)
        await check_csrf(request)
        decision = request.path_params["decision"]
        if decision not in ("settle", "reject"):
            return PlainTextResponse("a held session is settled or rejected\n", 404)
        try:
            session_id = parse_session_id(request.path_params["session"])
            request.session["notice"] = await source.decide_held(session_id, settle=decision == "settle")
        except (ValueError, Refused) as error:
            log.warning("dashboard: %s of a held session refused: %s", decision, error)
            request.session["error"] = f"refused: {error}"
        return RedirectResponse("/", status_code=303)

    async def csrf_failed(request: Request, exc: Exception) -> Response:
        return page(request, "login.html", status=403, error=str(exc))

    return Starlette(
        routes=[
            Route("/", overview),
            Route("/login", login_form, methods=["GET"]),
            Route("/login", login, methods=["POST"]),
            Route("/logout", logout, methods=["POST"]),
            Route("/jobs/{job_id:int}/retry", retry, methods=["POST"]),
            Route("/held/{session}/{decision:str}", decide, methods=["POST"]),
            static_mount(),
        ],
        middleware=[Middleware(KnownHost, host=settings.host), session_middleware("evn_dashboard", secure=tls)],
        exception_handlers={CsrfError: csrf_failed},
    )
