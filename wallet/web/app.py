"""``ev-wallet web``: the driver's EV Wallet in a browser (Starlette, Jinja2 templates, htmx; live data
as server-sent events). Served on 127.0.0.1 by default: the keystore stays on the driver's machine and
is unlocked with its password in the page.

Pages: ``/`` account and balance (create, unlock, lock, top up on a dev chain), ``/stations`` with
tariffs, live availability, the quote calculator and the start form, ``/sessions/{id}`` a session live
(stop, cancel, reclaim), ``/history``, ``/sessions/{id}/invoice`` (and ``.pdf``). Errors come back as
the wallet's one-line messages; every POST needs the session's CSRF token. ``/cards``: the RFID cards
linked to the account (:mod:`wallet.web.cards`)."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from ev_network.errors import EVNetworkError
from ev_network.web import CsrfError, check_csrf, session_middleware, static_mount
from wallet.cli_common import minter_account
from wallet.config import WalletConfig
from wallet.units import parse_amount
from wallet.web import cards, sessions
from wallet.web.common import NeedUnlock, act, posted, read, render, web
from wallet.web.state import IDLE_LOCK_S, WebWallet

# ------------------------------------------------------------------ account


async def account(request: Request) -> Response:
    state = web(request)
    found = state.get(request.session.get("key"))
    if found is None:
        return render(request, "unlock.html", accounts=state.keystore.accounts(), default=state.keystore.default())
    wallet = found.wallet

    def work() -> dict[str, Any]:
        return {
            "address": wallet.address,
            "balance": wallet.fmt(wallet.balance()),
            "gas": wallet.w3.from_wei(wallet.w3.eth.get_balance(wallet.address), "ether"),
            "dev_chain": wallet.deployment.chain_id == 31337,
            "symbol": wallet.token_info.symbol,
        }

    return await read(request, "account.html", work)


def sign_in(request: Request, key: str) -> None:
    """Keep the unlocked account's ``key`` in the browser's session; an account the session held before
    is locked first (its key leaves memory now, not at the idle lock)."""
    web(request).lock(request.session.get("key"))
    request.session["key"] = key


async def create(request: Request) -> Response:
    await check_csrf(request)
    form = await request.form()
    state = web(request)

    def work() -> str:
        address = state.create(str(form.get("password", "")), str(form.get("confirm", "")))
        sign_in(request, state.unlock(address, str(form.get("password", ""))))
        return f"account {address} created and unlocked: its key is encrypted in {state.config.keystore_dir}"

    return await act(request, work, "/")


async def unlock(request: Request) -> Response:
    await check_csrf(request)
    form = await request.form()
    state = web(request)

    def work() -> str:
        sign_in(request, state.unlock(str(form.get("account") or "") or None, str(form.get("password", ""))))
        target = str(form.get("next") or "/")
        return target if target.startswith("/") and not target.startswith("//") else "/"  # this site only

    return await act(request, work, "/")


async def lock(request: Request) -> Response:
    await check_csrf(request)
    web(request).lock(request.session.pop("key", None))
    request.session["notice"] = "locked: the key is gone from memory until you unlock again"
    return RedirectResponse("/", status_code=303)


async def topup(request: Request) -> Response:
    wallet, form = await posted(request)

    def work() -> str:
        units = parse_amount(str(form.get("amount", "")), wallet.token_info.decimals)
        wallet.top_up(units, minter_account(wallet, None))
        return f"topped up {wallet.fmt(units)}: the balance is now {wallet.fmt(wallet.balance())}"

    return await act(request, work, "/")


# ---------------------------------------------------------------- the app


def create_app(config: WalletConfig, live_url: str | None = None, idle_lock_s: float = IDLE_LOCK_S) -> Starlette:
    """The driver's web app on the wallet home, chain and deployment of ``config``; ``live_url`` is the
    Core Client's live data endpoint (``[live]`` in its config), if it has one."""

    async def need_unlock(request: Request, exc: Exception) -> Response:
        if request.url.path.endswith("/events"):
            return Response("locked", status_code=401)
        request.session["error"] = "unlock your account first (it locks itself after a few idle minutes)"
        return RedirectResponse(f"/?next={request.url.path}", status_code=303)

    async def csrf_failed(request: Request, exc: Exception) -> Response:
        return render(request, "message.html", code=403, error=str(exc))

    async def refused(request: Request, exc: Exception) -> Response:
        return render(request, "message.html", code=400, error=str(exc))

    app = Starlette(
        routes=[
            Route("/", account),
            Route("/account/create", create, methods=["POST"]),
            Route("/unlock", unlock, methods=["POST"]),
            Route("/lock", lock, methods=["POST"]),
            Route("/topup", topup, methods=["POST"]),
            *sessions.routes(),
            *cards.routes(),
            static_mount(),
        ],
        middleware=[session_middleware("evn_wallet")],
        exception_handlers={NeedUnlock: need_unlock, CsrfError: csrf_failed, EVNetworkError: refused},
    )
    app.state.web = WebWallet(config, live_url, idle_lock_s)
    return app
