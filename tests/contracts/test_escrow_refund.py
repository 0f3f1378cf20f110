"""The escrow's operator refund of a started session (a held session's reject, issue 19) on a real Anvil:
the whole deposit back to the driver, nothing to the operator, only by the station's operator, only while
the session is Active."""

from __future__ import annotations

from ev_network.contracts import SessionState
from tools.harness.chain import ESCROW_DEPOSIT, Env
from tools.harness.contracts import events, reverts


def test_the_operator_refunds_a_started_session_in_full_and_is_paid_nothing(env: Env) -> None:
    net, escrow = env.net, env.net.escrow()
    before = env.balances()
    session_id = env.active(meter_start=5_000)
    receipt = net.escrow(net.operator).refund_active(session_id)
    assert events(escrow, receipt, "SessionRefunded") == [
        {
            "sessionId": session_id,
            "driver": env.driver.address,
            "operator": net.operator.address,
            "refund": ESCROW_DEPOSIT,
        }
    ]
    assert escrow.get_session(session_id).state is SessionState.CANCELLED
    assert env.balances() == before  # driver, payout and escrow as before the open
    with reverts("InvalidState"):  # once only: a refunded session cannot be refunded or settled again
        net.escrow(net.operator).refund_active(session_id)
    with reverts("InvalidState"):
        net.escrow(net.operator).settle(session_id, 6_000)


def test_only_the_station_operator_refunds_and_only_an_active_session(env: Env) -> None:
    net = env.net
    active = env.active()
    with reverts("NotStationOperator"):
        net.escrow(net.operator2).refund_active(active)
    with reverts("NotStationOperator"):  # not the driver either: a driver takes a deposit back by reclaim
        net.escrow(env.driver).refund_active(active)
    requested = env.open()
    with reverts("InvalidState"):  # not started: the operator rejects it instead
        net.escrow(net.operator).refund_active(requested)
    net.escrow(net.operator).settle(active, 1_500)
    with reverts("InvalidState"):  # settled: nothing left to refund
        net.escrow(net.operator).refund_active(active)


def test_a_reclaimed_session_cannot_be_refunded(env: Env) -> None:
    net = env.net
    session_id = env.active()
    net.time_travel(net.deployment.max_duration + net.deployment.reclaim_grace + 1)
    net.escrow(env.driver).reclaim(session_id)
    with reverts("InvalidState"):
        net.escrow(net.operator).refund_active(session_id)
