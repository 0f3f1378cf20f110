"""What the web front ends share (the driver's app ``wallet.web`` and the CPO's dashboard
``core_client.web``): signed session cookies, CSRF tokens, the look (``templates/layout.html``, the
template filters) and the static assets shipped with the package (htmx, the style sheet; no CDN).

CSRF: every state-changing request (POST) must carry the session's random token (a hidden form field
``csrf``, or the ``X-CSRF-Token`` header); the session cookie is also ``SameSite=strict``, so a
cross-site page can neither read the token nor send the cookie."""

from __future__ import annotations

import hmac
import secrets
from datetime import datetime, timezone
from pathlib import Path

from jinja2 import ChoiceLoader, Environment, FileSystemLoader
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from ev_network.units import format_amount, format_wh_as_kwh, short_amount

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
TEMPLATES = HERE / "templates"


class CsrfError(Exception):
    """A state-changing request without the session's CSRF token."""


def session_middleware(cookie: str) -> Middleware:
    """Signed session cookies with a secret that lives only as long as the process."""
    return Middleware(
        SessionMiddleware, secret_key=secrets.token_urlsafe(32), session_cookie=cookie, same_site="strict"
    )


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
    """Jinja2 templates: ``own`` first, then the shared layout; with the amount and time filters."""
    loaders = [FileSystemLoader(own)] if own else []
    env = Environment(loader=ChoiceLoader([*loaders, FileSystemLoader(TEMPLATES)]), autoescape=True)
    result = Jinja2Templates(env=env)
    result.env.filters["amount"] = lambda units, decimals=18: "-" if units is None else format_amount(units, decimals)
    result.env.filters["short"] = lambda units, decimals=18: "-" if units is None else short_amount(units, decimals)
    result.env.filters["kwh"] = lambda wh: "-" if wh is None else format_wh_as_kwh(wh)
    result.env.filters["utc"] = lambda t: (
        "-" if not t else datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    )
    result.env.globals["csrf_token"] = csrf_token
    return result
