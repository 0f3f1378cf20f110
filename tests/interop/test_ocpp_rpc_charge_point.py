"""Interoperability: a charge point written with ocpp-rpc (npm), not with the Python `ocpp` package
the Core Client is built on, runs a whole app-paid session through the Core Client to settlement.
ocpp-rpc's strict mode checks every message both ways against the OCPP 1.6 JSON schemas."""

from __future__ import annotations

import asyncio

from ev_network.contracts import SessionState
from ev_network.pricing import price
from tools.harness.chain import TARIFF, TOKEN
from tools.harness.core import chain_events, cp_ids, make_keyfile, open_session, running_core, wait_chain
from tools.harness.interop import CHARGE_POINT, next_event


async def test_an_ocpp_rpc_charge_point_charges_a_paid_session_to_settlement(clean_chain, tmp_path):
    net = clean_chain
    [cp_id] = cp_ids("INTEROP")
    keyfile = make_keyfile(tmp_path / "operator", net.operator)
    async with running_core(net, tmp_path, keyfile, {cp_id: 1}) as core:
        node = await asyncio.create_subprocess_exec(
            "node",
            str(CHARGE_POINT),
            core.url,
            cp_id,
            core.passwords[cp_id],
            stdout=asyncio.subprocess.PIPE,
        )
        try:
            assert (await next_event(node.stdout, "boot"))["status"] == "Accepted"
            await next_event(node.stdout, "ready")
            driver = net.drivers[6]
            await asyncio.to_thread(net.fund, driver)
            session_id = await open_session(net, driver, core.stations[cp_id], 1, 10 * TOKEN)

            remote_start = await next_event(node.stdout, "remote_start")
            assert remote_start["idTag"] == core.local(session_id).id_tag
            assert (await next_event(node.stdout, "started"))["status"] == "Accepted"
            stopped = await next_event(node.stdout, "stopped")
            assert await asyncio.wait_for(node.wait(), 10) == 0

            await wait_chain(net, session_id, SessionState.SETTLED)
            [settled] = chain_events(net, "SessionSettled", session_id)
            energy = stopped["meterStop"] - stopped["meterStart"]
            assert (settled.args["meterStart"], settled.args["meterStop"]) == (
                stopped["meterStart"],
                stopped["meterStop"],
            )
            assert settled.args["cost"] == price(TARIFF, energy) and energy == 2100
            [started] = chain_events(net, "SessionStarted", session_id)
            assert started.args["transactionId"] == stopped["transactionId"]
        finally:
            if node.returncode is None:
                node.kill()
                await node.wait()
