"""Two Core Client processes of one operator on one real PostgreSQL: one holds the signer lease and
serves (leader), the other stands by; the leader is SIGKILLed mid-session, the other takes the lease
within seconds and settles every session exactly once."""

from __future__ import annotations

import asyncio
import json
import signal
import time
import urllib.request

from core_client.storage.database import open_database
from ev_network.contracts import SessionState
from simulator.charge_point import Behaviour, SimChargePoint
from tools.devchain import free_port
from tools.harness.chain import TOKEN
from tools.harness.core import (
    RawCP,
    chain_events,
    cp_ids,
    funded_driver,
    now_iso,
    open_session,
    settings_for,
    spawn_daemon,
    until,
    wait_chain,
    wait_health,
    write_config,
)

FAST = Behaviour(power_w=22_000, meter_interval_s=10, time_accel=100)
DEPOSIT = 20 * TOKEN
TAKEOVER_S = 10  # the lease goes when the leader's connection ends; the standby asks every second


def _health(control: str) -> dict:
    with urllib.request.urlopen(control + "/health", timeout=2) as response:
        return json.loads(response.read())


async def _role(control: str, role: str, timeout: float) -> dict:
    def check() -> dict | None:
        health = _health(control)
        return health if health["role"] == role else None

    return await until(check, timeout, f"{control} to be {role}")


async def test_the_standby_takes_over_from_a_killed_leader_and_each_session_settles_once(
    clean_chain, tmp_path, keyfile, pg_url
):
    net = clean_chain
    [cp] = cp_ids("HA")
    station_id = await asyncio.to_thread(net.add_station, cp, 2)
    instances = []
    for name in ("a", "b"):
        settings = settings_for(
            net, tmp_path, keyfile, {cp: "pw-ha"}, database=pg_url, listen_port=free_port(), control_port=free_port()
        )
        instances.append((settings, write_config(tmp_path / f"{name}.toml", settings), tmp_path / f"{name}.log"))
    (a_settings, a_config, a_log), (b_settings, b_config, b_log) = instances
    a_control, b_control = (f"http://127.0.0.1:{s.control_port}" for s in (a_settings, b_settings))
    d1, d2 = await funded_driver(net, 7), await funded_driver(net, 8)

    leader = spawn_daemon(a_config, a_log)
    standby = None
    try:
        assert (await wait_health(a_control))["role"] == "leader"
        standby = spawn_daemon(b_config, b_log)
        assert (await wait_health(b_control))["role"] == "standby"
        try:  # a standby serves no charge point (a load balancer's check finds its OCPP port closed)
            await RawCP.connect(f"ws://127.0.0.1:{b_settings.listen_port}", cp, "pw-ha")
            raise AssertionError("the standby accepted a charge point")
        except OSError:
            pass

        sim = await SimChargePoint.connect(f"ws://127.0.0.1:{a_settings.listen_port}", cp, "pw-ha", 2, FAST)
        charging = await open_session(net, d1, station_id, 1, DEPOSIT)
        stopping = await open_session(net, d2, station_id, 2, DEPOSIT)
        t1 = await sim.wait_for_transaction(1, timeout=15)
        await sim.wait_for_transaction(2, timeout=15)
        charging_tag = sim.connector(1).id_tag
        await wait_chain(net, charging, SessionState.ACTIVE)
        await wait_chain(net, stopping, SessionState.ACTIVE)
        stopped = await sim.stop(2)  # answered: its settle is queued, maybe sent ...
        leader.send_signal(signal.SIGKILL)  # ... and the leader dies at once
        leader.wait(10)
        killed = time.monotonic()
        meter_now = sim.connector(1).meter_wh
        await sim.closed.wait()

        health = await _role(b_control, "leader", TAKEOVER_S)
        takeover_s = time.monotonic() - killed
        # the charge point comes back (through the load balancer) to the instance that leads now
        raw = await RawCP.connect(f"ws://127.0.0.1:{b_settings.listen_port}", cp, "pw-ha")
        assert (await raw.boot())[2]["status"] == "Accepted"
        stop = {"transactionId": t1, "meterStop": meter_now, "timestamp": now_iso(), "reason": "Local"}
        assert (await raw.call("StopTransaction", {**stop, "idTag": charging_tag}))[2]["idTagInfo"]["status"] == (
            "Accepted"
        )
        await wait_chain(net, charging, SessionState.SETTLED)
        await wait_chain(net, stopping, SessionState.SETTLED)
        health = await until(
            lambda: (h := _health(b_control))["sessions_by_state"] == {"settled": 2} and h["queue_depth"] == 0 and h,
            15,
            "both sessions settled by the new leader",
        )
        assert health["role"] == "leader" and health["failed_jobs"] == 0
        await raw.close()
    finally:
        for process in (leader, standby):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(20)
    assert standby.returncode == 0, b_log.read_text()[-3000:]
    assert takeover_s < TAKEOVER_S, takeover_s
    for session_id, meter_stop in [(charging, meter_now), (stopping, stopped.meter_stop)]:
        assert len(chain_events(net, "SessionStarted", session_id)) == 1
        [settled] = chain_events(net, "SessionSettled", session_id)
        assert settled.args["meterStop"] == meter_stop
    db = open_database(pg_url)  # one row per job, none of them failed
    jobs = [tuple(row) for row in db.execute("SELECT kind, status FROM jobs ORDER BY id")]
    db.close()
    assert sorted(jobs) == [("settle", "done")] * 2 + [("start", "done")] * 2
    assert "signer lease of operator" in b_log.read_text() and "taken over: leading" in b_log.read_text()
