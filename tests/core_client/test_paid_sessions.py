"""The Core Client end to end: real Anvil, the real daemon, real websockets and the simulated charge
point. Each test pays with real tokens and checks the money on chain, once with the daemon's state in a
SQLite file and once on a real PostgreSQL server."""

from __future__ import annotations

import asyncio
import json
import shutil
import ssl
import subprocess
import urllib.error
import urllib.request

import pytest
from typer.testing import CliRunner
from websockets.exceptions import InvalidMessage

from core_client.cli.main import app
from core_client.config import control_token
from core_client.sessions.machine import State, budget_limit
from ev_network.contracts import CancelReason, SessionState
from ev_network.keys import keyfile_address
from ev_network.operator_profile import OperatorProfiles, Profile
from ev_network.pricing import Tariff, price
from simulator.charge_point import Behaviour, SimChargePoint
from tools.harness.chain import TARIFF, TOKEN
from tools.harness.core import (
    Core,
    balances,
    chain_events,
    cp_ids,
    funded_driver,
    open_session,
    running_core,
    until,
    wait_chain,
)

FAST = Behaviour(power_w=22_000, meter_interval_s=10, time_accel=100)  # 61 Wh every 0.1 s
DEPOSIT = 20 * TOKEN


@pytest.fixture
def core_database(db_location):
    """Each test's daemon keeps its state once in a SQLite file, once on a real PostgreSQL."""
    return db_location


async def _settled(core: Core, session_id: int):
    """Wait for the settlement; return the single SessionSettled event's args."""
    await wait_chain(core.net, session_id, SessionState.SETTLED)
    [event] = chain_events(core.net, "SessionSettled", session_id)
    await core.wait_local(session_id, State.SETTLED)
    return event.args


async def test_app_started_session_is_settled_with_the_right_cost_and_refund(core: Core):
    net = core.net
    driver = await funded_driver(net, 0)
    sim = await core.connect(core.a, FAST)
    before = balances(net, driver.address, net.payout.address, net.deployment.escrow)

    session_id = await open_session(net, driver, core.stations[core.a], 1, DEPOSIT)
    transaction_id = await sim.wait_for_transaction(1, timeout=10)
    await wait_chain(net, session_id, SessionState.ACTIVE)
    [started] = chain_events(net, "SessionStarted", session_id)
    assert started.args["transactionId"] == transaction_id
    local = core.local(session_id)
    assert sim.connector(1).id_tag == local.id_tag == f"EVN{local.tag}" and len(local.id_tag) <= 20
    await asyncio.sleep(0.5)
    record = await sim.stop(1)

    settled = await _settled(core, session_id)
    expected = price(TARIFF, record.energy_wh)
    assert record.energy_wh > 0 and settled["meterStop"] == record.meter_stop
    assert settled["cost"] == expected and settled["refund"] == DEPOSIT - expected
    after = balances(net, driver.address, net.payout.address, net.deployment.escrow)
    assert after[0] == before[0] - expected
    assert after[1] == before[1] + expected
    assert after[2] == before[2]
    local = core.local(session_id)
    assert (local.cost, local.refund, local.transaction_id) == (expected, DEPOSIT - expected, transaction_id)


async def test_driver_stop_request_stops_the_charge_and_settles(core: Core):
    net = core.net
    driver = await funded_driver(net, 1)
    sim = await core.connect(core.a, FAST)
    session_id = await open_session(net, driver, core.stations[core.a], 2, DEPOSIT)
    await sim.wait_for_transaction(2, timeout=10)
    await wait_chain(net, session_id, SessionState.ACTIVE)
    await asyncio.sleep(0.3)
    await asyncio.to_thread(net.escrow(driver).request_stop, session_id)

    record = await sim.wait_for_stop(2, timeout=10)
    assert record.reason == "Remote"
    settled = await _settled(core, session_id)
    assert settled["cost"] == price(TARIFF, record.energy_wh)
    assert core.local(session_id).stop_wanted == "driver"


async def test_unplugging_the_car_settles_the_session(core: Core):
    net = core.net
    driver = await funded_driver(net, 2)
    sim = await core.connect(core.a, Behaviour(power_w=22_000, time_accel=100, unplug_after_wh=300))
    session_id = await open_session(net, driver, core.stations[core.a], 1, DEPOSIT)
    record = await sim.wait_for_stop(1, timeout=15)
    assert record.reason == "EVDisconnected" and record.energy_wh >= 300
    settled = await _settled(core, session_id)
    assert settled["cost"] == price(TARIFF, record.energy_wh)
    assert settled["refund"] == DEPOSIT - settled["cost"]


async def test_exhausted_budget_stops_the_charge_and_settles_within_the_deposit(core: Core):
    net = core.net
    driver = await funded_driver(net, 3)
    deposit = TOKEN  # 0.5 fee + 0.35/kWh: the 2% margin is reached at 1.371 kWh
    sim = await core.connect(core.a, Behaviour(power_w=36_000, time_accel=100))  # 100 Wh per 0.1 s
    before = balances(net, driver.address, net.payout.address)
    session_id = await open_session(net, driver, core.stations[core.a], 1, deposit)

    record = await sim.wait_for_stop(1, timeout=20)
    assert record.reason == "Remote"
    settled = await _settled(core, session_id)
    assert core.local(session_id).stop_wanted == "budget"
    # stopped near the budget: never above the deposit, and not far below it
    assert price(TARIFF, record.energy_wh) <= deposit
    assert settled["cost"] == price(TARIFF, record.energy_wh)
    assert settled["cost"] >= budget_limit(deposit, 0.02) - price(TARIFF, 300) + TARIFF.session_fee
    after = balances(net, driver.address, net.payout.address)
    assert after == [before[0] - settled["cost"], before[1] + settled["cost"]]


async def test_offline_station_is_rejected_and_refunded_at_once(core: Core):
    net = core.net
    driver = await funded_driver(net, 4)
    [before] = balances(net, driver.address)
    session_id = await open_session(net, driver, core.stations[core.b], 1, DEPOSIT)  # nobody connected as B
    await wait_chain(net, session_id, SessionState.CANCELLED, timeout=10)
    [cancelled] = chain_events(net, "SessionCancelled", session_id)
    assert CancelReason(cancelled.args["reason"]) is CancelReason.STATION_OFFLINE
    assert cancelled.args["refund"] == DEPOSIT
    assert balances(net, driver.address) == [before]
    assert (await core.wait_local(session_id, State.REJECTED)).reject_reason == CancelReason.STATION_OFFLINE


async def test_charger_that_rejects_the_remote_start_refunds_the_driver(core: Core):
    net = core.net
    driver = await funded_driver(net, 5)
    [before] = balances(net, driver.address)
    await core.connect(core.a, Behaviour(accept_remote_start=False))
    session_id = await open_session(net, driver, core.stations[core.a], 1, DEPOSIT)
    await wait_chain(net, session_id, SessionState.CANCELLED, timeout=10)
    [cancelled] = chain_events(net, "SessionCancelled", session_id)
    assert CancelReason(cancelled.args["reason"]) is CancelReason.CHARGER_REJECTED
    assert balances(net, driver.address) == [before]


async def test_second_session_on_a_busy_connector_is_rejected(core: Core):
    net = core.net
    first, second = await funded_driver(net, 6), await funded_driver(net, 7)
    sim = await core.connect(core.a, FAST)
    one = await open_session(net, first, core.stations[core.a], 1, DEPOSIT)
    await wait_chain(net, one, SessionState.ACTIVE)
    two = await open_session(net, second, core.stations[core.a], 1, DEPOSIT)
    await wait_chain(net, two, SessionState.CANCELLED)
    [cancelled] = chain_events(net, "SessionCancelled", two)
    assert CancelReason(cancelled.args["reason"]) is CancelReason.CONNECTOR_BUSY
    await sim.stop(1)
    await _settled(core, one)


async def test_two_connectors_charge_at_once_and_settle_in_one_batch(core: Core):
    net = core.net
    d1, d2 = await funded_driver(net, 8), await funded_driver(net, 9)
    sim = await core.connect(core.a, FAST)
    s1 = await open_session(net, d1, core.stations[core.a], 1, DEPOSIT)
    s2 = await open_session(net, d2, core.stations[core.a], 2, 2 * DEPOSIT)
    t1, t2 = await sim.wait_for_transaction(1, timeout=10), await sim.wait_for_transaction(2, timeout=10)
    assert t1 != t2
    await wait_chain(net, s1, SessionState.ACTIVE)
    await wait_chain(net, s2, SessionState.ACTIVE)
    assert sim.connector(1).charging and sim.connector(2).charging
    await asyncio.sleep(0.3)
    r1, r2 = await asyncio.gather(sim.stop(1), sim.stop(2))
    e1, e2 = await _settled(core, s1), await _settled(core, s2)
    assert (e1["cost"], e2["cost"]) == (price(TARIFF, r1.energy_wh), price(TARIFF, r2.energy_wh))
    assert (e1["refund"], e2["refund"]) == (DEPOSIT - e1["cost"], 2 * DEPOSIT - e2["cost"])
    [ev1], [ev2] = chain_events(net, "SessionSettled", s1), chain_events(net, "SessionSettled", s2)
    assert ev1.tx_hash == ev2.tx_hash  # stopped together: one settleBatch


def _get_json(url: str, form: str | None = None, token: str | None = None) -> tuple[int, dict]:
    """GET ``url``, or POST the ``form`` body with the control token."""
    request = urllib.request.Request(url, data=form.encode() if form is not None else None)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


async def test_health_and_operator_commands(core: Core, monkeypatch):
    token = control_token(core.daemon.settings)
    monkeypatch.setenv("EVN_CC_CONTROL_TOKEN", token)  # what `core-client command --url` sends
    sim = await core.connect(core.a, FAST)
    status, health = await asyncio.to_thread(_get_json, core.control_url + "/health")
    assert status == 200
    assert health["connected_charge_points"] == [core.a] and health["online_charge_points"] == [core.a]
    assert health["queue_depth"] == 0 and health["sessions_by_state"] == {} and health["chain_reachable"]
    assert health["failed_sessions"] == []
    assert health["last_processed_block"] <= health["chain_head"]

    runner = CliRunner()
    result = await asyncio.to_thread(
        runner.invoke,
        app,
        [
            "command",
            "change-availability",
            core.a,
            "--connector",
            "1",
            "--type",
            "Inoperative",
            "--url",
            core.control_url,
        ],
    )
    assert result.exit_code == 0, result.output
    assert "change_availability -> Accepted" in result.output
    await until(lambda: core.daemon.store.connector_status(core.a, 1) == "Unavailable", 5, "connector 1 Unavailable")
    assert not sim.connector(1).available

    result = await asyncio.to_thread(
        runner.invoke, app, ["command", "trigger", core.a, "Heartbeat", "--url", core.control_url]
    )
    assert result.exit_code == 0 and "trigger_message -> Accepted" in result.output

    boots = sim.boot_status
    result = await asyncio.to_thread(runner.invoke, app, ["command", "reset", core.a, "--url", core.control_url])
    assert result.exit_code == 0 and "reset -> Accepted" in result.output and boots == "Accepted"

    result = await asyncio.to_thread(runner.invoke, app, ["health", "--url", core.control_url])
    assert result.exit_code == 0 and json.loads(result.output)["connected_charge_points"] == [core.a]

    for form, code, message in [
        ("cp=NOPE&action=reset", 404, "not connected"),
        (f"cp={core.a}&action=explode", 400, "action must be one of"),
        (f"cp={core.a}&action=reset&type=Gentle", 400, "type must be one of"),
        (f"cp={core.a}&action=change_availability&connector=x", 400, "connector must be a number"),
    ]:
        status, body = await asyncio.to_thread(_get_json, core.control_url + "/command", form, token)
        assert (status, message in body["error"]) == (code, True), body
    result = await asyncio.to_thread(runner.invoke, app, ["command", "reset", "NOPE", "--url", core.control_url])
    assert result.exit_code == 1 and "not connected" in result.output


def test_cli_keys_and_stations(clean_chain, tmp_path, monkeypatch):
    net = clean_chain
    runner = CliRunner()
    monkeypatch.setenv("EVN_OPERATOR_PASSWORD", "pw-123")
    result = runner.invoke(app, ["keys", "create", "--keystore", str(tmp_path / "new.json")])
    assert result.exit_code == 0 and keyfile_address(tmp_path / "new.json").lower() == result.output.strip().lower()
    result = runner.invoke(app, ["keys", "create", "--keystore", str(tmp_path / "new.json")])
    assert result.exit_code == 1 and "refusing to overwrite" in result.output

    monkeypatch.setenv("EVN_OPERATOR_KEY", net.operator2.key.hex())
    result = runner.invoke(app, ["keys", "import", "--keystore", str(tmp_path / "op2.json")])
    assert result.exit_code == 0 and result.output.strip() == net.operator2.address
    assert net.operator2.key.hex() not in result.output

    [cp] = cp_ids("CLI")
    config = tmp_path / "cc.toml"
    config.write_text(
        f'rpc_url = "{net.rpc_url}"\ndeployment_file = "{net.deployment_file}"\nkeystore = "op2.json"\n'
        f'[charge_points]\n"{cp}" = "secret"\n'
    )
    add = ["stations", "add", cp, "--connectors", "3", "--price-per-kwh", "0.42", "--session-fee", "1"]
    result = runner.invoke(app, [*add, "--time-fee-per-hour", "0.5", "--config", str(config)])
    assert result.exit_code == 0, result.output
    station = net.escrow().station_by_charge_point(cp)
    assert (station.operator, station.connectors) == (net.operator2.address, 3)
    assert net.escrow().get_tariff(station.tariff_id) == Tariff(42 * TOKEN // 100, TOKEN, TOKEN // 2)
    result = runner.invoke(app, ["stations", "list", "--json", "--config", str(config)])
    assert result.exit_code == 0
    rows = json.loads(result.output)
    assert [(r["charge_point_id"], r["configured"]) for r in rows] == [(cp, True)]
    result = runner.invoke(app, [*add[:-1], "-1", "--config", str(config)])
    assert result.exit_code == 1 and "--session-fee" in result.output
    legal = ["operator", "profile", "--legal-name", "Second Ampere SA", "--address", "1 Rue X; 75001 Paris"]
    result = runner.invoke(app, [*legal, "--vat-id", "FR12345678901", "--vat-rate", "20", "--config", str(config)])
    assert result.exit_code == 0, result.output
    profile = OperatorProfiles(net.w3, net.deployment.operator_profile).profile_of(net.operator2.address)
    assert profile == Profile("Second Ampere SA", "1 Rue X\n75001 Paris", "FR12345678901", 2000)
    result = runner.invoke(app, [*legal, "--vat-rate", "101", "--config", str(config)])
    assert result.exit_code == 1 and "InvalidVatRate" in result.output and len(result.output.splitlines()) == 1


async def test_tls_charge_points_connect_over_wss(clean_chain, tmp_path, keyfile):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    [cp] = cp_ids("TLS")
    async with running_core(clean_chain, tmp_path, keyfile, {cp: 1}, tls_cert=cert, tls_key=key) as core:
        context = ssl.create_default_context(cafile=str(cert))
        url = core.url.replace("ws://", "wss://")
        sim = await SimChargePoint.connect(url, cp, core.passwords[cp], 1, FAST, ssl=context)
        core.sims.append(sim)
        assert sim.boot_status == "Accepted"
        with pytest.raises((InvalidMessage, ConnectionError, OSError)):
            await SimChargePoint.connect(core.url, cp, core.passwords[cp], 1, FAST)  # plain ws to a TLS port
