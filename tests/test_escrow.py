"""The session escrow on a real Anvil: every state transition, every revert path (by custom error
name), exact costs, refunds and balances, batches, the time fee, and a token without permit."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from eth_account.signers.local import LocalAccount
from web3.logs import DISCARD

from ev_network.contracts import CancelReason, Escrow, SessionState, Token
from ev_network.deployment import Deployment
from ev_network.pricing import Tariff, price
from tests.conftest import TARIFF, TIMED_TARIFF, TOKEN, Net
from tests.contracts_helpers import (
    block_time,
    deploy_artifact,
    events,
    latest_timestamp,
    reverts,
    set_next_timestamp,
)

DEPOSIT = 20 * TOKEN


@dataclass
class Env:
    net: Net
    station: int
    driver: LocalAccount
    other_driver: LocalAccount

    def balances(self) -> dict[str, int]:
        token = self.net.token()
        who = {
            "driver": self.driver.address,
            "payout": self.net.payout.address,
            "escrow": self.net.deployment.escrow,
        }
        return {name: token.balance_of(address) for name, address in who.items()}

    def open(self, deposit: int = DEPOSIT, station: int | None = None, connector: int = 1, driver=None) -> int:
        escrow = self.net.escrow(driver or self.driver)
        return escrow.session_id_from(escrow.open(station or self.station, connector, deposit))

    def active(self, meter_start: int = 1000, deposit: int = DEPOSIT, station: int | None = None, driver=None) -> int:
        session_id = self.open(deposit, station, driver=driver)
        self.net.escrow(self.net.operator).start(session_id, 7000 + session_id, meter_start)
        return session_id


@pytest.fixture
def env(clean_chain: Net) -> Env:
    net = clean_chain
    station = net.add_station("CP-ESCROW-1", connectors=2, tariff=TARIFF)
    driver, other = net.drivers[0], net.drivers[1]
    net.fund(driver)
    net.fund(other)
    return Env(net, station, driver, other)


def test_open_start_settle_moves_exact_amounts(env: Env) -> None:
    net, escrow = env.net, env.net.escrow()
    before = env.balances()
    receipt = net.escrow(env.driver).open(env.station, 2, DEPOSIT)
    session_id = escrow.session_id_from(receipt)
    session = escrow.get_session(session_id)
    tariff_id = escrow.get_station(env.station).tariff_id
    assert (session.driver, session.deposit, session.station_id, session.connector) == (
        env.driver.address,
        DEPOSIT,
        env.station,
        2,
    )
    assert (session.state, session.tariff_id, session.opened_at) == (
        SessionState.REQUESTED,
        tariff_id,
        block_time(net.w3, receipt),
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
    assert (session.state, session.transaction_id, session.meter_start, session.started_at) == (
        SessionState.ACTIVE,
        4242,
        100_000,
        started_at,
    )
    assert events(escrow, receipt, "SessionStarted") == [
        {
            "sessionId": session_id,
            "stationId": env.station,
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
    assert escrow.get_session(session_id).state == SessionState.SETTLED
    assert after["payout"] - before["payout"] == expected_cost
    assert before["driver"] - after["driver"] == expected_cost
    assert after["escrow"] == before["escrow"]
    assert events(escrow, receipt, "SessionSettled") == [
        {
            "sessionId": session_id,
            "driver": env.driver.address,
            "operator": net.operator.address,
            "stationId": env.station,
            "connector": 2,
            "tariffId": tariff_id,
            "transactionId": 4242,
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
    with reverts("InvalidState"):
        operator.settle(999, 1)  # never opened: state None


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
    opened_at = net.escrow().get_session(session_id).opened_at
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
    started_at = net.escrow().get_session(session_id).started_at
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


def test_settle_batch_pays_out_once_for_the_summed_cost(env: Env) -> None:
    net = env.net
    second = net.add_station("CP-ESCROW-2", connectors=1, tariff=TIMED_TARIFF)
    before = env.balances()
    other_before = net.token().balance_of(env.other_driver.address)
    ids = [env.active(meter_start=0), env.active(meter_start=10, station=second), env.active(driver=env.other_driver)]
    stops = [3_000, 10_010, 1_000 + 60_000]
    costs = [net.escrow().settlement_cost(s, m) for s, m in zip(ids, stops, strict=True)]
    receipt = net.escrow(net.operator).settle_batch(ids, stops)
    settled = events(net.escrow(), receipt, "SessionSettled")
    assert [e["sessionId"] for e in settled] == ids
    transfers = net.token().contract.events.Transfer().process_receipt(receipt, errors=DISCARD)
    to_payout = [t["args"]["value"] for t in transfers if t["args"]["to"] == net.payout.address]
    assert len(to_payout) == 1 and to_payout[0] == sum(e["cost"] for e in settled)
    after = env.balances()
    assert after["payout"] - before["payout"] == sum(e["cost"] for e in settled)
    assert after["escrow"] == before["escrow"]
    assert before["driver"] - after["driver"] == settled[0]["cost"] + settled[1]["cost"]
    assert other_before - net.token().balance_of(env.other_driver.address) == settled[2]["cost"]
    assert settled[0]["cost"] == costs[0] == price(TARIFF, 3_000)
    assert settled[2]["cost"] == costs[2] == DEPOSIT  # 60 kWh is more than the deposit buys
    assert all(net.escrow().get_session(s).state == SessionState.SETTLED for s in ids)


def test_settle_batch_is_all_or_nothing(env: Env) -> None:
    net, operator = env.net, env.net.escrow(env.net.operator)
    first, second = env.active(), env.active()
    requested = env.open()
    with reverts("LengthMismatch"):
        operator.settle_batch([first, second], [2000])
    with reverts("InvalidState") as info:
        operator.settle_batch([first, requested, second], [2000, 2000, 2000])
    assert info.value.args_ == (requested, SessionState.REQUESTED)
    with reverts("MeterBelowStart"):
        operator.settle_batch([first, second], [2000, 999])
    other_station = net.add_station("CP-OTHER-OP", connectors=1, operator=net.operator2)
    foreign = env.open(station=other_station)
    net.escrow(net.operator2).start(foreign, 1, 0)
    with reverts("NotStationOperator"):
        operator.settle_batch([first, foreign], [2000, 2000])
    with reverts("InvalidState"):  # the same session twice: the second settle sees it Settled
        operator.settle_batch([first, first], [2000, 2000])
    before = env.balances()
    assert all(net.escrow().get_session(s).state == SessionState.ACTIVE for s in (first, second, foreign))
    operator.settle_batch([first, second], [2000, 3000])
    assert env.balances()["payout"] - before["payout"] == price(TARIFF, 1000) + price(TARIFF, 2000)
    operator.settle_batch([], [])  # nothing to do is not an error


def test_start_batch_starts_every_session_or_none(env: Env) -> None:
    net, operator = env.net, env.net.escrow(env.net.operator)
    first, second, third = env.open(), env.open(), env.open()
    with reverts("LengthMismatch"):
        operator.start_batch([first, second], [1, 2], [100])
    other_station = net.add_station("CP-OTHER-OP2", connectors=1, operator=net.operator2)
    foreign = env.open(station=other_station)
    with reverts("NotStationOperator"):
        operator.start_batch([first, foreign], [1, 2], [100, 200])
    with reverts("InvalidState"):  # the same session twice: the second start sees it Active
        operator.start_batch([first, first], [1, 2], [100, 200])
    assert all(net.escrow().get_session(s).state == SessionState.REQUESTED for s in (first, second, third))

    receipt = operator.start_batch([first, second, third], [11, 12, 13], [100, 200, 300])
    started = events(net.escrow(), receipt, "SessionStarted")
    assert [(e["sessionId"], e["transactionId"], e["meterStart"]) for e in started] == [
        (first, 11, 100),
        (second, 12, 200),
        (third, 13, 300),
    ]
    for session_id, meter_start in ((first, 100), (second, 200), (third, 300)):
        session = net.escrow().get_session(session_id)
        assert session.state == SessionState.ACTIVE and session.meter_start == meter_start
    with reverts("NotStationOperator"):
        net.escrow(net.operator2).start_batch([env.open()], [1], [0])


def test_time_fee_counts_seconds_and_stops_at_max_duration(env: Env) -> None:
    net, operator = env.net, env.net.escrow(env.net.operator)
    station = net.add_station("CP-TIMED", connectors=2, tariff=TIMED_TARIFF)
    deposit = 200 * TOKEN
    first, second = env.open(deposit, station), env.open(deposit, station)
    t0 = latest_timestamp(net.w3) + 10
    set_next_timestamp(net.w3, t0)
    operator.start(first, 1, 0)
    set_next_timestamp(net.w3, t0 + 1)
    operator.start(second, 2, 0)
    set_next_timestamp(net.w3, t0 + 5_399)  # 1.5 h minus a second: the fee rounds down per second
    receipt = operator.settle(first, 7_777)
    expected = (
        TIMED_TARIFF.session_fee
        + 7_777 * TIMED_TARIFF.price_per_kwh // 1000
        + 5_399 * TIMED_TARIFF.time_fee_per_hour // 3600
    )
    assert events(net.escrow(), receipt, "SessionSettled")[0]["cost"] == expected == price(TIMED_TARIFF, 7_777, 5_399)
    late = t0 + 1 + net.deployment.max_duration + 1_800  # still inside the reclaim grace
    set_next_timestamp(net.w3, late)
    receipt = operator.settle(second, 1_000)
    settled = events(net.escrow(), receipt, "SessionSettled")[0]
    assert settled["endedAt"] - settled["startedAt"] == net.deployment.max_duration + 1_800
    assert settled["cost"] == price(TIMED_TARIFF, 1_000, net.deployment.max_duration)


def test_escrow_works_with_a_token_without_permit(env: Env) -> None:
    net = env.net
    admin = net.sender(net.admin)
    plain_address = deploy_artifact(admin, "PlainToken")
    d = net.deployment
    escrow_address = deploy_artifact(admin, "SessionEscrow", plain_address, 300, 3600, 600, net.admin.address)
    deployment = Deployment(
        chain_id=d.chain_id,
        token=plain_address,
        escrow=escrow_address,
        deployment_block=net.w3.eth.block_number,
        start_timeout=300,
        max_duration=3600,
        reclaim_grace=600,
    )

    def escrow(account: LocalAccount) -> Escrow:
        return Escrow(net.w3, deployment, net.sender(account))

    def token(account: LocalAccount | None = None) -> Token:
        return Token(net.w3, plain_address, net.sender(account) if account else None, abi_name="PlainToken")

    assert not token().supports_permit()
    escrow(net.admin).register_operator(net.operator.address, net.payout.address, "Volt Charging GmbH")
    station = escrow(net.operator).station_id_from(escrow(net.operator).add_station("CP-PLAIN", 1, TARIFF))
    token(env.driver).mint(env.driver.address, 50 * TOKEN)
    token(env.driver).approve(escrow_address, 2**256 - 1)
    session_id = escrow(env.driver).session_id_from(escrow(env.driver).open(station, 1, DEPOSIT))
    assert token().balance_of(escrow_address) == DEPOSIT
    escrow(net.operator).start(session_id, 1, 0)
    receipt = escrow(net.operator).settle(session_id, 8_000)
    cost = price(TARIFF, 8_000)
    assert events(escrow(net.operator), receipt, "SessionSettled")[0]["cost"] == cost
    assert token().balance_of(env.driver.address) == 50 * TOKEN - cost
    assert token().balance_of(net.payout.address) == cost
    assert token().balance_of(escrow_address) == 0
    # openWithPermit on a token without permit: the failed permit is ignored, the allowance is used.
    bogus_permit = (2**255, 27, b"\x01" * 32, b"\x02" * 32)
    receipt = escrow(env.driver).open_with_permit(station, 1, TOKEN, bogus_permit)
    assert escrow(env.driver).session_id_from(receipt) == session_id + 1
    assert token().balance_of(escrow_address) == TOKEN
