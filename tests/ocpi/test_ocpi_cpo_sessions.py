"""A roaming eMSP's customer charges at our station, paid per session on chain through the eMSP's payment
mandate (issue 20 part 3): the stand-in eMSP (tests/interop/ocpi_emsp.js) sends START_SESSION for its token,
the running Core Client reads the eMSP's mandate, RemoteStarts the ocpp-rpc charge point (strict OCPP 1.6;
neither peer shares code with ours), the charge point's StartTransaction opens and starts the session on
chain under the mandate, STOP_SESSION stops it and the session settles with the refund to the eMSP. An eMSP
whose mandate is revoked, or a duplicate START_SESSION, is refused."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from ev_network.contracts import SessionState
from ev_network.pricing import price
from tools.harness import interop
from tools.harness.chain import TARIFF, TOKEN, Net
from tools.harness.core import Core, chain_events, until, wait_chain
from tools.harness.interop import CHARGE_POINT, next_event
from tools.harness.ocpi.peers import StandInEmsp
from tools.harness.ocpi.roaming import CAP, command_result, emsp_mandate, roaming


@contextlib.asynccontextmanager
async def charge_point(core: Core, cp: str) -> AsyncIterator[Any]:
    """The ocpp-rpc charge point in hold mode: a remote-started charge ends with RemoteStopTransaction."""
    node = await asyncio.create_subprocess_exec(
        "node", str(CHARGE_POINT), core.url, cp, core.passwords[cp], "--hold", stdout=asyncio.subprocess.PIPE
    )
    try:
        await next_event(node.stdout, "ready")
        await until(lambda: core.daemon.ocpi_cpo.stations.stations(), 10, "our station read")
        yield node
    finally:
        if node.returncode is None:
            node.kill()
        await node.wait()


async def pushed(emsp: StandInEmsp, module: str, matches: Any, timeout: float = 20) -> dict[str, Any]:
    """The one object of ``module`` ("sessions", "cdrs") the eMSP holds, once ``matches`` it."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        held = list((await emsp.control("state"))[module].values())
        if held and matches(held[0]):
            assert len(held) == 1, held
            return held[0]
        assert asyncio.get_running_loop().time() < deadline, f"no matching {module} object at the eMSP: {held}"
        await asyncio.sleep(0.1)


async def test_start_session_charges_under_the_emsp_mandate_and_stop_session_settles(
    tmp_path: Path, clean_chain: Net, keyfile: Path
):
    net = clean_chain
    mandates, _, grant = await emsp_mandate(net, 9)
    payer = mandates.sender.account.address
    async with roaming(net, tmp_path, keyfile, grant) as (core, emsp, cp), charge_point(core, cp) as node:
        location = f"ST-{core.stations[cp]}"
        before = net.token().balance_of(payer)
        sent = time.monotonic()
        started = await emsp.control("start", {"location_id": location, "evse_uid": f"{cp}-1", "connector_id": "1"})
        assert (started["http"], started["status_code"], started["response"]["result"]) == (200, 1000, "ACCEPTED")
        remote = await next_event(node.stdout, "remote_start")
        latency_ms = (time.monotonic() - sent) * 1000
        assert (remote["idTag"], remote["connectorId"]) == ("APP-0001", 1)
        assert (await command_result(emsp, started["uid"]))["result"] == "ACCEPTED"
        tx = await next_event(node.stdout, "started")
        assert tx["status"] == "Accepted"
        s = await until(lambda: core.daemon.store.session_by_transaction(tx["transactionId"]), 20, "the session")
        await wait_chain(net, s.session_id, SessionState.ACTIVE)
        assert (s.driver, s.deposit) == (payer, CAP)  # the eMSP pays, the cap per session is locked

        again = await emsp.control("start", {"location_id": location, "evse_uid": f"{cp}-1"})
        assert again["response"]["result"] == "REJECTED"
        assert "has a session here already" in again["response"]["message"][0]["text"]

        session = await pushed(emsp, "sessions", lambda o: o["kwh"] > 0)  # PUT, then kwh PATCHed as it meters
        assert (session["status"], session["auth_method"], session["cdr_token"]["uid"]) == (
            "ACTIVE",
            "COMMAND",
            "APP-0001",
        )
        assert (session["location_id"], session["evse_uid"]) == (location, f"{cp}-1")
        ours = type("Ours", (), {"id": session["id"]})
        stop = await emsp.control("stop", {"session_id": ours.id})
        assert stop["response"]["result"] == "ACCEPTED"
        assert (await next_event(node.stdout, "remote_stop"))["transactionId"] == tx["transactionId"]
        assert (await command_result(emsp, stop["uid"]))["result"] == "ACCEPTED"
        stopped = await next_event(node.stdout, "stopped")
        await wait_chain(net, s.session_id, SessionState.SETTLED)
        [settled] = chain_events(net, "SessionSettled", s.session_id)
        energy = stopped["meterStop"] - stopped["meterStart"]
        assert settled.args["cost"] == price(TARIFF, energy)
        assert net.token().balance_of(payer) == before - settled.args["cost"]  # the rest went back to the eMSP
        again = await emsp.control("stop", {"session_id": ours.id})
        assert again["response"]["result"] == "REJECTED"
        completed = await pushed(emsp, "sessions", lambda o: o["status"] == "COMPLETED")
        assert completed["kwh"] == energy / 1000 and completed["end_date_time"]
        cdr = await pushed(emsp, "cdrs", lambda o: True)
        assert cdr["remark"] == f"settled on chain in transaction {settled.tx_hash}"
        assert (cdr["id"], cdr["session_id"], cdr["total_energy"]) == (ours.id, ours.id, energy / 1000)
        assert cdr["total_cost"]["incl_vat"] == settled.args["cost"] / TOKEN
        assert cdr["cdr_location"]["evse_uid"] == f"{cp}-1" and "signed_data" not in cdr  # this meter signs nothing
        assert await emsp.violations() == []
    print(f"START_SESSION -> charge point RemoteStart: {latency_ms:.0f} ms")


async def test_a_revoked_mandate_or_no_mandate_starts_nothing(tmp_path: Path, clean_chain: Net, keyfile: Path):
    net = clean_chain
    mandates, mandate_id, grant = await emsp_mandate(net, 8)
    await asyncio.to_thread(mandates.revoke, mandate_id)
    async with roaming(net, tmp_path, keyfile, grant) as (core, emsp, cp), charge_point(core, cp):
        location = f"ST-{core.stations[cp]}"
        started = await emsp.control("start", {"location_id": location, "evse_uid": f"{cp}-1"})
        assert started["response"]["result"] == "ACCEPTED"  # the mandate is read from chain after the answer
        result = await command_result(emsp, started["uid"])
        assert result["result"] == "REJECTED" and result["message"][0]["text"] == f"mandate {mandate_id} revoked"
        assert core.daemon.service.cards.vouchers.count(time.time()) == 0  # nothing vouched for
        malformed = await emsp.control("start", {"location_id": location, "evse_uid": f"{cp}-9"})
        assert (
            malformed["response"]["result"] == "REJECTED"
            and "unknown location or EVSE" in malformed["response"]["message"][0]["text"]
        )
        unknown = await emsp.control("stop", {"session_id": "nope"})
        assert unknown["response"]["result"] == "UNKNOWN_SESSION"
        assert await emsp.violations() == []


async def test_a_session_whose_open_the_contract_refuses_is_pushed_invalid_and_never_billed(
    tmp_path: Path, clean_chain: Net, keyfile: Path
):
    net = clean_chain
    mandates, _, grant = await emsp_mandate(net, 7)
    payer = mandates.sender.account
    # the mandate reads fine, but the escrow can no longer pull the eMSP's deposit: the open reverts
    await asyncio.to_thread(net.token(payer).approve, net.deployment.escrow, 0)
    async with roaming(net, tmp_path, keyfile, grant) as (core, emsp, cp), charge_point(core, cp) as node:
        location = f"ST-{core.stations[cp]}"
        started = await emsp.control("start", {"location_id": location, "evse_uid": f"{cp}-1"})
        assert started["response"]["result"] == "ACCEPTED"
        assert (await command_result(emsp, started["uid"]))["result"] == "ACCEPTED"  # the charge point accepted
        tx = await next_event(node.stdout, "started")
        assert tx["status"] == "Accepted"  # at once, before the chain: the open is queued
        assert (await next_event(node.stdout, "remote_stop"))["transactionId"] == tx["transactionId"]
        await next_event(node.stdout, "stopped")
        session = await pushed(emsp, "sessions", lambda o: o["status"] != "ACTIVE")
        assert (session["status"], session["cdr_token"]["uid"]) == ("INVALID", "APP-0001")
        assert session["end_date_time"]
        assert core.daemon.store.session_by_transaction(tx["transactionId"]) is None  # nothing opened on chain
        again = await emsp.control("start", {"location_id": location, "evse_uid": f"{cp}-1"})
        assert "has a session here already" not in str(again["response"])  # (the charge point went offline)
        assert (await emsp.control("state"))["cdrs"] == {}
        assert await emsp.violations() == []


async def test_a_token_whose_session_ended_at_the_charge_point_may_start_again(
    tmp_path: Path, clean_chain: Net, keyfile: Path
):
    net = clean_chain
    _, _, grant = await emsp_mandate(net, 9)
    async with roaming(net, tmp_path, keyfile, grant) as (core, emsp, cp):
        location = {"location_id": f"ST-{core.stations[cp]}", "evse_uid": f"{cp}-1"}
        async with interop.charge_point(core, cp) as node:  # plain mode: the car leaves after three readings
            await until(lambda: core.daemon.ocpi_cpo.stations.stations(), 10, "our station read")
            assert (await emsp.control("start", location))["response"]["result"] == "ACCEPTED"
            await next_event(node.stdout, "stopped")  # ended at the charge point, not by STOP_SESSION
        await pushed(emsp, "sessions", lambda o: o["status"] == "COMPLETED")
        async with interop.charge_point(core, cp) as node:
            await until(lambda: core.daemon.service.online(cp), 10, "the charge point back online")
            again = await emsp.control("start", location)
            assert again["response"]["result"] == "ACCEPTED", again  # was: "token APP-0001 has a session here already"
            assert (await next_event(node.stdout, "remote_start"))["idTag"] == "APP-0001"
