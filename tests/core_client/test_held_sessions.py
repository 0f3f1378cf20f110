"""Held sessions an operator decides (issue 19): ``core-client sessions held|settle-held|reject-held``
through the running daemon's control endpoint, and from the dashboard (the driver's web app shows the
session held, why, and until when); /health names the idTag the charge point used. Real
Anvil, the real daemon, a bare OCPP client; meter records signed here (an independent signer)."""

from __future__ import annotations

import asyncio
import html
import json
import re
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from typer.testing import CliRunner

from core_client.cli.main import app
from core_client.config import DashboardSettings, LiveSettings, hash_password
from core_client.sessions.machine import State
from core_client.sessions.metering import BEGIN, END
from ev_network.contracts import SessionState
from ev_network.ocmf import session_id_tag
from ev_network.session_ids import hex_session_id
from ev_network.web.server import HttpServer
from tools.harness.chain import TOKEN
from tools.harness.core import (
    Core,
    balances,
    chain_events,
    funded_driver,
    now_iso,
    ocmf_record,
    open_session,
    signed_value,
    wait_chain,
    write_config,
)
from tools.harness.wallet import PASSWORD, wallet_config
from tools.harness.web import WebClient
from wallet.keystore import Keystore
from wallet.web import create_app

DEPOSIT = 20 * TOKEN


async def _cli(core: Core, tmp_path, *args: str):
    config = write_config(tmp_path / "cc.toml", core.daemon.settings)
    runner = CliRunner()
    return await asyncio.to_thread(runner.invoke, app, [*args, "--config", str(config), "--url", core.control_url])


async def _held_session(core: Core, cp: str, connector: int, driver_index: int, stop: dict, meter: int) -> tuple:
    """A session charged by a bare OCPP client at ``cp`` and stopped with ``stop`` (extra StopTransaction
    fields) at ``meter`` Wh: (session id, idTag, transaction id, raw client)."""
    raw = await core.raw(cp)
    driver = await funded_driver(core.net, driver_index)
    session_id = await open_session(core.net, driver, core.stations[cp], connector, DEPOSIT)
    tag = (await raw.next_call("RemoteStartTransaction", timeout=15))[3]["idTag"]
    start = {"connectorId": connector, "idTag": tag, "meterStart": 1000, "timestamp": now_iso()}
    transaction_id = (await raw.call("StartTransaction", start))[2]["transactionId"]
    await wait_chain(core.net, session_id, SessionState.ACTIVE)
    payload = {"transactionId": transaction_id, "meterStop": meter, "timestamp": now_iso(), "idTag": tag, **stop}
    assert (await raw.call("StopTransaction", payload))[2]["idTagInfo"]["status"] == "Accepted"
    await core.wait_local(session_id, State.HELD, timeout=5)
    return session_id, tag, transaction_id, raw


@pytest.mark.issue(19)
async def test_operator_lists_a_held_session_with_its_evidence_and_settles_it_at_the_last_trusted_reading(
    core: Core, tmp_path
):
    raw = await core.raw(core.a)
    driver = await funded_driver(core.net, 5)
    session_id = await open_session(core.net, driver, core.stations[core.a], 1, DEPOSIT)
    tag = (await raw.next_call("RemoteStartTransaction", timeout=15))[3]["idTag"]
    start = {"connectorId": 1, "idTag": tag, "meterStart": 1000, "timestamp": now_iso()}
    transaction_id = (await raw.call("StartTransaction", start))[2]["transactionId"]
    await wait_chain(core.net, session_id, SessionState.ACTIVE)
    reading = {
        "timestamp": now_iso(),
        "sampledValue": [{"value": "1200", "measurand": "Energy.Active.Import.Register"}],
    }
    values = {"connectorId": 1, "transactionId": transaction_id, "meterValue": [reading]}
    assert (await raw.call("MeterValues", values))[2] == {}
    stop = {"transactionId": transaction_id, "meterStop": 10**11, "timestamp": now_iso(), "idTag": tag}
    assert (await raw.call("StopTransaction", stop))[2]["idTagInfo"]["status"] == "Accepted"  # implausible
    await core.wait_local(session_id, State.HELD, timeout=5)

    listed = await _cli(core, tmp_path, "sessions", "held", "--json")
    assert listed.exit_code == 0, listed.output
    [row] = [r for r in json.loads(listed.output) if int(r["session_id"], 16) == session_id]
    assert (row["id_tag"], row["meter_start"], row["last_trusted_reading"]) == (tag, 1000, 1200)
    assert row["claimed_meter_stop"] == 10**11 and row["reason"] == core.local(session_id).last_error != ""
    assert row["can_settle"] is True and row["reclaim_at"] > row["started_at"]
    table = await _cli(core, tmp_path, "sessions", "held")
    assert row["session_id"] in table.output and "last trusted 1200 Wh" in table.output

    hex_id = row["session_id"]
    settled = await _cli(core, tmp_path, "sessions", "settle-held", hex_id)
    assert settled.exit_code == 0, settled.output
    assert "settle queued at 1200 Wh" in settled.output
    await wait_chain(core.net, session_id, SessionState.SETTLED)
    [event] = chain_events(core.net, "SessionSettled", session_id)
    assert (event.args["meterStart"], event.args["meterStop"]) == (1000, 1200)
    await core.wait_local(session_id, State.SETTLED)
    again = await _cli(core, tmp_path, "sessions", "settle-held", hex_id)
    assert again.exit_code == 1 and "not held" in again.output  # no second settlement
    if core.daemon.records is not None:  # the decision is in the transaction record (the latest record of it)
        entry = core.daemon.records.find(transaction_id, core.a)
        assert entry.record.meter_stop == 1200 and entry.record.stop_reason.startswith("operator decision: settle")
    assert (await _cli(core, tmp_path, "sessions", "held", "--json")).output.count(hex_id) == 0
    await raw.close()


@pytest.mark.issue(19)
async def test_a_held_session_at_a_metered_station_cannot_be_settled_plain_and_its_reject_refunds_the_driver_in_full(
    core: Core, tmp_path
):
    meter = ec.generate_private_key(ec.SECP256R1())
    der = meter.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    await asyncio.to_thread(core.net.escrow(core.net.operator).set_meter_public_key, core.stations[core.b], der)
    raw = await core.raw(core.b)  # connects after the key is on chain: the daemon reads it
    driver = await funded_driver(core.net, 6)
    session_id = await open_session(core.net, driver, core.stations[core.b], 1, DEPOSIT)
    tag = (await raw.next_call("RemoteStartTransaction", timeout=15))[3]["idTag"]
    assert tag == session_id_tag(session_id)
    start = {"connectorId": 1, "idTag": tag, "meterStart": 1000, "timestamp": now_iso()}
    transaction_id = (await raw.call("StartTransaction", start))[2]["transactionId"]
    begin = signed_value(ocmf_record(meter, tag, "B", "1000"), BEGIN)
    assert await raw.call("MeterValues", {"connectorId": 1, "transactionId": transaction_id, "meterValue": [begin]})
    other = ec.generate_private_key(ec.SECP256R1())  # an End record signed by another key: refused, held
    end = signed_value(ocmf_record(other, tag, "E", "1500"), END)
    stop = {"transactionId": transaction_id, "meterStop": 1500, "timestamp": now_iso(), "idTag": tag}
    assert (await raw.call("StopTransaction", {**stop, "transactionData": [end]}))[2]["idTagInfo"]["status"]
    await core.wait_local(session_id, State.HELD, timeout=5)

    held = [h for h in core.daemon.health()["held_sessions"] if int(h["session_id"], 16) == session_id]
    assert [h["id_tag"] for h in held] == [tag]  # what the charge point and its meter used, not EVN<n>
    listed = await _cli(core, tmp_path, "sessions", "held", "--json")
    [row] = [r for r in json.loads(listed.output) if int(r["session_id"], 16) == session_id]
    assert row["signed_station"] is True and row["can_settle"] is False and set(row["records"]) == {BEGIN, END}
    refused = await _cli(core, tmp_path, "sessions", "settle-held", row["session_id"])
    assert refused.exit_code == 1 and "meter key" in refused.output and "reclaim" in refused.output
    assert core.local(session_id).state is State.HELD

    driver_held, payout_held = balances(core.net, driver.address, core.net.payout.address)
    rejected = await _cli(core, tmp_path, "sessions", "reject-held", row["session_id"])
    assert rejected.exit_code == 0, rejected.output
    assert "rejected, refund of the whole deposit queued" in rejected.output
    await wait_chain(core.net, session_id, SessionState.CANCELLED)  # the escrow's refund of a started session
    [event] = chain_events(core.net, "SessionRefunded", session_id)
    assert (event.args["driver"], event.args["operator"], event.args["refund"]) == (
        driver.address,
        core.net.operator.address,
        DEPOSIT,
    )
    assert balances(core.net, driver.address, core.net.payout.address) == [driver_held + DEPOSIT, payout_held]
    await core.wait_local(session_id, State.REJECTED)
    again = await _cli(core, tmp_path, "sessions", "reject-held", row["session_id"])
    assert again.exit_code == 1 and "not held" in again.output  # one refund, never a second
    if core.daemon.records is not None:  # the decision is in the transaction record, billing no energy
        entry = core.daemon.records.find(transaction_id, core.b)
        assert entry.record.meter_stop == 1000 and entry.record.stop_reason.startswith("operator decision: reject")
    await raw.close()


BOARD = "the dashboard password"


@pytest.mark.issue(19)
@pytest.mark.core_settings(
    live=LiveSettings(port=0), dashboard=DashboardSettings(port=0, password=hash_password(BOARD))
)
async def test_the_driver_sees_the_held_session_in_the_web_app_and_the_operator_settles_or_rejects_it_from_the_dashboard(
    core: Core, tmp_path
):
    """The real daemon's [live] and [dashboard] front ends: the driver's EV Wallet web app says the session
    is held, why, and when the deposit comes back at the latest; the operator's Settle on the dashboard
    goes through the daemon's HeldDesk and settles on chain at the last trusted reading; its Reject refunds the
    driver's whole deposit on chain."""
    driver = core.net.drivers[7]
    config = wallet_config(core.net, tmp_path / "wallet")
    Keystore(config).import_key(driver.key.hex(), PASSWORD)
    wallet_app = HttpServer(create_app(config, live_url=core.daemon.front_ends["live"].url), "127.0.0.1", 0)
    await wallet_app.start()
    try:
        session_id, _, transaction_id, raw = await _held_session(core, core.a, 2, 7, {}, 10**11)
        hex_id = hex_session_id(session_id)
        why = core.local(session_id).last_error
        app = WebClient(wallet_app.url)
        await app.get("/")
        await app.post("/unlock", {"account": driver.address, "password": PASSWORD})
        _, page = await app.get(f"/sessions/{hex_id}")
        [started] = chain_events(core.net, "SessionStarted", session_id)  # the chain's clock, not this machine's:
        reclaim_at = started.args["startedAt"] + core.net.deployment.max_duration  # other tests move it ahead
        reclaim_at += core.net.deployment.reclaim_grace
        held_note = re.search(r'id="held" role="status">Held: (.*?)</p>', page).group(1)
        assert held_note.startswith("the charge has stopped, nothing is settled until the operator decides: ")
        assert html.escape(why, quote=False) in held_note and "the deposit comes back at the latest from" in held_note
        shown = datetime.strptime(held_note.rsplit("from ", 1)[1], "%Y-%m-%d %H:%M:%S UTC (reclaim)")
        assert abs(shown.replace(tzinfo=UTC).timestamp() - reclaim_at) < 30  # the chain's reclaim time
        assert 'id="stop"' not in page  # the charge point has stopped: no Stop button

        board = WebClient(core.daemon.front_ends["dashboard"].url)
        await board.get("/login")
        _, page = await board.post("/login", {"password": BOARD})
        assert f'id="held-{hex_id}"' in page and html.escape(why, quote=False) in page and "Settle at 1000 Wh" in page
        _, page = await board.post(f"/held/{hex_id}/settle", {})
        assert f"{hex_id}: settle queued at 1000 Wh (the last trusted reading)" in page
        await wait_chain(core.net, session_id, SessionState.SETTLED)
        [event] = chain_events(core.net, "SessionSettled", session_id)
        assert (event.args["meterStart"], event.args["meterStop"]) == (1000, 1000)
        if core.daemon.records is not None:  # recorded like the CLI's decision
            assert core.daemon.records.find(transaction_id, core.a).record.stop_reason.startswith("operator decision")
        _, page = await app.get(f"/sessions/{hex_id}")
        assert 'id="phase">settled<' in page and 'id="held"' not in page
        await raw.close()

        other, _, _, raw = await _held_session(core, core.a, 1, 7, {}, 10**11)  # the operator rejects this one
        [driver_held] = balances(core.net, driver.address)
        _, page = await board.get("/")
        _, page = await board.post(f"/held/{hex_session_id(other)}/reject", {})
        assert f"{hex_session_id(other)}: rejected, refund of the whole deposit queued" in page
        await wait_chain(core.net, other, SessionState.CANCELLED)  # the escrow's refund of a started session
        assert balances(core.net, driver.address) == [driver_held + DEPOSIT]  # the whole deposit back
        [refunded] = chain_events(core.net, "SessionRefunded", other)
        assert (refunded.args["driver"], refunded.args["refund"]) == (driver.address, DEPOSIT)
        await core.wait_local(other, State.REJECTED)
        _, page = await app.get(f"/sessions/{hex_session_id(other)}")  # the driver is told why
        assert 'id="phase">cancelled<' in page and "operator_refunded" in page
        await raw.close()
    finally:
        await wallet_app.stop()
