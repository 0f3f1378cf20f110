"""Settling at a given end time (settleAt, settleBatchAt, settleSignedAt: a CSMS's CDR says when the session
ended) on a real Anvil: the time fee counts from the start on chain until that end, not until the settle's
block; the end lies between the start and the block's time (EndTimeOutOfRange with its arguments otherwise);
only the station's operator settles; a batch is all or nothing; a metered station settles only signed."""

from __future__ import annotations

import pytest

from ev_network.contracts import SessionState
from ev_network.ocmf import Reason, parse, session_id_tag, signed_settlement
from ev_network.pricing import price
from simulator.meter import SigningMeter
from tools.harness.chain import TIMED_TARIFF, TOKEN, Env
from tools.harness.contracts import events, latest_timestamp, reverts, set_next_timestamp

DEPOSIT = 200 * TOKEN  # enough for hours of TIMED_TARIFF's 2 tokens per hour


@pytest.fixture
def timed(env: Env) -> int:
    return env.net.add_station("CP-TIMED-AT", connectors=2, tariff=TIMED_TARIFF)


def started(env: Env, station: int, at: int, meter_start: int = 0, driver=None) -> int:
    """A session of ``station`` started on chain at time ``at`` exactly."""
    session_id = env.open(DEPOSIT, station, driver=driver)
    set_next_timestamp(env.net.w3, at)
    env.net.escrow(env.net.operator).start(session_id, 1, meter_start)
    return session_id


def test_settle_at_bills_the_time_until_the_end_given_not_until_the_block(env: Env, timed: int) -> None:
    net = env.net
    t0 = latest_timestamp(net.w3) + 10
    session_id = started(env, timed, t0)
    before = env.balances()
    set_next_timestamp(net.w3, t0 + 3 * 3600)  # the CDR came three hours later; the session ended after 30 min
    receipt = net.escrow(net.operator).settle_at(session_id, 7_777, t0 + 1_800)
    (settled,) = events(net.escrow(), receipt, "SessionSettled")
    cost = price(TIMED_TARIFF, 7_777, 1_800)
    assert cost == TIMED_TARIFF.session_fee + 7_777 * TIMED_TARIFF.price_per_kwh // 1000 + TOKEN  # half an hour
    assert (settled["startedAt"], settled["endedAt"], settled["cost"], settled["refund"]) == (
        t0,
        t0 + 1_800,
        cost,
        DEPOSIT - cost,
    )
    after = env.balances()
    assert after["payout"] - before["payout"] == cost and after["driver"] - before["driver"] == DEPOSIT - cost
    session = net.escrow().get_session(session_id)
    assert (session.state, session.since) == (SessionState.SETTLED, t0 + 1_800)  # the end as billed


def test_the_end_lies_between_the_start_and_now(env: Env, timed: int) -> None:
    net, operator = env.net, env.net.escrow(env.net.operator)
    t0 = latest_timestamp(net.w3) + 10
    session_id = started(env, timed, t0)
    now = t0 + 600
    set_next_timestamp(net.w3, now)
    with reverts("EndTimeOutOfRange") as early:  # before the start on chain: more time than the chain saw
        operator.settle_at(session_id, 1_000, t0 - 1)
    assert early.value.args_ == (session_id, t0 - 1, t0, now)
    set_next_timestamp(net.w3, now)
    with reverts("EndTimeOutOfRange") as late:  # in the future
        operator.settle_at(session_id, 1_000, now + 1)
    assert late.value.args_ == (session_id, now + 1, t0, now)
    assert net.escrow().get_session(session_id).state is SessionState.ACTIVE
    set_next_timestamp(net.w3, now)
    (settled,) = events(net.escrow(), operator.settle_at(session_id, 1_000, now), "SessionSettled")  # now: as settle
    assert (settled["endedAt"], settled["cost"]) == (now, price(TIMED_TARIFF, 1_000, 600))
    other = started(env, timed, now + 10)
    (settled,) = events(net.escrow(), operator.settle_at(other, 0, now + 10), "SessionSettled")  # ended at its start
    assert settled["cost"] == TIMED_TARIFF.session_fee  # no time, no energy


def test_only_the_station_operator_settles_at_and_only_an_active_session(env: Env, timed: int) -> None:
    net = env.net
    t0 = latest_timestamp(net.w3) + 10
    session_id = started(env, timed, t0)
    with reverts("NotStationOperator"):
        net.escrow(net.operator2).settle_at(session_id, 1_000, t0)
    with reverts("NotStationOperator"):  # not the driver either
        net.escrow(env.driver).settle_at(session_id, 1_000, t0)
    requested = env.open(DEPOSIT, timed)
    with reverts("InvalidState"):
        net.escrow(net.operator).settle_at(requested, 1_000, t0)
    net.escrow(net.operator).settle_at(session_id, 1_000, t0)
    with reverts("InvalidState"):  # once only
        net.escrow(net.operator).settle_at(session_id, 1_000, t0)


def test_settle_batch_at_bills_each_session_until_its_own_end_all_or_nothing(env: Env, timed: int) -> None:
    net, operator = env.net, env.net.escrow(env.net.operator)
    t0 = latest_timestamp(net.w3) + 10
    first = started(env, timed, t0)
    second = started(env, timed, t0 + 60, meter_start=500, driver=env.other_driver)
    now = t0 + 7_200
    with reverts("LengthMismatch") as mismatch:
        operator.settle_batch_at([first, second], [1_000, 2_000], [t0 + 60])
    assert mismatch.value.args_ == (2, 1)  # (sessions, end times)
    set_next_timestamp(net.w3, now)
    with reverts("EndTimeOutOfRange"):  # one end out of range: nothing settles
        operator.settle_batch_at([first, second], [1_000, 2_000], [t0 + 900, t0 + 59])
    assert net.escrow().get_session(first).state is SessionState.ACTIVE
    set_next_timestamp(net.w3, now)
    receipt = operator.settle_batch_at([first, second], [1_000, 2_000], [t0 + 900, t0 + 60 + 2_700])
    settled = events(net.escrow(), receipt, "SessionSettled")
    assert [(e["sessionId"], e["endedAt"], e["cost"]) for e in settled] == [
        (first, t0 + 900, price(TIMED_TARIFF, 1_000, 900)),
        (second, t0 + 60 + 2_700, price(TIMED_TARIFF, 1_500, 2_700)),
    ]


def test_settle_signed_at_bills_the_signed_energy_until_the_end_given(env: Env) -> None:
    net = env.net
    meter = SigningMeter.for_charge_point("CP-METERED-AT")
    escrow = net.escrow(net.operator)
    station = escrow.station_id_from(escrow.add_station("CP-METERED-AT", 2, TIMED_TARIFF, meter.public_key_der))
    t0 = latest_timestamp(net.w3) + 10
    session_id = started(env, station, t0, meter_start=10_000)
    tag = session_id_tag(session_id)
    begin, end = parse(meter.record(Reason.BEGIN, 10_000, tag)), parse(meter.record(Reason.END, 14_000, tag))
    settlement = signed_settlement(session_id, begin, end, net.escrow().get_station(station).meter_public_key)
    set_next_timestamp(net.w3, t0 + 5_000)
    with reverts("MeterSignatureRequired"):  # a metered station's session settles only on its signed records
        escrow.settle_at(session_id, 14_000, t0 + 1_200)
    set_next_timestamp(net.w3, t0 + 5_000)
    with reverts("EndTimeOutOfRange"):
        escrow.settle_signed_at(settlement, t0 + 5_001)
    set_next_timestamp(net.w3, t0 + 5_000)
    (settled,) = events(net.escrow(), escrow.settle_signed_at(settlement, t0 + 1_200), "SessionSettled")
    assert (settled["meterStart"], settled["meterStop"], settled["endedAt"]) == (10_000, 14_000, t0 + 1_200)
    assert settled["cost"] == price(TIMED_TARIFF, 4_000, 1_200)
