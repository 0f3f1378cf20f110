"""The session service's card path: Authorize / StartTransaction of an RFID card linked to a granted
mandate, and the session that the card's open under the mandate creates once mined.

Decisions are :mod:`core_client.sessions.cards` (pure); the cache of mandates comes from
:class:`core_client.chain.mandates.MandateCache` (``CardSessions.mandates``, set by the daemon). Flow:
StartTransaction -> Accepted at once, a transaction id, a START job with the card's args (queued under the
transaction id) -> the chain worker sends ``openSession`` -> mined: :meth:`CardSessions.opened` records
the session (started: STARTING then START_MINED), moves the job to the session's id (so its settle goes
out like any other) and, if the charge point stopped meanwhile, settles it. An open the contract refuses:
the transaction is stopped (:meth:`CardSessions.open_failed`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol

from core_client.sessions import decisions
from core_client.sessions.actions import Decision, SendRemoteStop, decide, warning
from core_client.sessions.cards import (
    MANDATE_ARG,
    Card,
    CardMandate,
    card_opened,
    card_refusal,
    card_start,
    card_start_refusal,
    find_card,
    is_card_open,
)
from core_client.sessions.jobs import OPEN, Job, JobKind
from core_client.sessions.machine import SessionRecord
from core_client.storage.store import Store
from ev_network.pricing import Tariff

if TYPE_CHECKING:
    from core_client.ocpp.link import StationLink

log = logging.getLogger("core_client.sessions")


class Service(Protocol):
    """What the card path uses of :class:`core_client.sessions.service.SessionService`."""

    store: Store

    def apply(self, decision: Decision, answering: StationLink | None = None) -> Decision: ...
    def forget_transaction(self, transaction_id: int) -> None: ...
    def stop_recorded(self, s: SessionRecord) -> None: ...


class CardSessions:
    """Cards at the charge points of one session service."""

    def __init__(self, service: Service) -> None:
        self.service, self.store = service, service.store
        #: The granted mandates as last read from chain (the daemon sets the card cache's ``mandates``).
        self.mandates: Callable[[], Iterable[CardMandate]] = list

    def find(self, id_tag: str | None) -> Card | None:
        return find_card(self.mandates(), id_tag)

    def _open_jobs(self) -> list[Job]:
        return [j for j in self.store.jobs(*OPEN, kind=JobKind.START) if is_card_open(j.args)]

    def queued(self, mandate_id: int) -> int:
        """Deposits of the mandate's opens not mined yet (the cache's ``committed`` does not count them)."""
        return sum(j.args["deposit"] for j in self._open_jobs() if j.args[MANDATE_ARG] == mandate_id)

    def opening(self, transaction_id: int) -> bool:
        """Whether the transaction is a card's whose open is still on its way to the chain."""
        return any(j.args["transaction_id"] == transaction_id for j in self._open_jobs())

    # ------------------------------------------------------ charge point inputs

    def authorize(self, link: StationLink, card: Card) -> str:
        why = card_refusal(card, time.time(), self.queued(card.mandate.mandate_id))
        if why is not None:
            log.warning("%s: Authorize of a card of mandate %d: Invalid (%s)", link.id, card.mandate.mandate_id, why)
            return decisions.INVALID
        return decisions.ACCEPTED

    def start(self, link: StationLink, connector: int, id_tag: str, meter_start: int, card: Card) -> tuple[int, str]:
        """StartTransaction of a card: Accepted and its open queued, or Invalid (and stopped)."""
        queued = self.queued(card.mandate.mandate_id)
        why = card_start_refusal(card, meter_start, time.time(), queued)
        if why is None and link.station_id is None:
            why = "charge point not registered on chain"
        with self.store.transaction():
            tx_id = self.store.new_transaction(link.id, connector, id_tag, None, meter_start, link.transaction_id)
            if why is not None:
                decision = decisions.refuse_start(link.id, connector, id_tag, tx_id, why)
            else:
                decision = card_start(card, link.station_id, link.id, connector, tx_id, meter_start, queued)
            return self.service.apply(decision, answering=link).reply

    # ------------------------------------------------------------ chain inputs

    def awaiting(self, args: dict[str, Any]) -> bool:
        """Whether a SessionRequested is one of our card opens not yet recorded (the worker records it)."""
        return any(
            (j.args["payer"].lower(), j.args["station_id"], j.args["connector"])
            == (args["driver"].lower(), args["stationId"], args["connector"])
            for j in self._open_jobs()
        )

    def opened(self, job: Job, session_id: int, requested: dict[str, Any], block: int, tariff: Tariff) -> None:
        """A card's open is mined: record its session, started, under the transaction handed out."""
        station = self.store.station(requested["stationId"])
        if station is None:
            return
        now = time.time()
        record = decisions.requested(requested, station[0], block, tariff, now)
        tx_id = job.args["transaction_id"]
        tx = self.store.get_transaction(tx_id)
        began = tx.started_at if tx is not None else now  # the charge began then, not when the chain heard of it
        if self.store.insert_session(record) is None:
            return  # recorded before (a restart between mined and recorded)
        self.store.move_job(job.id, session_id)
        self.store.link_transaction(tx_id, session_id)
        self.service.forget_transaction(tx_id)
        started, decision = card_opened(record, job.args, began, block)
        self.service.apply(decision)
        if tx is not None and tx.meter_stop is not None:  # the charge point stopped before the open was mined
            self.service.stop_recorded(started)

    def open_failed(self, job: Job, error: str) -> Decision:
        """The contract refused a card's open: stop its transaction (nothing was locked, nothing to settle)."""
        tx = self.store.get_transaction(job.args["transaction_id"])
        if tx is None:
            return Decision()
        note = warning(
            f"{tx.charge_point_id}/{tx.connector}: card of mandate {job.args[MANDATE_ARG]} could not open its "
            f"session on chain ({error}): stopping transaction {tx.transaction_id}"
        )
        stop = SendRemoteStop(tx.charge_point_id, tx.transaction_id) if tx.meter_stop is None else None
        return self.service.apply(decide(None, note, *([stop] if stop else [])))
