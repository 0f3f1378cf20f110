"""The reconcile loop: the calls to charge points that sessions wait for.

One pass (:meth:`Reconciler.reconcile`) reads from the store the sessions that wait for something
from us and asks :mod:`core_client.sessions.decisions` what to do about each:

- REQUESTED: RemoteStart, or reject (station offline after the reconnect grace, connector busy, not
  Requested on chain);
- REMOTE_START_SENT: the RemoteStart again if it was not sent over the charge point's current
  connection (a restart between recording it and sending it, or a reconnect): the same idTag, so a
  charge point that had started answers with the same transaction; else the start timeout;
- STARTING/CHARGING with a stop wanted (driver, budget): RemoteStop, retried until it is answered;
- HELD: every :data:`HELD_CHECKS` polls, its state on chain: one the driver reclaimed is closed;
- stopped by the charge point while its station's meter key could not be read (a restart while the
  chain was down): every :data:`HELD_CHECKS` polls, the key; once read, the stop is decided (signed or
  plain path), never before.

The loop runs on a wake-up (new session, stop wanted, boot) or every ``reconcile_poll_s`` (half a
second), and writes the live meter readings of the session service on each pass.

Several instances on one PostgreSQL each run this loop: the leader's event watcher writes a new session or
a stop wish to the sessions table and wakes the instance that holds the charge point's socket (a
PostgreSQL notification, :mod:`core_client.storage.notices`; its poll finds it too), which makes the call; the leader acts for the charge points no live instance holds (rejects,
start timeouts) and alone looks at held sessions and meter keys on chain (see
:meth:`core_client.sessions.service.SessionService.acting_for`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Protocol

from ocpp.v16.enums import RemoteStartStopStatus

from core_client.config import Settings
from core_client.sessions import decisions, remote_calls
from core_client.sessions.actions import Decision, SendRemoteStart
from core_client.sessions.machine import SessionRecord, State
from core_client.sessions.registry import ChargePoint, CommandFailed
from core_client.storage.store import Store
from ev_network.contracts import SessionState
from ev_network.session_ids import hex_session_id

log = logging.getLogger("core_client.sessions")
HELD_CHECKS = 10  # poll intervals between looks at held sessions on chain
STOPPABLE = frozenset({State.STARTING, State.CHARGING})  # a stop wanted: the RemoteStop
ChainStateLookup = Callable[[int], Awaitable[SessionState | None]]


def waits_for_holder(s: SessionRecord) -> bool:
    """Whether the instance holding ``s``'s charge point has a call to make for it now (what a pass looks
    for first): the RemoteStart (or the reject) of a new session, the RemoteStop of one whose stop is wanted."""
    return s.state is State.REQUESTED or (s.state in STOPPABLE and s.stop_wanted is not None)


class Service(Protocol):
    """What the loop needs of :class:`core_client.sessions.service.SessionService`."""

    settings: Settings
    store: Store
    links: dict[str, ChargePoint]
    leading: bool

    def apply(self, decision: Decision) -> Decision: ...
    def session(self, session_id: int) -> SessionRecord | None: ...
    def online(self, cp_id: str) -> bool: ...
    def connector_busy(self, s: SessionRecord) -> bool: ...
    def flush(self) -> None: ...
    async def meter_key(self, station_id: int, refresh: bool = False) -> bytes | None: ...
    def stopped_awaiting_key(self) -> list[SessionRecord]: ...
    def acting_for(self) -> Callable[[str], bool]: ...
    def settle_stopped(self, s: SessionRecord, key: bytes) -> None: ...


class Reconciler:
    """Drives RemoteStart, RemoteStop and start timeouts for one session service."""

    def __init__(self, service: Service, chain_state: ChainStateLookup | None = None) -> None:
        self.service, self.chain_state = service, chain_state
        self.settings, self.store = service.settings, service.store
        self.thread = service.store.thread
        self.started = time.time()
        self._wake = asyncio.Event()
        self._inflight: set[int] = set()
        self._retry_at: dict[int, float] = {}
        self._sent_over: dict[int, ChargePoint] = {}  # session -> the connection its RemoteStart went out on
        self._held_check_at = 0.0  # next look at held sessions on chain
        self._tasks: set[asyncio.Task] = set()
        self._stopping = False

    def wake(self) -> None:
        self.thread.to_loop(self._wake.set)

    async def run(self) -> None:
        """Reconcile until :meth:`close` (each pass on the store's thread)."""
        while not self._stopping:
            try:
                await self.thread.run(self._pass)
            except Exception:
                log.exception("reconcile failed; retrying")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.settings.reconcile_poll_s)
            self._wake.clear()

    def _pass(self) -> None:
        self.reconcile()
        self.service.flush()

    def reconcile(self) -> None:
        """One pass over the sessions that wait for something from us."""
        now = time.time()
        ours = self.service.acting_for()
        for s in self.store.sessions_in({State.REQUESTED}):
            if ours(s.charge_point_id) and self._free(s.session_id, now):
                self._run(s.session_id, self._start(s))
        in_grace = now - self.started < self.settings.reconnect_grace_s
        waiting = self.store.sessions_in({State.REMOTE_START_SENT})
        self._sent_over = {
            s.session_id: self._sent_over[s.session_id] for s in waiting if s.session_id in self._sent_over
        }
        for s in waiting:
            link = self.service.links.get(s.charge_point_id)
            if s.session_id in self._inflight or not ours(s.charge_point_id):
                continue
            if (
                link is not None
                and self.service.online(s.charge_point_id)
                and self._sent_over.get(s.session_id) is not link
            ):
                self._run(s.session_id, self._start(s, again=True))
            elif (s.session_id in self._sent_over or not in_grace) and (
                timed_out := remote_calls.start_timed_out(s, now, self.settings.start_timeout_s)
            ) is not None:
                self.service.apply(timed_out)
        for s in self.store.sessions_in(STOPPABLE, stop_wanted=True):
            if self.service.online(s.charge_point_id) and self._free(s.session_id, now):
                self._run(s.session_id, self._stop(s))
        if self.chain_state is not None and self.service.leading and now >= self._held_check_at:
            self._held_check_at = now + HELD_CHECKS * self.settings.poll_interval_s
            for s in self.service.stopped_awaiting_key():
                if self._free(s.session_id, now):
                    self._run(s.session_id, self._settle_stopped(s))
            for s in self.store.sessions_in({State.HELD}):
                if self._free(s.session_id, now):
                    self._run(s.session_id, self._check_held(s.session_id))

    # The coroutines below talk to charge points and the chain on the loop; what they read, decide and
    # write in between runs on the store's thread, each stretch whole (as one input).

    async def _start(self, s: SessionRecord, again: bool = False) -> None:
        """RemoteStart for a new session (or again, see the module), or reject it."""
        link = self.service.links.get(s.charge_point_id)
        key = await self.service.meter_key(s.station_id)
        if key is None:  # the chain cannot say yet which idTag the station's meter signs: wait
            self._retry_at[s.session_id] = time.time() + 1
            return
        signed = bool(key)
        if again and link is not None:

            def rule(current: SessionRecord, now: float) -> Decision | None:
                if current.state is not State.REMOTE_START_SENT:
                    return Decision()  # started, rejected or timed out meanwhile
                return remote_calls.remote_start(current.update(remote_start_at=now), again=True, signed=signed)

        else:
            online = link is not None and self.service.online(s.charge_point_id)
            in_grace = time.time() - self.started < self.settings.reconnect_grace_s
            busy = online and await self.thread.run(self.service.connector_busy, s)
            state = await self.chain_state(s.session_id) if online and not busy and self.chain_state else None

            def rule(current: SessionRecord, now: float) -> Decision | None:
                if current.state is not State.REQUESTED:
                    return Decision()
                return remote_calls.dispatch(current, online, in_grace, busy, state, now, signed=signed)

        decision = await self.thread.run(self._decide_start, s.session_id, rule, link)
        send = next((a for a in decision.actions if isinstance(a, SendRemoteStart)), None) if decision else None
        if send is None or link is None:
            return
        try:
            status = await link.remote_start(send.connector, send.id_tag)
        except CommandFailed as error:
            log.warning(
                "session %s: RemoteStart %s (%s); waiting for the start timeout",
                hex_session_id(s.session_id),
                "got no answer" if error.sent else "was not sent",
                error,
            )
            return
        accepted = status == RemoteStartStopStatus.accepted
        answered = (accepted, again, time.time())
        await self.thread.run(self._answered, s.session_id, remote_calls.remote_start_answered, *answered)

    def _decide_start(
        self, session_id: int, rule: Callable[[SessionRecord, float], Decision | None], link: ChargePoint | None
    ) -> Decision | None:
        """Apply ``rule`` to the session as it is now (one input: what the charge point and the chain said
        before is its argument, the session is read here). None: wait a second (the station may be back)."""
        current = self.service.session(session_id)
        decision = rule(current, time.time()) if current is not None else Decision()
        if decision is None:
            self._retry_at[session_id] = time.time() + 1
            return None
        self.service.apply(decision)
        if link is not None and any(isinstance(a, SendRemoteStart) for a in decision.actions):
            self._sent_over[session_id] = link
        return decision

    def _answered(self, session_id: int, rule: Callable[..., Decision], *answer: Any) -> None:
        """Apply ``rule(session, *answer)``: what a charge point's answer to our call means for the session."""
        current = self.service.session(session_id)
        if current is not None:
            self.service.apply(rule(current, *answer))

    async def _settle_stopped(self, s: SessionRecord) -> None:
        """A session stopped while its station's meter key could not be read: settle it once the key is read."""
        key = await self.service.meter_key(s.station_id)
        if key is None:
            self._retry_at[s.session_id] = time.time() + 1
            return
        await self.thread.run(self._settle_with, s.session_id, key)

    def _settle_with(self, session_id: int, key: bytes) -> None:
        current = self.service.session(session_id)
        if current is not None:
            self.service.settle_stopped(current, key)

    async def _check_held(self, session_id: int) -> None:
        """A held session the driver reclaimed (or cancelled) on chain is closed (no longer held)."""
        assert self.chain_state is not None
        chain_state = await self.chain_state(session_id)
        await self.thread.run(self._answered, session_id, decisions.closed_on_chain, chain_state, time.time())

    async def _stop(self, s: SessionRecord) -> None:
        link = self.service.links.get(s.charge_point_id)
        current = await self.thread.run(self._stop_sent, s.session_id) if link is not None else None
        if link is None or current is None:
            return
        try:
            status = await link.remote_stop(current.transaction_id or 0)
        except CommandFailed as error:
            log.warning("session %s: RemoteStop failed (%s); retrying", hex_session_id(s.session_id), error)
            self._retry_at[s.session_id] = time.time() + 5
            return
        accepted = status == RemoteStartStopStatus.accepted
        await self.thread.run(self._answered, s.session_id, remote_calls.remote_stop_answered, accepted)

    def _stop_sent(self, session_id: int) -> SessionRecord | None:
        current = self.service.session(session_id)
        if current is not None:
            self.service.apply(remote_calls.remote_stop(current))
        return current

    # ------------------------------------------------------------------ tasks

    def _free(self, session_id: int, now: float) -> bool:
        return session_id not in self._inflight and self._retry_at.get(session_id, 0) <= now

    def _run(self, session_id: int, coroutine: Coroutine[Any, Any, None]) -> None:
        self._inflight.add(session_id)
        self.spawn(coroutine, lambda: self._inflight.discard(session_id))

    def spawn(self, coroutine: Coroutine[Any, Any, Any], done: Callable[[], None] | None = None) -> None:
        """Run ``coroutine`` as a task on the loop (soon, when called on the store's thread); ``done()`` after."""
        self.thread.to_loop(self._task, coroutine, done)

    def _task(self, coroutine: Coroutine[Any, Any, Any], done: Callable[[], None] | None) -> None:
        if self._stopping:
            coroutine.close()
            if done is not None:
                done()
            return
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        if done is not None:
            task.add_done_callback(lambda _: done())

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
