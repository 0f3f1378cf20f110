"""Charge points on any instance: two Core Client processes of one operator on one real PostgreSQL both
serve OCPP; the leader alone signs. The leader's chain decisions reach the instance holding the charge
point's socket (RemoteStart after SessionRequested, RemoteStop on the driver's stop); a charge point that
reconnects (through a TCP load balancer, without booting again) to the other instance mid-session carries
on there and its session settles once; the leader dies while the charge point stays on the other instance, which takes over."""

from __future__ import annotations

import asyncio
import signal
import time

from core_client.storage.engines import open_database
from ev_network.contracts import SessionState
from tools.devchain import ChainProxy
from tools.harness.chain import TOKEN
from tools.harness.core import (
    RawCP,
    chain_events,
    cp_ids,
    funded_driver,
    now_iso,
    open_session,
    start_payload,
    until,
    wait_chain,
)
from tools.harness.instances import Instance, instances
from tools.harness.interop import CHARGE_POINT, next_event

PASSWORD = "pw-any"
DEPOSIT = 20 * TOKEN
TAKEOVER_S = 10  # see test_multi_instance
STARTED_S = 90  # a process's start on a busy machine (its imports alone took 25 s in a full run here)


def _meter(transaction_id: int, wh: int) -> dict:
    value = {"value": str(wh), "measurand": "Energy.Active.Import.Register", "unit": "Wh"}
    return {
        "connectorId": 1,
        "transactionId": transaction_id,
        "meterValue": [{"timestamp": now_iso(), "sampledValue": [value]}],
    }


async def _two(net, tmp_path, keyfile, pg_url, name: str) -> tuple[Instance, Instance, str, int]:
    """A station ``name``, and two instances on ``pg_url``: a leads, b stands by (and serves)."""
    [cp] = cp_ids(name)
    station_id = await asyncio.to_thread(net.add_station, cp, 1)
    a, b = instances(net, tmp_path, keyfile, {cp: PASSWORD}, {"a": pg_url, "b": pg_url})
    try:
        assert await a.started(STARTED_S) == "leader"
        assert await b.started(STARTED_S) == "standby"
    except BaseException:
        a.stop(), b.stop()
        raise
    return a, b, cp, station_id


async def _booted(url: str, cp: str) -> RawCP:
    raw = await RawCP.connect(url, cp, PASSWORD)
    assert (await raw.boot())[2]["status"] == "Accepted"
    return raw


async def _started(net, raw: RawCP, station_id: int, driver_index: int) -> tuple[int, object, int, str]:
    """A driver opens a session at the charge point of ``raw``; its RemoteStart comes over ``raw``, which
    starts the transaction: (session id, the driver, transaction id, idTag) once Active on chain."""
    driver = await funded_driver(net, driver_index)
    session_id = await open_session(net, driver, station_id, 1, DEPOSIT)
    remote_start = await raw.next_call("RemoteStartTransaction", 20)
    tag = remote_start[3]["idTag"]
    started = await raw.call("StartTransaction", start_payload(1, tag, 1000))
    assert started[2]["idTagInfo"]["status"] == "Accepted"
    await wait_chain(net, session_id, SessionState.ACTIVE)
    return session_id, driver, started[2]["transactionId"], tag


async def _stopped_by_driver(net, raw: RawCP, started: tuple[int, object, int, str], meter: int) -> float:
    """The driver asks to stop; the RemoteStop reaches ``raw`` (seconds it took), which stops at ``meter``."""
    session_id, driver, transaction_id, tag = started
    asked = time.monotonic()
    await asyncio.to_thread(net.escrow(driver).request_stop, session_id)
    remote_stop = await raw.next_call("RemoteStopTransaction", 20)
    took = time.monotonic() - asked
    assert remote_stop[3]["transactionId"] == transaction_id
    stop = {
        "transactionId": transaction_id,
        "meterStop": meter,
        "timestamp": now_iso(),
        "reason": "Remote",
        "idTag": tag,
    }
    assert (await raw.call("StopTransaction", stop))[2]["idTagInfo"]["status"] == "Accepted"
    return took


async def _settled_once(net, session_id: int, meter_stop: int, database: str) -> None:
    await wait_chain(net, session_id, SessionState.SETTLED)
    assert len(chain_events(net, "SessionStarted", session_id)) == 1
    [settled] = chain_events(net, "SessionSettled", session_id)
    assert settled.args["meterStop"] == meter_stop

    def jobs() -> list[tuple]:
        db = open_database(database)
        try:
            return sorted(tuple(row) for row in db.execute("SELECT kind, status FROM jobs"))
        finally:
            db.close()

    await until(lambda: jobs() == [("settle", "done"), ("start", "done")], 15, "the jobs done, one of each")


async def test_an_ocpp_rpc_charge_point_on_the_standby_charges_a_session_to_settlement(
    clean_chain, tmp_path, keyfile, pg_url
):
    net = clean_chain
    a, b, cp, station_id = await _two(net, tmp_path, keyfile, pg_url, "ANY")
    node = None
    try:
        node = await asyncio.create_subprocess_exec(
            "node", str(CHARGE_POINT), b.ocpp, cp, PASSWORD, "--hold", stdout=asyncio.subprocess.PIPE
        )
        assert (await next_event(node.stdout, "boot"))["status"] == "Accepted"
        await next_event(node.stdout, "ready")
        assert b.health()["online_charge_points"] == [cp] and a.health()["connected_charge_points"] == []
        driver = await funded_driver(net, 9)
        session_id = await open_session(net, driver, station_id, 1, DEPOSIT)
        await next_event(node.stdout, "remote_start")  # the leader saw the request; the standby sent it
        started = await next_event(node.stdout, "started")
        assert started["status"] == "Accepted"
        await wait_chain(net, session_id, SessionState.ACTIVE)
        await asyncio.to_thread(net.escrow(driver).request_stop, session_id)
        assert (await next_event(node.stdout, "remote_stop"))["transactionId"] == started["transactionId"]
        stopped = await next_event(node.stdout, "stopped")
        assert await asyncio.wait_for(node.wait(), 10) == 0
        await _settled_once(net, session_id, stopped["meterStop"], pg_url)
        health = a.health()
        assert {i["instance"]: i["alive"] for i in health["instances"]} == {
            health["instance"]: True,
            b.health()["instance"]: True,
        }
    finally:
        if node is not None and node.returncode is None:
            node.kill()
            await node.wait()
        statuses = [a.stop(), b.stop()]
    assert statuses == [0, 0], (a.text()[-2000:], b.text()[-2000:])
    assert f"sending RemoteStart to {cp}/1" in b.text() and "sending RemoteStart" not in a.text()


async def test_a_charge_point_that_reconnects_to_the_other_instance_mid_session_carries_on_and_settles_once(
    clean_chain, tmp_path, keyfile, pg_url
):
    net = clean_chain
    a, b, cp, station_id = await _two(net, tmp_path, keyfile, pg_url, "MOVE")
    balancer = ChainProxy(a.settings.listen_port, b.settings.listen_port)  # a TCP load balancer: a first
    await balancer.resume()
    url = f"ws://127.0.0.1:{balancer.port}"
    try:
        first = await _booted(url, cp)
        started = await _started(net, first, station_id, 8)
        session_id, _, transaction_id, _ = started
        assert (await first.call("MeterValues", _meter(transaction_id, 1500)))[0] == 3
        assert a.health()["connected_charge_points"] == [cp]
        # the balancer now sends new connections to b; the charge point reconnects while its old
        # connection to a still looks open (a half-open socket): a must let it go. It does not boot again
        # (OCPP 1.6 asks that only after a reboot): its next message tells b it is back
        balancer.targets = (b.settings.listen_port, a.settings.listen_port)
        moved = time.monotonic()
        second = await RawCP.connect(url, cp, PASSWORD)
        await asyncio.wait_for(first.connection.wait_closed(), 5)  # a closed its connection: b holds it
        assert (await second.call("MeterValues", _meter(transaction_id, 2500)))[0] == 3
        await until(lambda: b.health()["online_charge_points"] == [cp], 5, "b to hold the charge point")
        carried_on_s = time.monotonic() - moved
        remote_stop_s = await _stopped_by_driver(net, second, started, 3000)
        await _settled_once(net, session_id, 3000, pg_url)
        assert a.health()["connected_charge_points"] == []
        await second.close()
    finally:
        await balancer.pause()
        statuses = [a.stop(), b.stop()]
    assert statuses == [0, 0], (a.text()[-2000:], b.text()[-2000:])
    assert "connected to another instance now" in a.text()
    print(f"reconnect to the other instance: carried on after {carried_on_s:.2f}s; RemoteStop {remote_stop_s:.2f}s")


async def test_the_leader_killed_while_the_charge_point_stays_on_the_other_instance(
    clean_chain, tmp_path, keyfile, pg_url
):
    net = clean_chain
    a, b, cp, station_id = await _two(net, tmp_path, keyfile, pg_url, "STAY")
    try:
        raw = await _booted(b.ocpp, cp)
        started = await _started(net, raw, station_id, 7)
        session_id, _, transaction_id, _ = started
        a.process.send_signal(signal.SIGKILL)
        a.process.wait(10)
        killed = time.monotonic()
        assert (await raw.call("MeterValues", _meter(transaction_id, 2000)))[0] == 3  # b answers meanwhile
        await b.role("leader", TAKEOVER_S)
        takeover_s = time.monotonic() - killed
        await _stopped_by_driver(net, raw, started, 2600)
        await _settled_once(net, session_id, 2600, pg_url)
        assert b.health()["connected_charge_points"] == [cp]  # never dropped
        await raw.close()
    finally:
        a.stop()
        b_status = b.stop()
    assert b_status == 0, b.text()[-3000:]
    print(f"leader killed, the charge point stayed on the other instance: it led after {takeover_s:.1f}s")
