"""The chain unreachable (a pausable TCP proxy between the daemon and Anvil): OCPP keeps being answered,
a daemon starts without the chain, and what was queued reaches the chain once it is back."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from core_client.daemon import Daemon
from core_client.sessions.machine import State
from core_client.storage.store import Store
from ev_network.contracts import SessionState
from ev_network.pricing import price
from tools.devchain import ChainProxy
from tools.harness.chain import TARIFF, TOKEN
from tools.harness.core import (
    PASSWORD,
    QUICK_CHARGE,
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

DEPOSIT = 20 * TOKEN


async def test_chain_outage_ocpp_keeps_answering_and_the_queue_drains_afterwards(clean_chain, tmp_path, keyfile):
    net = clean_chain
    proxy = ChainProxy(int(net.rpc_url.rsplit(":", 1)[1]))
    await proxy.resume()
    [cp] = cp_ids("OUT")
    driver, second = await funded_driver(net, 3), await funded_driver(net, 4)
    async with running_core(net, tmp_path, keyfile, {cp: 2}, rpc_url=proxy.url) as core:
        sim = await core.connect(cp, QUICK_CHARGE)
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
        # the worker tries again and again (its back-off doubles after each failed round: 0.5, 1, 2 s)
        await until(lambda: core.daemon.worker.outage.delay >= 2, 10, "three failed rounds of the chain worker")
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


@pytest.mark.issue(9, item=4)
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


@pytest.mark.issue(17, item=4)
async def test_a_hung_chain_node_delays_neither_the_start_nor_any_boot(clean_chain, tmp_path, keyfile):
    """A node that accepts connections and never answers (a stopped process, a stuck load balancer):
    OCPP is served within a second of start, and every BootNotification is answered within a second."""
    net = clean_chain
    known, unknown = cp_ids("HUNGK", "HUNGU")
    station_id = await asyncio.to_thread(net.add_station, known, 2)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)  # the kernel accepts; nobody ever reads or answers
        passwords = {known: "pw-k", unknown: "pw-u"}
        rpc_url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        settings = settings_for(net, tmp_path, keyfile, passwords, rpc_url=rpc_url, rpc_timeout_s=5)
        store = Store(settings.database)  # the previous run knew this station
        store.add_station(station_id, known, 2)
        store.close()
        daemon = Daemon(settings, PASSWORD)
        began = time.monotonic()
        await asyncio.wait_for(daemon.start(), 10)
        try:
            assert time.monotonic() - began < 1.0  # was 9 s: the chain probe waited for its timeout
            url = f"ws://127.0.0.1:{daemon.ocpp.address[1]}"
            for cp, password, status in ((known, "pw-k", "Accepted"), (unknown, "pw-u", "Pending")):
                for _ in range(2):  # a reconnect boots again
                    raw = await RawCP.connect(url, cp, password)
                    asked = time.monotonic()
                    assert (await raw.boot())[2]["status"] == status
                    assert time.monotonic() - asked < 1.0, cp  # was 5+ s: the meter key read waited
                    await raw.close()
            assert daemon.health()["chain_reachable"] is False
        finally:
            await daemon.stop(drain_timeout=5)
