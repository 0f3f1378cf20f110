"""Session decisions: what the Core Client does about one input. Pure: no I/O, no clock.

Each function takes the session record(s) an input concerns, the input and the time (``now``), and
returns a :class:`Decision`: the answer for the charge point (if the input is an OCPP message) and
the actions that follow. :class:`core_client.sessions.service.SessionService` applies them: SaveSession and
QueueJob in one SQLite transaction, then Log, then SendRemoteStart/SendRemoteStop through the link
registry (after the answer has gone out). Transitions go through :meth:`SessionRecord.apply`, the
one state machine (:mod:`core_client.sessions.machine`).

Signed meter rule: see :mod:`core_client.sessions.metering` (stations with a meter key on chain).

Plausibility rule (every reading: MeterValues and meterStop): a reading is plausible if it is no more
than what the connector can deliver at ``max_power_w`` (the setting ``max_power_kw``, by default
:data:`MAX_POWER_W`), plus :data:`METER_SLACK_WH`, both since the
last trusted reading (the last trusted MeterValues, else meterStart) and since meterStart (so the slack
does not add up over many readings) (:func:`most_plausible`). A MeterValues reading beyond that is not
trusted: it is neither remembered nor counted against the budget, and the charge point is listed
under ``meter_problems`` in /health. A session's billed energy never comes from an untrusted reading.

Meter stop rule (stations without a meter key): a StopTransaction's meterStop is taken on trust only if it
lies between the last trusted reading and :func:`most_plausible`. Above that, the session is HELD for the
operator and nothing is settled (the driver's reclaim on chain refunds the deposit after the escrow's
maximum duration if no one acts). Below it, the session settles with the last trusted reading, and the
difference is logged.
"""

from __future__ import annotations

import math
from typing import Any

from ocpp.v16.enums import AuthorizationStatus, RegistrationStatus
from ocpp.v16.enums import ChargePointStatus as Status

from core_client.ocpp.wire import wire_text
from core_client.sessions import metering
from core_client.sessions.actions import (
    Action,
    Decision,
    MeterProblem,
    QueueJob,
    SaveSession,
    SendRemoteStart,
    SendRemoteStop,
    decide,
    info,
    warning,
)
from core_client.sessions.jobs import Job, JobKind, RejectArgs, SettleArgs, StartArgs
from core_client.sessions.machine import (
    FINISHED,
    HOLDS_CONNECTOR,
    RUNNING,
    Event,
    SessionRecord,
    State,
    can,
    job_retried,
    must_stop,
)
from ev_network.contracts import CancelReason, SessionState
from ev_network.pricing import Tariff
from ev_network.session_ids import hex_session_id

ACCEPTED, INVALID = AuthorizationStatus.accepted, AuthorizationStatus.invalid
UINT40 = 2**40  # meter readings on chain are uint40
INT32 = 2**31  # connector and transaction ids: OCPP 1.6 integers (32-bit in every implementation)
MAX_POWER_W = 350_000  # the most a connector delivers by default (the fastest DC chargers of today; max_power_kw)
METER_SLACK_WH = 1_000  # energy a stop reading may add beyond that (readings between MeterValues, clocks)
BUSY_STATUSES = frozenset(
    {Status.charging, Status.suspended_ev, Status.suspended_evse, Status.finishing, Status.reserved}
)


def _sid(s: SessionRecord) -> str:
    return f"session {hex_session_id(s.session_id)}"


# --------------------------------------------------- charge point -> central system


def boot(cp_id: str, model: str, station: tuple[int, int] | None, lookup_failed: bool, heartbeat_s: int) -> Decision:
    """BootNotification: Accepted only for a station of our operator; Pending while the chain cannot say."""
    if station is not None:
        return decide(
            (RegistrationStatus.accepted, heartbeat_s), info(f"{cp_id}: booted ({model}), station {station[0]}")
        )
    if lookup_failed:
        return decide(
            (RegistrationStatus.pending, 10),
            warning(f"{cp_id}: BootNotification while the chain is unreachable: Pending"),
        )
    return decide(
        (RegistrationStatus.rejected, 60),
        warning(f"{cp_id}: BootNotification rejected: not a station of this operator on chain"),
    )


def authorize(s: SessionRecord | None, cp_id: str) -> AuthorizationStatus:
    """Accepted for the idTag of a live session at this charge point, Invalid otherwise."""
    ok = s is not None and s.charge_point_id == cp_id and s.state in HOLDS_CONNECTOR
    return ACCEPTED if ok else INVALID


def repeated_start(s: SessionRecord | None, cp_id: str, connector: int) -> Decision | None:
    """A StartTransaction for a session that already has its transaction: the same answer again."""
    if s is None or s.charge_point_id != cp_id or s.connector != connector or not s.transaction_id:
        return None
    note = info(f"{_sid(s)}: repeated StartTransaction, same transaction {s.transaction_id}")
    return decide((s.transaction_id, ACCEPTED if s.state in RUNNING else INVALID), note)


def start_refusal(s: SessionRecord | None, cp_id: str, connector: int, meter_start: int) -> str | None:
    """Why a StartTransaction cannot start session ``s`` (None: it can)."""
    if s is None:
        return "no such session"
    if s.charge_point_id != cp_id or s.connector != connector or not can(s.state, Event.START_TRANSACTION):
        return f"session is {s.state.value} at {s.charge_point_id}/{s.connector}"
    if meter_start >= UINT40:
        return f"meterStart {meter_start} beyond 2^40"
    return None


def with_transaction(s: SessionRecord, transaction_id: int, meter_start: int, at: float) -> SessionRecord:
    """Session ``s`` started by the charge point's transaction ``transaction_id`` at time ``at``."""
    return s.apply(
        Event.START_TRANSACTION,
        transaction_id=transaction_id,
        meter_start=meter_start,
        meter_last=meter_start,
        started_at=at,
        meter_at=at,
    )


def start(s: SessionRecord, transaction_id: int, meter_start: int, now: float) -> Decision:
    """StartTransaction for session ``s``: Accepted, ``start`` queued for the chain."""
    started = with_transaction(s, transaction_id, meter_start, now)
    args = StartArgs(transaction_id, meter_start)
    note = info(
        f"{_sid(s)}: StartTransaction on {s.charge_point_id}/{s.connector}, transaction {transaction_id}, "
        f"meter {meter_start} Wh; start queued"
    )
    return decide((transaction_id, ACCEPTED), SaveSession(started), QueueJob(JobKind.START, s.session_id, args), note)


def refuse_start(cp_id: str, connector: int, id_tag: str, transaction_id: int, why: str) -> Decision:
    """A StartTransaction we do not take: Invalid, and a RemoteStop after the answer (in case the charge
    point does not stop by itself)."""
    note = warning(
        f"{cp_id}/{connector}: StartTransaction for {wire_text(id_tag)!s} refused ({why}): transaction {transaction_id} Invalid"
    )
    return decide((transaction_id, INVALID), note, SendRemoteStop(cp_id, transaction_id))


def observe_start(cp_id: str, connector: int, id_tag: str, transaction_id: int) -> Decision:
    """Proxy mode: a StartTransaction of the CSMS's (not an EV Network idTag). The CSMS answers it; the
    Core Client's answer (Invalid: no session of its own) is not used, and nothing is stopped."""
    note = info(f"{cp_id}/{connector}: transaction {transaction_id} of the CSMS ({wire_text(id_tag)!s}): observed")
    return decide((transaction_id, INVALID), note)


def meter_reading(
    s: SessionRecord, energy_wh: int, now: float, budget_margin: float, max_power_w: int = MAX_POWER_W
) -> tuple[SessionRecord, Decision] | None:
    """A live energy reading: the session with it, and (when the budget is used up) its stop; an
    implausible reading leaves the session as it was (the module's plausibility rule).
    None: nothing to record (not running, or a reading below the last one)."""
    if s.state not in RUNNING or energy_wh < (s.meter_last or 0):
        return None
    most = most_plausible(s, now, max_power_w)
    if energy_wh > most:
        problem = (
            f"MeterValues {energy_wh} Wh is beyond the last trusted reading {_last_trusted(s)} Wh plus what "
            f"{max_power_w} W allow since ({most} Wh): not trusted"
        )
        return s, decide(
            None, MeterProblem(s.charge_point_id, f"{_sid(s)}: {problem}"), warning(f"{_sid(s)}: {problem}")
        )
    interval_wh, interval_s = energy_wh - (s.meter_last or energy_wh), now - (s.meter_at or now)
    s = s.update(meter_last=energy_wh, meter_at=now)
    duration = now - (s.started_at or now)
    if s.stop_wanted or not must_stop(
        s.tariff, s.deposit, budget_margin, s.energy_wh, duration, interval_wh, interval_s
    ):
        return s, Decision()
    stopping = s.update(stop_wanted="budget")
    return stopping, decide(
        None, SaveSession(stopping), info(f"{_sid(s)}: budget reached at {s.energy_wh} Wh; stopping")
    )


def _last_trusted(s: SessionRecord) -> int:
    return s.meter_last if s.meter_last is not None else (s.meter_start or 0)


def _deliverable_wh(since: float | None, now: float, max_power_w: int) -> int:
    """The most a connector delivers from ``since`` to ``now``, plus the slack."""
    return math.ceil(max_power_w * max(0.0, now - (since or now)) / 3600) + METER_SLACK_WH


def most_plausible(s: SessionRecord, now: float, max_power_w: int = MAX_POWER_W) -> int:
    """The highest reading of running session ``s`` at ``now`` that is taken on trust (the module's
    plausibility rule); below 2^40, the range of readings on chain."""
    most = min(_last_trusted(s) + _deliverable_wh(s.meter_at or s.started_at, now, max_power_w), UINT40 - 1)
    if s.meter_start is None or s.started_at is None:
        return most
    return min(most, s.meter_start + _deliverable_wh(s.started_at, now, max_power_w))


def trusted_meter_stop(
    s: SessionRecord, meter_stop: int, now: float, max_power_w: int = MAX_POWER_W
) -> tuple[int | None, str | None]:
    """(the reading to settle with, or None to hold the session; what was wrong, or None).
    See the module's meter stop rule."""
    last, most = _last_trusted(s), most_plausible(s, now, max_power_w)
    if meter_stop > most:
        return (
            None,
            f"meterStop {meter_stop} Wh is beyond the last reading {last} Wh plus what {max_power_w} W allow since ({most} Wh)",
        )
    if meter_stop < last:
        return last, f"meterStop {meter_stop} Wh is below the last trusted reading {last} Wh: settling with {last}"
    return meter_stop, None


def stop(
    s: SessionRecord,
    meter_stop: int,
    reason: str | None,
    now: float,
    meter_key: bytes = b"",
    records: dict[str, str] | None = None,
    max_power_w: int = MAX_POWER_W,
) -> Decision:
    """StopTransaction of session ``s``: ``settle`` queued (or the session held, see the meter stop rule).
    With the station's ``meter_key``, the session settles on its signed ``records`` ({context: OCMF text})
    instead (see the signed meter rule)."""
    if s.state in FINISHED:
        return decide(ACCEPTED, info(f"{_sid(s)}: repeated StopTransaction, nothing to do"))
    if s.state not in RUNNING:
        return decide(INVALID)
    if meter_key:
        return metering.signed_stop(s, reason, now, meter_key, records or {})
    reading, problem = trusted_meter_stop(s, meter_stop, now, max_power_w)
    if reading is None:
        held = s.apply(Event.STOP_HELD, stop_reason=reason, stopped_at=now, last_error=problem)
        return decide(ACCEPTED, SaveSession(held), warning(f"{_sid(s)}: HELD for the operator, not settled: {problem}"))
    stopped = s.apply(Event.STOP_TRANSACTION, meter_stop=reading, stop_reason=reason, stopped_at=now)
    notes = [warning(f"{_sid(s)}: {problem}")] if problem else []
    notes.append(
        info(
            f"{_sid(s)}: StopTransaction ({reason or 'no reason'}) at {reading} Wh, {stopped.energy_wh} Wh delivered; settle queued"
        )
    )
    return decide(ACCEPTED, SaveSession(stopped), QueueJob(JobKind.SETTLE, s.session_id, SettleArgs(reading)), *notes)


# --------------------------------------------------------------- chain -> sessions


def requested(args: dict[str, Any], charge_point_id: str, block: int, tariff: Tariff, now: float) -> SessionRecord:
    """The new session of a SessionRequested event at one of our stations."""
    return SessionRecord(
        session_id=args["sessionId"],
        station_id=args["stationId"],
        charge_point_id=charge_point_id,
        connector=args["connector"],
        driver=args["driver"],
        deposit=args["deposit"],
        tariff=tariff,
        tariff_id=args["tariffId"],
        requested_block=block,
        requested_at=now,
    )


def stop_requested(s: SessionRecord | None, session_id: int) -> Decision:
    """StopRequested by the driver: mark the stop wanted (the reconcile loop sends the RemoteStop)."""
    if s is None:
        return decide(
            None,
            warning(
                f"session {hex_session_id(session_id)}: StopRequested for a session this Core Client does not know"
            ),
        )
    if s.state is State.HELD and not s.stop_wanted:
        return decide(
            None,
            SaveSession(s.update(stop_wanted="driver")),
            warning(
                f"{_sid(s)}: the driver asked to stop; the charge has stopped already and the session is HELD "
                f"for the operator ({s.last_error}): settle it, or the driver's reclaim refunds the deposit"
            ),
        )
    if s.state not in (State.STARTING, State.CHARGING) or s.stop_wanted:
        return decide(None, info(f"{_sid(s)}: StopRequested while {s.state.value}: nothing to do"))
    return decide(True, SaveSession(s.update(stop_wanted="driver")), info(f"{_sid(s)}: driver requested the stop"))


def closed_on_chain(s: SessionRecord, chain_state: SessionState | None, now: float) -> Decision:
    """A HELD session that the driver reclaimed (SessionExpired) or cancelled on chain: RECLAIMED, the
    deposit refunded there, nothing left to settle (no longer listed as held)."""
    if s.state is not State.HELD or chain_state not in (
        SessionState.EXPIRED,
        SessionState.CANCELLED,
        SessionState.CLOSED,
    ):
        return Decision()
    closed = s.apply(Event.RECLAIMED, finished_at=now, refund=s.deposit, cost=0)
    return decide(
        None,
        SaveSession(closed),
        info(f"{_sid(s)}: the held session was {chain_state.name.lower()} on chain, deposit refunded: closed"),
    )


def job_done(s: SessionRecord, job: Job, where: str, settled: dict[str, int] | None, now: float) -> Decision:
    """A start, reject, refund or settle is on chain (mined by us now, or found already done)."""
    if job.kind is JobKind.START and can(s.state, Event.START_MINED):
        return decide(None, SaveSession(s.apply(Event.START_MINED)), info(f"{_sid(s)}: start mined {where}"))
    if job.kind is JobKind.REFUND and can(s.state, Event.REJECT_MINED):
        refunded = s.apply(Event.REJECT_MINED, refund=s.deposit, cost=0, finished_at=now)
        return decide(
            None, SaveSession(refunded), info(f"{_sid(s)}: held session refunded on chain, deposit {s.deposit} {where}")
        )
    if job.kind is JobKind.REJECT and can(s.state, Event.REJECT_MINED):
        assert isinstance(job.args, RejectArgs)
        reason = CancelReason(job.args.reason).name
        rejected = s.apply(Event.REJECT_MINED, refund=s.deposit, cost=0)
        return decide(
            None,
            SaveSession(rejected),
            info(f"{_sid(s)}: rejected on chain ({reason}), deposit {s.deposit} refunded {where}"),
        )
    if job.kind.queued_as is JobKind.SETTLE and can(s.state, Event.SETTLE_MINED):
        cost, refund = (settled["cost"], settled["refund"]) if settled else (None, None)
        done = s.apply(Event.SETTLE_MINED, cost=cost, refund=refund, finished_at=now)
        return decide(
            None, SaveSession(done), info(f"{_sid(s)}: settled cost={cost} refund={refund}, {s.energy_wh} Wh {where}")
        )
    return Decision()


def job_failed(s: SessionRecord, job: Job, error: str) -> Decision:
    """A job that can never succeed: the session needs an operator's look (a failed start also stops
    the charge)."""
    if not can(s.state, Event.JOB_FAILED):
        return Decision()
    actions: list[Action] = [SaveSession(s.apply(Event.JOB_FAILED, last_error=f"{job.kind.queued_as.value}: {error}"))]
    if job.kind is JobKind.START and s.state in RUNNING and s.transaction_id:
        actions.append(warning(f"{_sid(s)}: stopping transaction {s.transaction_id} at {s.charge_point_id}"))
        actions.append(SendRemoteStop(s.charge_point_id, s.transaction_id))
    return decide(None, *actions)


def retry_refusal(s: SessionRecord, job: Job) -> str | None:
    """Why the operator's retry of ``job`` would do harm, or None. A start that failed while the
    session ran stopped its charge (RemoteStop, see :func:`job_failed`) and lost the stop reading: a
    retried start would leave the session active on chain with nothing to settle it."""
    if job.kind is JobKind.START and s.state is State.FAILED and s.stopped_at is None and s.transaction_id:
        return (
            "its charge was stopped when the start failed, so nothing could settle it after a start; "
            "the driver's cancel refunds the whole deposit"
        )
    return None


def retry_job(s: SessionRecord, job: Job) -> Decision:
    """The operator queued a failed job again: a FAILED session goes back to the state the job needs
    (:func:`core_client.sessions.machine.job_retried`); a start retried after the charge point's stop goes on
    to that stop again (STOPPED, or HELD without a settle reading). Any other session stays as it is."""
    kind = job.kind.queued_as
    if not can(s.state, job_retried(kind)):
        return decide(None, info(f"{_sid(s)}: {kind.value} queued again by the operator"))
    back = s.apply(job_retried(kind), last_error=None)
    if job.kind is JobKind.START and s.stopped_at is not None:
        back = back.apply(Event.STOP_TRANSACTION if s.meter_stop is not None else Event.STOP_HELD)
    return decide(None, SaveSession(back), info(f"{_sid(s)}: {kind.value} queued again by the operator, {back.state}"))


# ----------------------------------------------------------------- reconcile loop


def reject(s: SessionRecord, reason: CancelReason, now: float, why: str) -> Decision:
    """Queue ``reject`` (full refund) if the session can still be rejected."""
    if not can(s.state, Event.REJECT_QUEUED):
        return Decision()
    rejecting = s.apply(Event.REJECT_QUEUED, reject_reason=int(reason), finished_at=now)
    return decide(
        True,
        SaveSession(rejecting),
        QueueJob(JobKind.REJECT, s.session_id, RejectArgs(int(reason))),
        info(f"{_sid(s)}: {why}; reject queued ({reason.name})"),
    )


def connector_busy(s: SessionRecord, others: list[SessionRecord], status: str | None) -> bool:
    """Whether another session holds the connector (of two new ones the first requested gets it: tags
    count sessions in arrival order, ids do not) or the charge point says it is in use."""
    for other in others:
        if other.session_id == s.session_id or other.connector != s.connector or other.state not in HOLDS_CONNECTOR:
            continue
        if other.state is not State.REQUESTED or (other.tag or 0) < (s.tag or 0):
            return True
    return status in BUSY_STATUSES


def dispatch(
    s: SessionRecord,
    online: bool,
    in_grace: bool,
    busy: bool,
    chain_state: SessionState | None,
    now: float,
    signed: bool = False,
) -> Decision | None:
    """A new session: RemoteStart, or reject (station offline, connector busy, not Requested on chain).
    None: wait (the station may reconnect within the grace period after a start)."""
    if not online:
        return (
            None
            if in_grace
            else reject(s, CancelReason.STATION_OFFLINE, now, f"station {s.charge_point_id} is offline")
        )
    if busy:
        return reject(s, CancelReason.CONNECTOR_BUSY, now, f"connector {s.charge_point_id}/{s.connector} is busy")
    if chain_state is not None and chain_state is not SessionState.REQUESTED:
        return reject(s, CancelReason.OTHER, now, f"{chain_state.name} on chain, not starting it")
    return remote_start(s.apply(Event.REMOTE_START_SENT, remote_start_at=now), signed=signed)


def remote_start(s: SessionRecord, again: bool = False, signed: bool = False) -> Decision:
    """Send (or, after a restart or reconnect, send again) the RemoteStart of a session in REMOTE_START_SENT."""
    tag = metering.id_tag(s, signed)
    note = info(
        f"{_sid(s)}: sending RemoteStart{' again' if again else ''} to {s.charge_point_id}/{s.connector} ({tag})"
    )
    return decide(None, SaveSession(s), note, SendRemoteStart(s.session_id, s.charge_point_id, s.connector, tag))


def remote_start_answered(s: SessionRecord, accepted: bool, again: bool, now: float) -> Decision:
    """The charge point's answer to RemoteStart: a refusal rejects the session (a refusal of a re-sent
    one may mean it is already charging for it: the start timeout decides)."""
    if accepted or again:
        return Decision()
    return reject(s, CancelReason.CHARGER_REJECTED, now, f"{s.charge_point_id} rejected the RemoteStart")


def start_timed_out(s: SessionRecord, now: float, timeout_s: float) -> Decision | None:
    if s.state is State.REMOTE_START_SENT and now - (s.remote_start_at or now) > timeout_s:
        return reject(s, CancelReason.OTHER, now, f"no StartTransaction within {timeout_s:g}s")
    return None


def remote_stop(s: SessionRecord) -> Decision:
    note = info(f"{_sid(s)}: sending RemoteStop to {s.charge_point_id} ({s.stop_wanted})")
    return decide(None, note, SendRemoteStop(s.charge_point_id, s.transaction_id or 0, s.session_id))


def remote_stop_answered(s: SessionRecord, accepted: bool) -> Decision:
    notes = () if accepted else (warning(f"{_sid(s)}: {s.charge_point_id} rejected the RemoteStop"),)
    if can(s.state, Event.REMOTE_STOP_SENT):
        return decide(None, *notes, SaveSession(s.apply(Event.REMOTE_STOP_SENT)))
    return decide(None, *notes)
