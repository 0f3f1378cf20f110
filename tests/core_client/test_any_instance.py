"""Charge points on any instance: two Core Client processes of one operator on one real PostgreSQL both
serve OCPP; the leader alone signs. The leader's chain decisions reach the instance holding the charge
point's socket (RemoteStart after SessionRequested, RemoteStop on the driver's stop); a charge point that
reconnects (through a TCP load balancer, without booting again) to the other instance mid-session carries
on there and its session settles once; the leader dies while the charge point stays on the other instance, which takes over."""

from __future__ import annotations

import asyncio
import signal
import time
from typing import Any

from core_client.process import EXIT_LEASE_LOST
from core_client.storage import lease
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
from tools.pgserver import PostgresServer

PASSWORD = "pw-any"
DEPOSIT = 20 * TOKEN
TAKEOVER_S = 10  # see test_multi_instance
STARTED_S = 90  # a process's start on a busy machine (its imports alone took 25 s in a full run here)
SLOW_POLL_S = 600  # a reconcile poll so slow that only a notice from the leader can wake the other instance
AT_ONCE_S = 3  # the leader's decision at the other instance's charge point (0.1 s event polls; a busy machine)


def _meter(transaction_id: int, wh: int) -> dict:
    value = {"value": str(wh), "measurand": "Energy.Active.Import.Register", "unit": "Wh"}
    return {
        "connectorId": 1,
        "transactionId": transaction_id,
        "meterValue": [{"timestamp": now_iso(), "sampledValue": [value]}],
    }


async def _two(net, tmp_path, keyfile, pg_url, name: str, **settings: Any) -> tuple[Instance, Instance, str, int]:
    """A station ``name``, and two instances on ``pg_url`` (with ``settings``): a leads, b stands by (and serves)."""
    [cp] = cp_ids(name)
    station_id = await asyncio.to_thread(net.add_station, cp, 1)
    a, b = instances(net, tmp_path, keyfile, {cp: PASSWORD}, {"a": pg_url, "b": pg_url}, **settings)
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


async def _stopped_by_driver(
    net, raw: RawCP, started: tuple[int, object, int, str], meter: int, within: float = 20
) -> float:
    """The driver asks to stop; the RemoteStop reaches ``raw`` (seconds it took, from the stop mined; at most
    ``within``), which stops at ``meter``."""
    session_id, driver, transaction_id, tag = started
    await asyncio.to_thread(net.escrow(driver).request_stop, session_id)
    asked = time.monotonic()
    remote_stop = await raw.next_call("RemoteStopTransaction", within)
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


async def test_the_leaders_decisions_reach_the_charge_point_on_the_other_instance_at_once_not_at_its_next_poll(
    clean_chain, tmp_path, keyfile, pg_url
):
    """The reconcile poll is slow (SLOW_POLL_S): the RemoteStart and the driver's RemoteStop reach the charge
    point on the standby within AT_ONCE_S because the leader's watcher wakes it (a PostgreSQL notice); the
    settle the standby queues is sent by the leader's worker, woken the same way."""
    net = clean_chain
    a, b, cp, station_id = await _two(net, tmp_path, keyfile, pg_url, "WAKE", reconcile_poll_s=SLOW_POLL_S)
    try:
        raw = await _booted(b.ocpp, cp)
        driver = await funded_driver(net, 6)
        session_id = await open_session(net, driver, station_id, 1, DEPOSIT)
        opened = time.monotonic()
        remote_start = await raw.next_call("RemoteStartTransaction", AT_ONCE_S)
        remote_start_s = time.monotonic() - opened
        started = await raw.call("StartTransaction", start_payload(1, remote_start[3]["idTag"], 1000))
        transaction_id = started[2]["transactionId"]
        await wait_chain(net, session_id, SessionState.ACTIVE)
        remote_stop_s = await _stopped_by_driver(
            net, raw, (session_id, driver, transaction_id, remote_start[3]["idTag"]), 2000, AT_ONCE_S
        )
        stopped = time.monotonic()
        await _settled_once(net, session_id, 2000, pg_url)
        settled_s = time.monotonic() - stopped
        await raw.close()
    finally:
        statuses = [a.stop(), b.stop()]
    assert statuses == [0, 0], (a.text()[-2000:], b.text()[-2000:])
    print(
        f"standby's charge point, reconcile poll {SLOW_POLL_S}s: open -> RemoteStart {remote_start_s:.2f}s;"
        f" driver's stop -> RemoteStop {remote_stop_s:.2f}s; StopTransaction -> settled {settled_s:.2f}s"
    )


def _leading(instance: Instance) -> bool:
    """Whether ``instance`` leads with its chain side running (its event watcher reads)."""
    try:
        health = instance.health()
    except OSError:
        return False
    return health["role"] == "leader" and health["chain_reachable"]


async def test_after_postgres_restarted_the_other_instance_listens_again_and_a_stop_still_reaches_it_at_once(
    clean_chain, tmp_path, keyfile
):
    """Three instances with a slow reconcile poll (SLOW_POLL_S), a leading, charge points on b and c; PostgreSQL
    restarts: a ends (its lease connection ended), b or c leads, and the other, whose listener connected again
    by itself, still gets the driver's RemoteStop within AT_ONCE_S. Both sessions settle once."""
    net = clean_chain
    cps = cp_ids("RB", "RC")
    stations = [await asyncio.to_thread(net.add_station, cp, 1) for cp in cps]
    with PostgresServer() as server:  # a server of its own: restarting the shared one would cut other tests off
        url = server.create_database("evn")
        databases = {"a": url, "b": url, "c": url}
        a, b, c = instances(
            net, tmp_path, keyfile, dict.fromkeys(cps, PASSWORD), databases, reconcile_poll_s=SLOW_POLL_S
        )
        try:
            assert await a.started(STARTED_S) == "leader"
            assert await asyncio.gather(b.started(STARTED_S), c.started(STARTED_S)) == ["standby", "standby"]
            raws = [await _booted(b.ocpp, cps[0]), await _booted(c.ocpp, cps[1])]
            started = [await _started(net, raws[i], stations[i], 4 + i) for i in (0, 1)]
            await asyncio.to_thread(server.restart)  # fast shutdown: every client is cut off; then back
            assert await a.ended(lease.GIVES_UP_WITHIN_S + 5) == EXIT_LEASE_LOST
            leader = await until(lambda: next((i for i in (b, c) if _leading(i)), None), TAKEOVER_S, "b or c to lead")
            k = 1 if leader is b else 0  # the standby's charge point
            standby = (b, c)[k]
            await until(lambda: "listening to the other instances again" in standby.text(), 10, "its listener back")
            remote_stop_s = await _stopped_by_driver(net, raws[k], started[k], 2000, AT_ONCE_S)
            await _stopped_by_driver(net, raws[1 - k], started[1 - k], 2000)
            for session_id, *_ in started:
                await wait_chain(net, session_id, SessionState.SETTLED)
                assert len(chain_events(net, "SessionSettled", session_id)) == 1
            for raw in raws:
                await raw.close()
        finally:
            statuses = [a.stop(), b.stop(), c.stop()]
    assert statuses[1:] == [0, 0], (b.text()[-2000:], c.text()[-2000:])
    print(f"after a PostgreSQL restart: driver's stop -> RemoteStop at the standby {remote_stop_s:.2f}s")
