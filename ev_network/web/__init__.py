"""What the web front ends share (the driver's app ``wallet.web`` and the CPO's dashboard
``core_client.web``): signed session cookies, CSRF tokens, the look (``templates/layout.html``, the
template filters) and the static assets shipped with the package (htmx, the style sheet; no CDN).

Requests from other sites (:func:`session_middleware`): the session cookie is ``SameSite=Lax``, so a
link from another site (a top-level navigation) arrives signed in; a state-changing request (POST) from
another site is refused before the session is read, by the headers browsers send (``Sec-Fetch-Site``,
else ``Origin``), and its answer sets no cookie: a new session in its place would sign the user out and
leave an unlocked key behind. Every POST must also carry the session's random token (a hidden form
field ``csrf``, or the ``X-CSRF-Token`` header), which a page of another site cannot read."""

from __future__ import annotations

import hmac
import secrets
from pathlib import Path

from jinja2 import ChoiceLoader, Environment, FileSystemLoader
from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Receive, Scope, Send

from ev_network.session_ids import label_of_driver
from ev_network.units import format_amount, format_time, format_wait, format_wh_as_kwh, money, short_amount

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
TEMPLATES = HERE / "templates"


class CsrfError(Exception):
    """A state-changing request without the session's CSRF token."""


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
REFUSED_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>Refused</title>
<link rel="icon" href="/static/favicon.svg"><link rel="stylesheet" href="/static/app.css"></head>
<body><main><p class="message error" role="alert">refused: this form was sent from another site. Nothing
was changed and you are still signed in: open this app and try again there.</p>
<p><a href="/">Open the app</a></p></main></body></html>"""


def cross_site(scope: Scope) -> bool:
    """Whether a request was sent by a page of another site (or origin), by the headers browsers send:
    ``Sec-Fetch-Site`` (every current browser), else ``Origin``. Neither: not sent by another site's
    page (a browser sends at least one of them with a cross-site POST)."""
    headers = Headers(scope=scope)
    fetch_site = headers.get("sec-fetch-site")
    if fetch_site is not None:
        return fetch_site not in ("same-origin", "none")  # "none": typed in, a bookmark
    origin = headers.get("origin")
    return origin is not None and origin != f"{scope.get('scheme', 'http')}://{headers.get('host', '')}"


class BrowserSession:
    """Signed session cookies (``SameSite=Lax``) behind a guard that refuses state-changing requests of
    other sites with 403 before the session is read, setting no cookie."""

    def __init__(self, app: ASGIApp, cookie: str, secure: bool = False) -> None:
        secret = secrets.token_urlsafe(32)
        self.app = SessionMiddleware(app, secret, session_cookie=cookie, same_site="lax", https_only=secure)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] not in SAFE_METHODS and cross_site(scope):
            await HTMLResponse(REFUSED_PAGE, status_code=403)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def session_middleware(cookie: str, secure: bool = False) -> Middleware:
    """Signed session cookies with a secret that lives only as long as the process (``secure``: sent
    over HTTPS only); state-changing requests of other sites refused (:class:`BrowserSession`)."""
    return Middleware(BrowserSession, cookie=cookie, secure=secure)


def csrf_token(request: Request) -> str:
    """The session's CSRF token (made on first use)."""
    if "csrf" not in request.session:
        request.session["csrf"] = secrets.token_urlsafe(24)
    return request.session["csrf"]


async def check_csrf(request: Request) -> None:
    """Raise CsrfError unless a POST carries the session's token."""
    if request.method != "POST":
        return
    sent = request.headers.get("x-csrf-token") or (await request.form()).get("csrf") or ""
    expected = request.session.get("csrf")
    if not expected or not hmac.compare_digest(str(sent), expected):
        raise CsrfError("the form has expired or came from another site: reload the page and try again")


def static_mount() -> Mount:
    return Mount("/static", StaticFiles(directory=STATIC), name="static")


def templates(own: Path | None = None) -> Jinja2Templates:
    """Jinja2 templates: ``own`` first, then the shared layout; with the filters of amounts (``amount``:
    exact, ``short``: live figures, ``money``: settled amounts), energy, times, waits and sessions (``session``:
    ``1 of 0x7099…79C8``, the label its driver sees, with the driver)."""
    loaders = [FileSystemLoader(own)] if own else []
    env = Environment(loader=ChoiceLoader([*loaders, FileSystemLoader(TEMPLATES)]), autoescape=True)
    result = Jinja2Templates(env=env)
    result.env.filters["amount"] = lambda units, decimals=18: "-" if units is None else format_amount(units, decimals)
    result.env.filters["short"] = lambda units, decimals=18: "-" if units is None else short_amount(units, decimals)
    result.env.filters["money"] = lambda units, decimals=18: "-" if units is None else money(units, decimals)
    result.env.filters["kwh"] = lambda wh: "-" if wh is None else format_wh_as_kwh(wh)
    result.env.filters["utc"] = lambda t: "-" if not t else format_time(t)
    result.env.filters["wait"] = format_wait
    result.env.filters["session"] = lambda session_id: label_of_driver(
        int(session_id, 16) if isinstance(session_id, str) else session_id
    )
    result.env.globals["csrf_token"] = csrf_token
    return result
