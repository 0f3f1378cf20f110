"""The session escrow on a real Anvil: every state transition, every revert path (by custom error
name), exact costs, refunds and balances. Batches and the time fee: test_escrow_batches.py."""

from __future__ import annotations

from ev_network.contracts import CancelReason, Session, SessionState
from ev_network.pricing import Tariff, price
from ev_network.session_ids import make_session_id
from tools.harness.chain import ESCROW_DEPOSIT, TARIFF, TOKEN, Env
from tools.harness.contracts import (
    block_time,
    events,
    latest_timestamp,
    reverts,
)

DEPOSIT = ESCROW_DEPOSIT


def test_open_start_settle_moves_exact_amounts(env: Env) -> None:
    net, escrow = env.net, env.net.escrow()
    before = env.balances()
    receipt = net.escrow(env.driver).open(env.station, 2, DEPOSIT)
    session_id = escrow.session_id_from(receipt)
    session = escrow.get_session(session_id)
    tariff_id = escrow.get_station(env.station).tariff_id
    assert session_id == make_session_id(env.driver.address, 0, 1)
    assert session == Session(
        session_id=session_id,
        driver=env.driver.address,
        lane=0,
        seq=1,
        state=SessionState.REQUESTED,
        deposit=DEPOSIT,
        station_id=env.station,
        tariff_id=tariff_id,
        since=block_time(net.w3, receipt),
        meter_start=0,
    )
    assert events(escrow, receipt, "SessionRequested") == [
        {
            "sessionId": session_id,
            "driver": env.driver.address,
            "stationId": env.station,
            "connector": 2,
            "deposit": DEPOSIT,
            "tariffId": tariff_id,
        }
    ]
    opened = env.balances()
    assert opened["driver"] == before["driver"] - DEPOSIT
    assert opened["escrow"] == before["escrow"] + DEPOSIT

    receipt = net.escrow(net.operator).start(session_id, 4242, 100_000)
    started_at = block_time(net.w3, receipt)
    session = escrow.get_session(session_id)
    assert (session.state, session.meter_start, session.since) == (SessionState.ACTIVE, 100_000, started_at)
    assert (session.deposit, session.station_id, session.tariff_id) == (DEPOSIT, env.station, tariff_id)
    assert events(escrow, receipt, "SessionStarted") == [
        {
            "sessionId": session_id,
            "transactionId": 4242,
            "meterStart": 100_000,
            "startedAt": started_at,
        }
    ]

    energy = 12_345
    expected_cost = TARIFF.session_fee + energy * TARIFF.price_per_kwh // 1000
    assert escrow.settlement_cost(session_id, 100_000 + energy) == expected_cost
    receipt = net.escrow(net.operator).settle(session_id, 100_000 + energy)
    after = env.balances()
    settled = escrow.get_session(session_id)
    assert (settled.state, settled.since, settled.deposit) == (
        SessionState.SETTLED,
        block_time(net.w3, receipt),
        DEPOSIT,
    )
    assert after["payout"] - before["payout"] == expected_cost
    assert before["driver"] - after["driver"] == expected_cost
    assert after["escrow"] == before["escrow"]
    assert events(escrow, receipt, "SessionSettled") == [
        {
            "sessionId": session_id,
            "driver": env.driver.address,
            "operator": net.operator.address,
            "stationId": env.station,
            "tariffId": tariff_id,
            "meterStart": 100_000,
            "meterStop": 100_000 + energy,
            "startedAt": started_at,
            "endedAt": block_time(net.w3, receipt),
            "cost": after["payout"] - before["payout"],
            "refund": DEPOSIT - expected_cost,
            "payout": net.payout.address,
        }
    ]


def test_only_the_station_operator_starts_settles_and_rejects(env: Env) -> None:
    intruder = env.net.escrow(env.net.operator2)
    requested = env.open()
    with reverts("NotStationOperator") as info:
        intruder.start(requested, 1, 0)
    assert info.value.args_ == (env.station, env.net.operator2.address)
    with reverts("NotStationOperator"):
        intruder.reject(requested, CancelReason.OTHER)
    with reverts("NotStationOperator"):
        env.net.escrow(env.driver).start(requested, 1, 0)
    active = env.active()
    with reverts("NotStationOperator"):
        intruder.settle(active, 2000)
    with reverts("NotStationOperator"):
        intruder.settle_batch([active], [2000])
    assert env.net.escrow().get_session(requested).state == SessionState.REQUESTED
    assert env.net.escrow().get_session(active).state == SessionState.ACTIVE


def test_double_settle_and_double_start_are_invalid_state(env: Env) -> None:
    operator = env.net.escrow(env.net.operator)
    session_id = env.active()
    with reverts("InvalidState") as info:
        operator.start(session_id, 1, 0)
    assert info.value.args_ == (session_id, SessionState.ACTIVE)
    operator.settle(session_id, 2000)
    with reverts("InvalidState") as info:
        operator.settle(session_id, 2000)
    assert info.value.args_ == (session_id, SessionState.SETTLED)
    with reverts("InvalidState") as info:
        operator.settle(999, 1)  # never opened: state None
    assert info.value.args_ == (999, SessionState.NONE)


def test_cancelled_session_cannot_be_started_or_settled(env: Env) -> None:
    operator = env.net.escrow(env.net.operator)
    session_id = env.open()
    operator.reject(session_id, CancelReason.STATION_OFFLINE)
    for action in (lambda: operator.start(session_id, 1, 0), lambda: operator.settle(session_id, 1)):
        with reverts("InvalidState") as info:
            action()
        assert info.value.args_ == (session_id, SessionState.CANCELLED)
    with reverts("InvalidState"):
        env.net.escrow(env.driver).cancel(session_id)


def test_cancel_only_after_start_timeout_refunds_all(env: Env) -> None:
    net, driver = env.net, env.net.escrow(env.driver)
    before = env.balances()
    session_id = env.open()
    opened_at = net.escrow().get_session(session_id).since
    with reverts("TooEarly") as info:
        driver.cancel(session_id)
    assert info.value.args_ == (session_id, opened_at + net.deployment.start_timeout)
    net.time_travel(net.deployment.start_timeout - 30)
    with reverts("TooEarly"):
        driver.cancel(session_id)
    net.time_travel(60)
    with reverts("NotDriver"):
        net.escrow(env.other_driver).cancel(session_id)
    receipt = driver.cancel(session_id)
    assert net.escrow().get_session(session_id).state == SessionState.CANCELLED
    assert env.balances() == before
    assert events(net.escrow(), receipt, "SessionCancelled") == [
        {
            "sessionId": session_id,
            "driver": env.driver.address,
            "refund": DEPOSIT,
            "reason": CancelReason.DRIVER_CANCELLED,
        }
    ]
    with reverts("InvalidState"):
        net.escrow(net.operator).start(session_id, 1, 0)


def test_cancel_of_an_active_session_is_invalid(env: Env) -> None:
    session_id = env.active()
    env.net.time_travel(env.net.deployment.start_timeout + 1)
    with reverts("InvalidState"):
        env.net.escrow(env.driver).cancel(session_id)


def test_reclaim_only_after_max_duration_plus_grace(env: Env) -> None:
    net, driver = env.net, env.net.escrow(env.driver)
    requested = env.open()
    with reverts("InvalidState"):
        driver.reclaim(requested)
    before = env.balances()
    session_id = env.active()
    started_at = net.escrow().get_session(session_id).since
    allowed_at = started_at + net.deployment.max_duration + net.deployment.reclaim_grace
    with reverts("TooEarly") as info:
        driver.reclaim(session_id)
    assert info.value.args_ == (session_id, allowed_at)
    net.time_travel(net.deployment.max_duration + 10)  # past max duration, still inside the grace
    with reverts("TooEarly"):
        driver.reclaim(session_id)
    net.time_travel(allowed_at - latest_timestamp(net.w3))
    with reverts("NotDriver"):
        net.escrow(env.other_driver).reclaim(session_id)
    receipt = driver.reclaim(session_id)
    assert net.escrow().get_session(session_id).state == SessionState.EXPIRED
    assert events(net.escrow(), receipt, "SessionExpired") == [
        {"sessionId": session_id, "driver": env.driver.address, "refund": DEPOSIT}
    ]
    after = env.balances()
    assert after["driver"] == before["driver"] and after["payout"] == before["payout"]
    assert after["escrow"] == before["escrow"]
    with reverts("InvalidState"):
        net.escrow(net.operator).settle(session_id, 5000)


def test_cost_is_capped_at_the_deposit(env: Env) -> None:
    deposit = 2 * TOKEN
    before = env.balances()
    session_id = env.active(meter_start=0, deposit=deposit)
    assert price(TARIFF, 100_000) > deposit
    assert env.net.escrow().settlement_cost(session_id, 100_000) == deposit
    receipt = env.net.escrow(env.net.operator).settle(session_id, 100_000)
    settled = events(env.net.escrow(), receipt, "SessionSettled")[0]
    assert (settled["cost"], settled["refund"]) == (deposit, 0)
    after = env.balances()
    assert after["payout"] - before["payout"] == deposit == before["driver"] - after["driver"]


def test_tariff_change_does_not_reprice_a_running_session(env: Env) -> None:
    net, operator = env.net, env.net.escrow(env.net.operator)
    old_tariff_id = net.escrow().get_station(env.station).tariff_id
    session_id = env.open()
    expensive = Tariff(price_per_kwh=3 * TOKEN, session_fee=5 * TOKEN)
    operator.set_tariff(env.station, expensive)
    new_tariff_id = net.escrow().get_station(env.station).tariff_id
    assert new_tariff_id != old_tariff_id
    operator.start(session_id, 1, 0)
    receipt = operator.settle(session_id, 10_000)
    settled = events(net.escrow(), receipt, "SessionSettled")[0]
    assert settled["tariffId"] == old_tariff_id
    assert settled["cost"] == price(TARIFF, 10_000)
    later = env.open()
    assert net.escrow().get_session(later).tariff_id == new_tariff_id
    operator.start(later, 2, 0)
    assert net.escrow().settlement_cost(later, 1_000) == price(expensive, 1_000)


def test_reject_refunds_and_records_the_reason(env: Env) -> None:
    before = env.balances()
    session_id = env.open()
    receipt = env.net.escrow(env.net.operator).reject(session_id, CancelReason.CONNECTOR_BUSY)
    assert env.net.escrow().get_session(session_id).state == SessionState.CANCELLED
    assert events(env.net.escrow(), receipt, "SessionCancelled") == [
        {
            "sessionId": session_id,
            "driver": env.driver.address,
            "refund": DEPOSIT,
            "reason": CancelReason.CONNECTOR_BUSY,
        }
    ]
    assert env.balances() == before
    active = env.active()
    with reverts("InvalidState"):
        env.net.escrow(env.net.operator).reject(active, CancelReason.OTHER)


def test_request_stop_only_by_the_driver_of_an_active_session(env: Env) -> None:
    driver = env.net.escrow(env.driver)
    requested = env.open()
    with reverts("InvalidState"):
        driver.request_stop(requested)
    session_id = env.active()
    with reverts("NotDriver"):
        env.net.escrow(env.other_driver).request_stop(session_id)
    with reverts("NotDriver"):
        env.net.escrow(env.net.operator).request_stop(session_id)
    receipt = driver.request_stop(session_id)
    assert events(env.net.escrow(), receipt, "StopRequested") == [{"sessionId": session_id, "stationId": env.station}]
    assert env.net.escrow().get_session(session_id).state == SessionState.ACTIVE
    env.net.escrow(env.net.operator).settle(session_id, 1000)
    with reverts("InvalidState"):
        driver.request_stop(session_id)


def test_meter_below_start_is_refused_and_equal_meter_costs_the_fee(env: Env) -> None:
    operator = env.net.escrow(env.net.operator)
    session_id = env.active(meter_start=5000)
    with reverts("MeterBelowStart") as info:
        operator.settle(session_id, 4999)
    assert info.value.args_ == (session_id, 5000, 4999)
    receipt = operator.settle(session_id, 5000)
    assert events(env.net.escrow(), receipt, "SessionSettled")[0]["cost"] == TARIFF.session_fee


def test_open_refuses_bad_input(env: Env) -> None:
    driver = env.net.escrow(env.driver)
    with reverts("ZeroDeposit"):
        driver.open(env.station, 1, 0)
    with reverts("UnknownStation") as info:
        driver.open(99, 1, DEPOSIT)
    assert info.value.args_ == (99,)
    with reverts("InvalidConnector") as info:
        driver.open(env.station, 0, DEPOSIT)
    assert info.value.args_ == (env.station, 0)
    with reverts("InvalidConnector"):
        driver.open(env.station, 3, DEPOSIT)
    driver.open(env.station, 2, DEPOSIT)  # the last connector is fine
    env.net.escrow(env.net.operator).set_active(env.station, False)
    with reverts("StationInactive") as info:
        driver.open(env.station, 1, DEPOSIT)
    assert info.value.args_ == (env.station,)
    env.net.escrow(env.net.operator).set_active(env.station, True)
    driver.open(env.station, 1, DEPOSIT)
