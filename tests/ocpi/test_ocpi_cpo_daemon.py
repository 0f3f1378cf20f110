"""The daemon serving [ocpi_cpo] (issue 20 part 3): a roaming eMSP (the stand-in, tests/interop/ocpi_emsp.js)
registers with the running Core Client, pulls our station (registered on chain, its charge point an
ocpp-rpc charge point) as a Location with its chain tariff, gets each connector's new status PATCHed, and
/health names it."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tools.harness.chain import Net
from tools.harness.core import cp_ids, running_core, until
from tools.harness.interop import CHARGE_POINT, next_event
from tools.harness.ocpi.our_cpo import cpo_section
from tools.harness.ocpi.peers import StandInEmsp, emsp_platform


async def evse_becomes(emsp: StandInEmsp, uid: str, status: str, pull: bool = False, timeout: float = 20) -> None:
    """Wait until the eMSP holds EVSE ``uid`` with ``status`` (pulling our Locations each time with ``pull``)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        if pull:
            await emsp.control("pull", {"module": "locations"})
        locations = (await emsp.control("state"))["locations"].values()
        now = next((e["status"] for o in locations for e in o["evses"] if e["uid"] == uid), None)
        if now == status:
            return
        assert asyncio.get_running_loop().time() < deadline, f"EVSE {uid} is {now}, not {status}"
        await asyncio.sleep(0.1)


async def test_the_daemon_serves_our_stations_to_a_registered_emsp(tmp_path: Path, clean_chain: Net, keyfile: Path):
    [cp] = cp_ids("ROAM")
    cpo = cpo_section(tmp_path, cp)
    async with (
        emsp_platform(tmp_path) as emsp,
        running_core(clean_chain, tmp_path, keyfile, {cp: 1}, ocpi_cpo=cpo) as core,
    ):
        daemon = core.daemon
        assert daemon.health()["ocpi_cpo"]["emsps"] == []
        token_a = daemon.ocpi_cpo.peers.issue("ems-roaming")
        registered = await emsp.control("register", {"versions_url": cpo.versions_endpoint, "token_a": token_a})
        assert registered["ok"], registered
        await until(lambda: daemon.health()["ocpi_cpo"]["emsps"][0]["tokens"] == 6, 10, "its Token list pulled")
        [emsp_health] = daemon.health()["ocpi_cpo"]["emsps"]
        assert emsp_health == {
            "name": "ems-roaming", "registered": True, "parties": ["NL/EMS"], "mandate_id": None, "tokens": 6,
        }  # fmt: skip

        node = await asyncio.create_subprocess_exec(
            "node", str(CHARGE_POINT), core.url, cp, core.passwords[cp], stdout=asyncio.subprocess.PIPE
        )  # boots, reports connector 1 Available, and waits for a RemoteStart
        try:
            await next_event(node.stdout, "ready")

            await evse_becomes(emsp, f"{cp}-1", "AVAILABLE", pull=True)  # published once the station is known
            tariffs = await emsp.control("pull", {"module": "tariffs"})
            assert tariffs["received"] == 1 and tariffs["pages"][0]["problems"] == []

            daemon.service.on_status(daemon.service.links[cp], 1, "Faulted", "GroundFailure")
            await evse_becomes(emsp, f"{cp}-1", "OUTOFORDER")  # PATCHed to the eMSP, no pull
            assert await emsp.violations() == []
        finally:
            node.kill()
            await node.wait()
