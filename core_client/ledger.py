"""Chain-side handlers of the session service: escrow events read by the event watcher, and chain
jobs mined or failed in the chain worker. They only write SQLite; the callers wrap them in one
store transaction together with their own bookkeeping (event cursor, job status)."""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import TYPE_CHECKING, Any

from core_client.sessions import RUNNING, SessionRecord, State, can, id_tag_for
from ev_network.contracts import CancelReason
from ev_network.pricing import Tariff
from ev_network.session_ids import hex_session_id

if TYPE_CHECKING:
    from core_client.central_system import StationLink
    from core_client.store import Job, Store

log = logging.getLogger("core_client.sessions")


class LedgerMixin:
    """Mixed into :class:`core_client.service.SessionService`."""

    store: Store
    links: dict[str, StationLink]

    # ----------------------------------------------------------------- events

    def on_station_registered(self, station_id: int, charge_point_id: str, connectors: int) -> None:
        """StationRegistered for our operator: charge points with this id may now boot."""
        self.store.add_station(station_id, charge_point_id, connectors)
        log.info("station %d registered for charge point %s (%d connectors)", station_id, charge_point_id, connectors)

    def on_session_requested(self, args: dict[str, Any], block: int, tariff: Tariff) -> bool:
        """SessionRequested at one of our stations: a new session in REQUESTED. False if not ours or known."""
        station = self.store.station(args["stationId"])
        if station is None:
            return False
        record = SessionRecord(
            session_id=args["sessionId"],
            station_id=args["stationId"],
            charge_point_id=station[0],
            connector=args["connector"],
            driver=args["driver"],
            deposit=args["deposit"],
            tariff=tariff,
            tariff_id=args["tariffId"],
            requested_block=block,
            requested_at=time.time(),
        )
        tag = self.store.insert_session(record)
        if tag is None:
            return False
        log.info(
            "session %s: requested at %s/%d by %s, deposit %d (block %d), idTag %s",
            hex_session_id(record.session_id),
            station[0],
            record.connector,
            record.driver,
            record.deposit,
            block,
            id_tag_for(tag),
        )
        return True

    def on_stop_requested(self, session_id: int) -> bool:
        """StopRequested by the driver: the reconcile loop sends RemoteStopTransaction."""
        s = self.store.get_session(session_id)
        if s is None:
            log.warning(
                "session %s: StopRequested for a session this Core Client does not know", hex_session_id(session_id)
            )
            return False
        if s.state not in (State.STARTING, State.CHARGING) or s.stop_wanted:
            log.info("session %s: StopRequested while %s: nothing to do", hex_session_id(session_id), s.state.value)
            return False
        self.store.save_session(_with(s, stop_wanted="driver"))
        log.info("session %s: driver requested the stop", hex_session_id(session_id))
        return True

    # ------------------------------------------------------------------- jobs

    def on_job_done(self, job: Job, block: int | None, tx_hash: str | None, settled: dict[str, int] | None) -> None:
        """A start, reject or settle is on chain (mined by us now, or found already done)."""
        s = self.store.get_session(job.session_id)
        where = f"in block {block}, tx {tx_hash}" if tx_hash else "(found already done on chain)"
        if s is None:
            return
        if job.kind == "start" and can(s.state, "start_mined"):
            self.store.save_session(s.apply("start_mined"))
            log.info("session %s: start mined %s", hex_session_id(s.session_id), where)
        elif job.kind == "reject" and can(s.state, "reject_mined"):
            reason = CancelReason(job.args["reason"]).name
            self.store.save_session(s.apply("reject_mined", refund=s.deposit, cost=0))
            log.info(
                "session %s: rejected on chain (%s), deposit %d refunded %s",
                hex_session_id(s.session_id),
                reason,
                s.deposit,
                where,
            )
        elif job.kind == "settle" and can(s.state, "settle_mined"):
            cost = settled["cost"] if settled else None
            refund = settled["refund"] if settled else None
            self.store.save_session(s.apply("settle_mined", cost=cost, refund=refund, finished_at=time.time()))
            log.info(
                "session %s: settled cost=%s refund=%s, %d Wh %s",
                hex_session_id(s.session_id),
                cost,
                refund,
                s.energy_wh,
                where,
            )

    def on_job_failed(self, job: Job, error: str) -> None:
        """A job that can never succeed: the session needs an operator's look."""
        s = self.store.get_session(job.session_id)
        log.error(
            "session %s: %s FAILED on chain: %s -- needs an operator's attention",
            hex_session_id(job.session_id),
            job.kind,
            error,
        )
        if s is None or not can(s.state, "job_failed"):
            return
        self.store.save_session(s.apply("job_failed", last_error=f"{job.kind}: {error}"))
        link = self.links.get(s.charge_point_id)
        if job.kind == "start" and s.state in RUNNING and s.transaction_id and link is not None:
            log.warning(
                "session %s: stopping transaction %d at %s", hex_session_id(s.session_id), s.transaction_id, link.id
            )
            self.spawn(self._stop_foreign(link, s.transaction_id))  # type: ignore[attr-defined]


def _with(s: SessionRecord, **changes: Any) -> SessionRecord:
    return dataclasses.replace(s, **changes)
