"""A roaming eMSP's Token tapped at one of our OCPP charge points (Authorize / StartTransaction with its uid
as idTag): decided by :mod:`.token_rules` (pure) from the Tokens we hold (:mod:`.token_store`), asking the
eMSP in real time where they say so, within the charge point's response time (``authorize_timeout_s``).

Allowed (whitelisted, or the eMSP's AuthorizationInfo ALLOWED, or silent with a whitelist that allows it):
the Token is read as a card of its eMSP's payment mandate (:func:`core_client.chain.emsp_mandates.token_card`,
the same read START_SESSION makes; while the chain does not answer in time, the mandate as last read) and
the Core Client vouches for it (``CardSessions.expect``), so the charge point's Authorize is Accepted and its
StartTransaction opens and starts the session on chain under the mandate, as a linked card's would. The
vouch holds at that charge point (at the StartTransaction's connector, or any when Authorize named none)
for ``start_timeout_s``. Refused: the OCPP status to answer.
Only eMSPs that are registered and have a mandate are considered; a uid none of them holds is asked of
each of those with a Tokens SENDER endpoint (at once), the first ALLOWED wins. Once the charge point started
the transaction, the tap is the eMSP's session (:meth:`TokenTaps.session`), pushed to it as a Session
(``auth_method`` WHITELIST, or AUTH_REQUEST with the eMSP's ``authorization_reference``) and a CDR. The taps
are kept in the store (meta ``ocpi_cpo_taps``) as the vouchers are: a Core Client restarted between the
Authorize and the StartTransaction still knows whose session it is."""

from __future__ import annotations

import asyncio
import logging
import secrets
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from pydantic import BaseModel, TypeAdapter

from core_client.ocpi.client import parse
from core_client.ocpi.cpo.catalog import evse_uid, location_id
from core_client.ocpi.cpo.outbound import send_to
from core_client.ocpi.cpo.peers import Peer, PeerStore
from core_client.ocpi.cpo.roaming import RoamingSession
from core_client.ocpi.cpo.settings import CpoSettings
from core_client.ocpi.cpo.token_rules import IdTagStatus, Route, allowed_evses, ocpp_status, tap_route, when_silent
from core_client.ocpi.cpo.token_store import TokenStore
from core_client.ocpi.errors import OcpiError, OcpiRejected, OcpiUnreachable
from core_client.ocpi.models import AuthorizationInfo, CdrToken, LocationReferences, Token
from core_client.ocpi.models.base import ci
from core_client.ocpi.models.enums import AuthMethod, InterfaceRole, ModuleID, TokenType
from core_client.ocpi.transport import Party, StatusCode
from core_client.sessions.cards import Card, CardMandate, card_refusal
from core_client.storage.store import Store
from ev_network.mandates import token_ref

if TYPE_CHECKING:
    from core_client.sessions.card_sessions import CardSessions

log = logging.getLogger("core_client.ocpi")
UNKNOWN = "unknown"  # an answer that the eMSP does not know the Token
CHAIN_GRACE_S = 0.25  # the mandate's read, begun with the question to the eMSP, may take this beyond its wait
META_KEY = "ocpi_cpo_taps"


class Tap(BaseModel):
    """A tapped token vouched for at a charge point: whose, under which mandate, how it was authorized."""

    charge_point_id: str
    uid: str  # upper case
    emsp: str
    mandate_id: int
    token: CdrToken
    method: AuthMethod  # WHITELIST, or AUTH_REQUEST when the eMSP allowed it in real time
    reference: str | None  # the eMSP's authorization_reference
    expires_at: float  # with its voucher


TAPS = TypeAdapter(list[Tap])


class TokenTaps:
    """The OCPI side of a tap (``CardSessions.roaming_tokens``)."""

    def __init__(
        self,
        settings: CpoSettings,
        peers: PeerStore,
        tokens: TokenStore,
        store: Store,
        cards: CardSessions,
        token_card: Callable[[int, bytes, str], Awaitable[Card | str]],
        start_timeout_s: float,
    ) -> None:
        self.settings, self.peers, self.tokens, self.store, self.cards = settings, peers, tokens, store, cards
        self.token_card, self.start_timeout_s = token_card, start_timeout_s
        self.mandates: dict[int, CardMandate] = {}  # each eMSP mandate as last read (used while the chain is slow)
        self._lock = threading.Lock()  # taps are kept on the loop and taken on the store's thread

    async def vouch(self, cp_id: str, connector: int | None, id_tag: str) -> str | None:
        """A tapped idTag that is no session's and no linked card's: None when it is vouched for as a card of an
        eMSP's mandate, or is no eMSP's (the session decisions then answer); else the OCPP status refusing it."""
        deadline = time.monotonic() + self.settings.authorize_timeout_s
        uid = id_tag.strip()
        if not uid or len(uid) > 36:
            return None
        began = time.monotonic()
        peers = {p.name: p for p in self.peers.all() if p.registered and p.mandate_id is not None}
        held = [(peers[name], token) for name, token in self.tokens.tapped(uid) if name in peers]
        if held:
            peer, token = held[0]
            status = await self._decide(peer, token, cp_id, connector, deadline)
        else:
            asked = [p for p in peers.values() if p.endpoint(ModuleID.TOKENS, InterfaceRole.SENDER)]
            answers = await asyncio.gather(*(self._decide(p, None, cp_id, connector, deadline, uid) for p in asked))
            status = next((a for a in answers if a == IdTagStatus.accepted), None)
            status = status or next((a for a in answers if a not in (None, UNKNOWN)), None)
        log.info("%s: eMSP token %s tapped: %s in %.0f ms", cp_id, uid, status, (time.monotonic() - began) * 1000)
        return None if status in (None, UNKNOWN, IdTagStatus.accepted) else IdTagStatus(status).value

    async def _decide(
        self, peer: Peer, token: Token | None, cp_id: str, connector: int | None, deadline: float, uid: str = ""
    ) -> str | None:
        """ACCEPTED once vouched for, a refusing status, UNKNOWN (the eMSP knows no such Token), or None."""
        uid = token.uid if token is not None else uid
        verdict = tap_route(token)
        if verdict.route is Route.REFUSED:
            log.warning("%s: eMSP %s token %s refused: %s", cp_id, peer.name, uid, verdict.why)
            return IdTagStatus.invalid
        reading = self._read_mandate(peer, uid)  # from chain while the eMSP is asked
        method, reference, at = AuthMethod.WHITELIST, None, [connector or 0]
        where, numbers = self._where(cp_id, connector)
        if verdict.route is Route.ASK:
            answer = None if where is None else await self._ask(peer, uid, cp_id, where, deadline)
            if answer is None:  # silent: the whitelist rule of the Token we hold
                status = when_silent(token)
                log.warning("%s: eMSP %s did not authorize %s in time: %s", cp_id, peer.name, uid, status.value)
                if status is not IdTagStatus.accepted:
                    return status
            elif isinstance(answer, str):
                return answer
            else:
                if peer.owns(Party(answer.token.country_code, answer.token.party_id)):
                    self.tokens.put(peer.name, answer.token)
                if ocpp_status(answer.allowed) is not IdTagStatus.accepted:
                    log.info("%s: eMSP %s answered %s for %s", cp_id, peer.name, answer.allowed.value, uid)
                    return ocpp_status(answer.allowed)
                token, method, reference = answer.token, AuthMethod.AUTH_REQUEST, answer.authorization_reference
                assert where is not None
                evses = allowed_evses(where, answer.location)
                if not evses:
                    log.info("%s: eMSP %s allows %s at none of its EVSEs here", cp_id, peer.name, uid)
                    return IdTagStatus.invalid
                if len(evses) < len(where.evse_uids or []):  # at some connectors only: vouched at those
                    at = [numbers[ci(e)] for e in evses]
        status = await self._vouch(peer, uid, cp_id, at, reading, deadline)
        if status is IdTagStatus.accepted and token is not None:
            cdr_token = CdrToken(**token.model_dump(include=set(CdrToken.model_fields)))
            expires_at = time.time() + self.start_timeout_s
            self._keep(Tap(charge_point_id=cp_id, uid=uid.upper(), emsp=peer.name, mandate_id=peer.mandate_id or 0,
                           token=cdr_token, method=method, reference=reference, expires_at=expires_at))  # fmt: skip
        return status

    def _where(self, cp_id: str, connector: int | None) -> tuple[LocationReferences | None, dict[str, int]]:
        """The charge point's Location and EVSEs (the connector's, or all when Authorize named none) as the
        LocationReferences of a real-time authorization, and each EVSE uid's connector (None: not our station)."""
        station = self.store.station_of(cp_id)
        if station is None:
            return None, {}
        station_id, connectors = station
        numbers = [connector] if connector is not None else list(range(1, connectors + 1))
        uids = {evse_uid(cp_id, n): n for n in numbers}
        where = LocationReferences(location_id=location_id(station_id), evse_uids=list(uids))
        return where, {ci(uid): n for uid, n in uids.items()}

    async def _ask(
        self, peer: Peer, uid: str, cp_id: str, where: LocationReferences, deadline: float
    ) -> AuthorizationInfo | str | None:
        """The eMSP's real-time authorization for ``where``: its AuthorizationInfo, UNKNOWN, Invalid (a refusal or
        an answer that is not 2.2.1), or None when it did not answer in time."""
        base = peer.endpoint(ModuleID.TOKENS, InterfaceRole.SENDER)
        if base is None:
            return None
        url = f"{base.rstrip('/')}/{uid}/authorize"
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        try:
            answer = await send_to(
                self.settings, peer, "POST", url, where.to_json(), timeout_s=left, params={"type": TokenType.RFID.value}
            )
        except OcpiUnreachable:
            return None
        except OcpiRejected as error:
            if error.http_status == 404 or error.status_code == StatusCode.UNKNOWN_TOKEN:
                return UNKNOWN
            log.warning("%s: eMSP %s refused to authorize %s: %s", cp_id, peer.name, uid, error)
            return IdTagStatus.invalid
        except OcpiError as error:
            log.warning("%s: eMSP %s authorization of %s unusable: %s", cp_id, peer.name, uid, error)
            return IdTagStatus.invalid
        try:
            return parse(AuthorizationInfo, answer.data, f"eMSP {peer.name} authorization of {uid}")
        except OcpiError as error:
            log.warning("%s: %s", cp_id, error)
            return IdTagStatus.invalid

    def _read_mandate(self, peer: Peer, uid: str) -> asyncio.Future[Card | str]:
        """The eMSP's mandate read from chain for ``uid`` (started now, awaited by :meth:`_vouch`)."""
        assert peer.mandate_id is not None and peer.mandate_salt is not None
        salt = bytes.fromhex(peer.mandate_salt.get_secret_value())
        reading = asyncio.ensure_future(self.token_card(peer.mandate_id, salt, uid))
        reading.add_done_callback(lambda done: done.cancelled() or done.exception())  # a refusal does not wait
        return reading

    async def _vouch(
        self, peer: Peer, uid: str, cp_id: str, connectors: list[int], reading: asyncio.Future, deadline: float
    ) -> str:
        """Vouch for ``uid`` as a card of the eMSP's mandate (``reading``) at the charge point's ``connectors``
        (0: any) for ``start_timeout_s``: ACCEPTED, or Invalid with why logged."""
        assert peer.mandate_id is not None and peer.mandate_salt is not None
        mandate_id, salt = peer.mandate_id, bytes.fromhex(peer.mandate_salt.get_secret_value())
        card: Card | str
        try:
            left = max(deadline - time.monotonic(), CHAIN_GRACE_S)
            card = await asyncio.wait_for(asyncio.shield(reading), left)
        except Exception as error:  # the chain did not answer in time: the mandate as last read, if any
            last = self.mandates.get(mandate_id)
            log.warning("%s: eMSP %s mandate %d not read (%s)", cp_id, peer.name, mandate_id, error or "timeout")
            card = f"mandate {mandate_id} not read from chain" if last is None else Card(last, token_ref(salt, uid))
        if isinstance(card, Card):
            self.mandates[mandate_id] = card.mandate
        why = card if isinstance(card, str) else card_refusal(card, time.time(), self.cards.queued(mandate_id))
        if why is not None or isinstance(card, str):
            log.warning("%s: eMSP %s token %s refused: %s", cp_id, peer.name, uid, why)
            return IdTagStatus.invalid
        for connector in connectors:
            self.cards.expect(uid, card, cp_id, connector, self.start_timeout_s)
        return IdTagStatus.accepted

    def session(self, cp_id: str, connector: int, id_tag: str, transaction_id: int) -> RoamingSession | None:
        """The eMSP's session of a tapped token whose transaction started (``Roaming.started``): pushed to it
        as a Session and, once settled, a CDR (:mod:`.session_pushes`); None when no tap there is waiting."""
        tap = self._take(cp_id, id_tag.strip().upper())
        station = self.store.station_of(cp_id)
        if tap is None or station is None:
            return None
        return RoamingSession(
            id=secrets.token_hex(12),
            emsp=tap.emsp,
            token=tap.token,
            location_id=location_id(station[0]),
            evse_uid=evse_uid(cp_id, connector),
            connector_id="1",
            charge_point_id=cp_id,
            connector=connector,
            mandate_id=tap.mandate_id,
            authorization_reference=tap.reference,
            requested_at=datetime.now(timezone.utc),
            auth_method=tap.method,
            transaction_id=transaction_id,
        )

    def taps(self) -> list[Tap]:
        """The taps vouched for, not started yet (expired ones included until the next tap drops them)."""
        text = self.store.meta(META_KEY)
        return TAPS.validate_json(text) if text else []

    def _keep(self, tap: Tap) -> None:
        """Keep ``tap`` (replacing one of that token at that charge point; dropping the expired)."""
        with self._lock:
            now = time.time()
            where = (tap.charge_point_id, tap.uid)
            kept = [t for t in self.taps() if (t.charge_point_id, t.uid) != where and t.expires_at > now]
            self.store.set_meta(META_KEY, TAPS.dump_json([*kept, tap]).decode())

    def _take(self, cp_id: str, uid: str) -> Tap | None:
        """The tap of ``uid`` at the charge point, no longer kept (None: none, or expired)."""
        with self._lock:
            taps = self.taps()
            tap = next((t for t in taps if (t.charge_point_id, t.uid) == (cp_id, uid)), None)
            if tap is None:
                return None
            self.store.set_meta(META_KEY, TAPS.dump_json([t for t in taps if t is not tap]).decode())
            return tap if tap.expires_at > time.time() else None
