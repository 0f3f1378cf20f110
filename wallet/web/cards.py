"""The driver's RFID cards in the web app (``/cards``): what is linked, what its sessions committed so far,
adding a card (a payment mandate for it) and revoking one, through :class:`wallet.cards.Cards`, the code
behind ``ev-wallet card add|list|remove``."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from wallet.cards import Cards
from wallet.cli_common import amount_arg
from wallet.web.common import act, posted, read, unlocked, web


async def cards_page(request: Request) -> Response:
    found = unlocked(request)
    wallet, home = found.wallet, web(request).config.home

    def work() -> dict[str, Any]:
        operators = {s.operator: s.operator_name for s in wallet.stations()}
        return {
            "cards": Cards(wallet, home).list(),
            "operators": operators,
            "decimals": wallet.token_info.decimals,
            "symbol": wallet.token_info.symbol,
        }

    return await read(request, "cards.html", work)


async def add(request: Request) -> Response:
    wallet, form = await posted(request)
    home = web(request).config.home

    def work() -> str:
        days = str(form.get("days") or "365")
        card = Cards(wallet, home).add(
            str(form.get("uid", "")),
            str(form.get("operator", "")),
            amount_arg(wallet, str(form.get("cap", ""))),
            amount_arg(wallet, str(form.get("total", ""))),
            days=int(days) if days.isdigit() else 0,
            label=str(form.get("label", "")).strip(),
        )
        return f"card {card.uid} linked: mandate {card.mandate_id}. Give the operator its grant: {card.grant}"

    return await act(request, work, "/cards")


async def remove(request: Request) -> Response:
    wallet, form = await posted(request)
    home = web(request).config.home

    def work() -> str:
        card = Cards(wallet, home).remove(str(form.get("uid", "")))
        return f"card {card.uid} removed: mandate {card.mandate_id} revoked, the card opens no more sessions"

    return await act(request, work, "/cards")


def routes() -> list[Route]:
    return [
        Route("/cards", cards_page),
        Route("/cards/add", add, methods=["POST"]),
        Route("/cards/remove", remove, methods=["POST"]),
    ]
