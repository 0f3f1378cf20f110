"""The Core Client's view of a charging session: its state machine and its budget. Pure: no I/O.

States (the only place they are defined; :data:`TRANSITIONS` lists every allowed move)::

    REQUESTED --remote_start_sent--> REMOTE_START_SENT --start_transaction--> STARTING
        |                                  |                                    | start_mined
        +--reject_queued--> REJECTING <----+ (CP rejected, offline, busy,        v
                               | reject_mined  start timeout)               CHARGING
                               v                                                | remote_stop_sent
                            REJECTED             STARTING / CHARGING / STOPPING v
                                                 --stop_transaction-->  STOPPED <-- STOPPING
                                                 --stop_held--> HELD       | settle_mined
                                                 (implausible meterStop)   v
                                                   | reclaimed          SETTLED
                                                   v (on chain)
                                                 RECLAIMED

- REQUESTED: SessionRequested read from the chain; nothing sent to the charge point yet.
- REMOTE_START_SENT: RemoteStartTransaction sent, waiting for the charge point's StartTransaction.
- STARTING: StartTransaction received and answered, ``start`` queued for the chain.
- CHARGING: ``start`` mined. STOPPING: RemoteStopTransaction sent (driver's requestStop or budget).
- STOPPED: StopTransaction received and answered, ``settle`` queued. SETTLED: ``settle`` mined.
- HELD: StopTransaction received, but its meterStop is not plausible (see
  :func:`core_client.sessions.plausibility.trusted_meter_stop`): nothing is settled until an operator looks at it.
  A driver's stop while held changes nothing (the charge has stopped) but is logged and noted.
- The operator decides a HELD session (``core-client sessions settle-held|reject-held``): HELD --held_settled-->
  STOPPED, ``settle`` queued at the last trusted reading; or HELD --held_rejected--> REJECTING, the escrow's
  ``refundActive`` queued (the whole deposit back, nothing paid), then REJECTED when mined
  (:mod:`core_client.sessions.held`).
- RECLAIMED: a HELD session the driver reclaimed (or cancelled) on chain: the deposit went back, nothing
  is left to settle (the reconcile loop looks at held sessions on chain, :func:`core_client.sessions.decisions.closed_on_chain`).
- REJECTING / REJECTED: ``reject`` (or a held session's ``refundActive``) queued / mined (full refund).
- FAILED: a chain job failed for good (e.g. the driver cancelled meanwhile); needs an operator's look.
  The operator's Retry (the dashboard) queues the job again and moves the session back to the state
  that job needs: FAILED --start_retried--> STARTING, --settle_retried--> STOPPED,
  --reject_retried--> REJECTING (:func:`job_retried` names the event of a job kind).

A StopTransaction can arrive before ``start`` is mined (STARTING -> STOPPED): the chain worker only
sends a settle once the session's start is mined, so the order on chain is always start, settle.

Budget rule (pre-pay enforcement): the charge is stopped when the cost so far reaches the deposit
less the margin, **or** when one more meter interval like the last one would push the cost past the
deposit. The second rule stops one interval early rather than one interval late, so the energy the
CPO delivers but cannot bill (cost is capped at the deposit on chain) stays near zero.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any

from ev_network.pricing import Tariff, price
from ev_network.session_ids import hex_session_id

PPM = 1_000_000


class Name(str, Enum):
    """A str enum that prints as its value, like ``ocpp``'s enums (``f"{State.CHARGING}"`` is "charging")."""

    def __str__(self) -> str:
        return self.value


class State(Name):
    REQUESTED = "requested"
    REMOTE_START_SENT = "remote_start_sent"
    STARTING = "starting"
    CHARGING = "charging"
    STOPPING = "stopping"
    STOPPED = "stopped"
    SETTLED = "settled"
    REJECTING = "rejecting"
    REJECTED = "rejected"
    HELD = "held"
    RECLAIMED = "reclaimed"
    FAILED = "failed"


class Event(Name):
    """What moves a session from one state to the next."""

    REMOTE_START_SENT = "remote_start_sent"
    START_TRANSACTION = "start_transaction"
    START_MINED = "start_mined"
    REMOTE_STOP_SENT = "remote_stop_sent"
    STOP_TRANSACTION = "stop_transaction"
    STOP_HELD = "stop_held"
    RECLAIMED = "reclaimed"
    HELD_SETTLED = "held_settled"  # the operator settles a held session at its last trusted reading
    HELD_REJECTED = "held_rejected"  # the operator refunds a held session in full (the escrow's refundActive)
    SETTLE_MINED = "settle_mined"
    REJECT_QUEUED = "reject_queued"
    REJECT_MINED = "reject_mined"
    JOB_FAILED = "job_failed"
    START_RETRIED = "start_retried"
    SETTLE_RETRIED = "settle_retried"
    REJECT_RETRIED = "reject_retried"


S, E = State, Event
TRANSITIONS: dict[tuple[State, Event], State] = {
    (S.REQUESTED, E.REMOTE_START_SENT): S.REMOTE_START_SENT,
    (S.REQUESTED, E.REJECT_QUEUED): S.REJECTING,
    (S.REQUESTED, E.START_TRANSACTION): S.STARTING,
    (S.REMOTE_START_SENT, E.START_TRANSACTION): S.STARTING,
    (S.REMOTE_START_SENT, E.REJECT_QUEUED): S.REJECTING,
    (S.STARTING, E.START_MINED): S.CHARGING,
    (S.STARTING, E.REMOTE_STOP_SENT): S.STOPPING,
    (S.CHARGING, E.REMOTE_STOP_SENT): S.STOPPING,
    (S.STOPPING, E.START_MINED): S.STOPPING,
    (S.STARTING, E.STOP_TRANSACTION): S.STOPPED,
    (S.CHARGING, E.STOP_TRANSACTION): S.STOPPED,
    (S.STOPPING, E.STOP_TRANSACTION): S.STOPPED,
    (S.STARTING, E.STOP_HELD): S.HELD,
    (S.CHARGING, E.STOP_HELD): S.HELD,
    (S.STOPPING, E.STOP_HELD): S.HELD,
    (S.STOPPED, E.START_MINED): S.STOPPED,
    (S.HELD, E.START_MINED): S.HELD,
    (S.HELD, E.RECLAIMED): S.RECLAIMED,
    (S.HELD, E.HELD_SETTLED): S.STOPPED,
    (S.HELD, E.HELD_REJECTED): S.REJECTING,
    (S.STOPPED, E.SETTLE_MINED): S.SETTLED,
    (S.REJECTING, E.REJECT_MINED): S.REJECTED,
    (S.STARTING, E.JOB_FAILED): S.FAILED,
    (S.CHARGING, E.JOB_FAILED): S.FAILED,
    (S.STOPPING, E.JOB_FAILED): S.FAILED,
    (S.STOPPED, E.JOB_FAILED): S.FAILED,
    (S.HELD, E.JOB_FAILED): S.FAILED,
    (S.REJECTING, E.JOB_FAILED): S.FAILED,
    (S.FAILED, E.START_RETRIED): S.STARTING,
    (S.FAILED, E.SETTLE_RETRIED): S.STOPPED,
    (S.FAILED, E.REJECT_RETRIED): S.REJECTING,
}

#: States in which the session holds its connector (a second session there is ConnectorBusy).
HOLDS_CONNECTOR = frozenset({S.REQUESTED, S.REMOTE_START_SENT, S.STARTING, S.CHARGING, S.STOPPING})
#: States in which the charge point is (or is about to be) charging for the session.
RUNNING = frozenset({S.STARTING, S.CHARGING, S.STOPPING})
#: States after StopTransaction: a repeated StopTransaction gets the same answer and nothing else.
FINISHED = frozenset({S.STOPPED, S.HELD, S.SETTLED, S.RECLAIMED})
#: States a session does not leave (FAILED only by the operator's retry of its job).
TERMINAL = frozenset({S.SETTLED, S.REJECTED, S.RECLAIMED, S.FAILED})


class InvalidTransition(Exception):
    """An event that the session's current state does not allow."""

    def __init__(self, session_id: int, state: State, event: Event) -> None:
        super().__init__(f"session {hex_session_id(session_id)}: '{event.value}' not allowed in state {state.value}")
        self.session_id, self.state, self.event = session_id, state, event


def job_retried(kind: str) -> Event:
    """The event of the operator's retry of a failed job of ``kind`` (start, settle, reject)."""
    return Event(f"{kind}_retried")


def can(state: State, event: Event | str) -> bool:
    """Whether ``event`` is allowed in ``state``."""
    return (state, Event(event)) in TRANSITIONS


@dataclass(frozen=True)
class SessionRecord:
    """Everything the Core Client knows about one session. Amounts in token units, energy in Wh."""

    session_id: int
    station_id: int
    charge_point_id: str
    connector: int
    driver: str
    deposit: int
    tariff: Tariff
    tariff_id: int = 0
    state: State = S.REQUESTED
    requested_block: int = 0
    transaction_id: int | None = None
    meter_start: int | None = None
    meter_last: int | None = None
    meter_stop: int | None = None
    stop_reason: str | None = None
    stop_wanted: str | None = None
    reject_reason: int | None = None
    cost: int | None = None
    refund: int | None = None
    last_error: str | None = None
    requested_at: float = 0.0
    remote_start_at: float | None = None
    started_at: float | None = None
    meter_at: float | None = None
    stopped_at: float | None = None
    finished_at: float | None = None
    tag: int | None = None  # the store's short number for the session, set when it is stored
    #: how many times the store has written the session: a write of a record read at an older revision
    #: lost a race with another instance and is refused (:class:`core_client.storage.store.StaleSession`)
    revision: int = 0

    @property
    def id_tag(self) -> str:
        """The idTag naming this session in OCPP messages (a session id is too long for one)."""
        if self.tag is None:
            raise ValueError(f"session {hex_session_id(self.session_id)} has no tag before it is stored")
        return id_tag_for(self.tag)

    @property
    def energy_wh(self) -> int:
        """Energy delivered so far (or in total, once stopped)."""
        if self.meter_start is None:
            return 0
        last = self.meter_stop if self.meter_stop is not None else self.meter_last
        return max(0, (last or self.meter_start) - self.meter_start)

    def apply(self, event: Event | str, **changes: Any) -> SessionRecord:
        """The session after ``event``, with ``changes`` to its fields; raises InvalidTransition."""
        event = Event(event)
        target = TRANSITIONS.get((self.state, event))
        if target is None:
            raise InvalidTransition(self.session_id, self.state, event)
        return replace(self, state=target, **changes)

    def update(self, **changes: Any) -> SessionRecord:
        """The session with field changes that are not state transitions (meter readings, stop wishes)."""
        if "state" in changes:
            raise ValueError("a state changes only through apply(event)")
        return replace(self, **changes)


def id_tag_for(tag: int) -> str:
    """``EVN<tag>``: the idTag the Core Client gives a charge point for an app-started session. OCPP
    allows 20 characters, so the tag is the store's number for the session, not its 256-bit id."""
    return f"EVN{tag}"


SIGNED_ID_TAG = re.compile(r"EV[0-9A-F]{18}")  # ev_network.ocmf.session_id_tag: what a signing meter signs


def is_network_tag(id_tag: str | None) -> bool:
    """Whether an idTag is one the Core Client hands out for a session paid on chain: ``EVN<n>``, or at a
    station with a signing meter ``EV`` and 18 upper-case hex digits. In proxy mode the chain is the
    authority over these; every other tag is the CSMS's."""
    return tag_of_id_tag(id_tag) is not None or (id_tag is not None and SIGNED_ID_TAG.fullmatch(id_tag) is not None)


def tag_of_id_tag(id_tag: str | None) -> int | None:
    """The session tag named by an idTag ``EVN<n>``, or None for any other tag."""
    if not id_tag or not id_tag.startswith("EVN"):
        return None
    digits = id_tag[3:]
    if not digits.isdigit() or len(digits) > 17 or (len(digits) > 1 and digits[0] == "0"):
        return None
    return int(digits)


# ----------------------------------------------------------------- budget


def budget_limit(deposit: int, margin: float) -> int:
    """The cost at which the charge is stopped: deposit x (1 - margin), in integer arithmetic."""
    margin_ppm = round(margin * PPM)
    return deposit * (PPM - margin_ppm) // PPM


def cost_so_far(tariff: Tariff, energy_wh: int, duration_s: float) -> int:
    """What the session would cost if settled now (before the cap at the deposit)."""
    return price(tariff, max(0, energy_wh), max(0, int(duration_s)))


def must_stop(
    tariff: Tariff,
    deposit: int,
    margin: float,
    energy_wh: int,
    duration_s: float,
    last_interval_wh: int = 0,
    last_interval_s: float = 0.0,
) -> bool:
    """True when the charge must be stopped to stay within the deposit (see the module's budget rule)."""
    if cost_so_far(tariff, energy_wh, duration_s) >= budget_limit(deposit, margin):
        return True
    projected = cost_so_far(tariff, energy_wh + max(0, last_interval_wh), duration_s + max(0.0, last_interval_s))
    return projected > deposit
