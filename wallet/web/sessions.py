"""The driver's app: stations and quotes, starting a charge, the live session (server-sent events),
stop / cancel / reclaim, history and invoices."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from sse_starlette.sse import EventSourceResponse
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ev_network.session_ids import hex_session_id, parse_session_id
from wallet.cli_common import decimal_arg
from wallet.core import Wallet
from wallet.display import held_note, held_notes
from wallet.errors import BadSessionId, SessionNotFound
from wallet.invoice import render_pdf
from wallet.invoice_view import invoice_view
from wallet.live_client import LiveClient, LiveUnavailable
from wallet.models import TERMINAL_PHASES
from wallet.units import parse_amount
from wallet.web.common import TEMPLATES, Failed, act, in_thread, posted, read, render, unlocked, web

LIVE_INTERVAL_S = 1.0


def session_id_of(request: Request) -> int:
    try:
        return parse_session_id(request.path_params["session_id"])
    except ValueError as exc:
        raise BadSessionId(str(exc)) from None


# ------------------------------------------------------------ stations, quote


async def stations(request: Request) -> Response:
    state = web(request)
    found = state.get(request.session.get("key"))

    def work() -> dict[str, Any]:
        wallet = found.wallet if found else state.reader()
        availability: dict[str, list[dict[str, Any]]] = {}
        live_error = None
        if state.live_url:
            try:
                availability = {s["charge_point_id"]: s["connectors"] for s in LiveClient(state.live_url).stations()}
            except LiveUnavailable as exc:
                live_error = str(exc)
        return {
            "stations": wallet.stations(),
            "availability": availability,
            "live_error": live_error,
            "decimals": wallet.token_info.decimals,
            "symbol": wallet.token_info.symbol,
            "unlocked": found is not None,
        }

    return await read(request, "stations.html", work)


async def quote(request: Request) -> Response:
    q = request.query_params
    state = web(request)

    def work() -> dict[str, Any]:
        wallet = state.reader()
        energy = decimal_arg(q.get("kwh") or "0", "energy (kWh)", 1000)
        seconds = decimal_arg(q.get("minutes") or "0", "charging time (minutes)", 60)
        result = wallet.quote(q.get("station", ""), energy, duration_s=seconds)
        return {"quote": result, "decimals": wallet.token_info.decimals, "symbol": wallet.token_info.symbol}

    return await read(request, "_quote.html", work)


async def charge(request: Request) -> Response:
    wallet, form = await posted(request)

    def work() -> str:
        deposit = parse_amount(str(form.get("deposit", "")), wallet.token_info.decimals)
        connector = int(str(form.get("connector") or "1"))
        opened = wallet.open(str(form.get("station", "")), connector, deposit)
        return f"/sessions/{hex_session_id(opened.session_id)}"

    return await act(request, work, "/stations")


# ------------------------------------------------------------ one session


def session_view(wallet: Wallet, live: LiveClient | None, session_id: int) -> dict[str, Any]:
    """What the session page shows: the chain's status, the Core Client's live data, what is allowed when."""
    status = wallet.session_status(session_id)
    if status.driver.lower() != wallet.address.lower():
        raise SessionNotFound(
            f"session {hex_session_id(session_id)} belongs to another driver: only its driver sees it live"
        )
    now = wallet.tracker.chain_time()
    live_data, live_error = None, None
    if live is not None and status.phase not in TERMINAL_PHASES and status.phase != "requested":
        try:
            live_data = live.session(session_id)
        except LiveUnavailable as exc:
            live_error = str(exc)
    return {
        "status": status,
        "live": live_data,
        "live_error": live_error,
        "held": held_note(live_data, status.reclaim_possible_at),
        "ended": status.phase in TERMINAL_PHASES,
        "cancel_in": max(0, status.cancel_possible_at - now),
        "reclaim_in": None if status.reclaim_possible_at is None else max(0, status.reclaim_possible_at - now),
        "decimals": wallet.token_info.decimals,
        "symbol": wallet.token_info.symbol,
        "session_hex": hex_session_id(session_id),
    }


async def session_page(request: Request) -> Response:
    found = unlocked(request)
    session_id = session_id_of(request)

    def work() -> dict[str, Any]:
        view = session_view(found.wallet, found.live, session_id)
        return {**view, "station": found.wallet.station(view["status"].station_id)}

    return await read(request, "session.html", work)


async def session_events(request: Request) -> EventSourceResponse:
    """The live fragment of the session page, one event per change; ``end`` once the session ended."""
    found = unlocked(request, touch=False)  # watching is not activity: the idle lock still applies
    session_id = session_id_of(request)
    state = web(request)
    fragment = TEMPLATES.get_template("_live.html")

    async def stream() -> AsyncIterator[dict[str, str]]:
        last = None
        while not await request.is_disconnected():
            if state.get(request.session.get("key"), touch=False) is None:
                yield {
                    "event": "end",
                    "data": "<p class='message error'>locked after idle minutes: reload to unlock</p>",
                }
                return
            try:
                view = await in_thread(request, lambda: session_view(found.wallet, found.live, session_id))
            except Failed as exc:  # the chain is down for a moment: say so, keep watching
                view = {"error": str(exc)}
            html = fragment.render(request=request, **view)
            ended = bool(view.get("ended"))
            if html != last:
                last = html
                yield {"event": "end" if ended else "live", "data": html}
            if ended:
                return
            await asyncio.sleep(LIVE_INTERVAL_S)

    return EventSourceResponse(stream())


ACTIONS = {  # what the session page's buttons do: the wallet's method, and what the driver is told
    "stop": ("request_stop", None),  # the live part says it until the settlement replaces it
    "cancel": ("cancel", "cancelled: the deposit is back in your balance"),
    "reclaim": ("reclaim", "reclaimed: the deposit is back in your balance"),
}


async def session_action(request: Request) -> Response:
    if request.path_params["action"] not in ACTIONS:
        return Response("no such action", status_code=404)
    wallet, _ = await posted(request)
    session_id = session_id_of(request)
    method, done = ACTIONS[request.path_params["action"]]
    page = f"/sessions/{hex_session_id(session_id)}"

    def work() -> str:
        getattr(wallet, method)(session_id)
        return done or page

    return await act(request, work, page)


# ------------------------------------------------------- history, invoices


async def history(request: Request) -> Response:
    found = unlocked(request)
    wallet = found.wallet

    def work() -> dict[str, Any]:
        entries = wallet.history()[::-1]
        held, live_error = held_notes(wallet, found.live, entries) if found.live else ({}, None)
        return {
            "entries": entries,
            "held": held,
            "live_error": live_error,
            "names": {s.station_id: s.charge_point_id for s in wallet.stations()},
            "decimals": wallet.token_info.decimals,
            "symbol": wallet.token_info.symbol,
        }

    return await read(request, "history.html", work)


async def invoice(request: Request) -> Response:
    found = unlocked(request)
    session_id = session_id_of(request)
    return await read(request, "invoice.html", lambda: {"view": invoice_view(found.wallet.invoice(session_id))})


async def invoice_pdf(request: Request) -> Response:
    found = unlocked(request)
    session_id = session_id_of(request)

    def work() -> dict[str, Any]:
        inv = found.wallet.invoice(session_id)
        with tempfile.TemporaryDirectory() as tmp:
            data = render_pdf(inv, Path(tmp) / "invoice.pdf").read_bytes()
        return {"pdf": data, "name": f"invoice-{inv.session_label.replace('/', '-')}.pdf"}

    try:
        result = await in_thread(request, work)
    except Failed as exc:
        return render(request, "message.html", exc.status, error=str(exc))
    headers = {"Content-Disposition": f'attachment; filename="{result["name"]}"'}
    return Response(result["pdf"], media_type="application/pdf", headers=headers)


def routes() -> list[Route]:
    return [
        Route("/stations", stations),
        Route("/quote", quote),
        Route("/charge", charge, methods=["POST"]),
        Route("/history", history),
        Route("/sessions/{session_id}", session_page),
        Route("/sessions/{session_id}/events", session_events),
        Route("/sessions/{session_id}/invoice", invoice),
        Route("/sessions/{session_id}/invoice.pdf", invoice_pdf),
        Route("/sessions/{session_id}/{action:str}", session_action, methods=["POST"]),
    ]
