"""START_SESSION / STOP_SESSION as the eMSP against the independent CPO platform: the synchronous
CommandResponse, the CommandResult POSTed to our response_url, the Session PUT and PATCHes, the CDR;
and a refused start, a start the charge point rejects, a start whose result never comes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from core_client.ocpi.credentials import Handshake
from core_client.ocpi.csms import Csms
from core_client.ocpi.inbox import IssuedToken
from core_client.ocpi.models import Token
from core_client.ocpi.models.enums import CommandResponseType, CommandResultType, CommandType, SessionStatus
from tools.harness.ocpi.our_emsp import Emsp, emsp_server
from tools.harness.ocpi.peers import TOKEN_A, Cpo, cpo_platform


@pytest.fixture
async def cpo(tmp_path: Path) -> AsyncIterator[Cpo]:
    async with cpo_platform(tmp_path) as platform:
        await platform.control("scenario", {"kwh_per_second": 2, "tick_ms": 200, "result_delay_ms": 50})
        yield platform


@pytest.fixture
async def emsp(tmp_path: Path, cpo: Cpo) -> AsyncIterator[Emsp]:
    async with emsp_server(tmp_path, registered=False, versions_url=cpo.versions_url, token_a=TOKEN_A) as server:
        await Handshake(server.settings, server.store).register()
        yield server


def app_token(uid: str) -> Token:
    """The Token of one app session, ours (DE/EVN), as the bridge would issue it."""
    return Token.model_validate(
        {
            "country_code": "DE",
            "party_id": "EVN",
            "uid": uid,
            "type": "APP_USER",
            "contract_id": f"DE-EVN-{uid}",
            "issuer": "EV Network",
            "valid": True,
            "whitelist": "NEVER",
            "last_updated": datetime.now(timezone.utc),
        }
    )


async def until(check: Callable[[], Any], what: str, timeout: float = 15) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while not (found := check()):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)
    return found


async def csms_call(emsp: Emsp, call: Callable[[Csms], Any]) -> Any:
    async with Handshake(emsp.settings, emsp.store).client() as client:
        return await call(Csms(client, emsp.store, emsp.settings))


async def test_start_charge_stop_and_cdr(emsp: Emsp, cpo: Cpo) -> None:
    await cpo.control("push", {})  # we hold its Locations, so its EVSE status PATCHes apply
    token = app_token("S-1")
    emsp.inbox.issue(IssuedToken(token, "LOC-1", "EVSE-2", live=True))
    response = await csms_call(emsp, lambda c: c.start_session("cmd-1", token, "LOC-1", "EVSE-2", "1"))
    assert response.result == CommandResponseType.ACCEPTED and response.timeout > 0
    await until(lambda: emsp.inbox.results, "the CommandResult")
    assert [(c, u, r.result) for c, u, r in emsp.inbox.results] == [
        (CommandType.START_SESSION, "cmd-1", CommandResultType.ACCEPTED)
    ]

    session = await until(lambda: next((s for s in emsp.inbox.sessions if s.kwh > 0), None), "a Session with energy")
    assert session.cdr_token.uid == "S-1" and session.location_id == "LOC-1" and session.evse_uid == "EVSE-2"
    assert session.status == SessionStatus.ACTIVE

    stop = await csms_call(emsp, lambda c: c.stop_session("cmd-2", session.id))
    assert stop.result == CommandResponseType.ACCEPTED
    cdr = await until(lambda: emsp.inbox.cdrs and emsp.inbox.cdrs[0], "the CDR")
    assert cdr.session_id == session.id and cdr.cdr_token.uid == "S-1" and cdr.total_energy > 0
    assert (CommandType.STOP_SESSION, "cmd-2") in [(c, u) for c, u, _ in emsp.inbox.results]
    assert emsp.inbox.sessions[-1].status == SessionStatus.COMPLETED
    log = await cpo.control("log")
    starts = [e for e in log if e["direction"] == "in" and e["url"].endswith("/commands/START_SESSION")]
    assert starts[0]["body"]["response_url"] == f"{emsp.url}/2.2.1/commands/START_SESSION/cmd-1"
    assert await cpo.violations() == []


@pytest.mark.parametrize(
    "start, response, result",
    [
        ("refuse", CommandResponseType.REJECTED, None),
        ("reject", CommandResponseType.ACCEPTED, CommandResultType.REJECTED),
        ("timeout", CommandResponseType.ACCEPTED, CommandResultType.TIMEOUT),
    ],
)
async def test_starts_that_do_not_happen(emsp: Emsp, cpo: Cpo, start: str, response, result) -> None:
    await cpo.control("scenario", {"start": start})
    answer = await csms_call(emsp, lambda c: c.start_session("cmd-x", app_token("S-2"), "LOC-1", "EVSE-1"))
    assert answer.result == response
    if result is not None:
        await until(lambda: emsp.inbox.results, "the CommandResult")
        assert emsp.inbox.results[0][2].result == result
    else:  # no CommandResult follows a refused command: the platform has nothing to send
        assert [e for e in await cpo.control("log") if e["direction"] == "out" and "/commands/" in e["url"]] == []
    assert (await cpo.control("state"))["sessions"] == []  # no session began at the CSMS
    assert emsp.inbox.sessions == [] and emsp.inbox.cdrs == []
