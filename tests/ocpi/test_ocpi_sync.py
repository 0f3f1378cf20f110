"""CDRs that never came: pulled from the independent CPO platform after its pushes were lost, each taken
once (a pushed one is not taken again), refused ones reported, the next pull resuming where this one
started."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from core_client.ocpi.credentials import Handshake
from core_client.ocpi.csms import Csms
from core_client.ocpi.inbox import Refusal
from core_client.ocpi.models.enums import ModuleID
from core_client.ocpi.sync import pull_cdrs
from tools.harness.ocpi.our_emsp import Emsp, emsp_server
from tools.harness.ocpi.peers import TOKEN_A, Cpo, cpo_platform

CDR_TOKEN = {"country_code": "DE", "party_id": "EVN", "uid": "APP-1", "type": "APP_USER", "contract_id": "DE-EVN-1"}


@pytest.fixture
async def cpo(tmp_path: Path) -> AsyncIterator[Cpo]:
    async with cpo_platform(tmp_path, "--max-limit", "2") as platform:
        yield platform


@pytest.fixture
async def emsp(tmp_path: Path, cpo: Cpo) -> AsyncIterator[Emsp]:
    async with emsp_server(tmp_path, registered=False, versions_url=cpo.versions_url, token_a=TOKEN_A) as server:
        await Handshake(server.settings, server.store).register()
        yield server


async def pull(emsp: Emsp) -> list[str]:
    async with Handshake(emsp.settings, emsp.store).client() as client:
        return await pull_cdrs(Csms(client, emsp.store, emsp.settings), emsp.server.receivers)


async def test_cdrs_never_pushed_are_pulled_once(emsp: Emsp, cpo: Cpo) -> None:
    for evse in ("EVSE-1", "EVSE-2", "EVSE-3"):  # three sessions whose CDRs are never pushed: pull only
        await cpo.control("cdr", {"token": CDR_TOKEN, "location_id": "LOC-1", "evse_uid": evse, "kwh": 5})
    cdr_ids = [c["id"] for c in (await cpo.control("state"))["cdrs"]]
    assert len(cdr_ids) == 3 and emsp.inbox.cdrs == []

    report = await pull(emsp)
    assert report == [f"CDR DE/EVP/{i} taken (it had not been pushed)" for i in cdr_ids]  # over two pages
    assert [c.id for c in emsp.inbox.cdrs] == cdr_ids
    assert await pull(emsp) == [] and len(emsp.inbox.cdrs) == 3  # nothing twice
    reposted = await cpo.control("repost-cdr", {"cdr_id": cdr_ids[0]})  # a late push of one we pulled
    assert len(emsp.inbox.cdrs) == 3, reposted
    log = await cpo.control("log")
    pulls = [e["url"] for e in log if e["direction"] == "in" and e["url"].startswith("/ocpi/2.2.1/cdrs")]
    assert pulls[0] == "/ocpi/2.2.1/cdrs" and "date_from=" in pulls[-1]  # the second pull resumed
    refused = [v["violation"] for v in await cpo.violations()]
    assert refused == [
        f"refused by the other party (HTTP 200, status 2000): CDR DE/EVP/{cdr_ids[0]} was received before: a CDR is never replaced"
    ]


async def test_a_cdr_the_inbox_refuses_is_reported_and_not_kept(emsp: Emsp, cpo: Cpo) -> None:
    async def refuse(cdr) -> None:
        raise Refusal("no session of ours", 2001)

    emsp.inbox.on_cdr = refuse  # type: ignore[method-assign]
    await cpo.control("cdr", {"token": CDR_TOKEN, "location_id": "LOC-1", "evse_uid": "EVSE-1"})
    report = await pull(emsp)
    assert len(report) == 1 and report[0].endswith("refused: no session of ours")
    assert emsp.mirror.all(ModuleID.CDRS) == []
