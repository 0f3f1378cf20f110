"""The Core Client's session decisions without network, chain or database: each input gives the
answer and the actions the daemon applies (the import layout: tests/project/test_imports.py)."""

from __future__ import annotations

import dataclasses
import logging

import pytest

from core_client.chain import escrow_calls
from core_client.sessions import decisions, metering, plausibility, remote_calls
from core_client.sessions.actions import (
    Log,
    MeterProblem,
    OutOfRange,
    QueueJob,
    SaveSession,
    SendRemoteStart,
    SendRemoteStop,
    check_range,
)
from core_client.sessions.decisions import ACCEPTED, INVALID
from core_client.sessions.jobs import Job, JobKind, JobStatus, RejectArgs, SettleArgs, StartArgs, job_args
from core_client.sessions.machine import SessionRecord, State
from core_client.sessions.plausibility import MAX_POWER_W, METER_SLACK_WH
from ev_network import ocmf
from ev_network.contracts import CancelReason, SessionState
from ev_network.pricing import Tariff
from ev_network.session_ids import make_session_id
from simulator.meter import SigningMeter

TOKEN = 10**18
TARIFF = Tariff(price_per_kwh=35 * TOKEN // 100, session_fee=TOKEN // 2)
SID = make_session_id("0x" + "ab" * 20, 0, 7)
NOW = 10_000.0


def session(state: State = State.REQUESTED, **changes) -> SessionRecord:
    base = SessionRecord(
        session_id=SID,
        station_id=3,
        charge_point_id="CP-1",
        connector=1,
        driver="0x" + "ab" * 20,
        deposit=10 * TOKEN,
        tariff=TARIFF,
        tag=4,
        state=state,
    )
    return dataclasses.replace(base, **changes)


def charging(
    meter_last: int = 5_000, meter_at: float = NOW - 10, started_at: float = NOW - 100, **changes
) -> SessionRecord:
    return session(
        State.CHARGING,
        transaction_id=9,
        meter_start=1_000,
        meter_last=meter_last,
        started_at=started_at,
        meter_at=meter_at,
        **changes,
    )


def of(kind: type, decision: decisions.Decision) -> list:
    return [a for a in decision.actions if isinstance(a, kind)]


def job(kind: JobKind, **args) -> Job:
    defaults = {
        JobKind.START: {"transaction_id": 9, "meter_start": 0},
        JobKind.SETTLE: {"meter_stop": 0},
        JobKind.REJECT: {"reason": 1},
    }
    return Job(1, kind, SID, job_args(kind, {**defaults.get(kind, {}), **args}), JobStatus.DONE, None, 1, None, None)


# ------------------------------------------------------ charge point messages


def test_start_transaction_starts_the_session_and_queues_its_start():
    decision = decisions.start(session(State.REMOTE_START_SENT), 9, 1_000, NOW)
    assert decision.reply == (9, ACCEPTED)
    [saved] = of(SaveSession, decision)
    assert (saved.record.state, saved.record.transaction_id, saved.record.meter_start) == (State.STARTING, 9, 1_000)
    assert of(QueueJob, decision) == [QueueJob(JobKind.START, SID, StartArgs(9, 1_000))]


def test_a_refused_start_answers_invalid_then_stops_the_transaction():
    assert decisions.start_refusal(None, "CP-1", 1, 0) == "no such session"
    assert "charging" in decisions.start_refusal(charging(), "CP-1", 1, 0)
    assert decisions.start_refusal(session(), "CP-2", 1, 0) is not None  # another charge point's session
    assert decisions.start_refusal(session(), "CP-1", 1, 2**40) is not None
    assert decisions.start_refusal(session(), "CP-1", 1, 0) is None
    decision = decisions.refuse_start("CP-1", 1, "RFID-1", 12, "no such session")
    assert decision.reply == (12, INVALID)
    assert of(SendRemoteStop, decision) == [SendRemoteStop("CP-1", 12)]
    assert of(SaveSession, decision) == [] and of(QueueJob, decision) == []


def test_proxy_mode_observes_a_csms_start_and_stops_nothing():
    decision = decisions.observe_start("CP-1", 2, "CARD-7", 1001)
    assert decision.reply == (1001, INVALID)  # the CSMS's answer goes to the charge point, not this one
    assert not [a for a in decision.actions if isinstance(a, (SendRemoteStop, SaveSession, QueueJob))]


def test_a_repeated_start_transaction_gets_the_same_transaction():
    assert decisions.repeated_start(charging(), "CP-1", 1).reply == (9, ACCEPTED)
    assert decisions.repeated_start(charging(), "CP-2", 1) is None
    assert decisions.repeated_start(session(), "CP-1", 1) is None  # no transaction yet


def test_authorize_only_a_live_session_at_its_own_charge_point():
    assert decisions.authorize(charging(), "CP-1") == ACCEPTED
    assert decisions.authorize(charging(), "CP-2") == INVALID
    assert decisions.authorize(session(State.SETTLED), "CP-1") == INVALID
    assert decisions.authorize(None, "CP-1") == INVALID


def test_meter_readings_are_remembered_and_the_budget_stops_the_charge():
    record, decision = decisions.meter_reading(charging(), 6_000, NOW, 0.02)
    assert (record.meter_last, record.meter_at, decision.actions) == (6_000, NOW, ())
    assert decisions.meter_reading(charging(), 4_000, NOW, 0.02) is None  # below the last reading
    assert decisions.meter_reading(session(), 4_000, NOW, 0.02) is None  # not running
    # 10 tokens at 0.35/kWh + 0.5 fee: 27 kWh is beyond the limit (reached in 6 minutes at 350 kW)
    record, decision = decisions.meter_reading(charging(started_at=NOW - 360, meter_at=NOW - 300), 28_000, NOW, 0.02)
    assert record.stop_wanted == "budget" and of(SaveSession, decision) == [SaveSession(record)]


def test_stop_transaction_queues_the_settle():
    decision = decisions.stop(charging(), 5_500, "Local", NOW)
    assert decision.reply == ACCEPTED
    [saved] = of(SaveSession, decision)
    assert (saved.record.state, saved.record.meter_stop) == (State.STOPPED, 5_500)
    assert of(QueueJob, decision) == [QueueJob(JobKind.SETTLE, SID, SettleArgs(5_500))]
    assert decisions.stop(session(State.STOPPED), 5_500, None, NOW).reply == ACCEPTED  # repeated: nothing
    assert [a.level for a in of(Log, decisions.stop(session(State.STOPPED), 5_500, None, NOW))] == [logging.INFO]
    assert decisions.stop(session(State.REQUESTED), 5_500, None, NOW).reply == INVALID


# ------------------------------------------- issue 17 #1: every reading is checked


@pytest.mark.issue(17, item=1)
def test_an_implausible_meter_values_reading_is_not_trusted_and_the_stop_bills_the_plausible_energy():
    """The issue's case: meterStart 100,000, 3 s later MeterValues 120,000 (or 10^12), meterStop 100,500."""
    start = session(State.STARTING, transaction_id=9, meter_start=100_000, meter_last=100_000)
    start = dataclasses.replace(start, started_at=NOW - 3, meter_at=NOW - 3)
    for absurd in (120_000, 1_000_000_000_000, 2**40 + 5):
        record, decision = decisions.meter_reading(start, absurd, NOW, 0.02)
        assert (record.meter_last, record.stop_wanted) == (100_000, None)  # neither remembered nor a budget stop
        assert of(SaveSession, decision) == []
        [problem] = of(MeterProblem, decision)
        assert problem.charge_point_id == "CP-1" and str(absurd) in problem.error
        assert [a.level for a in of(Log, decision)] == [logging.WARNING]
        stop = decisions.stop(record, 100_500, "Local", NOW + 1)
        assert of(QueueJob, stop) == [QueueJob(JobKind.SETTLE, SID, SettleArgs(meter_stop=100_500))]  # 500 Wh billed


@pytest.mark.issue(17, item=1)
def test_the_reading_slack_does_not_add_up_over_many_readings():
    """Each reading may be at most the slack beyond what the connector delivers since meterStart, in
    total: 100 readings a second apart cannot add 100 slacks."""
    s = session(State.CHARGING, transaction_id=9, meter_start=0, meter_last=0, started_at=NOW, meter_at=NOW)
    for i in range(1, 101):
        reading = decisions.meter_reading(s, s.meter_last + METER_SLACK_WH, NOW + i, 0.02)
        s = reading[0]
    assert s.meter_last <= MAX_POWER_W * 100 // 3600 + METER_SLACK_WH + 1
    assert plausibility.trusted_meter_stop(s, 50_000, NOW + 100)[0] is None  # held: far beyond 100 s at 350 kW


@pytest.mark.issue(17, item=1)
def test_a_plausible_reading_after_a_long_gap_is_trusted():
    s = charging(meter_last=5_000, meter_at=NOW - 10, started_at=NOW - 3_600)
    record, _ = decisions.meter_reading(s, 5_000 + MAX_POWER_W * 10 // 3600 + METER_SLACK_WH, NOW, 0.02)
    assert record.meter_last == 5_000 + MAX_POWER_W * 10 // 3600 + METER_SLACK_WH


# ---------------------------------------------------- issue 9 #3: the meter stop rule


def test_a_meter_stop_beyond_what_the_connector_can_deliver_holds_the_session():
    s = charging(meter_last=5_000, meter_at=NOW - 36)  # 36 s at 350 kW: 3.5 kWh at most, plus the slack
    most = 5_000 + MAX_POWER_W * 36 // 3600 + METER_SLACK_WH
    assert plausibility.trusted_meter_stop(s, most, NOW) == (most, None)
    for claimed in (most + 1, 2**40 + 5):
        decision = decisions.stop(s, claimed, "Local", NOW)
        [saved] = of(SaveSession, decision)
        assert decision.reply == ACCEPTED and saved.record.state is State.HELD
        assert of(QueueJob, decision) == []  # nothing billed
        assert str(claimed) in saved.record.last_error


def test_a_meter_stop_below_the_last_reading_settles_with_the_last_reading():
    s = charging(meter_last=6_000)
    for claimed in (5_999, 1_000, 0, -5):
        decision = decisions.stop(s, claimed, "Local", NOW)
        assert of(QueueJob, decision) == [QueueJob(JobKind.SETTLE, SID, SettleArgs(6_000))]
        assert any(
            a.level == logging.WARNING and "below the last trusted reading" in a.message for a in of(Log, decision)
        )
    # no MeterValues at all: meterStart is the last trusted reading
    bare = session(State.STARTING, transaction_id=9, meter_start=1_000, started_at=NOW - 5)
    assert plausibility.trusted_meter_stop(bare, 500, NOW) == (
        1_000,
        plausibility.trusted_meter_stop(bare, 500, NOW)[1],
    )


# --------------------------------------------------------------- chain inputs


def test_chain_outcomes_move_the_session():
    started = decisions.job_done(session(State.STARTING, transaction_id=9), job(JobKind.START), "in block 5", None, NOW)
    assert of(SaveSession, started)[0].record.state is State.CHARGING
    settled = decisions.job_done(session(State.STOPPED), job(JobKind.SETTLE), "", {"cost": 3, "refund": 7}, NOW)
    assert (of(SaveSession, settled)[0].record.cost, of(SaveSession, settled)[0].record.refund) == (3, 7)
    rejected = decisions.job_done(session(State.REJECTING), job(JobKind.REJECT, reason=2), "", None, NOW)
    assert of(SaveSession, rejected)[0].record.refund == 10 * TOKEN
    assert decisions.job_done(session(State.SETTLED), job(JobKind.SETTLE), "", None, NOW).actions == ()


def test_a_failed_start_of_a_running_session_stops_its_transaction():
    decision = decisions.job_failed(charging(), job(JobKind.START), "InvalidState")
    assert of(SaveSession, decision)[0].record.state is State.FAILED
    assert of(SendRemoteStop, decision) == [SendRemoteStop("CP-1", 9)]
    assert of(SendRemoteStop, decisions.job_failed(session(State.STOPPED), job(JobKind.SETTLE), "x")) == []


def test_a_retried_job_moves_its_failed_session_back_through_the_state_machine():
    def retried(s: SessionRecord, kind: JobKind) -> SessionRecord | None:
        saved = of(SaveSession, decisions.retry_job(s, job(kind)))
        return saved[0].record if saved else None

    failed = session(State.FAILED, transaction_id=9, last_error="start: InvalidState")
    assert retried(failed, JobKind.START).state is State.STARTING
    assert retried(failed, JobKind.START).last_error is None
    assert retried(failed, JobKind.SETTLE).state is State.STOPPED
    assert retried(failed, JobKind.REJECT).state is State.REJECTING
    # a start that failed after the charge point's stop goes on to that stop: settle, or hold
    assert retried(dataclasses.replace(failed, stopped_at=NOW, meter_stop=7_000), JobKind.START).state is State.STOPPED
    assert retried(dataclasses.replace(failed, stopped_at=NOW), JobKind.START).state is State.HELD
    # a session that is not FAILED (its job failed after it moved on) stays where it is
    assert retried(session(State.STOPPED), JobKind.SETTLE) is None
    # a start that failed while charging stopped the charge: no retry (nothing could settle it)
    assert "driver's cancel refunds" in decisions.retry_refusal(failed, job(JobKind.START))
    stopped = dataclasses.replace(failed, stopped_at=NOW, meter_stop=7_000)
    assert decisions.retry_refusal(stopped, job(JobKind.START)) is None
    assert decisions.retry_refusal(failed, job(JobKind.SETTLE)) is None


def test_stop_requested_only_for_a_running_session_once():
    decision = decisions.stop_requested(charging(), SID)
    assert decision.reply is True and of(SaveSession, decision)[0].record.stop_wanted == "driver"
    assert decisions.stop_requested(charging(stop_wanted="budget"), SID).reply is None
    assert decisions.stop_requested(None, SID).reply is None


# ------------------------------------------------------------ reconcile loop


def test_a_new_session_is_started_or_rejected():
    s = session()
    sent = remote_calls.dispatch(s, True, False, False, SessionState.REQUESTED, NOW)
    assert of(SaveSession, sent)[0].record.state is State.REMOTE_START_SENT
    assert of(SendRemoteStart, sent) == [SendRemoteStart(SID, "CP-1", 1, "EVN4")]
    assert remote_calls.dispatch(s, False, True, False, None, NOW) is None  # offline within the grace: wait
    for online, busy, chain, reason in [
        (False, False, None, CancelReason.STATION_OFFLINE),
        (True, True, None, CancelReason.CONNECTOR_BUSY),
        (True, False, SessionState.CANCELLED, CancelReason.OTHER),
    ]:
        decision = remote_calls.dispatch(s, online, False, busy, chain, NOW)
        assert of(QueueJob, decision) == [QueueJob(JobKind.REJECT, SID, RejectArgs(int(reason)))]


def test_a_refused_remote_start_rejects_unless_it_was_sent_again():
    s = session(State.REMOTE_START_SENT, remote_start_at=NOW)
    assert of(QueueJob, remote_calls.remote_start_answered(s, False, False, NOW))[0].kind is JobKind.REJECT
    assert remote_calls.remote_start_answered(s, False, True, NOW).actions == ()  # may be charging already
    assert remote_calls.remote_start_answered(s, True, False, NOW).actions == ()
    assert (
        remote_calls.start_timed_out(s, NOW + 31, 30) is not None
        and remote_calls.start_timed_out(s, NOW + 29, 30) is None
    )


def test_the_first_requested_of_two_new_sessions_gets_the_connector():
    first, second = session(tag=1), session(tag=2, session_id=SID + 1)
    assert not remote_calls.connector_busy(first, [first, second], None)
    assert remote_calls.connector_busy(second, [first, second], None)
    assert remote_calls.connector_busy(first, [first], "Charging")


def test_integers_outside_what_the_daemon_stores_are_out_of_range():
    check_range("connectorId", 2**31 - 1, 2**31)
    check_range("transactionId", None, 2**31)
    with pytest.raises(OutOfRange, match="connectorId must be in"):
        check_range("connectorId", 2**63, 2**31)
    with pytest.raises(OutOfRange, match="a number of 16607 bits"):
        check_range("meterStop", 10**4999, 2**63)


def test_boot_accepts_our_stations_and_says_pending_while_the_chain_cannot_tell():
    assert decisions.boot("CP-1", "V M", (3, 2), False, 300).reply == ("Accepted", 300)
    assert decisions.boot("CP-1", "V M", None, True, 300).reply == ("Pending", 10)
    assert decisions.boot("CP-1", "V M", None, False, 300).reply == ("Rejected", 60)


# ------------------------------------------------------------ signed meter rule


def test_signed_stop_settles_the_signed_readings_or_holds_without_queueing():
    meter = SigningMeter.for_charge_point("CP-1")
    key, tag = meter.public_key_der, ocmf.session_id_tag(SID)
    records = {
        metering.BEGIN: meter.record(ocmf.Reason.BEGIN, 1_200, tag),
        metering.END: meter.record(ocmf.Reason.END, 4_321, tag),
    }
    s = charging()
    decision = decisions.stop(s, 9_999, "Local", NOW, key, records)  # the OCPP meterStop is not what is billed
    [job] = [a for a in decision.actions if isinstance(a, QueueJob)]
    [saved] = [a.record for a in decision.actions if isinstance(a, SaveSession)]
    assert (
        decision.reply == ACCEPTED and job.kind is JobKind.SETTLE_SIGNED and job.args.meter_stop == 4_321
    ) and job.args.begin == records[metering.BEGIN]
    assert (saved.state, saved.meter_start, saved.energy_wh) == (State.STOPPED, 1_200, 3_121)
    assert decisions.stop(s, 6_000, "Local", NOW).actions[1].args == SettleArgs(6_000)  # no key: plain

    other = SigningMeter.for_charge_point("CP-2")  # not the registered key
    for bad in (
        {metering.BEGIN: records[metering.BEGIN]},
        {**records, metering.END: other.record(ocmf.Reason.END, 4_321, tag)},
        {**records, metering.END: meter.record(ocmf.Reason.END, 4_321, ocmf.session_id_tag(SID + 1))},
    ):
        held = decisions.stop(s, 4_321, "Local", NOW, key, bad)
        assert not [a for a in held.actions if isinstance(a, QueueJob)]
        [problem] = [a for a in held.actions if isinstance(a, MeterProblem)]
        [saved] = [a.record for a in held.actions if isinstance(a, SaveSession)]
        assert problem.charge_point_id == "CP-1" and saved.state is State.HELD
        assert saved.last_error.startswith("meter records refused")


def test_signed_stop_settles_on_one_record_holding_both_readings():
    """A meter that signs once per transaction sends no Begin record: its End record holds both readings."""
    meter = SigningMeter.for_charge_point("CP-1")
    tag = ocmf.session_id_tag(SID)
    records = {metering.END: meter.transaction_record(1_200, 4_321, tag)}
    decision = decisions.stop(charging(), 9_999, "Local", NOW, meter.public_key_der, records)
    [job] = [a for a in decision.actions if isinstance(a, QueueJob)]
    [saved] = [a.record for a in decision.actions if isinstance(a, SaveSession)]
    assert job.args.begin is None and job.args.meter_stop == 4_321 and job.args.end == records[metering.END]
    assert (saved.state, saved.meter_start, saved.energy_wh) == (State.STOPPED, 1_200, 3_121)
    assert job.kind is JobKind.SETTLE_SIGNED
    assert len(escrow_calls.settlement_of(SID, job.args)[2]) == 1  # the worker settles it on that one record


def test_remote_start_at_a_signing_station_sends_the_tag_its_meter_signs():
    [send] = [a for a in remote_calls.remote_start(session(), signed=True).actions if isinstance(a, SendRemoteStart)]
    assert send.id_tag == ocmf.session_id_tag(SID) and len(send.id_tag) == 20
    [plain] = [a for a in remote_calls.remote_start(session()).actions if isinstance(a, SendRemoteStart)]
    assert plain.id_tag == "EVN4"
