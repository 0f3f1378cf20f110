"""The daemon stopped and started again: SIGKILLed mid-session (each session settles exactly once), a
RemoteStart recorded but never sent, and the databases and passwords it must refuse at startup."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from core_client.cli.main import app
from core_client.daemon import Daemon
from core_client.sessions.machine import State
from core_client.storage.store import Store, StoreVersionError
from ev_network.contracts import SessionState
from ev_network.errors import EVNetworkError
from ev_network.keys import KeystoreError
from ev_network.session_ids import hex_session_id
from simulator.charge_point import SimChargePoint
from tools.devchain import free_port
from tools.harness.chain import TOKEN
from tools.harness.core import (
    PASSWORD,
    QUICK_CHARGE,
    ROOT,
    RawCP,
    chain_events,
    cp_ids,
    funded_driver,
    now_iso,
    open_session,
    session_record,
    settings_for,
    spawn_daemon,
    stop_daemon,
    stop_payload,
    until,
    wait_chain,
    wait_health,
    write_config,
)

DEPOSIT = 20 * TOKEN


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
        sim = await SimChargePoint.connect(url, cp, "pw-kill", 2, QUICK_CHARGE)
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
        answer = await raw.call("StopTransaction", stop_payload(t1, meter_now, charging_tag))
        assert answer[2] == {"idTagInfo": {"status": "Accepted"}}
        repeat = await raw.call(
            "StopTransaction", stop_payload(stopped.transaction_id, stopped.meter_stop, stopped.id_tag)
        )
        assert repeat[2] == {"idTagInfo": {"status": "Accepted"}}
        await wait_chain(net, charging, SessionState.SETTLED)
        await wait_chain(net, stopping, SessionState.SETTLED)
        health = await until(lambda: _health_settled(control), 10, "both settled in the daemon")
        assert health["queue_depth"] == 0 and health["sessions_by_state"] == {"settled": 2}
        await raw.close()
    finally:
        stop_daemon(daemon)
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


@pytest.mark.issue(9, item=8)
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
    record = session_record(
        session_id, cp, driver.address, State.REMOTE_START_SENT, station_id=station_id, remote_start_at=time.time()
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
