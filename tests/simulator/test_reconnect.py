"""The simulator reconnects like a real charge point (issue 9, #15): with backoff, re-sending the
transaction messages the central system did not answer. Against the real Core Client as a
subprocess, SIGKILLed and restarted, and over a dropped connection: each session settles once."""

from __future__ import annotations

import asyncio
import itertools
import logging
import signal

import pytest

from ev_network.contracts import SessionState
from simulator.charge_point import Behaviour, Reconnect, SimChargePoint
from tools.devchain import free_port
from tools.harness.chain import TOKEN
from tools.harness.core import (
    chain_events,
    cp_ids,
    funded_driver,
    open_session,
    running_core,
    settings_for,
    spawn_daemon,
    stop_daemon,
    until,
    wait_chain,
    wait_health,
    write_config,
)

FAST = Behaviour(power_w=22_000, meter_interval_s=10, time_accel=100)
QUICK = Reconnect(initial_s=0.1, max_s=0.5)
DEPOSIT = 20 * TOKEN


def test_backoff_grows_to_its_cap_with_bounded_jitter() -> None:
    delays = list(itertools.islice(Reconnect(initial_s=1, max_s=8, factor=2, jitter=0.2).delays(), 6))
    for delay, base in zip(delays, [1, 2, 4, 8, 8, 8], strict=True):
        assert base <= delay <= base * 1.2
    assert list(itertools.islice(Reconnect(1, 8, 2, jitter=0).delays(), 5)) == [1, 2, 4, 8, 8]


def _failed_reconnects(caplog: pytest.LogCaptureFixture) -> int:
    return sum("reconnect failed" in record.getMessage() for record in caplog.records)


async def test_daemon_killed_and_restarted_the_simulator_comes_back_and_its_queued_stop_settles_once(
    clean_chain, tmp_path, keyfile, caplog
):
    net = clean_chain
    [cp] = cp_ids("RECONNECT")
    station_id = await asyncio.to_thread(net.add_station, cp, 2)
    settings = settings_for(net, tmp_path, keyfile, {cp: "pw"}, listen_port=free_port(), control_port=free_port())
    config = write_config(tmp_path / "core.toml", settings)
    url, control, log_file = (
        f"ws://127.0.0.1:{settings.listen_port}",
        f"http://127.0.0.1:{settings.control_port}",
        tmp_path / "d.log",
    )
    d1, d2 = await funded_driver(net, 5), await funded_driver(net, 6)

    daemon = spawn_daemon(config, log_file)
    sim = None
    try:
        await wait_health(control)
        sim = await SimChargePoint.connect(url, cp, "pw", 2, FAST, reconnect=QUICK)
        one = await open_session(net, d1, station_id, 1, DEPOSIT)
        two = await open_session(net, d2, station_id, 2, DEPOSIT)
        await sim.wait_for_transaction(1, timeout=15)
        await sim.wait_for_transaction(2, timeout=15)
        await wait_chain(net, one, SessionState.ACTIVE)
        await wait_chain(net, two, SessionState.ACTIVE)

        daemon.send_signal(signal.SIGKILL)
        daemon.wait(10)
        await sim.link_lost.wait()
        assert not sim.closed.is_set()  # a reconnecting charge point does not give up
        with caplog.at_level(logging.INFO, logger="simulator"):
            stopping = asyncio.create_task(sim.stop(2))  # the car leaves while the central system is gone
            await until(lambda: _failed_reconnects(caplog) >= 3, 10, "three failed reconnects")
        assert not stopping.done() and sim.reconnects == 0

        daemon = spawn_daemon(config, log_file)
        await wait_health(control)
        record = await asyncio.wait_for(stopping, 20)  # reconnected, booted, StopTransaction delivered
        assert sim.reconnects >= 1 and sim.online.is_set()
        await wait_chain(net, two, SessionState.SETTLED)
        first = await sim.stop(1)  # the other session carried on charging across the outage
        await wait_chain(net, one, SessionState.SETTLED)
    finally:
        if sim is not None:
            await sim.close()
        stop_daemon(daemon)
    for session_id, stop in [(one, first), (two, record)]:
        assert len(chain_events(net, "SessionStarted", session_id)) == 1
        [settled] = chain_events(net, "SessionSettled", session_id)
        assert settled.args["meterStop"] == stop.meter_stop


async def test_dropped_connection_unanswered_meter_values_are_resent_and_the_session_settles_once(
    clean_chain, tmp_path, keyfile
):
    net = clean_chain
    [cp] = cp_ids("DROP")
    async with running_core(net, tmp_path, keyfile, {cp: 1}) as core:
        sim = await SimChargePoint.connect(core.url, cp, core.passwords[cp], 1, FAST, reconnect=QUICK)
        core.sims.append(sim)
        driver = await funded_driver(net, 7)
        session_id = await open_session(net, driver, core.stations[cp], 1, DEPOSIT)
        await sim.wait_for_transaction(1, timeout=15)
        await wait_chain(net, session_id, SessionState.ACTIVE)
        for _ in range(3):
            await sim.drop()
            await until(lambda: sim.online.is_set(), 10, "back online")
            await asyncio.sleep(0.2)
        assert sim.reconnects == 3 and sim.connector(1).charging
        record = await sim.stop(1)
        await wait_chain(net, session_id, SessionState.SETTLED)
        [settled] = chain_events(net, "SessionSettled", session_id)
        assert settled.args["meterStop"] == record.meter_stop
        assert len(chain_events(net, "SessionStarted", session_id)) == 1


async def test_without_a_reconnect_policy_a_lost_connection_ends_the_charge_point(clean_chain, tmp_path, keyfile):
    net = clean_chain
    [cp] = cp_ids("NORECONNECT")
    async with running_core(net, tmp_path, keyfile, {cp: 1}) as core:
        sim = await core.connect(cp, FAST, connectors=1)
        await sim.drop()
        assert sim.closed.is_set() and sim.reconnects == 0 and not sim.online.is_set()


@pytest.mark.parametrize("reconnect", [None, QUICK])
async def test_close_while_offline_returns(clean_chain, tmp_path, keyfile, reconnect) -> None:
    net = clean_chain
    [cp] = cp_ids("CLOSE")
    async with running_core(net, tmp_path, keyfile, {cp: 1}) as core:
        sim = await SimChargePoint.connect(core.url, cp, core.passwords[cp], 1, FAST, reconnect=reconnect)
        await sim.drop()
        await asyncio.wait_for(sim.close(), 5)
        assert sim.closed.is_set()
