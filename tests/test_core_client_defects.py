"""Hostile input and restarts (issue 9, the Core Client's part): each test failed before its fix.
A real daemon on the test Anvil, real websockets, hand-made frames; nothing mocked."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator

import pytest

from core_client.daemon import Daemon
from core_client.sessions.jobs import JobKind
from core_client.sessions.machine import SessionRecord, State
from core_client.storage.store import Store
from ev_network.contracts import SessionState
from tests.conftest import TARIFF, TOKEN
from tests.core_helpers import (
    PASSWORD,
    Core,
    RawCP,
    chain_events,
    cp_ids,
    funded_driver,
    now_iso,
    open_session,
    running_core,
    settings_for,
    until,
    wait_chain,
)
from tools.devchain import ChainProxy

DEPOSIT = 20 * TOKEN


@pytest.fixture
async def core(clean_chain, tmp_path, keyfile) -> AsyncIterator[Core]:
    a, b = cp_ids("CPA", "CPB")
    async with running_core(clean_chain, tmp_path, keyfile, {a: 2, b: 2}) as running:
        running.a, running.b = a, b  # type: ignore[attr-defined]
        yield running


async def _charging(core: Core, raw: RawCP, driver_index: int, meter_start: int = 1_000) -> tuple[int, int, str]:
    """A session started by ``raw`` on connector 1 and active on chain: (session id, transaction, idTag)."""
    driver = await funded_driver(core.net, driver_index)
    session_id = await open_session(core.net, driver, core.stations[raw_id(raw)], 1, DEPOSIT)
    remote_start = await raw.next_call("RemoteStartTransaction")
    tag = remote_start[3]["idTag"]
    payload = {"connectorId": 1, "idTag": tag, "meterStart": meter_start, "timestamp": now_iso()}
    transaction_id = (await raw.call("StartTransaction", payload))[2]["transactionId"]
    await wait_chain(core.net, session_id, SessionState.ACTIVE)
    return session_id, transaction_id, tag


def raw_id(raw: RawCP) -> str:
    return raw.connection.request.path.rsplit("/", 1)[-1]


def _stop(transaction_id: int, meter: int, id_tag: str) -> dict:
    return {"transactionId": transaction_id, "meterStop": meter, "timestamp": now_iso(), "idTag": id_tag}


def test_the_ocpp_internals_the_adapter_relies_on_are_there():
    """Fails loudly when a new ocpp version changes what core_client.ocpp.adapter uses."""
    from core_client.ocpp import adapter as ocpp_adapter

    assert ocpp_adapter.problems() == []


# ------------------------------------------------------------- #2 unsolicited results


async def test_unsolicited_results_are_dropped_and_commands_still_work(core: Core):
    raw = await core.raw(core.a, answers={"Reset": {"status": "Accepted"}})
    junk = json.dumps({"blob": "x" * 1_000})
    for i in range(3_000):
        await raw.connection.send(f'[3, "stale-{i}", {junk}]' if i % 2 else f'[4, "e{i}", "GenericError", "", {{}}]')
    assert "currentTime" in (await raw.call("Heartbeat", {}))[2]  # handled in order: every stale one was routed
    link = core.daemon.service.links[core.a]
    assert link._response_queue.qsize() == 0 and link.dropped_results == 3_000
    assert await link.reset("Soft") == "Accepted"  # no RecursionError, no stale answer taken for this one
    assert link._response_queue.qsize() == 0


# ------------------------------------------------------------------- #2 @after


async def test_the_remote_stop_of_a_refused_transaction_follows_its_answer(core: Core):
    raw = await core.raw(core.a)
    answer = await raw.call(
        "StartTransaction", {"connectorId": 1, "idTag": "RFID-9", "meterStart": 0, "timestamp": now_iso()}
    )
    assert answer[2]["idTagInfo"] == {"status": "Invalid"}
    stop = await raw.next_call("RemoteStopTransaction", timeout=5)
    assert stop[3] == {"transactionId": answer[2]["transactionId"]}
    assert raw.received.index(answer) < raw.received.index(stop)


# ------------------------------------------------------------------ #7 big numbers


async def test_numbers_sqlite_cannot_hold_get_property_constraint_violation_and_a_short_log(core: Core, caplog):
    raw = await core.raw(core.a)
    huge = 2**64
    long_values = [{"value": str(i), "measurand": "Voltage"} for i in range(3_000)]  # a ~100 KB payload
    frames = [
        ("StartTransaction", {"connectorId": huge, "idTag": "RFID-1", "meterStart": 0, "timestamp": now_iso()}),
        ("StartTransaction", {"connectorId": 1, "idTag": "RFID-1", "meterStart": huge, "timestamp": now_iso()}),
        ("StatusNotification", {"connectorId": huge, "errorCode": "NoError", "status": "Available"}),
        (
            "MeterValues",
            {
                "connectorId": 1,
                "transactionId": huge,
                "meterValue": [{"timestamp": now_iso(), "sampledValue": long_values}],
            },
        ),
        ("StopTransaction", {"transactionId": huge, "meterStop": 5, "timestamp": now_iso()}),
        ("StopTransaction", {"transactionId": 1, "meterStop": -huge, "timestamp": now_iso()}),
    ]
    with caplog.at_level(logging.INFO):
        for action, payload in frames:
            answer = await raw.call(action, payload)
            assert answer[:3] == [4, answer[1], "PropertyConstraintViolation"], (action, answer)
    assert "currentTime" in (await raw.call("Heartbeat", {}))[2]
    longest = max(len(r.getMessage()) for r in caplog.records)
    assert longest < 2_000, longest
    assert core.daemon.store.jobs("pending", "sent", "done") == []


# ------------------------------------------------------------------ #3 meterStop


async def test_an_implausible_meter_stop_holds_the_session_and_a_low_one_settles_with_the_last_reading(core: Core):
    net = core.net
    raw = await core.raw(core.a)
    session_id, transaction_id, tag = await _charging(core, raw, 0)
    meter = {
        "connectorId": 1,
        "transactionId": transaction_id,
        "meterValue": [{"timestamp": now_iso(), "sampledValue": [{"value": "1850"}]}],
    }
    assert (await raw.call("MeterValues", meter))[2] == {}
    assert (await raw.call("StopTransaction", _stop(transaction_id, 2**40 + 5, tag)))[2]["idTagInfo"][
        "status"
    ] == "Accepted"
    await until(lambda: core.local(session_id).state is State.HELD, 5, "held")
    [held] = core.daemon.health()["held_sessions"]
    assert held["id_tag"] == tag and str(2**40 + 5) in held["error"]
    await asyncio.sleep(1.0)
    assert core.daemon.store.job(JobKind.SETTLE, session_id) is None
    assert (await asyncio.to_thread(net.escrow().get_session, session_id)).state is SessionState.ACTIVE

    raw_b = await core.raw(core.b)
    low_id, low_tx, low_tag = await _charging(core, raw_b, 1, meter_start=10_000)
    meter = {
        "connectorId": 1,
        "transactionId": low_tx,
        "meterValue": [{"timestamp": now_iso(), "sampledValue": [{"value": "15000"}]}],
    }
    assert (await raw_b.call("MeterValues", meter))[2] == {}
    assert (await raw_b.call("StopTransaction", _stop(low_tx, 9_000, low_tag)))[2]["idTagInfo"]["status"] == "Accepted"
    await wait_chain(net, low_id, SessionState.SETTLED)
    [settled] = chain_events(net, "SessionSettled", low_id)
    assert settled.args["meterStop"] == 15_000  # the 5,000 Wh of MeterValues are billed


# ------------------------------------------------------- #4 restart during an outage


async def test_a_start_during_a_chain_outage_serves_ocpp_and_starts_the_chain_side_later(
    clean_chain, tmp_path, keyfile
):
    net = clean_chain
    known, unknown = cp_ids("KNOWN", "UNKNOWN")
    station_id = await asyncio.to_thread(net.add_station, known, 2)
    await asyncio.to_thread(net.add_station, unknown, 2)
    proxy = ChainProxy(int(net.rpc_url.rsplit(":", 1)[1]))
    passwords = {known: "pw-k", unknown: "pw-u"}
    settings = settings_for(net, tmp_path, keyfile, passwords, rpc_url=proxy.url)
    store = Store(settings.database)  # the previous run knew this station
    store.add_station(station_id, known, 2)
    store.close()
    daemon = Daemon(settings, PASSWORD)
    began = time.monotonic()
    await asyncio.wait_for(daemon.start(), 10)  # the chain is down: start does not wait for it
    try:
        assert time.monotonic() - began < 5
        url = f"ws://127.0.0.1:{daemon.ocpp.address[1]}"
        raw = await RawCP.connect(url, known, "pw-k")
        assert (await raw.boot())[2]["status"] == "Accepted"
        stranger = await RawCP.connect(url, unknown, "pw-u")
        assert (await stranger.boot())[2]["status"] == "Pending"
        assert daemon.health()["chain_reachable"] is False

        await proxy.resume()
        await until(lambda: daemon.health()["chain_reachable"], 15, "the chain side to start")
        driver = await funded_driver(net, 2)
        session_id = await open_session(net, driver, station_id, 1, DEPOSIT)
        remote_start = await raw.next_call("RemoteStartTransaction", timeout=15)
        payload = {"connectorId": 1, "idTag": remote_start[3]["idTag"], "meterStart": 0, "timestamp": now_iso()}
        assert (await raw.call("StartTransaction", payload))[2]["idTagInfo"]["status"] == "Accepted"
        await wait_chain(net, session_id, SessionState.ACTIVE)
        await raw.close()
        await stranger.close()
    finally:
        await daemon.stop(drain_timeout=5)
        await proxy.pause()


# ----------------------------------------------------------- #8 RemoteStart re-sent


async def test_a_remote_start_recorded_but_never_sent_is_sent_after_a_restart(clean_chain, tmp_path, keyfile):
    net = clean_chain
    [cp] = cp_ids("RESEND")
    station_id = await asyncio.to_thread(net.add_station, cp, 2)
    settings = settings_for(net, tmp_path, keyfile, {cp: "pw-r"}, start_timeout_s=30)
    driver = await funded_driver(net, 3)
    session_id = await open_session(net, driver, station_id, 1, DEPOSIT)
    # the previous run recorded the RemoteStart and died before the frame left
    store = Store(settings.database)
    store.add_station(station_id, cp, 2)
    store.set_cursor(net.w3.eth.block_number)
    record = SessionRecord(
        session_id=session_id,
        station_id=station_id,
        charge_point_id=cp,
        connector=1,
        driver=driver.address,
        deposit=DEPOSIT,
        tariff=TARIFF,
        tariff_id=1,
        state=State.REMOTE_START_SENT,
        requested_at=time.time(),
        remote_start_at=time.time(),
    )
    tag = f"EVN{store.insert_session(record)}"
    store.close()
    daemon = Daemon(settings, PASSWORD)
    await daemon.start()
    try:
        url = f"ws://127.0.0.1:{daemon.ocpp.address[1]}"
        raw = await RawCP.connect(url, cp, "pw-r")
        assert (await raw.boot())[2]["status"] == "Accepted"
        remote_start = await raw.next_call("RemoteStartTransaction", timeout=5)
        assert remote_start[3] == {"idTag": tag, "connectorId": 1}
        payload = {"connectorId": 1, "idTag": tag, "meterStart": 0, "timestamp": now_iso()}
        first = (await raw.call("StartTransaction", payload))[2]
        await raw.close()
        # a reconnect does not start it twice: the charge point's answer is the same transaction
        again = await RawCP.connect(url, cp, "pw-r")
        assert (await again.boot())[2]["status"] == "Accepted"
        assert (await again.call("StartTransaction", payload))[2] == first
        await wait_chain(net, session_id, SessionState.ACTIVE)
        assert len(chain_events(net, "SessionStarted", session_id)) == 1
        await again.close()
    finally:
        await daemon.stop(drain_timeout=5)


async def test_a_remote_start_lost_with_its_connection_is_sent_again_on_reconnect(core: Core):
    net = core.net
    driver = await funded_driver(net, 4)
    raw = await RawCP.connect(
        core.url, core.a, core.passwords[core.a], answers={"RemoteStartTransaction": {"status": "Accepted"}}
    )
    assert (await raw.boot())[2]["status"] == "Accepted"
    session_id = await open_session(net, driver, core.stations[core.a], 2, DEPOSIT)
    first = await raw.next_call("RemoteStartTransaction")
    await raw.close()  # gone before it could start the transaction
    again = await core.raw(core.a)
    resent = await again.next_call("RemoteStartTransaction", timeout=5)
    assert resent[3] == first[3]
    payload = {"connectorId": 2, "idTag": first[3]["idTag"], "meterStart": 0, "timestamp": now_iso()}
    assert (await again.call("StartTransaction", payload))[2]["idTagInfo"]["status"] == "Accepted"
    await wait_chain(net, session_id, SessionState.ACTIVE)


async def test_a_waiting_session_is_started_only_after_the_boot_is_answered(clean_chain, tmp_path, keyfile):
    net = clean_chain
    [cp] = cp_ids("BOOTFIRST")
    driver = await funded_driver(net, 5)
    async with running_core(net, tmp_path, keyfile, {cp: 2}, reconnect_grace_s=60) as core:
        session_id = await open_session(net, driver, core.stations[cp], 1, DEPOSIT)
        await until(lambda: core.local(session_id), 10, "the session requested")
        raw = await RawCP.connect(core.url, cp, core.passwords[cp])
        boot = await raw.boot()
        assert boot[2]["status"] == "Accepted"
        remote_start = await raw.next_call("RemoteStartTransaction", timeout=5)
        assert raw.received.index(boot) < raw.received.index(remote_start)
        await raw.close()
