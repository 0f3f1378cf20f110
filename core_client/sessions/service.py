"""The session service: feeds inputs to the session decisions and applies what they decide.

Inputs come from the station links (OCPP messages, :class:`core_client.ocpp.link.Sessions`), the
event watcher (escrow events) and the chain worker (jobs mined or failed). For each, the service
reads the session(s) concerned, asks :mod:`core_client.sessions.decisions` (pure) what to do, and applies the
:class:`~core_client.sessions.decisions.Decision` (:meth:`SessionService.apply`): session changes and chain jobs
in one transaction, then logs, then a wake-up of the chain worker. Each input runs whole on the store's
thread (:mod:`core_client.storage.serial`, :meth:`SessionService.handle`): the event loop never waits
for the database, and the service's state is only ever touched there. Calls to charge points
(RemoteStart, RemoteStop, start timeouts) are driven by the reconcile loop
(:class:`core_client.sessions.reconcile.Reconciler`), which reads its to-do list from the store and so picks up
where it left off after a restart.

Live meter readings and connector statuses are kept in memory and written in batches
(:mod:`core_client.sessions.readings`). The connected charge points, each one's registration state and
the port through which it is reached: :mod:`core_client.sessions.registry`; which of them this instance
holds and acts for: :mod:`core_client.sessions.attachments`; which session an input is about:
:mod:`core_client.sessions.lookup`; the signed meter records kept: :mod:`core_client.sessions.meter_records`.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from core_client.config import Settings
from core_client.ocpp.wire import active_power_w, energy_register_wh
from core_client.sessions import decisions, remote_calls
from core_client.sessions.actions import Decision, Log, MeterProblem, QueueJob, SaveSession, SendRemoteStop, check_range
from core_client.sessions.attachments import Attachments
from core_client.sessions.card_sessions import CardSessions
from core_client.sessions.cards import ask_roaming
from core_client.sessions.chain_inputs import ChainInputs
from core_client.sessions.decisions import INT32
from core_client.sessions.lookup import SessionLookup
from core_client.sessions.machine import HOLDS_CONNECTOR, RUNNING, SessionRecord, is_network_tag
from core_client.sessions.meter_records import MeterRecords
from core_client.sessions.readings import Live
from core_client.sessions.reconcile import Reconciler, waits_for_holder
from core_client.sessions.registry import (
    ChargePoint,
    CommandFailed,
    MeterKeyLookup,
    Registration,
    Registry,
    StationLookup,
)
from core_client.storage.claims import LocalClaims
from core_client.storage.store import StaleSession, Store
from ev_network.contracts import SessionState
from ev_network.session_ids import hex_session_id

log = logging.getLogger("core_client.sessions")
INT64 = 2**63  # what SQLite's INTEGER holds
ChainStateLookup = Callable[[int], Awaitable[SessionState | None]]
T = TypeVar("T")


class SessionService(ChainInputs):
    """Session logic of one Core Client (one operator), and its registry of connected charge points. The
    inputs from the chain (events, jobs mined or failed, the operator's retry) are :class:`ChainInputs`'."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        chain_state: ChainStateLookup | None = None,
        station_lookup: StationLookup | None = None,
        meter_key_lookup: MeterKeyLookup | None = None,
        claims: LocalClaims | None = None,
    ) -> None:
        self.settings, self.store = settings, store
        self.claims = claims or LocalClaims()  # the charge points this instance holds (several instances)
        self.leading = True  # holds the signer lease: acts for the charge points no instance holds
        self.meter_records = MeterRecords(store)  # the sessions' signed meter records (stations with a meter key)
        self.meter_problems = self.meter_records.problems  # charge point id -> its last refused record (/health)
        self._max_power_w = round(settings.max_power_kw * 1000)  # the plausibility rule (sessions.decisions)
        self.registry = Registry(settings, store, station_lookup, meter_key_lookup)
        self.links = self.registry.links  # charge point id -> its port (the station link)
        self.meter_keys = self.registry.meter_keys  # station id -> its meter key on chain (b"": none)
        self.on_job_queued: Callable[[], None] = lambda: None
        self.reconciler = Reconciler(self, chain_state)
        self.registry.spawn = self.reconciler.spawn
        self.live = Live(store, self._max_power_w, self.claims)
        self.attachments = Attachments(
            self.registry, self.claims, self.live, self.reconciler.spawn, self.reconciler.wake
        )
        self.lookup = SessionLookup(store, self.live)
        self.cards = CardSessions(self)  # RFID cards under payment mandates

    # -------------------------------------------------------------- applying

    def apply(self, decision: Decision, answering: ChargePoint | None = None) -> Decision:
        """Write the decision's sessions and jobs (one transaction); once committed, log, wake the chain
        worker, and send a RemoteStop of a refused transaction (after the answer, if it answers ``answering``).
        RemoteStart and the RemoteStop of a session are the reconcile loop's (it awaits their answers). A
        session another instance wrote since it was read is not written over (:class:`StaleSession`): the
        transaction is rolled back, nothing follows, and the store's thread runs the input again."""
        saves = [a.record for a in decision.actions if isinstance(a, SaveSession)]
        jobs = [a for a in decision.actions if isinstance(a, QueueJob)]
        if saves or jobs:
            with self.store.transaction():
                for record in saves:
                    try:
                        saved = self.store.save_session(record)
                    except StaleSession:
                        self.live.stale(record.session_id)
                        raise
                    self.store.on_commit(lambda saved=saved: self.live.saved(saved))
                for job in jobs:
                    self.store.enqueue(job.kind, job.session_id, job.args)
                # several instances: wake the one that holds the charge point, the leader for a job queued
                self.claims.tell_holders({record.charge_point_id for record in saves if waits_for_holder(record)})
                if jobs and not self.leading:
                    self.claims.tell_leader()
        self.store.on_commit(lambda: self._follow(decision, answering))
        return decision

    def _follow(self, decision: Decision, answering: ChargePoint | None) -> None:
        """What follows a decision once it is committed (see :meth:`apply`)."""
        for action in decision.actions:
            if isinstance(action, Log):
                log.log(action.level, action.message)
            elif isinstance(action, MeterProblem):
                self.meter_problems[action.charge_point_id] = {"error": action.error, "at": time.time()}
            elif isinstance(action, SendRemoteStop) and action.session_id is None:
                link = self.links.get(action.charge_point_id)
                if link is not None:
                    send = lambda link=link, tx=action.transaction_id: self._stop_foreign(link, tx)  # noqa: E731
                    link.after_reply(send) if link is answering else self.reconciler.spawn(send())
        if any(isinstance(a, QueueJob) for a in decision.actions):
            self.store.thread.to_loop(self.on_job_queued)

    async def handle(self, work: Callable[..., T], *args: Any) -> T:
        """Run one input (``work(*args)``, e.g. ``self.start_transaction``) on the store's thread; its outcome."""
        return await self.store.thread.run(work, *args)

    @property
    def proxied(self) -> bool:
        """Proxy mode: transactions that are not chain sessions are the CSMS's, never stopped here."""
        return self.settings.upstream is not None

    def session(self, session_id: int) -> SessionRecord | None:
        """The session as it is now (with its latest meter reading)."""
        return self.lookup.session(session_id)

    def session_of_transaction(self, transaction_id: int) -> SessionRecord | None:
        """The session a transaction belongs to (None for a transaction that is no session of ours)."""
        return self.lookup.of_transaction(transaction_id)

    def flush(self) -> None:
        """Write the live meter readings and connector statuses to the store."""
        self.live.flush()

    async def _stop_foreign(self, link: ChargePoint, transaction_id: int) -> None:
        """Stop a transaction we refused or cannot bill (in case the charge point does not stop by itself)."""
        with contextlib.suppress(CommandFailed):
            await link.remote_stop(transaction_id)

    # ----------------------------------------------------------------- links

    def attach(self, link: ChargePoint, registration: Registration) -> ChargePoint | None:
        """Register a connected charge point (its registration from :meth:`resolve`); returns the
        connection it replaces, if any."""
        return self.registry.attach(link, registration)

    async def resolve(self, cp_id: str, wait_s: float | None = None) -> Registration:
        """The registration of a connecting charge point (see :meth:`Registry.resolve`)."""
        return await self.registry.resolve(cp_id, wait_s)

    async def meter_key(self, station_id: int, refresh: bool = False) -> bytes | None:
        """The station's meter key on chain (see :meth:`Registry.meter_key`)."""
        return await self.registry.meter_key(station_id, refresh)

    def claim(self, cp_id: str) -> None:
        """A charge point connected to this instance (see :meth:`Attachments.claim`)."""
        self.attachments.claim(cp_id)

    def detach(self, link: ChargePoint) -> None:
        """Forget a closed connection (see :meth:`Attachments.detach`)."""
        self.attachments.detach(link)

    def acting_for(self) -> Callable[[str], bool]:
        """Which charge points' sessions this instance's reconcile pass acts for (see :meth:`Attachments.acting_for`)."""
        return self.attachments.acting_for(self.leading)

    def online(self, cp_id: str) -> bool:
        """Whether the charge point is connected, booted and one of our stations: sessions may start there."""
        return self.registry.online(cp_id)

    # ------------------------------------------------------ charge point inputs

    def on_boot(self, link: ChargePoint, vendor: str, model: str) -> tuple[str, int]:
        station = self.store.station_of(link.id)
        registration = self.registry.of(link)
        decision = self.apply(
            decisions.boot(
                link.id, f"{vendor} {model}", station, registration.lookup_failed, self.settings.heartbeat_interval_s
            )
        )
        self.attachments.booted(link, station)
        return decision.reply

    def resumed(self, link: ChargePoint) -> None:
        """A message other than BootNotification on the connection (see :meth:`Attachments.resumed`)."""
        self.attachments.resumed(link)

    def on_status(self, link: ChargePoint, connector: int, status: str, error_code: str) -> None:
        check_range("connectorId", connector, INT32)
        self.live.status(link.id, connector, status, error_code)

    async def vouch(self, link: ChargePoint, id_tag: str, connector: int | None = None) -> str | None:
        """Before Authorize / StartTransaction is decided: an idTag to be asked of the roaming eMSPs
        (:func:`~core_client.sessions.cards.ask_roaming`; not in proxy mode, where such tags are the CSMS's) is
        asked, within the charge point's response time (:mod:`core_client.ocpi.cpo.taps`). None: decide as
        usual (vouched for as a card of an eMSP's mandate, or none of theirs); else the status refusing it."""
        roaming = self.cards.roaming_tokens
        if roaming is None or self.proxied or not await self.handle(self._roaming_tag, link, id_tag, connector):
            return None
        return await roaming.vouch(link.id, connector, id_tag)

    def _roaming_tag(self, link: ChargePoint, id_tag: str, connector: int | None) -> bool:
        """Whether to ask the roaming eMSPs about ``id_tag`` (read on the store's thread: sessions and cards)."""
        s = self.lookup.of_tag(id_tag, link.id)
        return ask_roaming(
            id_tag, s is not None, None if s is not None else self.cards.find(id_tag, link.id, connector)
        )

    def authorize(self, link: ChargePoint, id_tag: str) -> str:
        s = self.lookup.of_tag(id_tag, link.id)
        card = self.cards.find(id_tag, link.id) if s is None else None
        return self.cards.authorize(link, card) if card is not None else decisions.authorize(s, link.id)

    def chain_tag(self, id_tag: str | None) -> bool:
        """Whether the chain is the authority over ``id_tag`` (proxy mode): an EV Network tag or a linked card
        (run it on the store's thread: a card may be in the database)."""
        return is_network_tag(id_tag) or self.cards.find(id_tag) is not None

    def start_transaction(
        self, link: ChargePoint, connector: int, id_tag: str, meter_start: int, decided_id: int | None = None
    ) -> tuple[int, str]:
        """Hand out a transaction id (``decided_id`` when it was decided upstream, in proxy mode); for the
        session named by the tag, queue ``start`` on chain."""
        check_range("connectorId", connector, INT32)
        check_range("meterStart", meter_start, INT64, -INT64)  # any value SQLite holds
        s = self.lookup.of_tag(id_tag, link.id)
        repeated = decisions.repeated_start(s, link.id, connector)
        if repeated is not None:
            return self.apply(repeated).reply
        card = self.cards.find(id_tag, link.id, connector) if s is None else None
        if card is not None:
            station_id = self.registry.of(link).station_id
            return self.cards.start(link, station_id, connector, id_tag, meter_start, card, decided_id)
        why = decisions.start_refusal(s, link.id, connector, meter_start) if meter_start >= 0 else "negative meterStart"
        with self.store.transaction():
            owner = s.session_id if s is not None and why is None else None
            tx_id = self.store.new_transaction(link.id, connector, id_tag, owner, meter_start, decided_id)
            if s is None and self.proxied and not is_network_tag(id_tag):
                decision = decisions.observe_start(link.id, connector, id_tag, tx_id)
            elif s is None or why is not None:
                decision = decisions.refuse_start(link.id, connector, id_tag, tx_id, why or "")
            else:
                decision = decisions.start(s, tx_id, meter_start, time.time())
            return self.apply(decision, answering=link).reply

    def meter_values(self, link: ChargePoint, connector: int, transaction_id: int | None, values: list) -> None:
        """Track energy in memory; when the budget is used up, mark the session to be stopped."""
        check_range("connectorId", connector, INT32)
        check_range("transactionId", transaction_id, INT32)
        s = self.lookup.for_meter(link.id, connector, transaction_id)
        if s is not None and self.meter_keys.get(
            s.station_id, self.registry.meter_key_lookup is not None
        ):  # unknown: keep
            self.meter_records.begin(link.id, s, values)
        if s is None or s.state not in RUNNING:
            return
        self.live.reported_power(s.session_id, active_power_w(values, self._max_power_w))
        energy = energy_register_wh(values)
        if energy is None:
            return
        reading = decisions.meter_reading(s, energy, time.time(), self.settings.budget_margin, self._max_power_w)
        if reading is None:
            return
        record, decision = reading
        self.live.reading(record)
        if decision.actions:
            self.apply(decision)
            self.reconciler.wake()

    def stop_transaction(
        self,
        link: ChargePoint,
        transaction_id: int,
        meter_stop: int,
        reason: str | None,
        transaction_data: list | None = None,
        ended_at: int | None = None,
    ) -> str:
        """Record the stop and queue ``settle`` (on the signed records at a station with a meter key); a
        repeated StopTransaction changes nothing. ``ended_at`` (unix seconds; OCPI: the CDR's end): the settle
        bills the time until then (settleAt), not until its block."""
        check_range("transactionId", transaction_id, INT32)
        check_range("meterStop", meter_stop, INT64, -INT64)
        self.lookup.forget(transaction_id)
        tx = self.store.get_transaction(transaction_id)
        if tx is None or tx.charge_point_id != link.id:
            owner = f"of {tx.charge_point_id}" if tx else "unknown"
            log.warning("%s: StopTransaction for transaction %d (%s) ignored", link.id, transaction_id, owner)
            return decisions.INVALID
        s = self.session(tx.session_id) if tx.session_id is not None else None
        if s is None:  # not ours, or a card's whose open is not mined yet (settled once it is)
            if tx.meter_stop is None:
                self.store.finish_transaction(transaction_id, meter_stop, reason, ended_at)
            return decisions.ACCEPTED if self.cards.opening(transaction_id) else decisions.INVALID
        key = self.meter_keys.get(s.station_id, None if self.registry.meter_key_lookup else b"")
        if key != b"" and s.state in RUNNING and tx.meter_stop is None:  # a repeat does not replace the records
            self.meter_records.at_stop(link.id, s, transaction_data or [])
        if key is None and s.state in RUNNING:  # neither plain nor signed before the chain says which
            if tx.meter_stop is None:
                self.store.finish_transaction(transaction_id, meter_stop, reason, ended_at)
                self.lookup.awaiting_key(s.session_id)
                log.warning(
                    "session %s: stopped at %d Wh; waiting for station %d's meter key on chain to settle it",
                    hex_session_id(s.session_id),
                    meter_stop,
                    s.station_id,
                )
            self.reconciler.wake()
            return decisions.ACCEPTED
        return self._stop(s, transaction_id, meter_stop, reason, key or b"", time.time(), ended_at)

    def settle_stopped(self, s: SessionRecord, key: bytes) -> None:
        """Decide a session whose StopTransaction waited for its station's meter key (now ``key``)."""
        tx = self.store.get_transaction(s.transaction_id) if s.transaction_id is not None else None
        if tx is not None and tx.meter_stop is not None and s.state in RUNNING:
            at = tx.stopped_at or time.time()
            self._stop(s, tx.transaction_id, tx.meter_stop, tx.stop_reason, key, at, tx.ended_at)

    def stopped_awaiting_key(self) -> list[SessionRecord]:
        """Running sessions whose charge point has stopped the transaction: their settle waits for the key."""
        return self.lookup.stopped_awaiting_key(self.claims.shared)

    def _stop(
        self,
        s: SessionRecord,
        transaction_id: int,
        meter_stop: int,
        reason: str | None,
        key: bytes,
        at: float,
        ended_at: int | None = None,
    ) -> str:
        records = self.store.meter_records(s.session_id)
        decision = decisions.stop(s, meter_stop, reason, at, key, records, self._max_power_w, ended_at)
        with self.store.transaction():
            if any(isinstance(a, SaveSession) for a in decision.actions):
                self.store.finish_transaction(transaction_id, meter_stop, reason, ended_at)
            return self.apply(decision).reply

    def stop_recorded(self, s: SessionRecord) -> None:
        """A session recorded after its charge point had stopped it (a card's open mined late): its stop is
        decided now, or once its station's meter key is known, as any stop."""
        key = self.meter_keys.get(s.station_id, None if self.registry.meter_key_lookup else b"")
        if key is not None:
            self.settle_stopped(s, key)
            return
        self.lookup.awaiting_key(s.session_id)
        self.reconciler.wake()

    def forget_transaction(self, transaction_id: int) -> None:
        """Drop the cached owner of a transaction (its session was just recorded)."""
        self.lookup.forget(transaction_id)

    # --------------------------------------------------------------- helpers

    def connector_busy(self, s: SessionRecord) -> bool:
        """Whether another session or the charge point's status holds the connector of ``s``."""
        others = self.store.sessions_in(HOLDS_CONNECTOR, s.charge_point_id)
        return remote_calls.connector_busy(s, others, self.live.connector_status(s.charge_point_id, s.connector))

    def wake(self) -> None:
        """Run the reconcile loop now (new event, new session, stop wanted)."""
        self.reconciler.wake()

    async def run(self) -> None:
        """The reconcile loop (RemoteStart, RemoteStop, start timeouts) until :meth:`close`."""
        await self.reconciler.run()

    async def close(self) -> None:
        """Stop the loop and the tasks talking to charge points; write the last meter readings."""
        await self.reconciler.close()
        await self.handle(self.flush)
