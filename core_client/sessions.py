"""The Core Client's view of a charging session: its state machine and its budget. Pure: no I/O.

States (the only place they are defined; :data:`TRANSITIONS` lists every allowed move)::

    REQUESTED --remote_start_sent--> REMOTE_START_SENT --start_transaction--> STARTING
        |                                  |                                    | start_mined
        +--reject_queued--> REJECTING <----+ (CP rejected, offline, busy,        v
                               | reject_mined  start timeout)               CHARGING
                               v                                                | remote_stop_sent
                            REJECTED             STARTING / CHARGING / STOPPING v
                                                 --stop_transaction-->  STOPPED <-- STOPPING
                                                                           | settle_mined
                                                                           v
                                                                        SETTLED

- REQUESTED: SessionRequested read from the chain; nothing sent to the charge point yet.
- REMOTE_START_SENT: RemoteStartTransaction sent, waiting for the charge point's StartTransaction.
- STARTING: StartTransaction received and answered, ``start`` queued for the chain.
- CHARGING: ``start`` mined. STOPPING: RemoteStopTransaction sent (driver's requestStop or budget).
- STOPPED: StopTransaction received and answered, ``settle`` queued. SETTLED: ``settle`` mined.
- REJECTING / REJECTED: ``reject`` queued / mined (full refund).
- FAILED: a chain job failed for good (e.g. the driver cancelled meanwhile); needs an operator's look.

A StopTransaction can arrive before ``start`` is mined (STARTING -> STOPPED): the chain worker only
sends a settle once the session's start is mined, so the order on chain is always start, settle.

Budget rule (pre-pay enforcement): the charge is stopped when the cost so far reaches the deposit
less the margin, **or** when one more meter interval like the last one would push the cost past the
deposit. The second rule stops one interval early rather than one interval late, so the energy the
CPO delivers but cannot bill (cost is capped at the deposit on chain) stays near zero.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum

from ev_network.pricing import Tariff, price
from ev_network.session_ids import hex_session_id

PPM = 1_000_000


class State(str, Enum):
    REQUESTED = "requested"
    REMOTE_START_SENT = "remote_start_sent"
    STARTING = "starting"
    CHARGING = "charging"
    STOPPING = "stopping"
    STOPPED = "stopped"
    SETTLED = "settled"
    REJECTING = "rejecting"
    REJECTED = "rejected"
    FAILED = "failed"


S = State
TRANSITIONS: dict[tuple[State, str], State] = {
    (S.REQUESTED, "remote_start_sent"): S.REMOTE_START_SENT,
    (S.REQUESTED, "reject_queued"): S.REJECTING,
    (S.REQUESTED, "start_transaction"): S.STARTING,
    (S.REMOTE_START_SENT, "start_transaction"): S.STARTING,
    (S.REMOTE_START_SENT, "reject_queued"): S.REJECTING,
    (S.STARTING, "start_mined"): S.CHARGING,
    (S.STARTING, "remote_stop_sent"): S.STOPPING,
    (S.CHARGING, "remote_stop_sent"): S.STOPPING,
    (S.STOPPING, "start_mined"): S.STOPPING,
    (S.STARTING, "stop_transaction"): S.STOPPED,
    (S.CHARGING, "stop_transaction"): S.STOPPED,
    (S.STOPPING, "stop_transaction"): S.STOPPED,
    (S.STOPPED, "start_mined"): S.STOPPED,
    (S.STOPPED, "settle_mined"): S.SETTLED,
    (S.REJECTING, "reject_mined"): S.REJECTED,
    (S.STARTING, "job_failed"): S.FAILED,
    (S.CHARGING, "job_failed"): S.FAILED,
    (S.STOPPING, "job_failed"): S.FAILED,
    (S.STOPPED, "job_failed"): S.FAILED,
    (S.REJECTING, "job_failed"): S.FAILED,
}

#: States in which the session holds its connector (a second session there is ConnectorBusy).
HOLDS_CONNECTOR = frozenset({S.REQUESTED, S.REMOTE_START_SENT, S.STARTING, S.CHARGING, S.STOPPING})
#: States in which the charge point is (or is about to be) charging for the session.
RUNNING = frozenset({S.STARTING, S.CHARGING, S.STOPPING})
#: States after StopTransaction: a repeated StopTransaction gets the same answer and nothing else.
FINISHED = frozenset({S.STOPPED, S.SETTLED})
TERMINAL = frozenset({S.SETTLED, S.REJECTED, S.FAILED})


class InvalidTransition(Exception):
    """An event that the session's current state does not allow."""

    def __init__(self, session_id: int, state: State, event: str) -> None:
        super().__init__(f"session {hex_session_id(session_id)}: '{event}' not allowed in state {state.value}")
        self.session_id, self.state, self.event = session_id, state, event


def can(state: State, event: str) -> bool:
    """Whether ``event`` is allowed in ``state``."""
    return (state, event) in TRANSITIONS


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
    remote_stop_sent: bool = False
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

    def apply(self, event: str, **changes: object) -> SessionRecord:
        """The session after ``event``, with ``changes`` to its fields; raises InvalidTransition."""
        target = TRANSITIONS.get((self.state, event))
        if target is None:
            raise InvalidTransition(self.session_id, self.state, event)
        return replace(self, state=target, **changes)


def id_tag_for(tag: int) -> str:
    """``EVN<tag>``: the idTag the Core Client gives a charge point for an app-started session. OCPP
    allows 20 characters, so the tag is the store's number for the session, not its 256-bit id."""
    return f"EVN{tag}"


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
