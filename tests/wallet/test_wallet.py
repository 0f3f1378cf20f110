"""The EV Wallet library against a real Anvil: keys, top-up, quotes, sessions (permit path), the
operator's side with real signed transactions, invoices, cancel, reclaim and clear errors. A driver's
sessions over time (watch, history, lanes, how they ended): test_wallet_sessions.py."""

from __future__ import annotations

import json

import pytest
from pypdf import PdfReader

from ev_network.contracts import SessionState
from ev_network.keys import KeystoreError
from ev_network.pricing import price
from ev_network.session_ids import hex_session_id, make_session_id
from tools.harness.chain import TARIFF, TIMED_TARIFF, TOKEN
from tools.harness.wallet import (
    PASSWORD,
    block_time,
    driver_wallet,
    fresh_wallet,
    function_selector,
    funded_wallet,
    latest_time,
    nonce,
    operator_settle,
    operator_start,
    set_next_block_time,
    settled_event,
    tx_selector,
    wallet_config,
)
from wallet.config import WalletConfig
from wallet.core import STANDING_ALLOWANCE
from wallet.errors import (
    InsufficientBalance,
    StationUnavailable,
    TooEarly,
    WalletError,
)
from wallet.invoice import Invoice, render_json, render_pdf, render_text
from wallet.keystore import Keystore
from wallet.units import format_amount, format_time, iso_utc


def test_journey_create_topup_quote_open_with_permit_settle_invoice(clean_chain, tmp_path):
    net = clean_chain
    station_id = net.add_station("CP-WAL-1", connectors=2, tariff=TARIFF)
    wallet, keystore = fresh_wallet(net, tmp_path / "home")
    assert keystore.accounts() == [wallet.address]
    assert wallet.balance() == 0

    wallet.top_up(100 * TOKEN, minter=net.admin)
    assert wallet.balance() == 100 * TOKEN

    energy_wh = 12_345
    quote = wallet.quote("CP-WAL-1", energy_wh)
    assert quote.station_id == station_id
    assert quote.total == price(TARIFF, energy_wh) == net.escrow().quote(quote.tariff_id, energy_wh, 0)
    assert quote.session_fee + quote.energy_cost + quote.time_cost == quote.total

    payout_before = net.token().balance_of(net.payout.address)
    nonce_before = nonce(net, wallet.address)
    deposit = 20 * TOKEN
    opened = wallet.open(station_id, connector=2, deposit=deposit)
    assert opened.method == "permit"  # no approval existed: one transaction with the permit
    assert nonce(net, wallet.address) == nonce_before + 1
    assert tx_selector(net, opened.open_tx) == function_selector(wallet.escrow, "openWithPermit")
    assert wallet.balance() == 100 * TOKEN - deposit
    # the permit left a standing allowance: the driver's later opens need no permit
    assert net.token().allowance(wallet.address, net.deployment.escrow) == STANDING_ALLOWANCE
    # a fresh account's first session: lane 0, number 1 (label "1"), the id starts with the address
    assert opened.session_id == make_session_id(wallet.address, 0, 1) and opened.label == "1"
    assert opened.model_dump(mode="json")["session_id"] == hex_session_id(opened.session_id)
    status = wallet.session_status(opened.session_id)
    assert (status.state, status.phase, status.deposit, status.connector) == ("requested", "requested", deposit, 2)
    assert status.opened_at == block_time(net, opened.open_tx) and status.label == "1"
    assert wallet.session_status("1") == status == wallet.session_status(hex_session_id(opened.session_id))

    start_receipt = operator_start(net, opened.session_id, transaction_id=4242, meter_start=1_000)
    charging = wallet.session_status(opened.session_id)
    assert (charging.phase, charging.transaction_id, charging.meter_start) == ("charging", 4242, 1_000)
    assert charging.opened_at == status.opened_at  # from the open's block once storage says "started"
    assert charging.started_at == block_time(net, start_receipt["transactionHash"])
    settle_receipt = operator_settle(net, opened.session_id, meter_stop=1_000 + energy_wh)
    event = settled_event(net, opened.session_id)

    inv = wallet.invoice(opened.session_id)
    assert inv.total == event["cost"] == quote.total
    assert inv.refund == event["refund"] == deposit - quote.total
    assert sum(line.amount for line in inv.lines) == inv.total
    assert inv.deposit == deposit
    assert wallet.balance() == 100 * TOKEN - inv.total  # the driver paid exactly the invoice total
    assert net.token().balance_of(net.payout.address) - payout_before == inv.total
    escrow6, driver8 = net.deployment.escrow[2:8].upper(), wallet.address[2:10].upper()
    assert inv.number == f"EVN-{net.deployment.chain_id}-{escrow6}-{driver8}-1"
    assert (inv.session_id, inv.session_label) == (opened.session_id, "1")
    assert json.loads(render_json(inv))["session_id"] == hex_session_id(opened.session_id)
    assert Invoice.model_validate_json(render_json(inv)) == inv  # the JSON form reads back
    assert (inv.issuer.name, inv.issuer.operator, inv.issuer.payout) == (
        "Volt Charging GmbH",
        net.operator.address,
        net.payout.address,
    )
    assert (inv.driver, inv.charge_point_id, inv.connector, inv.ocpp_transaction_id) == (
        wallet.address,
        "CP-WAL-1",
        2,
        4242,
    )
    assert (inv.energy_wh, inv.energy_kwh) == (energy_wh, "12.345")
    assert inv.started_at == iso_utc(event["startedAt"]) and inv.ended_at == iso_utc(event["endedAt"])
    assert inv.open_tx == opened.open_tx
    assert inv.start_tx == net.w3.to_hex(start_receipt["transactionHash"])
    assert inv.settle_tx == net.w3.to_hex(settle_receipt["transactionHash"])
    assert (inv.currency, inv.decimals) == ("EVE", 18)
    assert [line.description for line in inv.lines] == ["Session fee", "Energy"]
    assert wallet.invoice(opened.session_id) == inv  # deterministic

    text = render_text(inv)
    assert inv.number in text and format_amount(inv.total, 18) in text
    assert hex_session_id(opened.session_id) in text
    pdf_path = render_pdf(inv, tmp_path / "invoice.pdf")
    pdf_text = "".join(page.extract_text() for page in PdfReader(pdf_path).pages)
    assert inv.number in pdf_text
    assert f"{format_amount(inv.total, 18)} EVE" in pdf_text
    assert inv.settle_tx in pdf_text

    history = wallet.history()
    assert [(h.session_id, h.state, h.cost) for h in history] == [(opened.session_id, "settled", inv.total)]


def test_quote_with_time_fee_equals_settled_cost(clean_chain):
    net = clean_chain
    station_id = net.add_station("CP-WAL-TIME", tariff=TIMED_TARIFF)
    driver = net.drivers[0]
    wallet = driver_wallet(net, driver)
    net.fund(driver, approve=False)
    quote = wallet.quote(station_id, energy_wh=7_500, minutes=45)
    assert quote.time_cost == 45 * 60 * TIMED_TARIFF.time_fee_per_hour // 3600 > 0

    session_id = wallet.open_session(station_id, 1, 50 * TOKEN)
    start_at = latest_time(net) + 10
    set_next_block_time(net, start_at)
    operator_start(net, session_id, meter_start=500)
    set_next_block_time(net, start_at + 45 * 60)
    operator_settle(net, session_id, meter_stop=500 + 7_500)

    inv = wallet.invoice(session_id)
    assert inv.total == settled_event(net, session_id)["cost"] == quote.total
    assert [line.description for line in inv.lines] == ["Session fee", "Energy", "Charging time"]
    assert inv.lines[2].amount == quote.time_cost and inv.duration_s == 45 * 60
    assert "Charging time: 0:45:00 x 2.00/h" in render_text(inv)  # h:mm:ss, not "0:45:00 h"


def test_cost_above_deposit_is_capped_with_an_explicit_adjustment_line(clean_chain):
    net = clean_chain
    station_id = net.add_station("CP-WAL-CAP")
    driver = net.drivers[1]
    net.fund(driver, approve=False)
    wallet = driver_wallet(net, driver)
    deposit = 2 * TOKEN
    session_id = wallet.open_session(station_id, 1, deposit)
    operator_start(net, session_id)
    operator_settle(net, session_id, meter_stop=50_000)  # 50 kWh: far more than the deposit pays for

    inv = wallet.invoice(session_id)
    assert inv.total == deposit == settled_event(net, session_id)["cost"] and inv.refund == 0
    assert inv.lines[-1].description == "Capped at the deposit"
    assert inv.lines[-1].amount == deposit - price(TARIFF, 50_000) < 0
    assert sum(line.amount for line in inv.lines) == inv.total


def test_cancel_is_refused_before_the_start_timeout_then_refunds_everything(clean_chain, tmp_path):
    net = clean_chain
    station_id = net.add_station("CP-WAL-CANCEL")
    wallet = funded_wallet(net, tmp_path / "home", 30 * TOKEN)
    session_id = wallet.open_session(station_id, 1, 10 * TOKEN)
    opened_at = wallet.session_status(session_id).opened_at

    before = nonce(net, wallet.address)
    with pytest.raises(TooEarly) as early:
        wallet.cancel(session_id)
    assert early.value.allowed_at == opened_at + net.deployment.start_timeout
    assert f"possible from {format_time(opened_at + net.deployment.start_timeout)} (in " in str(early.value)
    assert nonce(net, wallet.address) == before  # refused before anything was sent

    net.time_travel(net.deployment.start_timeout + 1)
    wallet.cancel(session_id)
    assert wallet.balance() == 30 * TOKEN
    status = wallet.session_status(session_id)
    assert (status.state, status.phase, status.cancel_reason, status.refund) == (
        "cancelled",
        "cancelled",
        "driver_cancelled",
        10 * TOKEN,
    )
    with pytest.raises(WalletError, match="it is already cancelled"):
        wallet.cancel(session_id)
    with pytest.raises(WalletError, match=r"no invoice for session .* cancelled"):
        wallet.invoice(session_id)


def test_reclaim_after_max_duration_and_grace(clean_chain):
    net = clean_chain
    station_id = net.add_station("CP-WAL-RECLAIM")
    driver = net.drivers[2]
    net.fund(driver, 40 * TOKEN, approve=False)
    wallet = driver_wallet(net, driver)
    session_id = wallet.open_session(station_id, 1, 15 * TOKEN)
    operator_start(net, session_id)
    with pytest.raises(WalletError, match="only a session that has not started can be cancelled"):
        wallet.cancel(session_id)
    with pytest.raises(TooEarly, match="cannot reclaim session"):
        wallet.reclaim(session_id)

    net.time_travel(net.deployment.max_duration + net.deployment.reclaim_grace + 1)
    wallet.reclaim(session_id)
    assert wallet.balance() == 40 * TOKEN
    assert wallet.session_status(session_id).phase == "expired"
    assert wallet.escrow.get_session(session_id).state is SessionState.EXPIRED


def test_deposit_above_balance_is_refused_without_sending_anything(clean_chain, tmp_path):
    net = clean_chain
    station_id = net.add_station("CP-WAL-POOR")
    wallet = funded_wallet(net, tmp_path / "home", 5 * TOKEN)
    before = nonce(net, wallet.address)
    with pytest.raises(InsufficientBalance) as refused:
        wallet.open_session(station_id, 1, 7 * TOKEN + TOKEN // 2)
    assert "7.50 EVE" in str(refused.value) and "5.00 EVE" in str(refused.value)
    assert nonce(net, wallet.address) == before
    assert wallet.escrow.get_session(make_session_id(wallet.address, 0, 1)).state is SessionState.NONE
    assert wallet.balance() == 5 * TOKEN


def test_station_and_connector_are_checked_before_sending(clean_chain):
    net = clean_chain
    station_id = net.add_station("CP-WAL-CHECK", connectors=2)
    driver = net.drivers[3]
    net.fund(driver, approve=False)
    wallet = driver_wallet(net, driver)
    before = nonce(net, driver.address)
    with pytest.raises(StationUnavailable, match="connectors 1 to 2, not 3"):
        wallet.open_session(station_id, 3, TOKEN)
    with pytest.raises(StationUnavailable, match="no station with id or charge point id 'CP-NOPE'"):
        wallet.open_session("CP-NOPE", 1, TOKEN)
    with pytest.raises(StationUnavailable, match="no station"):
        wallet.open_session(9999, 1, TOKEN)
    net.escrow(net.operator).set_active(station_id, False)
    with pytest.raises(StationUnavailable, match="inactive"):
        wallet.open_session(station_id, 1, TOKEN)
    with pytest.raises(WalletError, match="more than zero"):
        wallet.open_session(station_id, 1, 0)
    assert nonce(net, driver.address) == before


def test_wrong_password_and_missing_keystore_are_clear_errors(net, tmp_path):
    keystore = Keystore(wallet_config(net, tmp_path / "home"))
    with pytest.raises(KeystoreError, match=r"no account in .*ev-wallet account create"):
        keystore.unlock(None, PASSWORD)
    address = keystore.create(PASSWORD)
    with pytest.raises(KeystoreError, match=f"wrong password for keystore .*{address}"):
        keystore.unlock(address, "not the password")
    other = "0x" + "ab" * 20
    with pytest.raises(KeystoreError, match="no keystore for account"):
        keystore.unlock(other, PASSWORD)
    assert keystore.unlock(None, PASSWORD).address == address
    assert keystore.default() == address


def test_keystore_import_keeps_the_first_account_default_and_never_stores_plain_keys(net, tmp_path):
    config = WalletConfig.resolve(home=tmp_path / "home")
    keystore = Keystore(config)
    first = keystore.create(PASSWORD)
    driver = net.drivers[4]
    imported = keystore.import_key(driver.key.hex(), PASSWORD)
    assert imported == driver.address
    assert keystore.accounts()[0] == first and set(keystore.accounts()) == {first, imported}
    with pytest.raises(KeystoreError, match="already"):
        keystore.import_key(driver.key.hex(), PASSWORD)
    with pytest.raises(KeystoreError, match="not a private key"):
        keystore.import_key("0x1234", PASSWORD)
    key_hex = driver.key.hex().removeprefix("0x")
    for path in config.home.rglob("*"):
        if path.is_file():
            assert key_hex not in path.read_text()
    assert keystore.unlock(imported, PASSWORD).key == driver.key
    assert driver.address in repr(driver_wallet(net, driver)) and key_hex not in repr(driver_wallet(net, driver))
