"""Session decisions: what the Core Client does about one input. Pure: no I/O, no clock.

Each function takes the session record(s) an input concerns, the input and the time (``now``), and
returns a :class:`Decision`: the answer for the charge point (if the input is an OCPP message) and
the actions that follow. :class:`core_client.sessions.service.SessionService` applies them: SaveSession and
QueueJob in one SQLite transaction, then Log, then SendRemoteStart/SendRemoteStop through the link
registry (after the answer has gone out). Transitions go through :meth:`SessionRecord.apply`, the
one state machine (:mod:`core_client.sessions.machine`).

The rules these decisions apply: the signed meter rule (:mod:`core_client.sessions.metering`, stations
with a meter key on chain), the plausibility and meter stop rules (:mod:`core_client.sessions.plausibility`).
The reconcile loop's decisions (RemoteStart, RemoteStop, rejects, start timeouts) are in
:mod:`core_client.sessions.remote_calls`.
"""

from __future__ import annotations

from typing import Any

from ocpp.v16.enums import AuthorizationStatus, RegistrationStatus

from core_client.ocpp.wire import wire_text
from core_client.sessions import metering
from core_client.sessions.actions import (
    Action,
    Decision,
    MeterProblem,
    QueueJob,
    SaveSession,
    SendRemoteStop,
    decide,
    info,
    session_named,
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
from core_client.sessions.plausibility import MAX_POWER_W, UINT40, last_trusted, most_plausible, trusted_meter_stop
from ev_network.contracts import CancelReason, SessionState
from ev_network.pricing import Tariff
from ev_network.session_ids import hex_session_id

ACCEPTED, INVALID = AuthorizationStatus.accepted, AuthorizationStatus.invalid
INT32 = 2**31  # connector and transaction ids: OCPP 1.6 integers (32-bit in every implementation)


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
    note = info(f"{session_named(s)}: repeated StartTransaction, same transaction {s.transaction_id}")
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
        f"{session_named(s)}: StartTransaction on {s.charge_point_id}/{s.connector}, transaction {transaction_id}, "
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
            f"MeterValues {energy_wh} Wh is beyond the last trusted reading {last_trusted(s)} Wh plus what "
            f"{max_power_w} W allow since ({most} Wh): not trusted"
        )
        return s, decide(
            None,
            MeterProblem(s.charge_point_id, f"{session_named(s)}: {problem}"),
            warning(f"{session_named(s)}: {problem}"),
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
        None, SaveSession(stopping), info(f"{session_named(s)}: budget reached at {s.energy_wh} Wh; stopping")
    )


def stop(
    s: SessionRecord,
    meter_stop: int,
    reason: str | None,
    now: float,
    meter_key: bytes = b"",
    records: dict[str, str] | None = None,
    max_power_w: int = MAX_POWER_W,
    ended_at: int | None = None,
) -> Decision:
    """StopTransaction of session ``s``: ``settle`` queued (or the session held, see the meter stop rule).
    With the station's ``meter_key``, the session settles on its signed ``records`` ({context: OCMF text})
    instead (see the signed meter rule). With ``ended_at`` (unix seconds: a CSMS's CDR's end), the settle bills
    the time until then (settleAt)."""
    if s.state in FINISHED:
        return decide(ACCEPTED, info(f"{session_named(s)}: repeated StopTransaction, nothing to do"))
    if s.state not in RUNNING:
        return decide(INVALID)
    if meter_key:
        return metering.signed_stop(s, reason, now, meter_key, records or {}, ended_at)
    reading, problem = trusted_meter_stop(s, meter_stop, now, max_power_w)
    if reading is None:
        held = s.apply(Event.STOP_HELD, stop_reason=reason, stopped_at=now, last_error=problem)
        return decide(
            ACCEPTED, SaveSession(held), warning(f"{session_named(s)}: HELD for the operator, not settled: {problem}")
        )
    stopped = s.apply(Event.STOP_TRANSACTION, meter_stop=reading, stop_reason=reason, stopped_at=now)
    notes = [warning(f"{session_named(s)}: {problem}")] if problem else []
    notes.append(
        info(
            f"{session_named(s)}: StopTransaction ({reason or 'no reason'}) at {reading} Wh, {stopped.energy_wh} Wh delivered; settle queued"
        )
    )
    return decide(
        ACCEPTED, SaveSession(stopped), QueueJob(JobKind.SETTLE, s.session_id, SettleArgs(reading, ended_at)), *notes
    )


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
                f"{session_named(s)}: the driver asked to stop; the charge has stopped already and the session is HELD "
                f"for the operator ({s.last_error}): settle it, or the driver's reclaim refunds the deposit"
            ),
        )
    if s.state not in (State.STARTING, State.CHARGING) or s.stop_wanted:
        return decide(None, info(f"{session_named(s)}: StopRequested while {s.state.value}: nothing to do"))
    return decide(
        True, SaveSession(s.update(stop_wanted="driver")), info(f"{session_named(s)}: driver requested the stop")
    )


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
        info(f"{session_named(s)}: the held session was {chain_state.name.lower()} on chain, deposit refunded: closed"),
    )


def job_done(s: SessionRecord, job: Job, where: str, settled: dict[str, int] | None, now: float) -> Decision:
    """A start, reject, refund or settle is on chain (mined by us now, or found already done)."""
    if job.kind is JobKind.START and can(s.state, Event.START_MINED):
        return decide(None, SaveSession(s.apply(Event.START_MINED)), info(f"{session_named(s)}: start mined {where}"))
    if job.kind is JobKind.REFUND and can(s.state, Event.REJECT_MINED):
        refunded = s.apply(Event.REJECT_MINED, refund=s.deposit, cost=0, finished_at=now)
        return decide(
            None,
            SaveSession(refunded),
            info(f"{session_named(s)}: held session refunded on chain, deposit {s.deposit} {where}"),
        )
    if job.kind is JobKind.REJECT and can(s.state, Event.REJECT_MINED):
        assert isinstance(job.args, RejectArgs)
        reason = CancelReason(job.args.reason).name
        rejected = s.apply(Event.REJECT_MINED, refund=s.deposit, cost=0)
        return decide(
            None,
            SaveSession(rejected),
            info(f"{session_named(s)}: rejected on chain ({reason}), deposit {s.deposit} refunded {where}"),
        )
    if job.kind.queued_as is JobKind.SETTLE and can(s.state, Event.SETTLE_MINED):
        cost, refund = (settled["cost"], settled["refund"]) if settled else (None, None)
        done = s.apply(Event.SETTLE_MINED, cost=cost, refund=refund, finished_at=now)
        return decide(
            None,
            SaveSession(done),
            info(f"{session_named(s)}: settled cost={cost} refund={refund}, {s.energy_wh} Wh {where}"),
        )
    return Decision()


def job_failed(s: SessionRecord, job: Job, error: str) -> Decision:
    """A job that can never succeed: the session needs an operator's look (a failed start also stops
    the charge)."""
    if not can(s.state, Event.JOB_FAILED):
        return Decision()
    actions: list[Action] = [SaveSession(s.apply(Event.JOB_FAILED, last_error=f"{job.kind.queued_as.value}: {error}"))]
    if job.kind is JobKind.START and s.state in RUNNING and s.transaction_id:
        actions.append(warning(f"{session_named(s)}: stopping transaction {s.transaction_id} at {s.charge_point_id}"))
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
        return decide(None, info(f"{session_named(s)}: {kind.value} queued again by the operator"))
    back = s.apply(job_retried(kind), last_error=None)
    if job.kind is JobKind.START and s.stopped_at is not None:
        back = back.apply(Event.STOP_TRANSACTION if s.meter_stop is not None else Event.STOP_HELD)
    return decide(
        None, SaveSession(back), info(f"{session_named(s)}: {kind.value} queued again by the operator, {back.state}")
    )
