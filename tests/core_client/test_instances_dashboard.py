"""The operator's dashboard over several Core Client instances of one operator on one real PostgreSQL
(real processes): the dashboard of any instance, the standby's too, shows every instance with its role
and the charge points it holds, who leads, and the sessions in flight at charge points of the other
instance, all read from the shared database; when the leader is SIGKILLed, the survivor's dashboard
shows it gone and itself leading."""

from __future__ import annotations

import asyncio
import re
import signal
from collections.abc import Awaitable, Callable
from typing import TypeVar

from ev_network.contracts import SessionState
from simulator.charge_point import Behaviour, SimChargePoint
from tools.harness.chain import TOKEN
from tools.harness.core import cp_ids, funded_driver, open_session, wait_chain
from tools.harness.instances import Instance, instances
from tools.harness.web import WebClient

PASSWORD = "pw-board"
BOARD_PASSWORD = "the operator's dashboard password"
SLOW = Behaviour(power_w=11_000, meter_interval_s=10, time_accel=10)
T = TypeVar("T")
TAKEOVER_S = 10  # the standby leads about 4 s after the leader's death (tests/core_client/test_multi_instance.py)
GONE_WITHIN_S = 15  # an instance is shown gone once its row is 10 s old (core_client.storage.claims)


def instance_rows(page: str) -> dict[str, str]:
    """The instances panel: instance id -> its row's text (tags dropped)."""
    rows = re.findall(r'<tr class="instance" data-instance="([^"]+)">(.*?)</tr>', page, re.S)
    return {name: " ".join(re.sub(r"<[^>]+>", " ", row).split()) for name, row in rows}


async def poll(check: Callable[[], Awaitable[T | None]], timeout: float) -> T:
    """Await ``check()`` until it returns something truthy; that."""

    async def loop() -> T:
        while not (found := await check()):
            await asyncio.sleep(0.3)
        return found

    return await asyncio.wait_for(loop(), timeout)


async def board(instance: Instance) -> WebClient:
    """Logged in to the instance's dashboard."""
    client = WebClient(instance.dashboard)
    await client.get("/login")
    status, _ = await client.post("/login", {"password": BOARD_PASSWORD})
    assert status == 200
    return client


async def test_the_dashboard_of_any_instance_shows_every_instance_its_charge_points_and_the_leader(
    clean_chain, tmp_path, keyfile, pg_url
):
    net = clean_chain
    cp_a, cp_b = cp_ids("BA", "BB")
    station_b = await asyncio.to_thread(net.add_station, cp_b, 1)
    await asyncio.to_thread(net.add_station, cp_a, 1)
    passwords = {cp_a: PASSWORD, cp_b: PASSWORD}
    a, b = instances(net, tmp_path, keyfile, passwords, {"a": pg_url, "b": pg_url}, dashboard_password=BOARD_PASSWORD)
    sims: list[SimChargePoint] = []
    try:
        assert await a.started() == "leader"
        assert await b.started() == "standby"
        a_id, b_id = a.health()["instance"], b.health()["instance"]
        sims.append(await SimChargePoint.connect(a.ocpp, cp_a, PASSWORD, 1, SLOW))
        sims.append(await SimChargePoint.connect(b.ocpp, cp_b, PASSWORD, 1, SLOW))  # the standby serves it
        driver = await funded_driver(net, 9)
        session = await open_session(net, driver, station_b, 1, 20 * TOKEN)
        await sims[1].wait_for_transaction(1, timeout=20)
        await wait_chain(net, session, SessionState.ACTIVE)

        standby_board, leader_board = await board(b), await board(a)
        for client, this in [(standby_board, b_id), (leader_board, a_id)]:
            _, page = await client.get("/")
            rows = instance_rows(page)
            assert set(rows) == {a_id, b_id}, rows
            assert f"leader (signs for the operator): <code>{a_id}</code>" in page
            assert rows[a_id].startswith(f"{a_id} {'(this one) ' if this == a_id else ''}")
            assert "leader alive 1" in rows[a_id] and cp_a in rows[a_id] and cp_b not in rows[a_id]
            assert "standby alive 1" in rows[b_id] and cp_b in rows[b_id] and cp_a not in rows[b_id]
            assert "(this one)" in rows[this]
            assert f'{cp_b} <span class="muted">#{station_b}</span> <span class="muted">on {b_id}</span>' in page
            assert f"<td>{cp_b}/1</td>" in page  # the session in flight at the standby's charge point

        a.process.send_signal(signal.SIGKILL)
        a.process.wait(10)
        await b.role("leader", TAKEOVER_S)

        async def gone() -> dict[str, str] | None:
            _, page = await standby_board.get("/")
            rows = instance_rows(page)
            led = f"leader (signs for the operator): <code>{b_id}</code>" in page
            return rows if led and "gone 0" in rows.get(a_id, "") else None

        rows = await poll(gone, GONE_WITHIN_S)
        assert "leader alive 1" in rows[b_id] and cp_b in rows[b_id]
    finally:
        for sim in sims:
            await sim.close()
        a.stop()
        b_status = b.stop()
    assert b_status == 0, b.text()[-3000:]
