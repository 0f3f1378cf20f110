"""A roaming eMSP's RFID token tapped at our station (issue 20 part 3, Tokens): the ocpp-rpc charge point
(strict OCPP 1.6) sends Authorize / StartTransaction with the token's uid; the running Core Client decides
from the Tokens it pulled from the stand-in eMSP (tests/interop/ocpi_emsp.js) or asks the eMSP in real time,
within the charge point's response time, and an allowed token's session opens, starts and settles on chain
(Anvil) under the eMSP's payment mandate. Neither peer shares code with ours."""

from __future__ import annotations

import contextlib
from asyncio.subprocess import Process
from collections.abc import AsyncIterator
from pathlib import Path

from core_client.sessions.machine import SessionRecord
from ev_network.contracts import SessionState
from ev_network.pricing import price
from tools.harness.chain import TARIFF, Net
from tools.harness.core import Core, chain_events, until, wait_chain
from tools.harness.interop import next_event, tapping, unplug
from tools.harness.ocpi.peers import StandInEmsp
from tools.harness.ocpi.roaming import ALLOWED, ALWAYS, CAP, INVALID, NEVER, OFFLINE, emsp_mandate, held, roaming

WAIT_S = 1.0  # how long the eMSP is asked, at most (authorize_timeout_s)


@contextlib.asynccontextmanager
async def tapped_at(
    net: Net, tmp_path: Path, keyfile: Path, grant: str
) -> AsyncIterator[tuple[Core, StandInEmsp, str]]:
    """The daemon serving [ocpi_cpo], the eMSP registered with its mandate and its Token list pulled."""
    async with roaming(net, tmp_path, keyfile, grant, authorize_timeout_s=WAIT_S) as (core, emsp, cp):
        tokens = core.daemon.ocpi_cpo.tokens.tokens
        await until(lambda: tokens.count("ems-roaming") == 6, 20, "the eMSP's Tokens pulled")
        yield core, emsp, cp


async def authorizations(emsp: StandInEmsp) -> list[dict]:
    return (await emsp.control("state"))["authorizations"]


async def charging(net: Net, core: Core, node: Process) -> tuple[dict, SessionRecord]:
    """The tap's Authorize and StartTransaction answered Accepted, and its session Active on chain: the
    charge point's "authorized" event and the session."""
    authorized = await next_event(node.stdout, "authorized")
    assert authorized["status"] == "Accepted"
    started = await next_event(node.stdout, "started")
    assert started["status"] == "Accepted"
    tx = started["transactionId"]
    s = await until(lambda: core.daemon.store.session_by_transaction(tx), 20, "the token's session")
    await wait_chain(net, s.session_id, SessionState.ACTIVE)
    return authorized, s


async def test_whitelisted_and_real_time_allowed_tokens_charge_under_the_emsp_mandate(
    tmp_path: Path, clean_chain: Net, keyfile: Path
):
    net = clean_chain
    mandates, _, grant = await emsp_mandate(net, 7)
    payer = mandates.sender.account.address
    async with tapped_at(net, tmp_path, keyfile, grant) as (core, emsp, cp):
        before = net.token().balance_of(payer)
        async with tapping(core, cp, ALWAYS) as node:  # valid, whitelist ALWAYS: no question to the eMSP
            whitelisted, s = await charging(net, core, node)
            assert (s.driver, s.deposit) == (payer, CAP)  # the eMSP pays, within its cap per session
            stopped = await unplug(node)
        await wait_chain(net, s.session_id, SessionState.SETTLED)
        [settled] = chain_events(net, "SessionSettled", s.session_id)
        assert settled.args["cost"] == price(TARIFF, stopped["meterStop"] - stopped["meterStart"])
        assert net.token().balance_of(payer) == before - settled.args["cost"]
        assert await authorizations(emsp) == []
        session = await held(emsp, "sessions", ALWAYS, lambda o: o["status"] == "COMPLETED")  # pushed to the eMSP
        assert (session["auth_method"], session["location_id"]) == ("WHITELIST", f"ST-{core.stations[cp]}")
        cdr = await held(emsp, "cdrs", ALWAYS, lambda o: True)
        assert (cdr["session_id"], cdr["remark"]) == (
            session["id"],
            f"settled on chain in transaction {settled.tx_hash}",
        )

        async with tapping(core, cp, ALLOWED.lower()) as node:  # whitelist ALLOWED: asked in real time
            authorized, s = await charging(net, core, node)
            assert s.driver == payer
            await unplug(node)
        [asked] = await authorizations(emsp)  # once, at Authorize: StartTransaction used the vouch
        location = f"ST-{core.stations[cp]}"
        assert (asked["uid"].upper(), asked["type"], asked["allowed"]) == (ALLOWED, "RFID", "ALLOWED")
        assert asked["location"] == {"location_id": location, "evse_uids": [f"{cp}-1"]}
        await wait_chain(net, s.session_id, SessionState.SETTLED)
        session = await held(emsp, "sessions", ALLOWED, lambda o: o["status"] == "COMPLETED")
        assert session["auth_method"] == "AUTH_REQUEST" and session["authorization_reference"].startswith("AUTH")
        assert (await held(emsp, "cdrs", ALLOWED, lambda o: True))["authorization_reference"] == session[
            "authorization_reference"
        ]
        assert await emsp.violations() == []
    print(
        f"tap -> Authorize answered: whitelisted {whitelisted['ms']:.0f} ms, "
        f"with the eMSP's real-time authorization {authorized['ms']:.0f} ms"
    )


async def test_blocked_silent_and_invalidated_tokens_are_answered_as_the_whitelist_says(
    tmp_path: Path, clean_chain: Net, keyfile: Path
):
    net = clean_chain
    _, _, grant = await emsp_mandate(net, 6)
    async with tapped_at(net, tmp_path, keyfile, grant) as (core, emsp, cp):
        await emsp.control("rule", {"uid": ALLOWED, "allowed": "BLOCKED"})
        async with tapping(core, cp, ALLOWED) as node:
            assert (await next_event(node.stdout, "authorized"))["status"] == "Blocked"

        silent = int(WAIT_S * 1000) + 3000
        await emsp.control("rule", {"uid": NEVER, "delay_ms": silent})
        async with tapping(core, cp, NEVER) as node:  # NEVER, the eMSP silent: refused
            authorized = await next_event(node.stdout, "authorized")
            assert authorized["status"] == "Invalid" and WAIT_S * 1000 <= authorized["ms"] < WAIT_S * 1000 + 1500
        await emsp.control("rule", {"uid": OFFLINE, "delay_ms": silent})
        async with tapping(core, cp, OFFLINE, wait=False) as node:  # ALLOWED_OFFLINE, the eMSP silent: allowed
            authorized = await next_event(node.stdout, "authorized")
            assert authorized["status"] == "Accepted" and authorized["ms"] < WAIT_S * 1000 + 1500
            started = await next_event(node.stdout, "started")
            assert started["status"] == "Accepted"
            await next_event(node.stdout, "stopped")
        s = await until(lambda: core.daemon.store.session_by_transaction(started["transactionId"]), 20, "session")
        await wait_chain(net, s.session_id, SessionState.SETTLED)

        pushed = await emsp.control("token", {"uid": ALWAYS, "type": "RFID", "contract_id": "NL-EMS-X",
                                              "issuer": "EMS", "valid": False, "whitelist": "ALWAYS"})  # fmt: skip
        assert pushed["pushed"] is True
        asked = len(await authorizations(emsp))
        async with tapping(core, cp, ALWAYS) as node:  # invalidated by its eMSP, ALWAYS: refused unasked
            assert (await next_event(node.stdout, "authorized"))["status"] == "Invalid"
        async with tapping(core, cp, INVALID) as node:  # invalid, NEVER: asked, the eMSP blocks it
            assert (await next_event(node.stdout, "authorized"))["status"] == "Blocked"
        async with tapping(core, cp, "0499999999") as node:  # no eMSP's: asked, 404 Unknown Token
            assert (await next_event(node.stdout, "authorized"))["status"] == "Invalid"
        assert [a["uid"] for a in (await authorizations(emsp))[asked:]] == [INVALID]  # the unknown one: 404
        await emsp.control("rule", {"uid": ALLOWED, "allowed": "ALLOWED", "evse_uids": [f"{cp}-2"]})
        async with tapping(core, cp, ALLOWED) as node:  # ALLOWED, but only at an EVSE that is not this one
            assert (await next_event(node.stdout, "authorized"))["status"] == "Invalid"
        assert [v for v in await emsp.violations() if not v["violation"].startswith("refused")] == []
        await core.wait_idle()
        assert core.daemon.store.jobs("failed") == []
