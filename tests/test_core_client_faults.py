"""The Core Client under faults: bad OCPP input, impostors, a charge point acting for another, lost
start, a chain outage, and a daemon killed with SIGKILL mid-session. Real parts only."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator

import pytest
import websockets
from typer.testing import CliRunner
from websockets.exceptions import InvalidStatus

from core_client.chain.watcher import ChainWorker, EventWatcher
from core_client.cli.main import app
from core_client.daemon import Daemon, make_web3
from core_client.sessions.jobs import JobKind, SettleArgs, StartArgs
from core_client.sessions.machine import SessionRecord, State
from core_client.sessions.service import SessionService
from core_client.storage.store import Store, StoreVersionError
from ev_network.contracts import CancelReason, Escrow, SessionState
from ev_network.errors import EVNetworkError
from ev_network.keys import KeystoreError
from ev_network.pricing import price
from ev_network.session_ids import hex_session_id, lane_of
from ev_network.tx import TxSender
from simulator.charge_point import Behaviour, BootRejected, SimChargePoint
from tests.conftest import TARIFF, TOKEN
from tests.core_helpers import (
    PASSWORD,
    ROOT,
    Core,
    RawCP,
    chain_events,
    cp_ids,
    funded_driver,
    now_iso,
    open_session,
    running_core,
    settings_for,
    spawn_daemon,
    until,
    wait_chain,
    wait_health,
    write_config,
)
from tools.devchain import ChainProxy, free_port

FAST = Behaviour(power_w=22_000, meter_interval_s=10, time_accel=100)
DEPOSIT = 20 * TOKEN


@pytest.fixture
async def core(clean_chain, tmp_path, keyfile) -> AsyncIterator[Core]:
    a, b = cp_ids("CPA", "CPB")
    async with running_core(clean_chain, tmp_path, keyfile, {a: 2, b: 2}, start_timeout_s=1.5) as running:
        running.a, running.b = a, b  # type: ignore[attr-defined]
        yield running


def _start(connector: int, id_tag: str, meter: int) -> dict:
    return {"connectorId": connector, "idTag": id_tag, "meterStart": meter, "timestamp": now_iso()}


def _stop(transaction_id: int, meter: int, id_tag: str | None = None) -> dict:
    payload = {"transactionId": transaction_id, "meterStop": meter, "timestamp": now_iso(), "reason": "Local"}
    return {**payload, "idTag": id_tag} if id_tag else payload


# ------------------------------------------------------------------ bad OCPP input


BAD_FRAMES = [
    ("this is not json", "-1", "FormationViolation"),
    ('{"not": "an array"}', "-1", "FormationViolation"),
    ("[2]", "-1", "FormationViolation"),
    ('[2, "f1", "Heartbeat"]', "f1", "FormationViolation"),
    ('[2, "f2", "Heartbeat", []]', "f2", "FormationViolation"),
    ('[7, "f3", "Heartbeat", {}]', "f3", "FormationViolation"),
    ('[2, "f4", "BrewCoffee", {}]', "f4", "NotImplemented"),
    ('[2, "f5", "RemoteStartTransaction", {"idTag": "X"}]', "f5", "NotSupported"),
    (
        '[2, "f6", "StartTransaction", {"connectorId": "one", "idTag": "X", "meterStart": 0, "timestamp": "t"}]',
        "f6",
        "TypeConstraintViolation",
    ),
    ('[2, "f7", "StartTransaction", {"connectorId": 1}]', "f7", "ProtocolError"),
    ('[2, "f8", "Heartbeat", {"surprise": 1}]', "f8", "FormationViolation"),
    (
        '[2, "f9", "StatusNotification", {"connectorId": 1, "errorCode": "NoError", "status": "Dancing"}]',
        "f9",
        "PropertyConstraintViolation",
    ),
    ('[2, "f10", "Authorize", {"idTag": "' + "X" * 21 + '"}]', "f10", "TypeConstraintViolation"),
    (
        '[2, "f11", "StopTransaction", {"transactionId": 1.5, "meterStop": 1, "timestamp": "t"}]',
        "f11",
        "TypeConstraintViolation",
    ),
]


async def test_bad_frames_get_the_callerror_the_spec_names_and_the_link_survives(core: Core):
    raw = await core.raw(core.a)
    for frame, unique_id, code in BAD_FRAMES:
        answer = await raw.send_raw(frame)
        assert answer[:3] == [4, unique_id, code], (frame, answer)
    answer = await raw.send_raw(b"\x00\x01binary")
    assert answer[:3] == [4, "-1", "FormationViolation"]

    assert (await raw.call("DataTransfer", {"vendorId": "com.example"}))[2] == {"status": "UnknownVendorId"}
    assert (await raw.call("Authorize", {"idTag": "RFID-123"}))[2] == {"idTagInfo": {"status": "Invalid"}}
    assert (await raw.call("Authorize", {"idTag": "EVN999999"}))[2] == {"idTagInfo": {"status": "Invalid"}}
    assert (await raw.call("FirmwareStatusNotification", {"status": "Idle"}))[2] == {}
    assert (await raw.call("DiagnosticsStatusNotification", {"status": "Idle"}))[2] == {}
    assert "currentTime" in (await raw.call("Heartbeat", {}))[2]  # same connection, still served
    assert core.daemon.service.online(core.a)
    # a transaction with a local tag, or with an EVN tag that names no session, gets an id but is
    # refused (Invalid), and no chain job
    for id_tag in ("RFID-123", "EVN999999", "EVN" + "9" * 17):
        answer = await raw.call("StartTransaction", _start(1, id_tag, 500))
        assert answer[2]["idTagInfo"] == {"status": "Invalid"} and answer[2]["transactionId"] >= 1
    assert core.daemon.store.jobs("pending", "sent", "done") == []


async def test_duplicated_start_and_stop_transaction_are_idempotent_and_settle_once(core: Core):
    net = core.net
    driver = await funded_driver(net, 0)
    raw = await core.raw(core.a)
    session_id = await open_session(net, driver, core.stations[core.a], 1, DEPOSIT)
    remote_start = await raw.next_call("RemoteStartTransaction")
    tag = core.local(session_id).id_tag
    assert remote_start[3] == {"idTag": tag, "connectorId": 1}
    assert (await raw.call("Authorize", {"idTag": tag}))[2]["idTagInfo"]["status"] == "Accepted"

    first = (await raw.call("StartTransaction", _start(1, tag, 10_000)))[2]
    again = (await raw.call("StartTransaction", _start(1, tag, 10_000)))[2]
    assert first == again and first["idTagInfo"]["status"] == "Accepted"
    transaction_id = first["transactionId"]
    await wait_chain(net, session_id, SessionState.ACTIVE)
    meter = {
        "connectorId": 1,
        "transactionId": transaction_id,
        "meterValue": [{"timestamp": now_iso(), "sampledValue": [{"value": "10.25", "unit": "kWh"}]}],
    }
    assert (await raw.call("MeterValues", meter))[2] == {}
    assert core.local(session_id).meter_last == 10_250

    stop = _stop(transaction_id, 10_700, tag)
    answers = [(await raw.call("StopTransaction", stop))[2] for _ in range(3)]
    assert answers == [{"idTagInfo": {"status": "Accepted"}}] * 3
    await wait_chain(net, session_id, SessionState.SETTLED)
    await asyncio.sleep(0.5)  # room for a (wrong) second settle
    [settled] = chain_events(net, "SessionSettled", session_id)
    assert settled.args["cost"] == price(TARIFF, 700)
    assert len(chain_events(net, "SessionStarted", session_id)) == 1
    assert (await raw.call("StopTransaction", stop))[2] == {"idTagInfo": {"status": "Accepted"}}
    assert [j.kind for j in core.daemon.store.jobs("done")] == ["start", "settle"]


async def test_a_charge_point_cannot_act_for_another(core: Core):
    net = core.net
    driver = await funded_driver(net, 1)
    sim = await core.connect(core.a, FAST)
    session_id = await open_session(net, driver, core.stations[core.a], 1, DEPOSIT)
    transaction_id = await sim.wait_for_transaction(1, timeout=10)
    await wait_chain(net, session_id, SessionState.ACTIVE)

    impostor = await core.raw(core.b)
    tag = core.local(session_id).id_tag
    assert (await impostor.call("Authorize", {"idTag": tag}))[2]["idTagInfo"]["status"] == "Invalid"
    assert (await impostor.call("StartTransaction", _start(1, tag, 0)))[2]["idTagInfo"]["status"] == "Invalid"
    meter = {
        "connectorId": 1,
        "transactionId": transaction_id,
        "meterValue": [{"timestamp": now_iso(), "sampledValue": [{"value": "99999999"}]}],
    }
    assert (await impostor.call("MeterValues", meter))[2] == {}
    answer = (await impostor.call("StopTransaction", _stop(transaction_id, 2_000_000, tag)))[2]
    assert answer == {"idTagInfo": {"status": "Invalid"}}
    await asyncio.sleep(0.5)
    local = core.local(session_id)
    assert local.state is State.CHARGING and local.meter_last < 2_000_000
    assert (await asyncio.to_thread(net.escrow().get_session, session_id)).state is SessionState.ACTIVE

    record = await sim.stop(1)
    await wait_chain(net, session_id, SessionState.SETTLED)
    [settled] = chain_events(net, "SessionSettled", session_id)
    assert settled.args["meterStop"] == record.meter_stop
    assert settled.args["cost"] == price(TARIFF, record.energy_wh)


async def test_no_start_transaction_within_the_timeout_rejects_and_refunds(core: Core):
    net = core.net
    driver = await funded_driver(net, 2)
    raw = await core.raw(core.a)  # accepts RemoteStart, never starts
    session_id = await open_session(net, driver, core.stations[core.a], 2, DEPOSIT)
    await raw.next_call("RemoteStartTransaction")
    await wait_chain(net, session_id, SessionState.CANCELLED, timeout=10)
    [cancelled] = chain_events(net, "SessionCancelled", session_id)
    assert CancelReason(cancelled.args["reason"]) is CancelReason.OTHER
    # the car shows up too late: refused, and told to stop
    late = (await raw.call("StartTransaction", _start(2, core.local(session_id).id_tag, 0)))[2]
    assert late["idTagInfo"]["status"] == "Invalid"
    stop = await raw.next_call("RemoteStopTransaction")
    assert stop[3] == {"transactionId": late["transactionId"]}


# -------------------------------------------------------------- handshake refusals


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


async def test_unknown_or_unauthenticated_charge_points_are_refused_at_the_handshake(core: Core, keyfile):
    cases = [
        (core.a, _basic(core.a, "wrong password"), ["ocpp1.6"], 401),
        ("CP-UNKNOWN", _basic("CP-UNKNOWN", "whatever"), ["ocpp1.6"], 401),
        (core.a, {}, ["ocpp1.6"], 401),
        (core.b, _basic(core.a, core.passwords[core.a]), ["ocpp1.6"], 401),  # A's credentials on B's path
        (core.a, {"Authorization": "Basic !!!"}, ["ocpp1.6"], 401),
        (core.a, _basic(core.a, core.passwords[core.a]), None, 400),
        (core.a, _basic(core.a, core.passwords[core.a]), ["ocpp2.0.1"], 400),
    ]
    for cp_id, headers, subprotocols, status in cases:
        with pytest.raises(InvalidStatus) as refused:
            await websockets.connect(f"{core.url}/{cp_id}", additional_headers=headers, subprotocols=subprotocols)
        assert refused.value.response.status_code == status, (cp_id, headers, subprotocols)
    assert core.daemon.service.links == {}


async def test_boot_is_rejected_for_a_charge_point_not_registered_for_this_operator(clean_chain, tmp_path, keyfile):
    net = clean_chain
    ours, foreign, unregistered = cp_ids("OURS", "FOREIGN", "NOWHERE")
    await asyncio.to_thread(net.add_station, foreign, 1, TARIFF, net.operator2)
    async with running_core(net, tmp_path, keyfile, {ours: 1}) as core:
        for cp_id in (foreign, unregistered):
            core.passwords[cp_id] = "pw"
        core.daemon.settings.charge_points.update({foreign: "pw", unregistered: "pw"})
        for cp_id in (foreign, unregistered):
            with pytest.raises(BootRejected):
                await SimChargePoint.connect(core.url, cp_id, "pw", 1)
        assert (await core.connect(ours, FAST, 1)).boot_status == "Accepted"
        # a station registered while the daemon runs is picked up from its StationRegistered event
        [late] = cp_ids("LATE")
        late_id = await asyncio.to_thread(net.add_station, late, 3)
        await until(lambda: core.daemon.store.stations().get(late_id) == (late, 3), 5, "the new station")
        assert foreign not in [cp for cp, _ in core.daemon.store.stations().values()]


async def test_a_second_connection_of_a_charge_point_replaces_the_first(core: Core):
    net = core.net
    first = await core.connect(core.a, FAST)
    second = await core.connect(core.a, FAST)
    await asyncio.wait_for(first.closed.wait(), 5)
    assert core.daemon.service.links[core.a]._connection.remote_address == second._connection.local_address
    driver = await funded_driver(net, 5)
    session_id = await open_session(net, driver, core.stations[core.a], 1, DEPOSIT)
    await second.wait_for_transaction(1, timeout=10)
    await wait_chain(net, session_id, SessionState.ACTIVE)
    assert first.connector(1).transaction_id is None


# ---------------------------------------------------------------- chain outage


async def test_chain_outage_ocpp_keeps_answering_and_the_queue_drains_afterwards(clean_chain, tmp_path, keyfile):
    net = clean_chain
    proxy = ChainProxy(int(net.rpc_url.rsplit(":", 1)[1]))
    await proxy.resume()
    [cp] = cp_ids("OUT")
    driver, second = await funded_driver(net, 3), await funded_driver(net, 4)
    async with running_core(net, tmp_path, keyfile, {cp: 2}, rpc_url=proxy.url) as core:
        sim = await core.connect(cp, FAST)
        one = await open_session(net, driver, core.stations[cp], 1, DEPOSIT)
        await wait_chain(net, one, SessionState.ACTIVE)
        await core.wait_local(one, State.CHARGING)

        await proxy.pause()
        outage_started = time.monotonic()
        record = await sim.stop(1)  # StopTransaction answered while the chain is unreachable
        two = await open_session(net, second, core.stations[cp], 2, DEPOSIT)  # not seen until it is back
        heartbeat = await sim._call(__import__("ocpp.v16.call", fromlist=["Heartbeat"]).Heartbeat())
        assert heartbeat is not None and max(sim.reply_latencies[-3:]) < 1.0
        await core.wait_local(one, State.STOPPED)
        health = await until(lambda: (h := core.daemon.health()) and not h["chain_reachable"] and h, 10, "outage")
        assert health["pending_jobs_by_kind"] == {"settle": 1}
        await asyncio.sleep(1.0)
        assert (await asyncio.to_thread(net.escrow().get_session, one)).state is SessionState.ACTIVE

        await proxy.resume()
        await wait_chain(net, one, SessionState.SETTLED, timeout=20)
        [settled] = chain_events(net, "SessionSettled", one)
        assert settled.args["cost"] == price(TARIFF, record.energy_wh)
        await sim.wait_for_transaction(2, timeout=20)  # the session opened during the outage starts now
        await wait_chain(net, two, SessionState.ACTIVE)
        await sim.stop(2)
        await wait_chain(net, two, SessionState.SETTLED)
        assert time.monotonic() - outage_started > 1
        await until(lambda: core.daemon.health()["queue_depth"] == 0, 5, "empty queue")
        assert core.daemon.health()["chain_reachable"]
    await proxy.pause()


# ------------------------------------------------------------ SIGKILL mid-session


async def test_daemon_killed_mid_session_settles_each_session_exactly_once(clean_chain, tmp_path, keyfile):
    net = clean_chain
    [cp] = cp_ids("KILL")
    station_id = await asyncio.to_thread(net.add_station, cp, 2)
    settings = settings_for(net, tmp_path, keyfile, {cp: "pw-kill"}, listen_port=free_port(), control_port=free_port())
    config = write_config(tmp_path / "core.toml", settings)
    url, control = f"ws://127.0.0.1:{settings.listen_port}", f"http://127.0.0.1:{settings.control_port}"
    log_file = tmp_path / "daemon.log"
    d1, d2 = await funded_driver(net, 5), await funded_driver(net, 6)

    daemon = spawn_daemon(config, log_file)
    try:
        await wait_health(control)
        sim = await SimChargePoint.connect(url, cp, "pw-kill", 2, FAST)
        charging = await open_session(net, d1, station_id, 1, DEPOSIT)
        stopping = await open_session(net, d2, station_id, 2, DEPOSIT)
        t1, _ = await sim.wait_for_transaction(1, timeout=15), await sim.wait_for_transaction(2, timeout=15)
        charging_tag = sim.connector(1).id_tag
        await wait_chain(net, charging, SessionState.ACTIVE)
        await wait_chain(net, stopping, SessionState.ACTIVE)
        await asyncio.sleep(0.3)
        stopped = await sim.stop(2)  # answered: the settle is queued (maybe sent) ...
        daemon.send_signal(signal.SIGKILL)  # ... and the daemon dies at once
        daemon.wait(10)
        meter_now = sim.connector(1).meter_wh  # connector 1 was still charging
        await sim.closed.wait()

        daemon = spawn_daemon(config, log_file)
        await wait_health(control)
        raw = await RawCP.connect(url, cp, "pw-kill")
        assert (await raw.boot())[2]["status"] == "Accepted"
        # the charge point reports what it queued while the central system was gone
        answer = await raw.call("StopTransaction", _stop(t1, meter_now, charging_tag))
        assert answer[2] == {"idTagInfo": {"status": "Accepted"}}
        repeat = await raw.call("StopTransaction", _stop(stopped.transaction_id, stopped.meter_stop, stopped.id_tag))
        assert repeat[2] == {"idTagInfo": {"status": "Accepted"}}
        await wait_chain(net, charging, SessionState.SETTLED)
        await wait_chain(net, stopping, SessionState.SETTLED)
        health = await until(lambda: _health_settled(control), 10, "both settled in the daemon")
        assert health["queue_depth"] == 0 and health["sessions_by_state"] == {"settled": 2}
        await raw.close()
    finally:
        if daemon.poll() is None:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(20)
    assert daemon.returncode == 0, log_file.read_text()[-3000:]
    for session_id, meter_start, meter_stop in [(charging, None, meter_now), (stopping, None, stopped.meter_stop)]:
        assert len(chain_events(net, "SessionStarted", session_id)) == 1
        [settled] = chain_events(net, "SessionSettled", session_id)
        assert settled.args["meterStop"] == meter_stop, (meter_start, settled.args)
    log = log_file.read_text()
    assert PASSWORD not in log and net.operator.key.hex().removeprefix("0x") not in log
    assert f"session {hex_session_id(charging)}: settled" in log


def _health_settled(url: str) -> dict | None:
    import urllib.request

    with urllib.request.urlopen(url + "/health", timeout=2) as response:
        health = json.loads(response.read())
    return health if health["sessions_by_state"].get("settled") == 2 else None


# ------------------------------------------------- chain worker: the crash windows


def _worker_parts(net, tmp_path, keyfile, cp: str):
    """The daemon's chain side on its own: store, session service, chain worker (operator's key)."""
    settings = settings_for(net, tmp_path, keyfile, {cp: "pw"})
    store = Store(tmp_path / "worker.sqlite")
    service = SessionService(settings, store)
    w3 = make_web3(settings)
    worker = ChainWorker(Escrow(w3, net.deployment, TxSender(w3, net.operator)), store, service, batch_window=0)
    return store, service, worker


async def _active_session(net, driver, station_id: int, transaction_id: int, meter_start: int) -> int:
    session_id = await open_session(net, driver, station_id, 1, DEPOSIT)
    await asyncio.to_thread(net.escrow(net.operator).start, session_id, transaction_id, meter_start)
    return session_id


def _stopped_record(session_id: int, station_id: int, cp: str, driver, transaction_id: int, start: int, stop: int):
    return SessionRecord(
        session_id=session_id,
        station_id=station_id,
        charge_point_id=cp,
        connector=1,
        driver=driver.address,
        deposit=DEPOSIT,
        tariff=TARIFF,
        tariff_id=1,
        state=State.STOPPED,
        transaction_id=transaction_id,
        meter_start=start,
        meter_stop=stop,
        requested_at=time.time(),
    )


def _queue_settle(store: Store, record: SessionRecord, status: str = "pending", tx_hash: str | None = None) -> None:
    store.insert_session(record)
    store.enqueue(
        JobKind.START,
        record.session_id,
        StartArgs(transaction_id=record.transaction_id, meter_start=record.meter_start),
    )
    store.update_job(store.job(JobKind.START, record.session_id).id, status="done")
    store.enqueue(JobKind.SETTLE, record.session_id, SettleArgs(meter_stop=record.meter_stop))
    if status != "pending":
        store.update_job(store.job(JobKind.SETTLE, record.session_id).id, status=status, tx_hash=tx_hash, attempts=1)


async def _work(worker: ChainWorker, store: Store, rounds: int = 20) -> None:
    for _ in range(rounds):
        await worker.step()
        if not store.jobs("pending", "sent"):
            return
        await asyncio.sleep(0.05)


async def test_restart_after_send_recorded_checks_the_receipt_and_does_not_resend(clean_chain, tmp_path, keyfile):
    net = clean_chain
    [cp] = cp_ids("SENT")
    station_id = await asyncio.to_thread(net.add_station, cp, 1)
    driver = await funded_driver(net, 7)
    session_id = await _active_session(net, driver, station_id, 7, 100)
    # the previous run sent the settle and recorded its hash, then died before the receipt
    tx_hash = await asyncio.to_thread(net.escrow(net.operator).settle, session_id, 600, wait=False)
    store, _, worker = _worker_parts(net, tmp_path, keyfile, cp)
    _queue_settle(
        store, _stopped_record(session_id, station_id, cp, driver, 7, 100, 600), "sent", "0x" + bytes(tx_hash).hex()
    )
    await _work(worker, store)
    job = store.job(JobKind.SETTLE, session_id)
    assert (job.status, job.attempts) == ("done", 1)  # never sent again
    record = store.get_session(session_id)
    assert (record.state, record.cost) == (State.SETTLED, price(TARIFF, 500))
    assert len(chain_events(net, "SessionSettled", session_id)) == 1
    store.close()


async def test_restart_after_an_unrecorded_send_finds_it_done_on_chain(clean_chain, tmp_path, keyfile):
    net = clean_chain
    [cp] = cp_ids("UNREC")
    station_id = await asyncio.to_thread(net.add_station, cp, 1)
    driver = await funded_driver(net, 8)
    session_id = await _active_session(net, driver, station_id, 8, 100)
    # the previous run broadcast the settle but died before writing 'sent': the job is still pending
    await asyncio.to_thread(net.escrow(net.operator).settle, session_id, 900)
    store, _, worker = _worker_parts(net, tmp_path, keyfile, cp)
    _queue_settle(store, _stopped_record(session_id, station_id, cp, driver, 8, 100, 900))
    await _work(worker, store)
    job = store.job(JobKind.SETTLE, session_id)
    assert (job.status, job.attempts) == ("done", 0)  # the revert (InvalidState: Settled) was recognised
    assert store.get_session(session_id).cost == price(TARIFF, 800)  # read back from the SessionSettled event
    assert len(chain_events(net, "SessionSettled", session_id)) == 1
    store.close()


async def test_a_dropped_transaction_is_sent_again(clean_chain, tmp_path, keyfile):
    net = clean_chain
    [cp] = cp_ids("DROP")
    station_id = await asyncio.to_thread(net.add_station, cp, 1)
    driver = await funded_driver(net, 9)
    session_id = await _active_session(net, driver, station_id, 9, 100)
    store, _, worker = _worker_parts(net, tmp_path, keyfile, cp)
    _queue_settle(store, _stopped_record(session_id, station_id, cp, driver, 9, 100, 400), "sent", "0x" + "ab" * 32)
    await _work(worker, store)
    job = store.job(JobKind.SETTLE, session_id)
    assert (job.status, job.attempts) == ("done", 2)
    [settled] = chain_events(net, "SessionSettled", session_id)
    assert settled.args["cost"] == price(TARIFF, 300)
    store.close()


async def test_a_reverting_batch_falls_back_to_single_settles(clean_chain, tmp_path, keyfile):
    net = clean_chain
    [cp] = cp_ids("BATCH")
    station_id = await asyncio.to_thread(net.add_station, cp, 1)
    d1, d2, d3 = [await funded_driver(net, i) for i in (0, 1, 2)]
    good = [await _active_session(net, d, station_id, 20 + i, 100) for i, d in enumerate((d1, d2))]
    bad = await _active_session(net, d3, station_id, 30, 5000)
    store, _, worker = _worker_parts(net, tmp_path, keyfile, cp)
    for i, (session_id, driver) in enumerate(zip(good, (d1, d2), strict=True)):
        _queue_settle(store, _stopped_record(session_id, station_id, cp, driver, 20 + i, 100, 700))
    # a settle below the start reading reverts (MeterBelowStart), and with it any batch holding it
    _queue_settle(store, _stopped_record(bad, station_id, cp, d3, 30, 5000, 4000))
    await _work(worker, store)
    assert [store.job(JobKind.SETTLE, s).status for s in good] == ["done", "done"]
    assert [store.get_session(s).state for s in good] == [State.SETTLED, State.SETTLED]
    failed = store.job(JobKind.SETTLE, bad)
    assert failed.status == "failed" and "MeterBelowStart" in failed.last_error
    assert store.get_session(bad).state is State.FAILED
    for session_id in good:
        [settled] = chain_events(net, "SessionSettled", session_id)
        assert settled.args["cost"] == price(TARIFF, 600)
    assert (await asyncio.to_thread(net.escrow().get_session, bad)).state is SessionState.ACTIVE
    store.close()


async def test_restart_resolves_sessions_that_read_closed_on_chain_from_their_events(clean_chain, tmp_path, keyfile):
    """While the daemon was down, its settle of one session went out unrecorded and the driver of another
    cancelled before its start was sent; both drivers have since opened their next session on the same
    lane, so both old sessions read Closed on chain. The restarted daemon's sends revert, and it tells
    from each session's events how it ended: the settle is done (cost from SessionSettled), the start
    failed (the session was cancelled)."""
    net = clean_chain
    ours, theirs = cp_ids("CLOSED", "ELSEWHERE")
    station_id = await asyncio.to_thread(net.add_station, ours, 2)
    elsewhere = await asyncio.to_thread(net.add_station, theirs, 2, TARIFF, net.operator2)
    settings = settings_for(net, tmp_path, keyfile, {ours: "pw"})
    d1, d2 = await funded_driver(net, 5), await funded_driver(net, 6)
    settled = await _active_session(net, d1, station_id, 41, 100)
    await asyncio.to_thread(net.escrow(net.operator).settle, settled, 700)
    cancelled = await open_session(net, d2, station_id, 2, DEPOSIT)
    await asyncio.to_thread(net.time_travel, net.deployment.start_timeout + 1)
    await asyncio.to_thread(net.escrow(d2).cancel, cancelled)
    following = [await open_session(net, d, elsewhere, 1 + i, DEPOSIT) for i, d in enumerate((d1, d2))]
    assert {lane_of(s) for s in (settled, cancelled, *following)} == {0}
    for session_id in (settled, cancelled):
        assert (await asyncio.to_thread(net.escrow().get_session, session_id)).state is SessionState.CLOSED

    store = Store(settings.database)  # the database as the previous run left it
    store.add_station(station_id, ours, 2)
    store.set_cursor(net.w3.eth.block_number)
    _queue_settle(store, _stopped_record(settled, station_id, ours, d1, 41, 100, 700))
    starting = _stopped_record(cancelled, station_id, ours, d2, 42, 0, 0)
    store.insert_session(dataclasses.replace(starting, connector=2, state=State.STARTING, meter_stop=None))
    store.enqueue(JobKind.START, cancelled, StartArgs(transaction_id=42, meter_start=0))
    store.close()

    daemon = Daemon(settings, PASSWORD)
    await daemon.start()
    try:
        store = daemon.store
        await until(lambda: not store.jobs("pending", "sent"), 20, "the restarted daemon's queue to drain")
        settle = store.job(JobKind.SETTLE, settled)
        assert (settle.status, settle.attempts) == ("done", 0)
        record = store.get_session(settled)
        assert (record.state, record.cost, record.refund) == (State.SETTLED, price(TARIFF, 600), DEPOSIT - record.cost)
        start = store.job(JobKind.START, cancelled)
        assert start.status == "failed" and "CANCELLED" in start.last_error
        assert store.get_session(cancelled).state is State.FAILED
        [failed] = daemon.health()["failed_sessions"]
        assert failed["session_id"] == hex_session_id(cancelled) and failed["id_tag"] == "EVN2"
        assert failed["connector"] == 2 and "CANCELLED" in failed["error"]
    finally:
        await daemon.stop(drain_timeout=5)
    assert len(chain_events(net, "SessionSettled", settled)) == 1
    assert chain_events(net, "SessionStarted", cancelled) == []
    for session_id in following:  # the drivers' new sessions were left alone
        assert (await asyncio.to_thread(net.escrow().get_session, session_id)).state is SessionState.REQUESTED


async def test_start_of_a_session_the_driver_cancelled_fails_loudly(clean_chain, tmp_path, keyfile, caplog):
    net = clean_chain
    [cp] = cp_ids("CANC")
    station_id = await asyncio.to_thread(net.add_station, cp, 1)
    driver = await funded_driver(net, 3)
    session_id = await open_session(net, driver, station_id, 1, DEPOSIT)
    await asyncio.to_thread(net.time_travel, net.deployment.start_timeout + 1)
    await asyncio.to_thread(net.escrow(driver).cancel, session_id)
    store, _, worker = _worker_parts(net, tmp_path, keyfile, cp)
    record = dataclasses.replace(
        _stopped_record(session_id, station_id, cp, driver, 3, 0, 0), state=State.STARTING, meter_stop=None
    )
    store.insert_session(record)
    store.enqueue(JobKind.START, session_id, StartArgs(transaction_id=3, meter_start=0))
    await _work(worker, store)
    job = store.job(JobKind.START, session_id)
    assert job.status == "failed" and "InvalidState" in job.last_error and "CANCELLED" in job.last_error
    assert store.get_session(session_id).state is State.FAILED
    assert any("FAILED on chain" in r.message and r.levelname == "ERROR" for r in caplog.records)
    store.close()


async def test_piled_up_starts_go_out_as_one_start_batch_and_a_bad_one_falls_back_to_singles(
    clean_chain, tmp_path, keyfile, caplog
):
    net = clean_chain
    [cp] = cp_ids("BATCH")
    station_id = await asyncio.to_thread(net.add_station, cp, 2)
    driver = await funded_driver(net, 4)
    store, _, worker = _worker_parts(net, tmp_path, keyfile, cp)

    transaction_ids = iter(range(100, 200))

    def queue_starts(session_ids: list[int]) -> None:
        for n, session_id in enumerate(session_ids, start=1):
            transaction_id = next(transaction_ids)
            record = dataclasses.replace(
                _stopped_record(session_id, station_id, cp, driver, transaction_id, n, 0),
                state=State.STARTING,
                meter_stop=None,
            )
            store.insert_session(record)
            store.enqueue(JobKind.START, session_id, StartArgs(transaction_id=transaction_id, meter_start=n))

    batch = [await open_session(net, driver, station_id, 1, DEPOSIT) for _ in range(3)]
    queue_starts(batch)
    await _work(worker, store)
    jobs = [store.job(JobKind.START, s) for s in batch]
    assert {j.status for j in jobs} == {"done"} and len({j.tx_hash for j in jobs}) == 1  # one startBatch
    for session_id in batch:
        assert (await asyncio.to_thread(net.escrow().get_session, session_id)).state == SessionState.ACTIVE

    mixed = [await open_session(net, driver, station_id, 2, DEPOSIT) for _ in range(3)]
    await asyncio.to_thread(net.time_travel, net.deployment.start_timeout + 1)
    await asyncio.to_thread(net.escrow(driver).cancel, mixed[1])  # the driver gave up on this one
    queue_starts(mixed)
    await _work(worker, store)
    assert [store.job(JobKind.START, s).status for s in mixed] == ["done", "failed", "done"]
    assert any("start batch of 3 would revert" in r.message for r in caplog.records)
    store.close()


# ------------------------------------------------- event watcher: exactly once


class _CrashOnce(SessionService):
    """A session service that dies in the middle of a block range once (a crash between two events)."""

    crashed = False

    def on_session_requested(self, args, block, tariff):
        if self.store.counts_by_state() and not self.crashed:  # the range's second session
            _CrashOnce.crashed = True
            raise RuntimeError("crash between two events")
        return super().on_session_requested(args, block, tariff)


async def test_events_are_handled_once_across_crashes_and_restarts(clean_chain, tmp_path, keyfile):
    net = clean_chain
    [cp] = cp_ids("EVT")
    station_id = await asyncio.to_thread(net.add_station, cp, 2)
    settings = settings_for(net, tmp_path, keyfile, {cp: "pw"})
    driver = await funded_driver(net, 4)
    sessions = [await open_session(net, driver, station_id, 1 + i % 2, DEPOSIT) for i in range(3)]
    store = Store(tmp_path / "events.sqlite")
    w3 = make_web3(settings)

    def watcher(service: SessionService) -> EventWatcher:
        return EventWatcher(w3, net.deployment, net.operator.address, store, service, start_block=settings.start_block)

    first = watcher(_CrashOnce(settings, store))
    await first.initialize()
    cursor = store.cursor()
    with pytest.raises(RuntimeError):
        await first.poll_once()
    assert store.cursor() == cursor and store.get_session(sessions[0]) is None  # all or nothing

    second = watcher(SessionService(settings, store))  # "restarted"
    await second.initialize()
    assert await second.poll_once() > 0
    assert [store.get_session(s).state for s in sessions] == [State.REQUESTED] * 3
    assert store.cursor() == net.w3.eth.block_number
    for s in sessions:
        store.save_session(dataclasses.replace(store.get_session(s), state=State.CHARGING))
    third = watcher(SessionService(settings, store))
    await third.initialize()
    assert await third.poll_once() == 0  # nothing new: nothing handled twice
    assert [store.get_session(s).state for s in sessions] == [State.CHARGING] * 3
    await asyncio.to_thread(net.escrow(driver).open, station_id, 2, DEPOSIT)
    assert await third.poll_once() == 1
    assert store.counts_by_state() == {"charging": 3, "requested": 1}
    store.close()


# ------------------------------------------------------------- startup refusals


async def test_daemon_refuses_a_database_of_another_deployment_and_a_wrong_password(clean_chain, tmp_path, keyfile):
    net = clean_chain
    settings = settings_for(net, tmp_path, keyfile, {})
    store = Store(settings.database)
    store.set_meta("identity", "1:0x0000000000000000000000000000000000000001:0xabc")
    store.close()
    daemon = Daemon(settings, PASSWORD)
    with pytest.raises(EVNetworkError, match="belongs to chain:escrow:operator"):
        await daemon.start()
    with pytest.raises(KeystoreError, match="wrong password"):
        Daemon(settings, "not the password")
    config = write_config(tmp_path / "core.toml", settings)
    result = await asyncio.to_thread(
        CliRunner().invoke, app, ["run", "--config", str(config)], env={"EVN_OPERATOR_PASSWORD": "nope"}
    )
    assert result.exit_code == 1 and "wrong password" in result.output and "nope" not in result.output


async def test_daemon_and_cli_refuse_a_database_of_an_old_core_client_version(clean_chain, tmp_path, keyfile):
    net = clean_chain
    old = tmp_path / "old.sqlite"
    db = sqlite3.connect(old)  # as written before 256-bit session ids: integer ids, no user_version
    db.execute("CREATE TABLE sessions (session_id INTEGER PRIMARY KEY, state TEXT NOT NULL)")
    db.commit()
    db.close()
    settings = settings_for(net, tmp_path, keyfile, {}, database=old)
    with pytest.raises(StoreVersionError, match="store version 0"):
        await Daemon(settings, PASSWORD).start()
    config = write_config(tmp_path / "core.toml", settings)
    result = await asyncio.to_thread(  # the real command (it installs signal handlers: not in a thread)
        subprocess.run,
        [sys.executable, "-m", "core_client.cli", "run", "--config", str(config)],
        cwd=ROOT,
        env={**os.environ, "EVN_OPERATOR_PASSWORD": PASSWORD},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1, result.stderr
    assert f"error: the database {old} was written with store version 0" in result.stderr
    assert "point `database` in the config at a new file" in result.stderr
    assert "Traceback" not in result.stderr and "unexpected" not in result.stderr


async def test_the_watcher_learns_our_tariffs_from_their_events(clean_chain, tmp_path, keyfile):
    """The TariffSet events of our stations fill the tariff cache, also with tariffs no session used yet
    (so no getTariff call per tariff); a session carries the tariff it was opened under."""
    net = clean_chain
    [cp] = cp_ids("TRF")
    settings = settings_for(net, tmp_path, keyfile, {cp: "pw"})
    station_id = await asyncio.to_thread(net.add_station, cp, 2)
    driver = await funded_driver(net, 3)
    before = await open_session(net, driver, station_id, 1, DEPOSIT)
    dearer, dearest = (dataclasses.replace(TARIFF, price_per_kwh=TARIFF.price_per_kwh * k) for k in (2, 3))
    operator = net.escrow(net.operator)
    await asyncio.to_thread(operator.set_tariff, station_id, dearer)
    after = await open_session(net, driver, station_id, 2, DEPOSIT)
    await asyncio.to_thread(operator.set_tariff, station_id, dearest)
    store = Store(tmp_path / "tariffs.sqlite")
    service = SessionService(settings, store)
    watcher = EventWatcher(make_web3(settings), net.deployment, net.operator.address, store, service)
    watcher.start_block = settings.start_block
    await watcher.initialize()
    assert await watcher.poll_once() > 0
    assert sorted(watcher.tariffs.values(), key=lambda t: t.price_per_kwh) == [TARIFF, dearer, dearest]
    assert store.get_session(before).tariff == TARIFF and store.get_session(after).tariff == dearer
    store.close()
