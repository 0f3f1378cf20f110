"""The demo's card session (issue 20): the driver links an RFID card to a payment mandate
(``ev-wallet card add``), the operator accepts the card's grant (``core-client cards add``), the
simulated charge point reads the card (Authorize, StartTransaction), the Core Client opens and starts the
session on chain under the mandate, the driver taps the card again to stop, it settles and the invoice goes
to the payer: the driver paid per session, without opening the app."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from core_client.chain.grants import GrantsFile
from ev_network.mandates import Mandates
from ev_network.session_ids import hex_session_id
from scripts.demo_chain import TOKEN, DemoChain
from scripts.demo_parts import CoreProcess, health
from simulator.charge_point import SimChargePoint
from wallet.cards import CardError, Cards, LinkedCard
from wallet.core import Wallet

CARD_UID = "04A2B3C4D5E6F7"
CHARGE_POINT, CONNECTOR = "VOLT-BER-002", 2
CAP, TOTAL = 12 * TOKEN, 60 * TOKEN  # per session, all sessions of the card together
GRANTS_FILE = "card-grants.txt"


class CardFailed(Exception):
    """The card session did not go as it should; the message says where."""


async def link_card(chain: DemoChain, core: CoreProcess, wallet: Wallet, state_dir: Path, say: Callable) -> LinkedCard:
    """The driver links the card, the operator accepts its grant; returns once the Core Client knows it."""
    cards = Cards(wallet, state_dir / "wallet")
    grants = GrantsFile(state_dir / GRANTS_FILE)
    try:  # a kept demo state has the card of the previous run: revoke it and link the card afresh
        old = await asyncio.to_thread(cards.remove, CARD_UID)
        grants.remove(old.mandate_id)
        say(f"card {CARD_UID}: the previous run's mandate {old.mandate_id} revoked (ev-wallet card remove)")
    except CardError:
        pass
    card = await asyncio.to_thread(
        cards.add, CARD_UID, chain.operator.address, CAP, TOTAL, days=30, label="demo card"
    )  # fmt: skip
    say(
        f"driver links card {CARD_UID} (ev-wallet card add): mandate {card.mandate_id}, up to "
        f"{wallet.fmt(CAP)} per session, {wallet.fmt(TOTAL)} in all; the chain holds only a salted hash of the uid"
    )
    grants.add(card.grant, "demo driver")  # what `core-client cards add GRANT` does
    say(f"operator accepts the card's grant (core-client cards add {card.grant[:20]}…)")
    await _until(
        lambda: card.mandate_id in health(core)["cards"]["mandates"], 15, "the Core Client to read the mandate"
    )
    return card


async def tap_card(chain: DemoChain, cp: SimChargePoint, wallet: Wallet, card: LinkedCard, say: Callable) -> dict:
    """Tap, charge, tap again to stop, settle; the card session's summary (invoice from the payer's wallet)."""
    before = {entry.session_id for entry in await asyncio.to_thread(wallet.history)}
    tapped = time.monotonic()
    transaction = await cp.start_local(CONNECTOR, CARD_UID)
    if transaction is None:
        raise CardFailed(f"card {CARD_UID} was refused at {CHARGE_POINT}/{CONNECTOR}")
    say(f"card tapped at {CHARGE_POINT}/{CONNECTOR}: Accepted, transaction {transaction}")
    station = chain.station_ids[CHARGE_POINT]

    def opened() -> int | None:
        # its station and connector: the demo's budget session, at the same station's connector 1, runs meanwhile
        new = [
            e
            for e in wallet.history()
            if e.session_id not in before and (e.station_id, e.connector) == (station, CONNECTOR)
        ]
        return new[0].session_id if new else None

    session_id = await _until(opened, 30, "the card's session on chain")
    say(f"card session {wallet.name(session_id)} opened and started on chain ({time.monotonic() - tapped:.1f} s)")
    stopped = False
    async for update in wallet.tracker.awatch(session_id, poll_interval=0.2, timeout=90):
        if update.phase == "charging" and not stopped and update.elapsed_s >= 2:
            stopped = True
            say("the driver taps the card again: the charge point stops the charge")
            await cp.stop(CONNECTOR)
    status = await asyncio.to_thread(wallet.session_status, session_id)
    if status.state.lower() != "settled":
        raise CardFailed(f"card session {wallet.name(session_id)} ended {status.state}, not settled")
    invoice = await asyncio.to_thread(wallet.invoice, session_id)
    mandate = await asyncio.to_thread(Mandates(wallet.w3, wallet.deployment).get, card.mandate_id)
    say(
        f"card session settled: {wallet.fmt(invoice.total)} paid by {invoice.driver}; the card has "
        f"{wallet.fmt(mandate.left)} of {wallet.fmt(TOTAL)} left (ev-wallet card list)"
    )
    return {
        "mandate_id": card.mandate_id,
        "transaction_id": transaction,
        "session_id": hex_session_id(session_id),
        "state": "settled",
        "payer": invoice.driver,
        "total": invoice.total,
        "invoice": invoice,
    }


async def _until(probe: Callable, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := await asyncio.to_thread(probe):
            return value
        await asyncio.sleep(0.2)
    raise CardFailed(f"waited {timeout:g} s for {what}")
