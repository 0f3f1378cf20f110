"""What the driver's app's pages share: the unlocked account of the request, rendering, and running
chain reads and writes in a thread with the wallet's one-line messages for errors."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ev_network.errors import ChainUnavailable, EVNetworkError
from ev_network.web import check_csrf, templates
from wallet.core import Wallet
from wallet.web.state import Unlocked, WebWallet, driver_message

TEMPLATES = templates(Path(__file__).resolve().parent / "templates")
NAV = [("/", "Account"), ("/stations", "Stations"), ("/history", "History"), ("/cards", "Cards")]


class NeedUnlock(Exception):
    """A page that needs the unlocked account."""


def web(request: Request) -> WebWallet:
    return request.app.state.web


def unlocked(request: Request, touch: bool = True) -> Unlocked:
    found = web(request).get(request.session.get("key"), touch)
    if found is None:
        raise NeedUnlock()
    return found


def render(request: Request, name: str, code: int = 200, **context: Any) -> Response:
    """Page ``name`` with the flashed error or notice; ``code`` is the HTTP status."""
    context = {
        "app_name": "EV Wallet",
        "nav": NAV,
        "error": request.session.pop("error", None),
        "notice": request.session.pop("notice", None),
        **context,
    }
    return TEMPLATES.TemplateResponse(request, name, context, status_code=code)


class Failed(Exception):
    """Work that failed with a message for the driver; ``status``: 503 when the chain is down, else 400."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


async def in_thread(request: Request, work: Callable[[], Any]) -> Any:
    """Run ``work`` (chain I/O) in a thread; an error the driver can act on comes back as Failed."""
    try:
        return await asyncio.to_thread(work)
    except Exception as exc:
        message = driver_message(exc, web(request).config.rpc_url)
        if message is None:
            raise
        raise Failed(
            message, 400 if isinstance(exc, EVNetworkError) and not isinstance(exc, ChainUnavailable) else 503
        ) from None


async def act(request: Request, work: Callable[[], str], back: str) -> Response:
    """Run ``work`` (a chain write) in a thread: its message as a notice, or the error; then go to ``back``
    (or to the URL ``work`` returns, when it starts with ``/``)."""
    try:
        result = await in_thread(request, work)
    except Failed as exc:
        request.session["error"] = str(exc)
        return RedirectResponse(back, status_code=303)
    if result.startswith("/"):
        return RedirectResponse(result, status_code=303)
    request.session["notice"] = result
    return RedirectResponse(back, status_code=303)


async def read(request: Request, name: str, work: Callable[[], dict[str, Any]]) -> Response:
    """Render page ``name`` with what ``work`` reads from the chain (in a thread), or the error."""
    try:
        context = await in_thread(request, work)
    except Failed as exc:
        return render(
            request, name if request.headers.get("hx-request") else "message.html", exc.status, error=str(exc)
        )
    return render(request, name, **context)


async def posted(request: Request) -> tuple[Wallet, FormData]:
    """The unlocked wallet and the form of a POST, after its CSRF check."""
    found = unlocked(request)
    await check_csrf(request)
    return found.wallet, await request.form()
