"""Following sessions on chain: a session's status, live progress while it runs, and the account's
history, all from contract storage and the escrow's events (no off-chain database)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import fields
from typing import Any, TypeVar

from web3 import Web3

from ev_network.contracts import Escrow, Session, SessionState
from ev_network.deployment import Deployment
from ev_network.errors import chain_errors
from ev_network.events import SESSION_ENDINGS, ChainEvent, EventReader, indexed_topic
from ev_network.session_ids import driver_of
from ev_network.session_view import SESSION_EVENTS, SessionEventsIncomplete, SessionView, fold
from wallet.errors import SessionNotFound, WalletError
from wallet.models import HistoryEntry, Phase, Progress, SessionStatus, session_name

FINAL_EVENTS = {name: state.name.lower() for name, state in SESSION_ENDINGS.items()}  # event -> outcome
_STATE_PHASES = frozenset({"requested", "settled", "cancelled", "expired"})
# how far a state is along requested (1) > active (2) > ended (3): status takes the further of storage and events
_PROGRESS = {SessionState.REQUESTED: 1, SessionState.ACTIVE: 2, SessionState.SETTLED: 3}
_PROGRESS |= {SessionState.CANCELLED: 3, SessionState.EXPIRED: 3, SessionState.CLOSED: 3}
M = TypeVar("M", SessionStatus, HistoryEntry)
_ID_CHUNK = 200  # session ids per log query (an OR over topic 1)


class SessionTracker:
    """Reads sessions of one escrow. ``driver`` (an address) scopes :meth:`history`."""

    def __init__(self, w3: Web3, deployment: Deployment, escrow: Escrow, driver: str) -> None:
        self.w3 = w3
        self.deployment = deployment
        self.escrow = escrow
        self.driver = driver
        self.events = EventReader(w3, deployment.escrow)
        self._block_times: dict[int, int] = {}

    # ------------------------------------------------------------------ status
    def status(self, session_id: int) -> SessionStatus:
        """The session's state and times now; SessionNotFound if it does not exist. A session whose lane
        moved on (Closed on chain) shows how it ended: settled, cancelled or expired, from its events."""
        session = self._session(session_id)  # storage first: the events up to the head then cover it
        head = self.events.head()
        events = self.events.fetch(self.deployment.deployment_block, head, SESSION_EVENTS, [indexed_topic(session_id)])
        try:
            return self._status(session, fold(events, self._block_time))
        except SessionEventsIncomplete:
            raise WalletError(
                f"session {session_name(session_id, self.driver)} exists, but its SessionRequested event is not "
                f"in blocks {self.deployment.deployment_block} to {head}: is the deployment block right?"
            ) from None

    def outcome(self, session_id: int) -> str:
        """How an ended session ended (settled, cancelled, expired), from its events; its stored state
        name if no final event is found."""
        session = self._session(session_id)
        if session.state in (SessionState.REQUESTED, SessionState.ACTIVE):
            return session.state.name.lower()
        ended = self.events.outcome(session_id, self.deployment.deployment_block)
        return (ended or session.state).name.lower()

    def watch(self, session_id: int, poll_interval: float = 1.0, timeout: float | None = None) -> Iterator[Progress]:
        """Progress updates until the session ends: ``requested``, ``started``, then ``charging`` (once
        per poll, with the elapsed time), ``stopping`` after a stop request, and finally ``settled``,
        ``cancelled`` or ``expired``. Polls the chain; reads new events only. Stops early (without a
        final update) once ``timeout`` seconds have passed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        events: list[ChainEvent] = []
        next_block = self.deployment.deployment_block
        last: Phase | None = None
        started_shown = False
        while True:
            session = self._session(session_id)
            head = self.events.head()
            if head >= next_block:
                events += self.events.fetch(next_block, head, SESSION_EVENTS, [indexed_topic(session_id)])
                next_block = head + 1
            try:
                status: SessionStatus | None = self._status(session, fold(events, self._block_time))
            except SessionEventsIncomplete:
                status = None
            final_seen = any(e.name in FINAL_EVENTS for e in events)
            phase = status.phase if status is not None else None
            if status is not None and phase is not None and (phase not in FINAL_EVENTS.values() or final_seen):
                if status.started_at is not None and not started_shown:
                    started_shown = True
                    yield Progress(session_id=session_id, phase="started", elapsed_s=0, status=status)
                if phase != last or phase in ("charging", "stopping"):
                    yield Progress(session_id=session_id, phase=phase, elapsed_s=self._elapsed(status), status=status)
                last = phase
                if phase in FINAL_EVENTS.values():
                    return
            if deadline is not None and time.monotonic() > deadline:
                return
            time.sleep(poll_interval)

    async def awatch(
        self, session_id: int, poll_interval: float = 1.0, timeout: float | None = None
    ) -> AsyncIterator[Progress]:
        """:meth:`watch` for asyncio: each poll runs in a worker thread."""
        iterator = self.watch(session_id, poll_interval, timeout)
        done = object()
        while True:
            update = await asyncio.to_thread(next, iterator, done)
            if update is done:
                return
            yield update

    # ----------------------------------------------------------------- history
    def history(self) -> list[HistoryEntry]:
        """The driver's sessions in the order they were opened: SessionRequested filtered by the indexed
        driver topic, joined by session id with what happened next."""
        head = self.events.head()
        start = self.deployment.deployment_block
        requested = self.events.fetch(start, head, ["SessionRequested"], [None, indexed_topic(self.driver)])
        ids = [e.args["sessionId"] for e in requested]
        later: dict[int, list[ChainEvent]] = {i: [] for i in ids}
        for offset in range(0, len(ids), _ID_CHUNK):
            topics = [indexed_topic(i) for i in ids[offset : offset + _ID_CHUNK]]
            names = ["SessionStarted", *FINAL_EVENTS]
            for event in self.events.fetch(start, head, names, [topics]):
                later[event.args["sessionId"]].append(event)
        return [self._history_entry(fold([req, *later[req.args["sessionId"]]], self._block_time)) for req in requested]

    # ---------------------------------------------------------------- helpers
    def _session(self, session_id: int) -> Session:
        session = self.escrow.get_session(session_id)
        if session.state is SessionState.NONE:
            raise SessionNotFound(f"there is no session {session_name(session_id, self.driver)}")
        return session

    def _status(self, session: Session, view: SessionView) -> SessionStatus:
        """The status from the session's events (the record: storage keeps only a lane's latest session)
        and its stored state, whichever is further along (a block may separate the two reads)."""
        state = view.state if _PROGRESS[view.state] >= _PROGRESS.get(session.state, 0) else session.state
        name = state.name.lower()
        if state is SessionState.ACTIVE:
            phase: Phase | None = "stopping" if view.stop_requested else "charging"
        else:
            phase = name if name in _STATE_PHASES else None  # type: ignore[assignment]
        started = view.started_at
        return _from_view(
            SessionStatus,
            view,
            state=name,
            phase=phase,
            driver=driver_of(session.session_id),
            cancel_possible_at=view.opened_at + self.deployment.start_timeout,
            reclaim_possible_at=self.reclaim_possible_at(started),
        )

    def reclaim_possible_at(self, started_at: int | None) -> int | None:
        """When the driver can reclaim the deposit of a session started at ``started_at`` (None: not started)."""
        return started_at + self.deployment.max_duration + self.deployment.reclaim_grace if started_at else None

    def _history_entry(self, view: SessionView) -> HistoryEntry:
        return _from_view(HistoryEntry, view, state=view.state.name.lower())

    def _elapsed(self, status: SessionStatus) -> int | None:
        if status.started_at is None:
            return None
        if status.ended_at is not None:
            return status.ended_at - status.started_at
        return max(0, self.chain_time() - status.started_at)

    def chain_time(self) -> int:
        """The chain's clock: the latest block's time, or the wall clock if blocks lag behind it."""
        with chain_errors(self.w3):
            latest = int(self.w3.eth.get_block("latest")["timestamp"])
        return max(latest, int(time.time()))

    def _block_time(self, block_number: int) -> int:
        if block_number not in self._block_times:
            with chain_errors(self.w3):
                self._block_times[block_number] = int(self.w3.eth.get_block(block_number)["timestamp"])
        return self._block_times[block_number]


def _from_view(model: type[M], view: SessionView, **extra: Any) -> M:
    """``model`` filled from the view's fields of the same name (the cancel reason as text), then ``extra``."""
    shared = {f.name: getattr(view, f.name) for f in fields(view) if f.name in model.model_fields}
    shared["cancel_reason"] = _cancel_reason(view)
    return model(**(shared | extra))


def _cancel_reason(view: SessionView) -> str | None:
    """Why a cancelled session ended: the contract's reason, or ``operator_refunded`` for a started session the
    operator refunded in full (SessionRefunded carries no reason: it is the only way an Active session is
    cancelled)."""
    if view.cancel_reason is not None:
        return view.cancel_reason.name.lower()
    return "operator_refunded" if view.state is SessionState.CANCELLED else None
