"""The session service's card path: Authorize / StartTransaction of an RFID card linked to a granted
mandate, and the session that the card's open under the mandate creates once mined.

Decisions are :mod:`core_client.sessions.cards` (pure); the cache of mandates comes from
:class:`core_client.chain.mandates.MandateCache` (``CardSessions.index``, set by the daemon). Flow:
StartTransaction -> Accepted at once, a transaction id, an OPEN_CARD job (queued under the transaction id) -> the chain worker sends ``openSession`` -> mined: :meth:`CardSessions.opened` records
the session (started: STARTING then START_MINED), moves the job to the session's id (so its settle goes
out like any other) and, if the charge point stopped meanwhile, settles it. An open the contract refuses:
the transaction is stopped (:meth:`CardSessions.open_failed`).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from core_client.sessions import decisions
from core_client.sessions.actions import Decision, SendRemoteStop, decide, warning
from core_client.sessions.cards import (
    Card,
    CardIndex,
    card_opened,
    card_refusal,
    card_start,
    card_start_refusal,
    uncounted,
)
from core_client.sessions.jobs import OPEN, CardOpenArgs, Job, JobKind
from core_client.sessions.machine import SessionRecord
from core_client.storage.card_state import Vouchers
from core_client.storage.store import Store
from ev_network.pricing import Tariff

if TYPE_CHECKING:
    from core_client.sessions.registry import ChargePoint

log = logging.getLogger("core_client.sessions")
SEEN_KEY = "card_tags"  # store meta: the idTags of linked cards seen at our charge points
VOUCHER_TTL_S = 120.0  # a token vouched for starts within this, or is vouched for no longer


class Service(Protocol):
    """What the card path uses of :class:`core_client.sessions.service.SessionService`."""

    store: Store

    def apply(self, decision: Decision, answering: ChargePoint | None = None) -> Decision: ...
    def forget_transaction(self, transaction_id: int) -> None: ...
    def stop_recorded(self, s: SessionRecord) -> None: ...


class RoamingTokens(Protocol):
    """A roaming eMSP's tokens tapped here (:class:`core_client.ocpi.cpo.taps.TokenTaps`)."""

    async def vouch(self, cp_id: str, connector: int | None, id_tag: str) -> str | None: ...


class CardSessions:
    """Cards at the charge points of one session service."""

    def __init__(self, service: Service) -> None:
        self.service, self.store = service, service.store
        #: The granted mandates as last read from chain, indexed (the daemon sets the card cache's ``index``).
        self.index: Callable[[], CardIndex] = CardIndex
        #: Called when a card is seen for the first time (the daemon's local list sync wakes up).
        self.on_seen: Callable[[], None] = lambda: None
        #: Called with a mandate's id when an open under it was queued or failed (what is left of it changed).
        self.on_used: Callable[[int], None] = lambda _: None
        self._seen: list[str] | None = None
        #: Tokens the Core Client vouches for itself (a roaming eMSP's token it remote-starts under the eMSP's
        #: mandate, :mod:`core_client.ocpi.cpo.roaming`): each starts once as a card of that mandate, at its
        #: charge point and connector, until it expires (kept in the database: a restart keeps them).
        self.vouchers = Vouchers(self.store.db)
        #: A roaming eMSP's tokens ([ocpi_cpo] with mandates): asked about a tapped idTag that is no session's and
        #: no card's (:func:`core_client.sessions.cards.ask_roaming`); they vouch for it (``expect``) or refuse it.
        self.roaming_tokens: RoamingTokens | None = None
        #: Called with (charge point id, connector, idTag, transaction id) when a card's transaction starts.
        self.on_started: Callable[[str, int, str, int], None] = lambda *_: None
        #: Called with (charge point id, connector, idTag, transaction id, why) when a card's transaction is
        #: refused at its start, or stopped because the contract refused its open.
        self.on_refused: Callable[[str, int, str, int, str], None] = lambda *_: None

    def find(self, id_tag: str | None, charge_point_id: str | None = None, connector: int | None = None) -> Card | None:
        """The card ``id_tag`` is (a linked card, seen from now on; or a token we vouched for at that charge
        point and connector, None: at any), None if none."""
        found = self.index().find(id_tag)
        if found is not None and id_tag is not None:
            self._saw(id_tag.strip().upper())
        if found is not None or not id_tag or not id_tag.strip():
            return found
        return self.vouchers.find(id_tag, time.time(), charge_point_id, connector)

    def expect(
        self,
        id_tag: str,
        card: Card | None,
        charge_point_id: str | None = None,
        connector: int = 0,
        ttl_s: float | None = None,
    ) -> None:
        """Vouch for ``id_tag`` as a card of ``card``'s mandate at the charge point's connector (None: any
        charge point; 0: any connector) until it starts or ``ttl_s`` passed (None: no longer vouch for it)."""
        if card is None:
            self.vouchers.drop(id_tag, charge_point_id, connector or None)
        else:
            expires_at = time.time() + (VOUCHER_TTL_S if ttl_s is None else ttl_s)
            self.vouchers.put(id_tag, card, charge_point_id, connector, expires_at)

    def seen(self) -> list[str]:
        """The idTags of the cards tapped at our charge points so far (the local lists hold them)."""
        if self._seen is None:
            self._seen = json.loads(self.store.meta(SEEN_KEY) or "[]")
        return list(self._seen)

    def _saw(self, id_tag: str) -> None:
        seen = self.seen()
        if id_tag not in seen:
            self.store.set_meta(SEEN_KEY, json.dumps([*seen, id_tag]))
            self._seen = [*seen, id_tag]
            self.on_seen()

    def queued(self, mandate_id: int) -> int:
        """Deposits of the mandate's opens that the cache's ``committed`` does not count yet: not mined, or
        mined after the cache read the mandate (:func:`core_client.sessions.cards.uncounted`)."""
        cached = self.index().mandates.get(mandate_id)
        read_block = None if cached is None else cached.read_block
        opens: list[tuple[CardOpenArgs, int | None]] = [(a, None) for a in self.store.card_opens()]
        if read_block is not None:
            mined = self.store.mined_after(JobKind.OPEN_CARD, read_block)
            opens += [(j.args, j.block) for j in mined if isinstance(j.args, CardOpenArgs)]
        return uncounted(mandate_id, read_block, opens)

    def opening(self, transaction_id: int) -> bool:
        """Whether the transaction is a card's whose open is still on its way to the chain (queued under
        the transaction id until mined)."""
        job = self.store.job(JobKind.OPEN_CARD, transaction_id)
        return job is not None and job.kind is JobKind.OPEN_CARD and job.status in OPEN

    # ------------------------------------------------------ charge point inputs

    def authorize(self, link: ChargePoint, card: Card) -> str:
        why = card_refusal(card, time.time(), self.queued(card.mandate.mandate_id))
        if why is not None:
            log.warning("%s: Authorize of a card of mandate %d: Invalid (%s)", link.id, card.mandate.mandate_id, why)
            return decisions.INVALID
        return decisions.ACCEPTED

    def start(
        self,
        link: ChargePoint,
        station_id: int | None,
        connector: int,
        id_tag: str,
        meter_start: int,
        card: Card,
        decided_id: int | None = None,
    ) -> tuple[int, str]:
        """StartTransaction of a card at ``link`` (on chain: station ``station_id``): Accepted and its open
        queued, or Invalid (and stopped). ``decided_id``: the transaction id decided upstream (proxy mode)."""
        queued = self.queued(card.mandate.mandate_id)
        why = card_start_refusal(card, meter_start, time.time(), queued)
        if why is None and station_id is None:
            why = "charge point not registered on chain"
        with self.store.transaction():
            tx_id = self.store.new_transaction(link.id, connector, id_tag, None, meter_start, decided_id)
            if why is not None or station_id is None:
                decision = decisions.refuse_start(link.id, connector, id_tag, tx_id, why or "")
            else:
                decision = card_start(card, station_id, link.id, connector, tx_id, meter_start, queued)
            reply = self.service.apply(decision, answering=link).reply
        if why is None:
            self.vouchers.drop(id_tag, link.id, connector)
            self.on_used(card.mandate.mandate_id)
            self.on_started(link.id, connector, id_tag, tx_id)
        else:
            self.on_refused(link.id, connector, id_tag, tx_id, why)
        return reply

    # ------------------------------------------------------------ chain inputs

    def awaiting(self, args: dict[str, Any]) -> bool:
        """Whether a SessionRequested is one of our card opens not yet recorded (the worker records it)."""
        return self.store.awaits(args["driver"], args["stationId"], args["connector"])

    def opened(self, job: Job, session_id: int, requested: dict[str, Any], block: int, tariff: Tariff) -> None:
        """A card's open is mined: record its session, started, under the transaction handed out."""
        station = self.store.station(requested["stationId"])
        if station is None:
            return
        assert isinstance(job.args, CardOpenArgs)
        now = time.time()
        record = decisions.requested(requested, station[0], block, tariff, now)
        tx_id = job.args.transaction_id
        tx = self.store.get_transaction(tx_id)
        began = tx.started_at if tx is not None else now  # the charge began then, not when the chain heard of it
        if self.store.insert_session(record) is None:
            return  # recorded before (a restart between mined and recorded)
        self.store.move_job(job.id, session_id)
        self.store.link_transaction(tx_id, session_id)
        self.service.forget_transaction(tx_id)
        _, decision = card_opened(record, job.args, began, block)
        self.service.apply(decision)
        started = self.service.session(session_id)  # as stored (its revision: the stop is written over it)
        if started is not None and tx is not None and tx.meter_stop is not None:  # stopped before the open was mined
            self.service.stop_recorded(started)

    def open_failed(self, job: Job, error: str) -> Decision:
        """The contract refused a card's open: stop its transaction (nothing was locked, nothing to settle)."""
        assert isinstance(job.args, CardOpenArgs)
        tx = self.store.get_transaction(job.args.transaction_id)
        if tx is None:
            return Decision()
        note = warning(
            f"{tx.charge_point_id}/{tx.connector}: card of mandate {job.args.mandate_id} could not open its "
            f"session on chain ({error}): stopping transaction {tx.transaction_id}"
        )
        stop = SendRemoteStop(tx.charge_point_id, tx.transaction_id) if tx.meter_stop is None else None
        decision = self.service.apply(decide(None, note, *([stop] if stop else [])))
        self.on_used(job.args.mandate_id)
        why = f"the session could not be opened on chain under mandate {job.args.mandate_id} ({error})"
        self.on_refused(tx.charge_point_id, tx.connector, tx.id_tag or "", tx.transaction_id, why)
        return decision
