"""The ev-wallet CLI (typer) against a real Anvil: accounts, balance, top-up, stations, quotes, a live
charge, invoices as JSON and PDF, one-line errors, and no private key in any output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from eth_account import Account
from pypdf import PdfReader
from typer.testing import CliRunner

from ev_network.contracts import SessionState
from ev_network.pricing import price
from ev_network.session_ids import driver_of, hex_session_id, make_session_id, session_label
from tools.harness.chain import TARIFF, TOKEN
from tools.harness.wallet import (
    PASSWORD,
    Cli,
    nonce,
    operator_settle,
    operator_start,
    settled_event,
    wallet_config,
)
from wallet.cli import app
from wallet.keystore import Keystore
from wallet.units import format_amount

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def cli(net, tmp_path) -> Cli:
    return Cli(net, tmp_path / "home")


def test_account_create_list_topup_balance_json_and_no_key_in_output(clean_chain, cli, tmp_path):
    net = clean_chain
    address = cli.new_account()
    listed = cli.json("account", "list")
    assert listed["accounts"] == [address] and listed["default"] == address

    assert cli.json("balance")["balance"] == 0
    cli("topup", "12.5")  # dev chain: Anvil's first account mints
    data = cli.json("balance")
    assert data == {
        "address": address,
        "balance": 12 * TOKEN + TOKEN // 2,
        "amount": "12.50",
        "symbol": "EVE",
        "decimals": 18,
        "token": net.deployment.token,
    }
    assert net.token().balance_of(address) == 12 * TOKEN + TOKEN // 2
    cli("balance")
    assert "12.50 EVE" in cli.outputs[-1]

    key = Keystore(wallet_config(net, tmp_path / "home")).unlock(address, PASSWORD).key.hex()
    cli.assert_no_key(key)


def test_import_stations_quote_charge_invoice_json_and_pdf(clean_chain, cli, tmp_path):
    net = clean_chain
    station_id = net.add_station("CP-CLI-1", connectors=2, tariff=TARIFF)
    driver = net.drivers[0]
    key_file = tmp_path / "driver.key"
    key_file.write_text(driver.key.hex())
    assert f"imported account {driver.address}" in cli("account", "import", "--key-file", str(key_file)).stdout
    cli("topup", "30")

    stations = cli.json("stations")["stations"]
    mine = next(s for s in stations if s["station_id"] == station_id)
    assert mine["charge_point_id"] == "CP-CLI-1" and mine["operator_name"] == "Volt Charging GmbH"
    assert (mine["connectors"], mine["active"], mine["tariff"]["price_per_kwh"]) == (2, True, TARIFF.price_per_kwh)
    cli("stations")
    assert "CP-CLI-1" in cli.outputs[-1]

    quote = cli.json("quote", "CP-CLI-1", "--kwh", "8.25")
    assert quote["energy_wh"] == 8_250 and quote["total"] == price(TARIFF, 8_250)
    assert cli.json("quote", str(station_id), "--kwh", "8.25")["total"] == quote["total"]

    balance_before = net.token().balance_of(driver.address)
    opened = cli("charge", "CP-CLI-1", "--connector", "2", "--deposit", "10", "--no-wait").stdout
    label = opened.split("session ")[1].split()[0]
    session_id = int(opened.split("session id ")[1].split()[0], 16)
    assert label == session_label(session_id) and driver_of(session_id) == driver.address
    assert "(permit;" in opened and f"follow it with: ev-wallet status {label}" in opened
    requested = cli.json("status", label)
    assert (requested["phase"], requested["session_id"], requested["label"]) == (
        "requested",
        hex_session_id(session_id),
        label,
    )
    operator_start(net, session_id, transaction_id=7, meter_start=100)
    operator_settle(net, session_id, meter_stop=100 + 8_250)
    event = settled_event(net, session_id)

    inv = json.loads(cli("invoice", label, "--format", "json").stdout)
    assert (inv["session_id"], inv["session_label"]) == (hex_session_id(session_id), label)
    assert inv["number"].endswith(f"-{driver.address[2:10].upper()}-{label.replace('/', '-')}")
    assert inv["total"] == event["cost"] == quote["total"]
    assert inv["refund"] == event["refund"] == 10 * TOKEN - quote["total"]
    assert sum(line["amount"] for line in inv["lines"]) == inv["total"]
    assert balance_before - net.token().balance_of(driver.address) == inv["total"]
    assert cli.json("invoice", hex_session_id(session_id)) == inv == cli.json("invoice", str(session_id))

    pdf = tmp_path / "out" / "inv.pdf"
    cli("invoice", label, "--format", "pdf", "--output", str(pdf))
    text = "".join(page.extract_text() for page in PdfReader(pdf).pages)
    assert inv["number"] in text
    assert format_amount(inv["total"], 18) == "3.3875" and "3.3875 EVE" in text  # exact, not rounded
    cli("invoice", label)
    assert inv["number"] in cli.outputs[-1] and "TOTAL" in cli.outputs[-1]

    status = cli.json("status", label)
    assert (status["state"], status["cost"]) == ("settled", inv["total"])
    history = cli.json("history")["sessions"]
    assert history[-1]["session_id"] == hex_session_id(session_id) and history[-1]["state"] == "settled"
    cli.assert_no_key(driver.key.hex())


def test_charge_follows_the_session_live_and_prints_the_invoice(clean_chain, cli):
    net = clean_chain
    net.add_station("CP-CLI-LIVE")
    address = cli.new_account("20")
    errors: list[BaseException] = []

    session_id = make_session_id(address, 0, 1)  # a fresh account's first session

    def operator() -> None:  # the CPO's side, as the Core Client would do it
        try:
            deadline = time.monotonic() + 20
            escrow = net.escrow()
            while escrow.get_session(session_id).state is not SessionState.REQUESTED:
                assert time.monotonic() < deadline
                time.sleep(0.05)
            time.sleep(0.2)
            operator_start(net, session_id, meter_start=0)
            time.sleep(0.4)
            operator_settle(net, session_id, meter_stop=3_000)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    worker = threading.Thread(target=operator)
    worker.start()
    out = cli("charge", "CP-CLI-LIVE", "--connector", "1", "--deposit", "5", "--poll", "0.05").stdout
    worker.join()
    assert not errors
    for step in ("requested:", "started:", "charging", "settled:"):
        assert step in out
    assert out.index("requested:") < out.index("started:") < out.index("settled:")
    assert "session 1: settled:" in out  # messages name the session by its label
    assert "INVOICE EVN-" in out and "TOTAL" in out and hex_session_id(session_id) in out


def test_errors_are_one_line_without_traceback(clean_chain, cli, tmp_path):
    net = clean_chain
    station_id = net.add_station("CP-CLI-ERR")
    missing = cli("balance", ok=False)
    assert missing.exit_code == 1
    assert missing.output.startswith("error: no account in") and missing.output.count("\n") == 1

    address = cli.new_account("3")
    before = nonce(net, address)
    poor = cli("charge", str(station_id), "--connector", "1", "--deposit", "4", ok=False)
    assert poor.exit_code == 1 and "Traceback" not in poor.output
    assert poor.output.strip() == (
        f"error: deposit 4.00 EVE is more than the balance 3.00 EVE of {address}: top up first (ev-wallet topup)"
    )
    assert nonce(net, address) == before  # nothing was sent

    wrong = cli("charge", str(station_id), "--connector", "1", "--deposit", "1", ok=False,
                env={"EVN_WALLET_PASSWORD": "nope"})  # fmt: skip
    assert wrong.exit_code == 1 and wrong.output.startswith("error: wrong password for keystore")

    for args, expected in [
        (("quote", "CP-NOPE", "--kwh", "1"), "error: there is no station with id or charge point id 'CP-NOPE'"),
        (("quote", str(station_id), "--kwh", "lots"), "error: --kwh 'lots' is not a number"),
        (("topup", "1.0000000000000000001"), "error: '1.0000000000000000001' has more than 18 decimal places"),
        (("cancel", "999"), "error: cannot cancel session 999: there is no such session"),
        (("invoice", "999"), "error: there is no session 999"),
        (("balance", "--deployment", str(tmp_path / "none.json")), "error: deployment file"),
    ]:
        result = cli(*args, ok=False)
        assert result.exit_code == 1, args
        assert result.output.startswith(expected), (args, result.output)
        assert result.output.count("\n") == 1 and "Traceback" not in result.output

    down = cli("balance", "--rpc-url", "http://127.0.0.1:9", ok=False)
    assert down.exit_code == 1 and down.output.startswith("error: cannot reach the chain at http://127.0.0.1:9")


def test_cancel_too_early_then_cancel_via_cli(clean_chain, cli):
    net = clean_chain
    station_id = net.add_station("CP-CLI-CANCEL")
    cli.new_account("10")
    out = cli("charge", str(station_id), "--connector", "1", "--deposit", "6", "--no-wait").stdout
    session_id = out.split("session ")[1].split()[0]
    assert session_id == "1"
    early = cli("cancel", session_id, ok=False)
    assert early.exit_code == 1 and f"error: cannot cancel session {session_id} yet: possible from" in early.output
    net.time_travel(net.deployment.start_timeout + 1)
    assert "balance 10.00 EVE" in cli("cancel", session_id).stdout
    assert cli.json("history")["sessions"][0]["state"] == "cancelled"


def test_help_explains_every_command_and_the_module_runs():
    result = subprocess.run(
        [sys.executable, "-m", "wallet.cli", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0
    for command in ("account", "balance", "topup", "stations", "quote", "charge", "stop", "cancel", "reclaim",
                    "status", "history", "invoice", "EVN_WALLET_HOME", "EVN_WALLET_PASSWORD"):  # fmt: skip
        assert command in result.stdout
    charge_help = CliRunner().invoke(app, ["charge", "--help"]).output
    assert "Ctrl-C" in charge_help and "--deposit" in charge_help and "--no-wait" in charge_help


def test_ctrl_c_during_a_live_charge_requests_the_stop_and_waits_for_the_invoice(clean_chain, cli):
    """The real program in a subprocess: SIGINT while charging sends requestStop, the operator settles
    on StopRequested (as the Core Client would), and the program ends with the invoice."""
    import signal

    from ev_network.events import EventReader

    net = clean_chain
    station_id = net.add_station("CP-CLI-SIGINT")
    address = cli.new_account("8")
    process = subprocess.Popen(
        [sys.executable, "-m", "wallet.cli", "charge", str(station_id), "--connector", "1", "--deposit", "5",
         "--poll", "0.1"],
        cwd=ROOT, env={**os.environ, **cli.env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(process.stdout.readline, "")), daemon=True)
    reader.start()
    try:
        escrow = net.escrow()

        def wait_for(check, what):  # each step gets its own minute: a loaded CI machine is slow to start python
            deadline = time.monotonic() + 60
            while not check():
                assert time.monotonic() < deadline, (what, lines)
                assert process.poll() is None, (what, lines)
                time.sleep(0.05)

        session_id = make_session_id(address, 0, 1)
        wait_for(lambda: escrow.get_session(session_id).state is SessionState.REQUESTED, "session opened")
        operator_start(net, session_id, meter_start=10)
        wait_for(lambda: any(": charging" in line for line in lines), "charging shown")
        process.send_signal(signal.SIGINT)
        events = EventReader(net.w3, net.deployment.escrow)
        wait_for(lambda: events.fetch(net.deployment.deployment_block, net.w3.eth.block_number, ["StopRequested"]),
                 "StopRequested on chain")  # fmt: skip
        operator_settle(net, session_id, meter_stop=10 + 6_000)
        assert process.wait(timeout=30) == 0, lines
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    reader.join(timeout=5)
    out = "".join(lines)
    assert "Ctrl-C, requesting the stop" in out
    assert out.index("Ctrl-C") < out.index("settled:") < out.index("INVOICE EVN-")
    assert format_amount(price(TARIFF, 6_000), 18) + " EVE" in out
    assert net.token().balance_of(address) == 8 * TOKEN - price(TARIFF, 6_000)


def test_a_label_names_the_accounts_session_and_old_sessions_keep_their_outcome(clean_chain, cli, tmp_path):
    net = clean_chain
    station_id = net.add_station("CP-CLI-LABEL")
    address = cli.new_account("20")
    cli("charge", str(station_id), "--connector", "1", "--deposit", "5", "--no-wait")
    first = make_session_id(address, 0, 1)
    operator_start(net, first, transaction_id=31, meter_start=0)
    operator_settle(net, first, meter_stop=4_000)
    out = cli("charge", str(station_id), "--connector", "2", "--deposit", "5", "--no-wait").stdout
    second = make_session_id(address, 0, 2)  # the returning driver's lane 0 again, number 2
    assert out.startswith("session 2 opened") and hex_session_id(second) in out
    assert net.escrow().get_session(first).state is SessionState.CLOSED

    status = cli.json("status", "1")
    assert (status["session_id"], status["label"], status["state"]) == (hex_session_id(first), "1", "settled")
    assert (status["cost"], status["connector"], status["transaction_id"]) == (price(TARIFF, 4_000), 1, 31)
    text = cli("status", "1").stdout
    assert text.startswith("Session 1: settled") and "OCPP transaction 31" in text and "closed" not in text
    assert cli.json("status", "2")["state"] == "requested"
    history = cli.json("history")["sessions"]
    assert [(h["label"], h["state"], h["session_id"]) for h in history] == [
        ("1", "settled", hex_session_id(first)),
        ("2", "requested", hex_session_id(second)),
    ]
    table = cli("history").stdout
    assert "session" in table and hex_session_id(first) not in table  # people see labels
    assert cli.json("invoice", "1")["total"] == price(TARIFF, 4_000)
    stopped = cli("stop", "1", ok=False)
    assert stopped.exit_code == 1 and "error: cannot stop session 1: it is already settled" in stopped.output

    # without an account only full ids work: any driver's session, named in full
    stranger = Cli(net, tmp_path / "empty-home")
    assert stranger.json("status", hex_session_id(first))["state"] == "settled"
    assert stranger("status", str(first)).stdout.startswith(f"Session {hex_session_id(first)}: settled")
    no_label = stranger("status", "1", ok=False)
    assert no_label.exit_code == 1 and "a label needs an account" in no_label.output
    other = cli("status", "1", "--account", Account.create().address, ok=False)  # label of another account
    assert other.exit_code == 1 and other.output.startswith("error: there is no session 1")


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (("status", "abc"), "'abc' is not a session id (0x and 64 hex digits), or a label such as 7 or 2/7"),
        (("cancel", "0x1234"), "'0x1234' is not a session id"),
        (("stop", "1/2/3"), "'1/2/3' is not a session id"),
        (("invoice", "300/1"), "lane must be 0-255"),
        (("reclaim", "0"), "seq 1-65535"),
    ],
)
def test_a_malformed_session_argument_is_a_usage_error(net, cli, args, reason):
    result = cli(*args, ok=False)
    assert result.exit_code == 2, result.output
    assert "Invalid value for 'SESSION'" in result.output and reason in result.output
    assert "Traceback" not in result.output
