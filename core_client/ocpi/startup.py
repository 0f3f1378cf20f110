"""The daemon's OCPI sides, each started when its section is configured: the eMSP side for a CPO's CSMS
(``[ocpi]``: our endpoints, wallet sessions at the stations imported from it, its link-and-pull loop) and
the CPO side for roaming eMSPs (``[ocpi_cpo]``: our stations, their chain tariffs and live statuses)."""

from __future__ import annotations

import asyncio
import logging
import time

from web3 import Web3

from core_client.chain.emsp_mandates import token_card
from core_client.config import ConfigError, Settings
from core_client.ocpi.cpo.peers import PeerStore
from core_client.ocpi.cpo.roaming import Roaming
from core_client.ocpi.cpo.service import CpoService, DaemonStations
from core_client.ocpi.cpo.session_objects import Money
from core_client.ocpi.cpo.session_pushes import SessionPushes
from core_client.ocpi.cpo.taps import TokenTaps
from core_client.ocpi.cpo.token_pull import TokenPull
from core_client.ocpi.cpo.token_store import TokenStore
from core_client.ocpi.csms import Csms
from core_client.ocpi.mirror import Mirror
from core_client.ocpi.service import OcpiService
from core_client.ocpi.sessions import SessionBridge
from core_client.ocpi.tariff_pushes import StationTariffs, TariffPushes
from core_client.records.log import TransactionLog
from core_client.sessions.cards import Card
from core_client.sessions.service import SessionService
from core_client.storage.store import Store
from ev_network.contracts import Escrow, Token
from ev_network.mandates import Mandates

log = logging.getLogger("core_client")


async def token_decimals(w3: Web3, token: str, timeout_s: float, otherwise: str) -> int | None:
    """The token's decimals (None, logging ``otherwise``, when the chain does not tell)."""
    try:
        return await asyncio.wait_for(asyncio.to_thread(Token(w3, token).decimals), timeout_s)
    except Exception as error:
        log.warning("OCPI: the token's decimals unknown (%s): %s", error, otherwise)
        return None


async def start_emsp(
    settings: Settings,
    service: SessionService,
    records: TransactionLog | None,
    w3: Web3,
    token: str,
    stations: StationTariffs,
) -> OcpiService | None:
    """OCPI mode (an [ocpi] section): our endpoints for the CPO's CSMS, and wallet sessions at the
    stations imported from it run through its commands (core_client.ocpi.sessions); EVSE statuses it
    pushes become those stations' public availability, the tariffs it pushes their chain tariffs
    (through ``stations``, core_client.ocpi.tariff_pushes). None: not configured."""
    ocpi = settings.ocpi
    if ocpi is None:
        return None

    def availability(cp_id: str, connector: int, status: str) -> None:  # the session service's state: its thread
        service.store.thread.submit(service.live.status, cp_id, connector, status, "NoError")

    # the token's decimals, to compare a CDR's total_cost with the chain's price (None: not compared)
    decimals = await token_decimals(w3, token, settings.rpc_timeout_s + 1, "CDR costs are not compared")

    def bridge(mirror: Mirror, csms: Csms) -> SessionBridge:
        tariffs = TariffPushes(mirror, stations, ocpi.currency, decimals)
        return SessionBridge(mirror, availability, ocpi, service, csms, records, decimals, tariffs)

    emsp = OcpiService(ocpi, settings.database, bridge)
    try:
        await emsp.start()
    except OSError as error:
        emsp.mirror.close()
        raise ConfigError(f"[ocpi] endpoints: {error}") from None
    return emsp


async def link_and_pull(ocpi: OcpiService, service: SessionService) -> None:
    """Link the stations imported from the CSMS (new ones within seconds) and pull the CDRs it could
    not push, every pull_interval_s."""
    bridge = ocpi.inbox
    assert isinstance(bridge, SessionBridge)
    pulled_at = 0.0
    while True:
        for link in bridge.refresh_links():  # reached through the CSMS; the registry lives on the store's thread
            await service.handle(service.attach, link, link.registration())
            service.reconciler.wake()
        if time.monotonic() - pulled_at >= ocpi.settings.pull_interval_s:
            pulled_at = time.monotonic()
            await ocpi.pull()
        await asyncio.sleep(2)


async def start_cpo(
    settings: Settings,
    store: Store,
    service: SessionService,
    escrow: Escrow,
    w3: Web3,
    token: str,
    mandates: Mandates | None,
    operator: str,
) -> CpoService | None:
    """An [ocpi_cpo] section: our CPO endpoints for roaming eMSPs (core_client.ocpi.cpo), our stations
    with their chain tariffs and live connector statuses, status changes pushed to the eMSPs, and the
    eMSPs' START/STOP_SESSION paid through their mandates (``mandates``, the contract; None: the deployment
    has none, nothing starts). None: not configured."""
    cpo = settings.ocpi_cpo
    if cpo is None:
        return None
    decimals = await token_decimals(w3, token, settings.rpc_timeout_s + 1, "tariffs are published as if it had 18")
    stations = DaemonStations(
        store, service.live.connector_status, escrow, 18 if decimals is None else decimals, cpo.vat_percent
    )
    peers = PeerStore(cpo.peers_path(settings.database))
    tokens = TokenStore(store.db)
    roaming, pushes = None, None
    if mandates is not None:  # an eMSP's sessions are paid through its mandate

        async def card(mandate_id: int, salt: bytes, uid: str) -> Card | str:
            return await asyncio.to_thread(token_card, mandates, operator, mandate_id, salt, uid)

        status_of = service.live.connector_status
        roaming = Roaming(cpo, peers, store, service, status_of, card, settings.start_timeout_s)
        money = Money(cpo.currency, stations.decimals(), cpo.vat_percent)
        pushes = SessionPushes(cpo, peers, roaming, service, store, money)
        taps = TokenTaps(cpo, peers, tokens, store, service.cards, card, settings.start_timeout_s)
        service.cards.roaming_tokens = roaming.taps = taps
    served = CpoService(cpo, peers, stations, roaming, pushes, TokenPull(cpo, peers, tokens, store))
    try:
        await served.start()
    except OSError as error:
        raise ConfigError(f"[ocpi_cpo] endpoints: {error}") from None
    return served
