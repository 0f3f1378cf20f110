"""The session escrow on a real Anvil: startBatch and settleBatch (one payout transfer, all or
nothing), the time fee and its cap, and an ERC-20 without permit on a second escrow."""

from __future__ import annotations

from eth_account.signers.local import LocalAccount
from web3.logs import DISCARD

from ev_network.contracts import Escrow, SessionState, Token
from ev_network.deployment import Deployment
from ev_network.pricing import price
from ev_network.session_ids import make_session_id
from tools.harness.chain import ESCROW_DEPOSIT, TARIFF, TIMED_TARIFF, TOKEN, Env
from tools.harness.contracts import (
    deploy_artifact,
    events,
    latest_timestamp,
    reverts,
    set_next_timestamp,
)

DEPOSIT = ESCROW_DEPOSIT


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
    with reverts("LengthMismatch") as mismatch:
        operator.settle_batch([first, second], [2000])
    assert mismatch.value.args_ == (2, 1)  # (sessions, readings)
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
    with reverts("LengthMismatch") as mismatch:
        operator.start_batch([first, second], [1, 2], [100])
    assert mismatch.value.args_ == (2, 1)
    with reverts("LengthMismatch") as mismatch:
        operator.start_batch([first, second], [1, 2, 3], [100, 100])
    assert mismatch.value.args_ == (2, 3)
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
    escrow_address = deploy_artifact(
        admin, "SessionEscrow", plain_address, 300, 3600, 600, net.admin.address, net.deployment.meter_verifier
    )
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
    assert session_id == make_session_id(env.driver.address, 0, 1)  # its lane is free again: reused
    assert escrow(env.driver).session_id_from(receipt) == make_session_id(env.driver.address, 0, 2)
    assert token().balance_of(escrow_address) == TOKEN
