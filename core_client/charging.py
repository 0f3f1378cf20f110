"""What charge points tell the Core Client: the session service's OCPP handlers (a mixin of
:class:`core_client.service.SessionService`).

Each handler only reads and writes SQLite and returns the answer at once; chain work is queued as a
job (start, settle) for the chain worker, and calls back to a charge point (RemoteStop) are left to
the reconcile loop. Transitions go through :meth:`SessionRecord.apply`, the one state machine.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ocpp.v16.enums import AuthorizationStatus, RegistrationStatus

from core_client.protocol import energy_register_wh
from core_client.sessions import (
    FINISHED,
    HOLDS_CONNECTOR,
    RUNNING,
    SessionRecord,
    State,
    budget_limit,
    cost_so_far,
    must_stop,
    tag_of_id_tag,
)
from ev_network.session_ids import hex_session_id

if TYPE_CHECKING:
    from core_client.central_system import StationLink
    from core_client.config import Settings
    from core_client.store import Store

log = logging.getLogger("core_client.sessions")
OWNER_CACHE_MAX = 50_000  # transactions whose owner is kept in memory (one per running session)
UINT40 = 2**40
ACCEPTED, INVALID = AuthorizationStatus.accepted, AuthorizationStatus.invalid


class ChargePointMixin:
    """OCPP charge point -> central system, session side."""

    settings: Settings
    store: Store
    on_job_queued: Callable[[], None]

    if TYPE_CHECKING:  # provided by SessionService

        def station_of(self, cp_id: str) -> tuple[int, int] | None: ...
        def wake(self) -> None: ...
        def spawn(self, coroutine: Any) -> Any: ...
        async def resolve(self, link: StationLink) -> None: ...
        async def _stop_foreign(self, link: StationLink, transaction_id: int) -> None: ...

    def on_boot(self, link: StationLink, vendor: str, model: str) -> tuple[str, int]:
        """BootNotification: Accepted only for a station registered on chain for our operator."""
        station = self.station_of(link.id)
        if station is None:
            if link.lookup_failed:
                log.warning("%s: BootNotification while the chain is unreachable: Pending", link.id)
                self.spawn(self.resolve(link))
                return RegistrationStatus.pending, 10
            log.warning("%s: BootNotification rejected: not a station of this operator on chain", link.id)
            return RegistrationStatus.rejected, 60
        link.station_id, link.connectors = station
        link.boot_accepted = True
        log.info("%s: booted (%s %s), station %d", link.id, vendor, model, station[0])
        self.wake()
        return RegistrationStatus.accepted, self.settings.heartbeat_interval_s

    def on_status(self, link: StationLink, connector: int, status: str, error_code: str) -> None:
        self.store.set_connector_status(link.id, connector, status, error_code)
        log.debug("%s/%d: %s (%s)", link.id, connector, status, error_code)

    def authorize(self, link: StationLink, id_tag: str) -> str:
        """Accepted for ``EVN<tag>`` idTags of a live session at this charge point, Invalid otherwise."""
        session = self._session_of_tag(id_tag)
        ok = session is not None and session.charge_point_id == link.id and session.state in HOLDS_CONNECTOR
        return ACCEPTED if ok else INVALID

    def start_transaction(self, link: StationLink, connector: int, id_tag: str, meter_start: int) -> tuple[int, str]:
        """Hand out a transaction id; for the session named by the tag, queue ``start`` on chain."""
        s = self._session_of_tag(id_tag)
        if s is not None and s.charge_point_id == link.id and s.connector == connector and s.transaction_id:
            log.info(
                "session %s: repeated StartTransaction, same transaction %d",
                hex_session_id(s.session_id),
                s.transaction_id,
            )
            return s.transaction_id, ACCEPTED if s.state in RUNNING else INVALID
        ok = (
            s is not None
            and s.charge_point_id == link.id
            and s.connector == connector
            and s.state in (State.REQUESTED, State.REMOTE_START_SENT)
            and 0 <= meter_start < UINT40
        )
        with self.store.transaction():
            tx_id = self.store.new_transaction(link.id, connector, id_tag, s.session_id if ok else None, meter_start)
            if ok:
                now = time.time()
                started = s.apply(
                    "start_transaction",
                    transaction_id=tx_id,
                    meter_start=meter_start,
                    meter_last=meter_start,
                    started_at=now,
                    meter_at=now,
                )
                self.store.save_session(started)
                self.store.enqueue("start", s.session_id, {"transaction_id": tx_id, "meter_start": meter_start})
        if not ok:
            why = "no such session" if s is None else f"session is {s.state.value} at {s.charge_point_id}/{s.connector}"
            log.warning(
                "%s/%d: StartTransaction for %r refused (%s): transaction %d Invalid",
                link.id,
                connector,
                id_tag,
                why,
                tx_id,
            )
            self.spawn(self._stop_foreign(link, tx_id))
            return tx_id, INVALID
        log.info(
            "session %s: StartTransaction on %s/%d, transaction %d, meter %d Wh; start queued",
            hex_session_id(s.session_id),
            link.id,
            connector,
            tx_id,
            meter_start,
        )
        self.on_job_queued()
        return tx_id, ACCEPTED

    def meter_values(self, link: StationLink, connector: int, transaction_id: int | None, values: list) -> None:
        """Track energy; when the budget is used up, mark the session to be stopped."""
        s = self._session_for_meter(link, connector, transaction_id)
        energy = energy_register_wh(values)
        if s is None or energy is None or s.state not in RUNNING or energy < (s.meter_last or 0):
            return
        now = time.time()
        interval_wh, interval_s = energy - (s.meter_last or energy), now - (s.meter_at or now)
        s = _replace(s, meter_last=energy, meter_at=now)
        duration = now - (s.started_at or now)
        if not s.stop_wanted and must_stop(
            s.tariff, s.deposit, self.settings.budget_margin, s.energy_wh, duration, interval_wh, interval_s
        ):
            cost = cost_so_far(s.tariff, s.energy_wh, duration)
            log.info(
                "session %s: budget reached at %d Wh: cost %d of deposit %d (limit %d); stopping",
                hex_session_id(s.session_id),
                s.energy_wh,
                cost,
                s.deposit,
                budget_limit(s.deposit, self.settings.budget_margin),
            )
            s = _replace(s, stop_wanted="budget")
            self.wake()
        self.store.save_session(s)

    def stop_transaction(
        self,
        link: StationLink,
        transaction_id: int,
        meter_stop: int,
        reason: str | None,
        id_tag: str | None,
        transaction_data: list | None,
    ) -> str:
        """Record the stop and queue ``settle``; a repeated StopTransaction changes nothing."""
        self._transaction_owner.pop(transaction_id, None)
        tx = self.store.get_transaction(transaction_id)
        if tx is None or tx.charge_point_id != link.id:
            owner = f"of {tx.charge_point_id}" if tx else "unknown"
            log.warning("%s: StopTransaction for transaction %d (%s) ignored", link.id, transaction_id, owner)
            return INVALID
        s = self.store.get_session(tx.session_id) if tx.session_id is not None else None
        if s is None:
            if tx.meter_stop is None:
                self.store.finish_transaction(transaction_id, meter_stop, reason)
            return INVALID
        if s.state in FINISHED:
            log.info("session %s: repeated StopTransaction, nothing to do", hex_session_id(s.session_id))
            return ACCEPTED
        if s.state not in RUNNING:
            return INVALID
        stop = min(max(meter_stop, s.meter_start or 0), UINT40 - 1)
        if stop != meter_stop:
            log.warning(
                "session %s: meter stop %d outside [meter start, 2^40): settling with %d",
                hex_session_id(s.session_id),
                meter_stop,
                stop,
            )
        with self.store.transaction():
            self.store.finish_transaction(transaction_id, meter_stop, reason)
            stopped = s.apply("stop_transaction", meter_stop=stop, stop_reason=reason, stopped_at=time.time())
            self.store.save_session(stopped)
            self.store.enqueue("settle", s.session_id, {"meter_stop": stop})
        log.info(
            "session %s: StopTransaction (%s) at %d Wh, %d Wh delivered; settle queued",
            hex_session_id(s.session_id),
            reason or "no reason",
            stop,
            stopped.energy_wh,
        )
        self.on_job_queued()
        return ACCEPTED

    def _session_of_tag(self, id_tag: str | None) -> SessionRecord | None:
        tag = tag_of_id_tag(id_tag)
        return self.store.session_by_tag(tag) if tag is not None else None

    def _session_for_meter(self, link: StationLink, connector: int, transaction_id: int | None) -> SessionRecord | None:
        if transaction_id is not None:
            owner = self._transaction_owner.get(transaction_id)
            if owner is None:
                tx = self.store.get_transaction(transaction_id)
                if tx is not None:
                    if len(self._transaction_owner) >= OWNER_CACHE_MAX:  # late meter values of old transactions
                        self._transaction_owner.clear()
                    owner = self._transaction_owner[transaction_id] = (tx.charge_point_id, tx.session_id)
            if owner is None or owner[0] != link.id:
                log.warning("%s: MeterValues for transaction %d that is not its own: ignored", link.id, transaction_id)
                return None
            return self.store.get_session(owner[1]) if owner[1] is not None else None
        return next((s for s in self.store.sessions_in(RUNNING, link.id) if s.connector == connector), None)


def _replace(s: SessionRecord, **changes: Any) -> SessionRecord:
    """Field changes that are not state transitions (meter readings, stop wishes)."""
    return dataclasses.replace(s, **changes)
