"""A driver's sessions over time, the EV Wallet library against a real Anvil: watching one from request to
settlement, the history of every session, a lane reused by the next session, how closed sessions ended,
every lane open, a read-only wallet, exact amounts, gas for a fresh account, and the whole journey with a
Core Client and a simulated charge point."""

from __future__ import annotations

import re
import threading
import time

import pytest

from ev_network.contracts import SessionState
from ev_network.errors import ContractRevert
from ev_network.pricing import Tariff, price
from ev_network.session_ids import LANES, lane_of, make_session_id, session_label
from tools.harness.chain import TARIFF, TOKEN
from tools.harness.wallet import (
    PASSWORD,
    driver_wallet,
    funded_wallet,
    nonce,
    operator_settle,
    operator_start,
    session_events,
    settled_event,
    wallet_config,
)
from wallet.core import Wallet
from wallet.errors import (
    BadSessionId,
    InsufficientBalance,
    SessionNotFound,
    WalletError,
)
from wallet.keystore import Keystore
from wallet.reverts import explain_revert
from wallet.units import format_amount


def test_watch_reports_requested_started_charging_stopping_settled(clean_chain):
    net = clean_chain
    station_id = net.add_station("CP-WAL-WATCH")
    driver = net.drivers[5]
    net.fund(driver, approve=False)
    wallet = driver_wallet(net, driver, poll_interval=0.05)
    session_id = wallet.open_session(station_id, 1, 10 * TOKEN)
    errors: list[BaseException] = []

    def operator_and_driver() -> None:
        try:
            time.sleep(0.3)
            operator_start(net, session_id, meter_start=0)
            time.sleep(0.4)
            wallet.request_stop(session_id)  # the driver's only transaction while the main thread watches
            time.sleep(0.3)
            operator_settle(net, session_id, meter_stop=4_000)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    worker = threading.Thread(target=operator_and_driver)
    worker.start()
    updates = list(wallet.watch(session_id, poll_interval=0.05, timeout=30))
    worker.join()
    assert not errors
    phases = [u.phase for u in updates]
    distinct = [p for i, p in enumerate(phases) if i == 0 or phases[i - 1] != p]
    assert distinct == ["requested", "started", "charging", "stopping", "settled"], phases
    assert phases.count("charging") >= 2  # repeated with the elapsed time
    charging = [u for u in updates if u.phase == "charging"]
    assert all(u.elapsed_s is not None and u.elapsed_s >= 0 for u in charging)
    assert updates[-1].done and updates[-1].status.cost == price(TARIFF, 4_000)
    with pytest.raises(WalletError, match="already settled"):
        wallet.request_stop(session_id)


async def test_awatch_of_a_finished_session_ends_with_its_final_state(clean_chain):
    net = clean_chain
    station_id = net.add_station("CP-WAL-AWATCH")
    driver = net.drivers[6]
    net.fund(driver, approve=False)
    wallet = driver_wallet(net, driver)
    session_id = wallet.open_session(station_id, 1, 3 * TOKEN)
    net.escrow(net.operator).reject(session_id, 1)
    phases = [u.phase async for u in wallet.awatch(session_id, poll_interval=0.05, timeout=10)]
    assert phases == ["cancelled"]
    assert wallet.session_status(session_id).cancel_reason == "station_offline"


def test_history_lists_every_session_of_the_driver_with_its_state(clean_chain):
    net = clean_chain
    station_id = net.add_station("CP-WAL-HIST", connectors=4)
    driver, other = net.drivers[7], net.drivers[8]
    for account in (driver, other):
        net.fund(account, approve=False)
    wallet = driver_wallet(net, driver)
    settled = wallet.open_session(station_id, 1, 5 * TOKEN)
    rejected = wallet.open_session(station_id, 2, 5 * TOKEN)
    foreign = driver_wallet(net, other).open_session(station_id, 3, 5 * TOKEN)
    active = wallet.open_session(station_id, 3, 5 * TOKEN)
    waiting = wallet.open_session(station_id, 4, 5 * TOKEN)
    operator_start(net, settled)
    operator_settle(net, settled, meter_stop=2_000)
    net.escrow(net.operator).reject(rejected, 2)
    operator_start(net, active)

    history = wallet.history()
    assert [(h.session_id, h.state) for h in history] == [
        (settled, "settled"),
        (rejected, "cancelled"),
        (active, "active"),
        (waiting, "requested"),
    ]
    assert foreign not in {h.session_id for h in history}
    assert len({lane_of(h.session_id) for h in history}) == 4  # all four were open at once: a lane each
    assert history[0].cost == price(TARIFF, 2_000) and history[0].energy_wh == 2_000
    assert history[1].cancel_reason == "connector_busy" and history[1].refund == 5 * TOKEN
    assert all(re.fullmatch(r"0x[0-9a-f]{64}", h.open_tx) for h in history)


def test_read_only_wallet_reads_but_cannot_write(clean_chain):
    net = clean_chain
    station_id = net.add_station("CP-WAL-RO")
    from wallet.core import Wallet

    reader = Wallet(net.w3, net.deployment, net.drivers[9].address)
    assert reader.station(station_id).operator_name == "Volt Charging GmbH"
    assert reader.station(str(station_id)).charge_point_id == "CP-WAL-RO"
    with pytest.raises(WalletError, match="not unlocked"):
        reader.open_session(station_id, 1, TOKEN)
    with pytest.raises(SessionNotFound, match=r"there is no session 42$"):
        reader.session_status("42")  # a label of the reader's account that was never used
    with pytest.raises(SessionNotFound, match="there is no session 0x"):  # not the reader's: the full id
        reader.session_status(make_session_id(net.drivers[8].address, 3, 42))
    with pytest.raises(BadSessionId, match="not a session id"):
        reader.session_status("0x1234")
    views = reader.stations()
    assert any(v.station_id == station_id and v.tariff.price_per_kwh == TARIFF.price_per_kwh for v in views)
    assert Tariff(**reader.station(station_id).tariff.model_dump(exclude={"tariff_id"})) == TARIFF


def test_amounts_are_exact_decimals():
    from wallet.units import parse_amount

    assert parse_amount("12.5", 18) == 12 * TOKEN + TOKEN // 2
    assert parse_amount("0.000000000000000001", 18) == 1
    assert parse_amount("1_000", 6) == 1_000_000_000
    assert format_amount(12 * TOKEN + TOKEN // 2, 18) == "12.50"
    assert format_amount(123456789, 18) == "0.000000000123456789"
    assert format_amount(5, 0) == "5" and format_amount(-150, 2) == "-1.50"
    for bad in ("-1", "abc", "nan", "1e400000", "0.0000000000000000001"):
        with pytest.raises(WalletError):
            parse_amount(bad, 18)


async def test_full_journey_with_the_core_client_and_a_simulated_charge_point(clean_chain, tmp_path):
    """The whole product: a driver's wallet, the real Core Client daemon (in-process) and a simulated
    OCPP 1.6J charge point over real websockets. The driver opens with a permit, watches the charge,
    asks for the stop; the Core Client stops the charge point and settles; the invoice matches."""
    import asyncio

    from simulator.charge_point import Behaviour
    from tools.harness.core import cp_ids, make_keyfile, running_core

    net = clean_chain
    [cp_id] = cp_ids("CP-WAL-E2E")
    keyfile = make_keyfile(tmp_path / "operator", net.operator)
    async with running_core(net, tmp_path, keyfile, {cp_id: 2}) as core:
        sim = await core.connect(cp_id, Behaviour(power_w=22_000, meter_interval_s=10, time_accel=100))
        # the daemon runs on this loop: the top-up waits for its receipts in a thread
        wallet = await asyncio.to_thread(funded_wallet, net, tmp_path / "home", 50 * TOKEN, 0.1)
        payout_before = net.token().balance_of(net.payout.address)
        opened = await asyncio.to_thread(wallet.open, cp_id, 2, 20 * TOKEN)
        assert opened.method == "permit"

        updates = []
        async for update in wallet.awatch(opened.session_id, poll_interval=0.1, timeout=60):
            updates.append(update)
            if update.phase == "charging" and len([u for u in updates if u.phase == "charging"]) == 3:
                await asyncio.to_thread(wallet.request_stop, opened.session_id)
        record = await sim.wait_for_stop(2, timeout=10)

    phases = [u.phase for u in updates]
    distinct = [p for i, p in enumerate(phases) if i == 0 or phases[i - 1] != p]
    assert distinct[:3] == ["requested", "started", "charging"] and distinct[-1] == "settled", phases
    assert set(distinct) <= {"requested", "started", "charging", "stopping", "settled"}
    assert record.reason == "Remote" and record.energy_wh > 0
    final = updates[-1].status
    assert final.stop_requested and final.energy_wh == record.energy_wh

    inv = wallet.invoice(opened.session_id)
    event = settled_event(net, opened.session_id)
    assert inv.total == event["cost"] == price(TARIFF, record.energy_wh)
    assert inv.total == wallet.quote(cp_id, record.energy_wh).total
    started = session_events(net, opened.session_id, "SessionStarted")[0]
    assert inv.charge_point_id == cp_id and inv.ocpp_transaction_id == started["transactionId"] > 0
    assert inv.connector == 2 and final.transaction_id == inv.ocpp_transaction_id
    assert wallet.balance() == 50 * TOKEN - inv.total
    assert net.token().balance_of(net.payout.address) - payout_before == inv.total
    assert [(h.session_id, h.state) for h in wallet.history()] == [(opened.session_id, "settled")]


def test_fresh_account_without_gas_is_told_before_sending_and_dev_topup_pays_for_gas(clean_chain, tmp_path):
    net = clean_chain
    station_id = net.add_station("CP-GAS", 1)
    keystore = Keystore(wallet_config(net, tmp_path / "home"))
    address = keystore.create(PASSWORD)
    wallet = Wallet(net.w3, net.deployment, keystore.unlock(address, PASSWORD))
    net.token(net.admin).mint(address, 10 * TOKEN)  # tokens but no ether
    with pytest.raises(InsufficientBalance, match="no ether to pay the transaction fee"):
        wallet.open(station_id, 1, 5 * TOKEN)
    assert nonce(net, address) == 0

    wallet.top_up(TOKEN, minter=net.admin)  # on the dev chain the faucet also pays for gas
    assert net.w3.eth.get_balance(address) > 0
    opened = wallet.open(station_id, 1, 5 * TOKEN)
    assert net.escrow().get_session(opened.session_id).deposit == 5 * TOKEN


def test_a_returning_drivers_second_session_reuses_the_lane_and_the_first_still_reads_settled(clean_chain, tmp_path):
    net = clean_chain
    station_id = net.add_station("CP-WAL-AGAIN")
    wallet = funded_wallet(net, tmp_path / "home", 50 * TOKEN)
    first = wallet.open_session(station_id, 1, 10 * TOKEN)
    operator_start(net, first, transaction_id=11, meter_start=100)
    operator_settle(net, first, meter_stop=2_100)
    status_before, invoice_before = wallet.session_status(first), wallet.invoice(first)
    assert wallet.escrow.get_session(first).state is SessionState.SETTLED

    second = wallet.open(station_id, 2, 10 * TOKEN)
    assert second.session_id == make_session_id(wallet.address, 0, 2) and second.label == "2"  # same lane, seq 2
    assert wallet.escrow.get_session(first).state is SessionState.CLOSED  # storage forgot it: events tell
    status = wallet.session_status("1")
    assert status == status_before
    assert (status.state, status.phase, status.cost, status.energy_wh) == (
        "settled",
        "settled",
        price(TARIFF, 2_000),
        2_000,
    )
    assert (status.connector, status.transaction_id, status.meter_start) == (1, 11, 100)
    assert wallet.invoice("1") == invoice_before and invoice_before.number.endswith("-1")
    assert [u.phase for u in wallet.watch(first, timeout=5)] == ["started", "settled"]
    assert [(h.label, h.state) for h in wallet.history()] == [("1", "settled"), ("2", "requested")]

    before = nonce(net, wallet.address)
    with pytest.raises(WalletError, match="cannot stop session 1: it is already settled"):
        wallet.request_stop(first)
    with pytest.raises(WalletError, match="cannot cancel session 1: it is already settled"):
        wallet.cancel("1")
    assert nonce(net, wallet.address) == before
    with pytest.raises(ContractRevert) as revert:  # straight to the contract, past the wallet's checks
        wallet.escrow.cancel(first)
    assert revert.value.name == "InvalidState"
    assert "has already ended" in str(explain_revert(revert.value, "cancel session 1"))

    operator_start(net, second.session_id, transaction_id=12, meter_start=0)
    operator_settle(net, second.session_id, meter_stop=1_000)
    second_invoice = wallet.invoice("2")
    assert second_invoice.number.endswith("-2") and second_invoice.number != invoice_before.number
    assert (second_invoice.connector, second_invoice.ocpp_transaction_id) == (2, 12)
    assert wallet.invoice(first) == invoice_before  # still the same, stable number


def test_closed_sessions_show_how_they_ended_never_just_closed(clean_chain, tmp_path):
    net = clean_chain
    station_id = net.add_station("CP-WAL-CLOSED")
    wallet = funded_wallet(net, tmp_path / "home", 30 * TOKEN)
    rejected = wallet.open_session(station_id, 1, 4 * TOKEN)
    net.escrow(net.operator).reject(rejected, 3)
    expired = wallet.open_session(station_id, 1, 6 * TOKEN)
    operator_start(net, expired, meter_start=0)
    net.time_travel(net.deployment.max_duration + net.deployment.reclaim_grace + 1)
    wallet.reclaim(expired)
    latest = wallet.open_session(station_id, 1, 2 * TOKEN)
    assert [session_label(i) for i in (rejected, expired, latest)] == ["1", "2", "3"]
    assert {wallet.escrow.get_session(i).state for i in (rejected, expired)} == {SessionState.CLOSED}

    cancelled = wallet.session_status(rejected)
    assert (cancelled.state, cancelled.phase, cancelled.refund, cancelled.cancel_reason) == (
        "cancelled",
        "cancelled",
        4 * TOKEN,
        "charger_rejected",
    )
    gone = wallet.session_status("2")
    assert (gone.state, gone.phase, gone.refund, gone.cost) == ("expired", "expired", 6 * TOKEN, 0)
    assert gone.started_at is not None and gone.ended_at > gone.started_at
    assert [h.state for h in wallet.history()] == ["cancelled", "expired", "requested"]
    with pytest.raises(WalletError, match="no invoice for session 1: it is cancelled"):
        wallet.invoice("1")
    with pytest.raises(WalletError, match="no invoice for session 2: it is expired"):
        wallet.invoice(expired)
    with pytest.raises(WalletError, match="cannot reclaim session 2: it is already expired"):
        wallet.reclaim(expired)


def test_a_driver_with_every_lane_open_is_told_why_it_cannot_open_another(clean_chain, tmp_path):
    net = clean_chain
    station_id = net.add_station("CP-WAL-LANES")
    wallet = funded_wallet(net, tmp_path / "home", LANES + 10)  # smallest units: one per session
    wallet.token.approve(net.deployment.escrow, 2**256 - 1)
    hashes = [wallet.escrow.open(station_id, 1, 1, wait=False) for _ in range(LANES)]
    receipts = [net.w3.eth.wait_for_transaction_receipt(h) for h in hashes]
    ids = [wallet.escrow.session_id_from(r) for r in receipts]
    assert [lane_of(i) for i in ids] == list(range(LANES)) and session_label(ids[-1]) == "255/1"
    with pytest.raises(WalletError, match=f"already has {LANES} sessions open"):
        wallet.open(station_id, 1, 1)
    net.escrow(net.operator).reject(ids[7], 1)  # a lane frees up: the next open takes it
    assert wallet.open(station_id, 1, 1).session_id == make_session_id(wallet.address, 7, 2)
