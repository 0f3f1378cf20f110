"""The Core Client (a real process) killed and started again while a roaming eMSP's session is on its way
(issue 20 part 3): the stand-in eMSP (tests/interop/ocpi_emsp.js) and a raw OCPP charge point play the
other sides. What the daemon knew of the session is in its store; what it only had in memory (a timer) is
not, and must not be needed."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tools.harness.chain import Net
from tools.harness.core import start_payload, stop_payload, until
from tools.harness.ocpi.roaming import (
    ALWAYS,
    RoamingDaemon,
    command_result,
    emsp_mandate,
    held,
    published,
    roaming_process,
)


async def test_a_start_that_never_happened_lapses_after_a_restart_and_the_token_may_start_again(
    tmp_path: Path, clean_chain: Net, keyfile: Path
):
    net = clean_chain
    _, _, grant = await emsp_mandate(net, 9)
    async with roaming_process(net, tmp_path, keyfile, grant) as (daemon, emsp):
        hanging = await daemon.charge_point(RemoteStartTransaction=None)  # never answers the RemoteStart
        await hanging.boot()
        await published(daemon)
        where = {"location_id": f"ST-{daemon.station_id}", "evse_uid": f"{daemon.cp}-1"}
        first = await emsp.control("start", where)
        assert first["response"]["result"] == "ACCEPTED"
        await hanging.next_call("RemoteStartTransaction")
        daemon.kill()  # the charge point is being asked: no CommandResult yet, the session is in the store
        await hanging.close()
        assert (await emsp.control("state"))["commands"][first["uid"]]["result"] is None

        await daemon.start()  # start_timeout_s (5 s) passes with no StartTransaction
        cp = await daemon.charge_point()  # accepts RemoteStarts, never starts a transaction
        await cp.boot()
        lapsed = await command_result(emsp, first["uid"])  # was: never sent
        assert lapsed["result"] == "TIMEOUT", lapsed
        second = await emsp.control("start", where)
        assert second["response"]["result"] == "ACCEPTED", second  # was: "token APP-0001 has a session here already"
        assert (await cp.next_call("RemoteStartTransaction"))[3]["idTag"] == "APP-0001"
        assert (await command_result(emsp, second["uid"]))["result"] == "ACCEPTED"

        # that one lapses too, its eMSP told nothing more (2.2.1 mod_commands: ACCEPTED, then no Session)
        await until(lambda: daemon.log().count("the charge point never started it") == 2, 20, "the second lapsed")
        third = await emsp.control("start", where)
        assert third["response"]["result"] == "ACCEPTED", third
        state = await emsp.control("state")
        assert state["commands"][second["uid"]]["result"]["result"] == "ACCEPTED"
        assert state["sessions"] == {} and state["cdrs"] == {}
        assert await emsp.violations() == []


async def tokens_pulled(daemon: RoamingDaemon) -> None:
    deadline = asyncio.get_running_loop().time() + 20
    while (await daemon.health())["ocpi_cpo"]["emsps"][0]["tokens"] != 6:
        assert asyncio.get_running_loop().time() < deadline, "the eMSP's Tokens were not pulled"
        await asyncio.sleep(0.2)


async def test_a_token_tapped_before_a_restart_and_started_after_it_is_reported_to_its_emsp(
    tmp_path: Path, clean_chain: Net, keyfile: Path
):
    net = clean_chain
    _, _, grant = await emsp_mandate(net, 8)
    vouched = {"start_timeout_s": 60}  # the restart well within it: the StartTransaction finds the voucher
    async with roaming_process(net, tmp_path, keyfile, grant, vouched) as (daemon, emsp):
        await tokens_pulled(daemon)
        cp = await daemon.charge_point()
        await cp.boot()
        await published(daemon)
        authorized = await cp.call("Authorize", {"idTag": ALWAYS})  # whitelist ALWAYS: vouched for at once
        assert authorized[2]["idTagInfo"]["status"] == "Accepted", authorized
        daemon.kill()  # before the StartTransaction
        await cp.close()

        await daemon.start()
        cp = await daemon.charge_point()
        await cp.boot()
        started = await cp.call("StartTransaction", start_payload(1, ALWAYS, 1000))
        assert started[2]["idTagInfo"]["status"] == "Accepted", started  # the voucher is in the store
        assert daemon.log().count(f"eMSP token {ALWAYS} tapped") == 1  # not vouched for again
        session = await held(emsp, "sessions", ALWAYS, lambda o: True)  # was: none, nor a CDR
        assert (session["status"], session["auth_method"]) == ("ACTIVE", "WHITELIST")
        assert session["location_id"] == f"ST-{daemon.station_id}"
        stopped = await cp.call("StopTransaction", stop_payload(started[2]["transactionId"], 3100))
        assert stopped[0] == 3, stopped
        cdr = await held(emsp, "cdrs", ALWAYS, lambda o: True)
        assert (cdr["session_id"], cdr["total_energy"]) == (session["id"], 2.1)
        assert cdr["remark"].startswith("settled on chain in transaction 0x")
        assert await emsp.violations() == []
