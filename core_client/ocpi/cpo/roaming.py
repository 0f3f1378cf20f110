"""Sessions of a roaming eMSP's tokens at our stations, paid through the eMSP's payment mandate (issue 20
part 3): START_SESSION / STOP_SESSION (OCPI Commands) become OCPP RemoteStart / RemoteStop, and the
session itself runs the card path (:mod:`core_client.sessions.card_sessions`).

START_SESSION of a token of the eMSP at one of our EVSEs: answered at once (CommandResponse ACCEPTED, or
REJECTED with the reason: unknown EVSE, no mandate, not the eMSP's token, a token already charging here,
the charge point offline). Then, with the CommandResult to the eMSP's ``response_url``: the eMSP's mandate
is read from chain for that token (:func:`core_client.chain.emsp_mandates.token_card`: named operator,
token linked or any token, not revoked, expired or exhausted; else REJECTED with why), the connector must
be free (else EVSE_OCCUPIED), the Core Client vouches for the token as a card of the mandate at that
connector until ``start_timeout_s`` after the START_SESSION (``CardSessions.expect``, kept in the database)
and sends RemoteStartTransaction with the token's uid as idTag (ACCEPTED when the charge point accepts, else
REJECTED). The charge point's StartTransaction at that connector then opens and starts the session on chain
under the mandate (the OPEN_CARD job), exactly as a tapped card's would.

A session that has not started ``start_timeout_s`` after its START_SESSION has lapsed: its token is vouched
for no longer and may START_SESSION again. The eMSP learns nothing more of it (2.2.1, mod_commands: a start
accepted by the charge point whose EV is not plugged in before its time-out ends with the CommandResult
ACCEPTED and no Session); unless it never got the CommandResult (the Core Client restarted while the charge
point was being asked): then the CommandResult is TIMEOUT. The lapse is found from the stored sessions every
second (:meth:`Roaming.lapse`), so a restart in the window loses nothing.

A session whose StartTransaction the Core Client refuses, or whose open the contract refuses (the mandate
revoked or spent meanwhile, the eMSP's allowance gone; the charge point is then stopped), is invalid: it is
pushed to the eMSP as a Session with status INVALID (2.2.1: "declared invalid and will not be billed"), and
no CDR follows. Its CommandResult was ACCEPTED already (2.2.1: the command was accepted by the Charge
Point); the Session says what became of it.

STOP_SESSION of one of its sessions: RemoteStopTransaction (CommandResult ACCEPTED / REJECTED); of none:
UNKNOWN_SESSION. The sessions are kept in the store (meta ``ocpi_cpo_sessions``)."""

from __future__ import annotations

import asyncio
import logging
import secrets
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Protocol

from pydantic import BaseModel, TypeAdapter

from core_client.ocpi.cpo.catalog import OurStation, evse_uid, location_id
from core_client.ocpi.cpo.outbound import send_to
from core_client.ocpi.cpo.peers import Peer, PeerStore
from core_client.ocpi.cpo.settings import CpoSettings
from core_client.ocpi.errors import OcpiError
from core_client.ocpi.models import CdrToken, CommandResult, DisplayText, StartSession
from core_client.ocpi.models.enums import AuthMethod, CommandResultType
from core_client.ocpi.transport import Party
from core_client.sessions.cards import Card, card_refusal
from core_client.storage.store import Store

if TYPE_CHECKING:
    from core_client.sessions.card_sessions import CardSessions
    from core_client.sessions.registry import ChargePoint

log = logging.getLogger("core_client.ocpi")
META_KEY = "ocpi_cpo_sessions"
OCPP_ID_TAG = 20  # an OCPP 1.6 idTag has at most 20 characters
BUSY = {"Charging", "SuspendedEV", "SuspendedEVSE", "Finishing", "Reserved", "Unavailable", "Faulted"}


class RoamingSession(BaseModel):
    """A session of an eMSP's token here, from START_SESSION on."""

    id: str  # ours, in the Session and CDR objects
    emsp: str  # the peer's name
    token: CdrToken
    location_id: str
    evse_uid: str
    connector_id: str
    charge_point_id: str
    connector: int
    mandate_id: int
    authorization_reference: str | None = None
    requested_at: datetime
    auth_method: AuthMethod = AuthMethod.COMMAND  # a token tapped at the charge point: WHITELIST / AUTH_REQUEST
    transaction_id: int | None = None  # once the charge point started it
    stopped: bool = False  # the eMSP asked to stop, or it never started
    invalid: str | None = None  # why it will not be billed: its start refused, or its open refused on chain
    pushed: str | None = None  # what the eMSP has of it: "ACTIVE" / "COMPLETED" / "INVALID" (its Session), "CDR"
    pushed_kwh: Decimal | None = None  # the kwh of the Session it has
    response_url: str | None = None  # where its START_SESSION's CommandResult goes (None: tapped, no command)
    result: CommandResultType | None = None  # the CommandResult POSTed there (once: OCPI has no retries)


SESSIONS = TypeAdapter(list[RoamingSession])
KEEP_DAYS = 7  # a finished session is kept this long (a late STOP_SESSION is then answered, not UNKNOWN)


def _finished(s: RoamingSession) -> bool:
    return s.pushed in ("CDR", "INVALID") or (s.stopped and s.transaction_id is None)


def _waiting(s: RoamingSession) -> bool:
    """Waiting for the charge point's start: not started, not stopped (refused, stopped or lapsed)."""
    return s.transaction_id is None and not s.stopped


def _lapsed(s: RoamingSession, now: datetime, timeout_s: float) -> bool:
    """Waiting past its start deadline (``timeout_s`` after its START_SESSION, when its voucher expired)."""
    return _waiting(s) and now >= s.requested_at + timedelta(seconds=timeout_s)


def _at(s: RoamingSession, cp_id: str, connector: int, id_tag: str) -> bool:
    """Whether ``s`` is of token ``id_tag`` at the charge point's connector."""
    return (s.charge_point_id, s.connector, s.token.uid.upper()) == (cp_id, connector, id_tag.upper())


def _in_progress(s: RoamingSession, now: datetime, timeout_s: float) -> bool:
    """Still starting or charging: not stopped by the eMSP, not lapsed, not ended at the charge point (its
    Session COMPLETED), not invalid. A token has at most one such session here."""
    return not s.stopped and s.pushed not in ("COMPLETED", "CDR", "INVALID") and not _lapsed(s, now, timeout_s)


class Taps(Protocol):
    """The eMSP tokens tapped at our charge points (:class:`core_client.ocpi.cpo.taps.TokenTaps`)."""

    def session(self, cp_id: str, connector: int, id_tag: str, transaction_id: int) -> RoamingSession | None: ...


class Service(Protocol):
    """What roaming uses of :class:`core_client.sessions.service.SessionService`."""

    links: dict[str, ChargePoint]
    cards: CardSessions

    def online(self, cp_id: str) -> bool: ...


class Roaming:
    """START_SESSION / STOP_SESSION of the eMSPs in ``peers`` at the stations of ``service``."""

    def __init__(
        self,
        settings: CpoSettings,
        peers: PeerStore,
        store: Store,
        service: Service,
        status_of: Callable[[str, int], str | None],
        token_card: Callable[[int, bytes, str], Awaitable[Card | str]],
        start_timeout_s: float,
    ) -> None:
        self.settings, self.peers, self.store, self.service = settings, peers, store, service
        self.status_of, self.token_card, self.start_timeout_s = status_of, token_card, start_timeout_s
        self.tasks: set[asyncio.Task] = set()
        self._lock = threading.RLock()  # the record is changed on the loop and on the store's thread
        self._starting: set[str] = set()  # the sessions whose START_SESSION is being carried out (not answered yet)
        self.taps: Taps | None = None  # a tapped eMSP token's session is pushed to its eMSP like a START_SESSION's
        service.cards.on_started, service.cards.on_refused = self.started, self.refused

    # ----------------------------------------------------------- the record

    def sessions(self) -> list[RoamingSession]:
        text = self.store.meta(META_KEY)
        return SESSIONS.validate_json(text) if text else []

    def save(self, session: RoamingSession) -> None:
        """Keep ``session``; sessions finished (CDR pushed, or never started) over KEEP_DAYS ago are dropped."""
        cutoff = datetime.now(timezone.utc) - timedelta(days=KEEP_DAYS)
        with self._lock:
            kept = self.sessions()
            others = [s for s in kept if s.id != session.id and not (_finished(s) and s.requested_at < cutoff)]
            self.store.set_meta(META_KEY, SESSIONS.dump_json([*others, session]).decode())

    def update(self, session_id: str, **fields: object) -> RoamingSession | None:
        """Set ``fields`` of the session as it is stored now (not of an older copy); the session, if kept."""
        with self._lock:
            found = next((s for s in self.sessions() if s.id == session_id), None)
            if found is not None:
                found = found.model_copy(update=fields)
                self.save(found)
            return found

    def session(self, emsp: str, session_id: str) -> RoamingSession | None:
        return next((s for s in self.sessions() if s.emsp == emsp and s.id == session_id), None)

    # ------------------------------------------------------------ commands

    def start(self, peer: Peer, start: StartSession, station: OurStation, connector: int) -> str | None:
        """Why START_SESSION is refused now (None: accepted, the CommandResult follows)."""
        token = start.token
        if peer.mandate_id is None or peer.mandate_salt is None:
            return (
                f"eMSP {peer.name} has no payment mandate with this operator: its customers' sessions are paid "
                "per session on chain through one (docs/operations.md, roaming eMSPs)"
            )
        if not peer.owns(Party(token.country_code, token.party_id)):
            return f"token {token.uid} is of {token.country_code}/{token.party_id}, not a party of eMSP {peer.name}"
        if not token.valid:
            return f"token {token.uid} is not valid"
        if len(token.uid) > OCPP_ID_TAG:
            return f"token uid {token.uid} is longer than an OCPP 1.6 idTag ({OCPP_ID_TAG} characters)"
        now = datetime.now(timezone.utc)
        if any(s.token.uid.upper() == token.uid.upper() and self._in_progress(s, now) for s in self.sessions()):
            return f"token {token.uid} has a session here already"
        if not self.service.online(station.charge_point_id):
            return f"charge point of EVSE {evse_uid(station.charge_point_id, connector)} is offline"
        session = RoamingSession(
            id=secrets.token_hex(12),
            emsp=peer.name,
            token=CdrToken(**token.model_dump(include=set(CdrToken.model_fields))),
            location_id=location_id(station.station_id),
            evse_uid=evse_uid(station.charge_point_id, connector),
            connector_id="1",
            charge_point_id=station.charge_point_id,
            connector=connector,
            mandate_id=peer.mandate_id,
            authorization_reference=start.authorization_reference,
            requested_at=now,
            response_url=str(start.response_url),
        )
        self.save(session)
        salt = bytes.fromhex(peer.mandate_salt.get_secret_value())
        self._spawn(self._start(peer, session, salt))
        return None

    def stop(self, peer: Peer, session: RoamingSession, response_url: str) -> str | None:
        """Why STOP_SESSION of the eMSP's ``session`` is refused now (None: accepted, the CommandResult follows)."""
        if session.transaction_id is None or session.stopped:
            return f"session {session.id} is not charging"
        self.update(session.id, stopped=True)
        self._spawn(self._stop(peer, session.charge_point_id, session.transaction_id, response_url))
        return None

    # --------------------------------------------------- the charge point side

    def _in_progress(self, s: RoamingSession, now: datetime) -> bool:
        return _in_progress(s, now, self.start_timeout_s)

    async def _start(self, peer: Peer, session: RoamingSession, salt: bytes) -> None:
        began = time.monotonic()
        self._starting.add(session.id)
        try:
            result, why = await self._remote_start(session, salt)
            if result is not CommandResultType.ACCEPTED:
                self.update(session.id, stopped=True)
                log.warning(
                    "OCPI START_SESSION of eMSP %s at %s: %s (%s)", peer.name, session.evse_uid, result.value, why
                )
            else:
                log.info(
                    "OCPI START_SESSION of eMSP %s at %s: charge point accepted in %.0f ms",
                    peer.name,
                    session.evse_uid,
                    (time.monotonic() - began) * 1000,
                )
            await self._answer(peer, session, result, why)
        finally:
            self._starting.discard(session.id)

    async def _answer(self, peer: Peer, session: RoamingSession, result: CommandResultType, why: str | None) -> None:
        """The CommandResult of the session's START_SESSION, POSTed once and kept."""
        if session.response_url is not None:
            await self._result(peer, session.response_url, result, why)
            self.update(session.id, result=result)

    async def _remote_start(self, session: RoamingSession, salt: bytes) -> tuple[CommandResultType, str | None]:
        uid, cards = session.token.uid, self.service.cards
        try:
            card = await self.token_card(session.mandate_id, salt, uid)
        except Exception as error:  # the chain unreachable: nothing started
            return CommandResultType.FAILED, f"the mandate could not be read from chain ({error})"
        why = card if isinstance(card, str) else card_refusal(card, time.time(), cards.queued(session.mandate_id))
        if why is not None or isinstance(card, str):
            return CommandResultType.REJECTED, why
        if (self.status_of(session.charge_point_id, session.connector) or "") in BUSY:
            return CommandResultType.EVSE_OCCUPIED, f"EVSE {session.evse_uid} is in use"
        link = self.service.links.get(session.charge_point_id)
        if link is None:
            return CommandResultType.EVSE_INOPERATIVE, f"the charge point of EVSE {session.evse_uid} is offline"
        left = (session.requested_at - datetime.now(timezone.utc)).total_seconds() + self.start_timeout_s
        if left <= 0:
            return CommandResultType.FAILED, f"the mandate was read after start_timeout_s ({self.start_timeout_s:g} s)"
        cards.expect(uid, card, session.charge_point_id, session.connector, left)
        try:
            status = await link.remote_start(session.connector, uid)
        except Exception as error:
            status = f"not answered ({error})"
        if status != "Accepted":
            cards.expect(uid, None, session.charge_point_id, session.connector)
            return CommandResultType.REJECTED, f"the charge point answered RemoteStartTransaction {status}"
        return CommandResultType.ACCEPTED, None

    def started(self, cp_id: str, connector: int, id_tag: str, transaction_id: int) -> None:
        """A card's transaction started (CardSessions.on_started): if it is an eMSP token we remote-started
        there, its session now has the transaction; if it is one tapped there, its session begins."""
        with self._lock:
            for s in sorted(self.sessions(), key=lambda s: s.requested_at, reverse=True):  # the latest START_SESSION
                if _waiting(s) and _at(s, cp_id, connector, id_tag):
                    self.save(s.model_copy(update={"transaction_id": transaction_id}))
                    log.info("OCPI session %s of eMSP %s: transaction %d", s.id, s.emsp, transaction_id)
                    return
        tapped = None if self.taps is None else self.taps.session(cp_id, connector, id_tag, transaction_id)
        if tapped is not None:
            self.save(tapped)
            log.info("OCPI session %s of eMSP %s: tapped, transaction %d", tapped.id, tapped.emsp, transaction_id)

    def refused(self, cp_id: str, connector: int, id_tag: str, transaction_id: int, why: str) -> None:
        """A card's transaction was refused at its start, or its open on chain (CardSessions.on_refused): if it
        is an eMSP token's, its session is invalid (pushed as INVALID: it will not be billed)."""
        with self._lock:
            for s in sorted(self.sessions(), key=lambda s: s.requested_at, reverse=True):
                ours = s.transaction_id == transaction_id and s.charge_point_id == cp_id
                if s.invalid is None and (ours or (_waiting(s) and _at(s, cp_id, connector, id_tag))):
                    self.save(s.model_copy(update={"transaction_id": transaction_id, "stopped": True, "invalid": why}))
                    log.warning("OCPI session %s of eMSP %s: invalid (%s)", s.id, s.emsp, why)
                    return

    async def lapse(self) -> None:
        """End the sessions the charge point did not start by their deadline (called every second; the
        timer of a session does not survive a restart, its record does): each is stopped and, if its eMSP
        never got the CommandResult of its START_SESSION and none is on its way, gets TIMEOUT."""
        now = datetime.now(timezone.utc)
        if not any(_lapsed(s, now, self.start_timeout_s) for s in self.sessions()):
            return
        # on the store's thread: a StartTransaction it vouched for before the deadline is taken in first
        lapsed = await self.store.thread.run(self._lapse, now)
        peers = {p.name: p for p in self.peers.all()}
        for s in lapsed:
            peer = peers.get(s.emsp)
            if s.result is None and s.id not in self._starting and peer is not None:
                why = f"the charge point did not start the session within {self.start_timeout_s:g} s"
                await self._answer(peer, s, CommandResultType.TIMEOUT, why)

    def _lapse(self, now: datetime) -> list[RoamingSession]:
        with self._lock:
            lapsed = [s for s in self.sessions() if _lapsed(s, now, self.start_timeout_s)]
            for s in lapsed:
                self.save(s.model_copy(update={"stopped": True}))
                log.warning("OCPI session %s of eMSP %s: the charge point never started it", s.id, s.emsp)
        return lapsed

    async def _stop(self, peer: Peer, cp_id: str, transaction_id: int, response_url: str) -> None:
        link = self.service.links.get(cp_id)
        try:
            status = "offline" if link is None else await link.remote_stop(transaction_id)
        except Exception as error:
            status = f"not answered ({error})"
        result = CommandResultType.ACCEPTED if status == "Accepted" else CommandResultType.REJECTED
        why = None if status == "Accepted" else f"the charge point answered RemoteStopTransaction {status}"
        await self._result(peer, response_url, result, why)

    async def _result(self, peer: Peer, url: str, result: CommandResultType, why: str | None) -> None:
        """POST the CommandResult to the eMSP's response_url (a failure is logged: it times out on its side)."""
        message = None if why is None else [DisplayText(language="en", text=why[:512])]
        body = CommandResult(result=result, message=message).to_json()
        try:
            await send_to(self.settings, peer, "POST", url, body)
        except OcpiError as error:
            log.warning("OCPI CommandResult to eMSP %s not delivered: %s", peer.name, error)

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.get_running_loop().create_task(work)  # type: ignore[arg-type]
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
