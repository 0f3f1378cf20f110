"""The session service's inputs from the chain: escrow events (a station registered, a session requested, a
stop requested) from the event watcher, jobs mined or failed from the chain worker, and the operator's retry
of a failed job. Each asks the decisions (pure) and applies what they decide, as every input does
(:class:`core_client.sessions.service.SessionService`, which these methods are part of)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from core_client.sessions import decisions, metering
from core_client.sessions.actions import Decision
from core_client.sessions.jobs import Job, JobKind, JobStatus
from core_client.sessions.machine import SessionRecord
from core_client.storage.claims import LocalClaims
from core_client.storage.store import Store
from ev_network.pricing import Tariff
from ev_network.session_ids import hex_session_id

if TYPE_CHECKING:
    from core_client.sessions.card_sessions import CardSessions

log = logging.getLogger("core_client.sessions")


class ChainInputs:
    """Part of :class:`core_client.sessions.service.SessionService`: what it does about the chain's news."""

    store: Store
    claims: LocalClaims
    cards: CardSessions
    meter_keys: dict[int, bytes]
    on_job_queued: Callable[[], None]

    if TYPE_CHECKING:

        def session(self, session_id: int) -> SessionRecord | None: ...
        def apply(self, decision: Decision) -> Decision: ...

    def on_station_registered(self, station_id: int, charge_point_id: str, connectors: int) -> None:
        """StationRegistered for our operator: charge points with this id may now boot."""
        self.store.add_station(station_id, charge_point_id, connectors)
        log.info("station %d registered for charge point %s (%d connectors)", station_id, charge_point_id, connectors)

    def on_session_requested(self, args: dict, block: int, tariff: Tariff) -> bool:
        """SessionRequested at one of our stations: a new session in REQUESTED. False if not ours or known."""
        station = self.store.station(args["stationId"])
        if station is None or self.cards.awaiting(args):  # a card's open: recorded when its job is mined
            return False
        record = decisions.requested(args, station[0], block, tariff, time.time())
        tag = self.store.insert_session(record)
        if tag is None:
            return False
        self.claims.tell_holders({record.charge_point_id})  # several instances: its RemoteStart is theirs
        log.info(
            "session %s: requested at %s/%d by %s, deposit %d (block %d), idTag %s",
            *(hex_session_id(record.session_id), station[0], record.connector, record.driver, record.deposit),
            *(block, self.charge_point_tag(replace(record, tag=tag))),
        )
        return True

    def charge_point_tag(self, s: SessionRecord) -> str:
        """The idTag the charge point uses for ``s`` (and its logs show): the one of its StartTransaction, else
        the one RemoteStart gives it (``EV`` + 18 hex digits at a station with a signing meter, else ``EVN<n>``)."""
        tx = self.store.get_transaction(s.transaction_id) if s.transaction_id is not None else None
        if tx is not None and tx.id_tag:
            return tx.id_tag
        return metering.id_tag(s, bool(self.meter_keys.get(s.station_id)))

    def on_stop_requested(self, session_id: int) -> bool:
        """StopRequested by the driver: the reconcile loop sends RemoteStopTransaction."""
        return bool(self.apply(decisions.stop_requested(self.session(session_id), session_id)).reply)

    def on_job_done(self, job: Job, block: int | None, tx_hash: str | None, settled: dict[str, int] | None) -> None:
        """A start, reject or settle is on chain (mined by us now, or found already done)."""
        s = self.session(job.session_id)
        where = f"in block {block}, tx {tx_hash}" if tx_hash else "(found already done on chain)"
        if s is not None:
            self.apply(decisions.job_done(s, job, where, settled, time.time()))

    def on_card_opened(self, job: Job, session_id: int, requested: dict, block: int, tariff: Tariff) -> None:
        """A card's open under its mandate is mined (see :class:`CardSessions`)."""
        self.cards.opened(job, session_id, requested, block, tariff)

    def on_job_failed(self, job: Job, error: str) -> None:
        """A job that can never succeed: the session needs an operator's look."""
        sid = hex_session_id(job.session_id)
        log.error("session %s: %s FAILED on chain: %s -- needs an operator's attention", sid, job.kind.value, error)
        s = self.session(job.session_id)
        if s is not None:
            self.apply(decisions.job_failed(s, job, error))
        elif job.kind is JobKind.OPEN_CARD:
            self.cards.open_failed(job, error)

    def retry_job(self, job_id: int) -> str:
        """The operator's retry of a failed job (the dashboard): queued again (with a start, its settle
        that failed for it), the session back in the state the job needs, the chain worker woken.
        Returns what happened, in one line."""
        job = next((j for j in self.store.jobs(JobStatus.FAILED) if j.id == job_id), None)
        if job is None:
            return f"job {job_id} is not a failed job (already retried, or done)"
        s = self.session(job.session_id)
        why = decisions.retry_refusal(s, job) if s is not None else None
        if why is not None:
            return f"job {job_id} ({job.kind} of {hex_session_id(job.session_id)}) not queued again: {why}"
        again = [job]
        settle = self.store.job(JobKind.SETTLE, job.session_id) if job.kind is JobKind.START else None
        if settle is not None and settle.status is JobStatus.FAILED:
            again.append(settle)
        with self.store.transaction():
            for retried in again:
                self.store.update_job(retried.id, status=JobStatus.PENDING, tx_hash=None, attempts=0, last_error=None)
            if s is not None:
                self.apply(decisions.retry_job(s, job))
        self.on_job_queued()
        return f"job {job_id} ({job.kind} of {hex_session_id(job.session_id)}) queued again"
