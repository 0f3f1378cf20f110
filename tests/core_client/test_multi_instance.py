"""Two Core Client processes of one operator on one real PostgreSQL: one holds the signer lease and
signs (leader), the other stands by to lead (both serve charge points: test_any_instance). Faults with real processes: the leader SIGKILLed mid-session,
PostgreSQL restarted, the leader cut off from PostgreSQL. Each time the other instance takes the lease
(never while the former leader may still sign), the charge point comes back to it, and every session
settles exactly once."""

from __future__ import annotations

import asyncio
import signal
import time
from dataclasses import dataclass

from core_client.process import EXIT_LEASE_LOST
from core_client.storage import lease
from core_client.storage.engines import open_database
from ev_network.contracts import SessionState
from simulator.charge_point import Behaviour, SimChargePoint
from tools.devchain import ChainProxy
from tools.harness.chain import TOKEN
from tools.harness.core import (
    RawCP,
    chain_events,
    cp_ids,
    funded_driver,
    now_iso,
    open_session,
    until,
    wait_chain,
)
from tools.harness.instances import Instance, instances
from tools.pgserver import PostgresServer

FAST = Behaviour(power_w=22_000, meter_interval_s=10, time_accel=100)
DEPOSIT = 20 * TOKEN
PASSWORD = "pw-ha"
# the lease goes when the leader's connection ends; the standby asks every second and leads
# lease.GIVES_UP_WITHIN_S later
TAKEOVER_S = 10


@dataclass
class TwoSessions:
    """Two sessions at one charge point of the leader: one charging, one stopped (its settle queued)."""

    net: object
    cp: str
    charging: int
    stopping: int
    transaction: int  # the charging one's
    tag: str
    meter_stop: int  # the stopped one's
    sim: SimChargePoint
    meter_now: int = 0  # the charging one's meter stop (once finished)

    async def finish_on(self, instance: Instance) -> None:
        """The charge point comes back (through the load balancer) to ``instance`` and stops the charging
        session where its meter stood when its link broke; both sessions settle, the queue empties."""
        meter = self.sim.connector(1).meter_wh
        await self.sim.closed.wait()
        raw = await RawCP.connect(instance.ocpp, self.cp, PASSWORD)
        assert (await raw.boot())[2]["status"] == "Accepted"
        stop = {"transactionId": self.transaction, "meterStop": meter, "timestamp": now_iso(), "reason": "Local"}
        answer = await raw.call("StopTransaction", {**stop, "idTag": self.tag})
        assert answer[2]["idTagInfo"]["status"] == "Accepted"
        self.meter_now = meter
        await wait_chain(self.net, self.charging, SessionState.SETTLED)
        await wait_chain(self.net, self.stopping, SessionState.SETTLED)
        health = await until(
            lambda: (h := instance.health())["sessions_by_state"] == {"settled": 2} and h["queue_depth"] == 0 and h,
            15,
            "both sessions settled by the new leader",
        )
        assert health["role"] == "leader" and health["failed_jobs"] == 0
        await raw.close()

    def settled_once(self, database: str) -> None:
        """Each session started and settled once on chain, at its meter; one job row each, all done."""
        for session_id, meter_stop in [(self.charging, self.meter_now), (self.stopping, self.meter_stop)]:
            assert len(chain_events(self.net, "SessionStarted", session_id)) == 1
            [settled] = chain_events(self.net, "SessionSettled", session_id)
            assert settled.args["meterStop"] == meter_stop
        db = open_database(database)
        jobs = [tuple(row) for row in db.execute("SELECT kind, status FROM jobs ORDER BY id")]
        db.close()
        assert sorted(jobs) == [("settle", "done")] * 2 + [("start", "done")] * 2


async def two_sessions(net, cp: str, station_id: int, leader: Instance) -> TwoSessions:
    d1, d2 = await funded_driver(net, 7), await funded_driver(net, 8)
    sim = await SimChargePoint.connect(leader.ocpp, cp, PASSWORD, 2, FAST)
    charging = await open_session(net, d1, station_id, 1, DEPOSIT)
    stopping = await open_session(net, d2, station_id, 2, DEPOSIT)
    transaction = await sim.wait_for_transaction(1, timeout=15)
    await sim.wait_for_transaction(2, timeout=15)
    await wait_chain(net, charging, SessionState.ACTIVE)
    await wait_chain(net, stopping, SessionState.ACTIVE)
    stopped = await sim.stop(2)  # answered: its settle is queued, maybe sent ...
    return TwoSessions(net, cp, charging, stopping, transaction, sim.connector(1).id_tag, stopped.meter_stop, sim)


async def test_the_standby_takes_over_from_a_killed_leader_and_each_session_settles_once(
    clean_chain, tmp_path, keyfile, pg_url
):
    net = clean_chain
    [cp] = cp_ids("HA")
    station_id = await asyncio.to_thread(net.add_station, cp, 2)
    a, b = instances(net, tmp_path, keyfile, {cp: PASSWORD}, {"a": pg_url, "b": pg_url})
    try:
        assert await a.started() == "leader"
        assert await b.started() == "standby"
        sessions = await two_sessions(net, cp, station_id, a)
        a.process.send_signal(signal.SIGKILL)  # ... and the leader dies at once
        a.process.wait(10)
        killed = time.monotonic()
        await b.role("leader", TAKEOVER_S)
        takeover_s = time.monotonic() - killed
        await sessions.finish_on(b)
    finally:
        a.stop()
        b_status = b.stop()
    assert b_status == 0, b.text()[-3000:]
    assert takeover_s < TAKEOVER_S, takeover_s
    sessions.settled_once(pg_url)
    assert "signer lease of operator" in b.text() and "taken over: leading" in b.text()
    print(f"failover after SIGKILL: {takeover_s:.1f}s")


async def test_postgres_restarted_mid_run_the_leader_ends_and_the_standby_takes_over_with_nothing_lost(
    clean_chain, tmp_path, keyfile
):
    net = clean_chain
    [cp] = cp_ids("PR")
    station_id = await asyncio.to_thread(net.add_station, cp, 2)
    with PostgresServer() as server:  # a server of its own: restarting the shared one would cut other tests off
        url = server.create_database("evn")
        a, b = instances(net, tmp_path, keyfile, {cp: PASSWORD}, {"a": url, "b": url})
        try:
            assert await a.started() == "leader"
            assert await b.started() == "standby"
            sessions = await two_sessions(net, cp, station_id, a)
            await asyncio.to_thread(server.restart)  # fast shutdown: every client is cut off; then back
            back = time.monotonic()
            # its lease connection ended: the leader ends at once, with the status its supervisor restarts on
            assert await a.ended(lease.GIVES_UP_WITHIN_S + 5) == EXIT_LEASE_LOST
            await b.role("leader", TAKEOVER_S)  # the standby reconnects and takes the lease
            recovery_s = time.monotonic() - back
            assert await a.started() == "standby"  # started again (as systemd would): it stands by
            await sessions.finish_on(b)
            sessions.settled_once(url)
        finally:
            a.stop()
            b_status = b.stop()
    assert b_status == 0, b.text()[-3000:]
    assert "signer lease of operator" in a.text() and "was lost (its connection to PostgreSQL ended)" in a.text()
    print(f"PostgreSQL restart: a leader again {recovery_s:.1f}s after the server was back")


async def test_a_leader_cut_off_from_postgres_ends_before_another_instance_can_lead(
    clean_chain, tmp_path, keyfile, postgres, pg_url
):
    net = clean_chain
    [cp] = cp_ids("PC")
    station_id = await asyncio.to_thread(net.add_station, cp, 2)
    proxy = ChainProxy(postgres.port)  # the leader reaches PostgreSQL through it
    await proxy.resume()
    through_proxy = pg_url.replace(f":{postgres.port}/", f":{proxy.port}/")
    a, b = instances(net, tmp_path, keyfile, {cp: PASSWORD}, {"a": through_proxy, "b": pg_url})
    try:
        assert await a.started() == "leader"
        assert await b.started() == "standby"
        sessions = await two_sessions(net, cp, station_id, a)
        # a partition: nothing passes, nobody is told; the server drops the silent leader (and its
        # lock) only when its keepalives give up
        proxy.partition(server_drops_after=lease.SERVER_DROPS_SILENT_HOLDER_S)
        cut = time.monotonic()
        # no answer: it stops itself (within lease.GIVES_UP_WITHIN_S; a loaded machine may add a little)
        assert await a.ended(lease.SERVER_DROPS_SILENT_HOLDER_S - 2) == EXIT_LEASE_LOST
        ended_s = time.monotonic() - cut
        assert b.health()["role"] == "standby"  # the lock is still the silent leader's on the server
        await b.role("leader", lease.SERVER_DROPS_SILENT_HOLDER_S + TAKEOVER_S)
        takeover_s = time.monotonic() - cut
        await sessions.finish_on(b)
    finally:
        a.stop()
        b_status = b.stop()
        await proxy.pause()
    assert b_status == 0, b.text()[-3000:]
    # the cut-off leader ended long before the server let its lock go: never two signers
    assert ended_s < lease.SERVER_DROPS_SILENT_HOLDER_S - 2 and takeover_s >= lease.SERVER_DROPS_SILENT_HOLDER_S
    sessions.settled_once(pg_url)
    assert "did not answer within" in a.text()
    print(f"partition: the leader ended after {ended_s:.1f}s, another led after {takeover_s:.1f}s")
