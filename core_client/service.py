"""The session service: joins the OCPP links, the session state machine, the store and the chain queue.

OCPP handlers call the ``on_*``/``authorize``/``*_transaction``/``meter_values`` methods
(:class:`core_client.charging.ChargePointMixin`): they only touch SQLite and answer at once. Chain work is queued as jobs (start, reject, settle) that the chain
worker sends. A reconcile loop (:meth:`SessionService.run`) drives what needs a call to a charge
point: RemoteStart for new sessions, RemoteStop for sessions that must stop, and the start timeout.
It reads its to-do list from the store, so it picks up where it left off after a restart.

Chain-side handlers (events read, jobs mined or failed) live in :class:`core_client.ledger.LedgerMixin`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ocpp.v16.enums import RemoteStartStopStatus

from core_client.central_system import CommandFailed, StationLink
from core_client.charging import ChargePointMixin
from core_client.config import Settings
from core_client.ledger import LedgerMixin
from core_client.sessions import HOLDS_CONNECTOR, SessionRecord, State, can
from core_client.store import Store
from ev_network.contracts import CancelReason, SessionState
from ev_network.errors import ChainUnavailable
from ev_network.session_ids import hex_session_id

log = logging.getLogger("core_client.sessions")

BUSY_STATUSES = frozenset({"Charging", "SuspendedEV", "SuspendedEVSE", "Finishing", "Reserved"})
ChainStateLookup = Callable[[int], Awaitable[SessionState | None]]
StationLookup = Callable[[str], Awaitable[tuple[int, int] | None]]


class SessionService(ChargePointMixin, LedgerMixin):
    """Session logic of one Core Client (one operator)."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        chain_state: ChainStateLookup | None = None,
        station_lookup: StationLookup | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.chain_state = chain_state
        self.station_lookup = station_lookup
        self.links: dict[str, StationLink] = {}
        self.on_job_queued: Callable[[], None] = lambda: None
        self.started = time.time()
        self._wake = asyncio.Event()
        self._inflight: set[int] = set()
        self._retry_at: dict[int, float] = {}
        self._tasks: set[asyncio.Task] = set()
        self._stopping = False
        # transaction id -> (charge point id, session id): fixed once the transaction exists, and
        # read on every MeterValues, so kept in memory
        self._transaction_owner: dict[int, tuple[str, int | None]] = {}

    # --------------------------------------------------------------- links

    def attach(self, link: StationLink) -> StationLink | None:
        """Register a connected charge point; returns the link it replaces, if any."""
        old = self.links.get(link.id)
        self.links[link.id] = link
        station = self.station_of(link.id)
        if station is not None:
            link.station_id, link.connectors = station
        return old if old is not link else None

    async def resolve(self, link: StationLink) -> None:
        """Look a charge point up on chain if it is not one of our known stations yet.

        (Stations registered while the daemon runs are also picked up by the event watcher.)
        """
        if self.station_of(link.id) is not None or self.station_lookup is None:
            return
        try:
            found = await asyncio.wait_for(self.station_lookup(link.id), self.settings.rpc_timeout_s + 1)
        except (ChainUnavailable, asyncio.TimeoutError) as error:
            log.warning("%s: cannot check its registration, chain unreachable (%s)", link.id, error)
            link.lookup_failed = True
            return
        except Exception:
            log.exception("%s: station lookup failed", link.id)
            link.lookup_failed = True
            return
        link.lookup_failed = False
        if found is not None:
            self.store.add_station(found[0], link.id, found[1])
            link.station_id, link.connectors = found

    def detach(self, link: StationLink) -> None:
        if self.links.get(link.id) is link:
            del self.links[link.id]
            log.info("%s: disconnected", link.id)

    def station_of(self, cp_id: str) -> tuple[int, int] | None:
        """(station id, connectors) of one of our stations, by charge point id."""
        return self.store.station_of(cp_id)

    def online(self, cp_id: str) -> bool:
        link = self.links.get(cp_id)
        return link is not None and link.online

    def wake(self) -> None:
        """Run the reconcile loop now (new event, new session, stop wanted)."""
        self._wake.set()

    # ----------------------------------------------------------- reconcile loop

    async def run(self) -> None:
        """Drive RemoteStart, RemoteStop and start timeouts until :meth:`close`."""
        while not self._stopping:
            try:
                self.reconcile()
            except Exception:
                log.exception("reconcile failed; retrying")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=0.5)
            self._wake.clear()

    def reconcile(self) -> None:
        """One pass over the sessions that wait for something from us."""
        now = time.time()
        for s in self.store.sessions_in({State.REQUESTED}):
            if self._free(s.session_id, now):
                self._inflight.add(s.session_id)
                self.spawn(self._dispatch(s))
        for s in self.store.sessions_in({State.REMOTE_START_SENT}):
            if now - (s.remote_start_at or now) > self.settings.start_timeout_s and s.session_id not in self._inflight:
                log.warning(
                    "session %s: no StartTransaction within %gs",
                    hex_session_id(s.session_id),
                    self.settings.start_timeout_s,
                )
                self.reject(s.session_id, CancelReason.OTHER)
        for s in self.store.sessions_in({State.STARTING, State.CHARGING}, stop_wanted=True):
            if s.stop_wanted and self.online(s.charge_point_id) and self._free(s.session_id, now):
                self._inflight.add(s.session_id)
                self.spawn(self._remote_stop(s))

    async def _dispatch(self, s: SessionRecord) -> None:
        """RemoteStart for a new session, or reject it (station offline, connector busy)."""
        session_id = s.session_id
        try:
            link = self.links.get(s.charge_point_id)
            if link is None or not link.online:
                if time.time() - self.started < self.settings.reconnect_grace_s:
                    self._retry_at[s.session_id] = time.time() + 1
                    return
                log.info("session %s: station %s is offline", hex_session_id(s.session_id), s.charge_point_id)
                self.reject(s.session_id, CancelReason.STATION_OFFLINE)
                return
            if self._connector_busy(s):
                log.info(
                    "session %s: connector %s/%d is busy", hex_session_id(s.session_id), s.charge_point_id, s.connector
                )
                self.reject(s.session_id, CancelReason.CONNECTOR_BUSY)
                return
            if self.chain_state is not None:
                state = await self.chain_state(s.session_id)
                if state is not None and state is not SessionState.REQUESTED:
                    log.warning("session %s: %s on chain, not starting it", hex_session_id(s.session_id), state.name)
                    self.reject(s.session_id, CancelReason.OTHER)
                    return
            s = self.store.get_session(s.session_id)
            if s is None or s.state is not State.REQUESTED:
                return
            self.store.save_session(s.apply("remote_start_sent", remote_start_at=time.time()))
            log.info(
                "session %s: RemoteStart sent to %s/%d", hex_session_id(s.session_id), s.charge_point_id, s.connector
            )
            try:
                status = await link.remote_start(s.connector, s.id_tag)
            except CommandFailed as error:
                log.warning(
                    "session %s: RemoteStart got no answer (%s); waiting for the start timeout",
                    hex_session_id(s.session_id),
                    error,
                )
                return
            if status != RemoteStartStopStatus.accepted:
                log.info("session %s: %s rejected the RemoteStart", hex_session_id(s.session_id), s.charge_point_id)
                self.reject(s.session_id, CancelReason.CHARGER_REJECTED)
        finally:
            self._inflight.discard(session_id)

    async def _remote_stop(self, s: SessionRecord) -> None:
        try:
            link = self.links[s.charge_point_id]
            log.info(
                "session %s: RemoteStop sent to %s (%s)", hex_session_id(s.session_id), s.charge_point_id, s.stop_wanted
            )
            try:
                status = await link.remote_stop(s.transaction_id or 0)
            except CommandFailed as error:
                log.warning("session %s: RemoteStop failed (%s); retrying", hex_session_id(s.session_id), error)
                self._retry_at[s.session_id] = time.time() + 5
                return
            if status != RemoteStartStopStatus.accepted:
                log.warning("session %s: %s rejected the RemoteStop", hex_session_id(s.session_id), s.charge_point_id)
            current = self.store.get_session(s.session_id)
            if current is not None and can(current.state, "remote_stop_sent"):
                self.store.save_session(current.apply("remote_stop_sent", remote_stop_sent=True))
        finally:
            self._inflight.discard(s.session_id)

    async def _stop_foreign(self, link: StationLink, transaction_id: int) -> None:
        """Stop a transaction started with a tag we refused (in case the CP does not stop by itself)."""
        await asyncio.sleep(0.5)
        with contextlib.suppress(CommandFailed):
            await link.remote_stop(transaction_id)

    def reject(self, session_id: int, reason: CancelReason) -> bool:
        """Queue ``reject`` (full refund) if the session can still be rejected."""
        s = self.store.get_session(session_id)
        if s is None or not can(s.state, "reject_queued"):
            return False
        with self.store.transaction():
            self.store.save_session(s.apply("reject_queued", reject_reason=int(reason), finished_at=time.time()))
            self.store.enqueue("reject", session_id, {"reason": int(reason)})
        log.info("session %s: reject queued (%s)", hex_session_id(session_id), reason.name)
        self.on_job_queued()
        return True

    # ------------------------------------------------------------------ helpers

    def _free(self, session_id: int, now: float) -> bool:
        return session_id not in self._inflight and self._retry_at.get(session_id, 0) <= now

    def _connector_busy(self, s: SessionRecord) -> bool:
        for other in self.store.sessions_in(HOLDS_CONNECTOR, s.charge_point_id):
            if (
                other.session_id != s.session_id
                and other.connector == s.connector
                # of two new sessions the first requested gets the connector: stored sessions have tags, which
                # count them in arrival order (their ids do not: they are ordered by driver and lane)
                and (other.state is not State.REQUESTED or other.tag < s.tag)  # type: ignore[operator]
            ):
                return True
        return self.store.connector_status(s.charge_point_id, s.connector) in BUSY_STATUSES

    def spawn(self, coroutine: Any) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("session task failed", exc_info=task.exception())

    async def close(self) -> None:
        """Stop the loop and the tasks talking to charge points."""
        self._stopping = True
        self._wake.set()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
