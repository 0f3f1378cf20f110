"""The stand-in eMSP (tests/interop/ocpi_emsp.js, for issue 20 part 3) against the stand-in CPO platform
(tests/interop/ocpi_cpo.js): both written from the 2.2.1 text, they keep each other working. The handshake
with the eMSP as Sender, paginated pulls checked page by page, pushes into its receivers, START_SESSION /
STOP_SESSION with CommandResults, a signed CDR, Tokens pushed and real-time authorization; neither side sees
a violation."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tools.harness.ocpi.peers import TOKEN_A, Cpo, StandInEmsp, cpo_platform, emsp_platform


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[tuple[Cpo, StandInEmsp]]:
    async with cpo_platform(tmp_path, "--max-limit", "2") as cpo, emsp_platform(tmp_path) as emsp:
        assert (await emsp.control("register", {"versions_url": cpo.versions_url, "token_a": TOKEN_A}))["ok"]
        yield cpo, emsp


async def test_pulls_are_checked_page_by_page_and_pushes_land_in_the_receivers(pair):
    cpo, emsp = pair
    pulled = await emsp.control("pull", {"module": "tariffs", "limit": 50})
    assert pulled["received"] == 9 and [p["count"] for p in pulled["pages"]] == [2, 2, 2, 2, 1]
    assert all(p["total"] == 9 and p["limit"] == 2 and p["problems"] == [] for p in pulled["pages"])

    await cpo.control("push", {"location_id": "LOC-2"})
    await cpo.control("status", {"location_id": "LOC-2", "evse_uid": "EVSE-5", "status": "OUTOFORDER"})
    [location] = (await emsp.control("state"))["locations"].values()
    assert [e["status"] for e in location["evses"] if e["uid"] == "EVSE-5"] == ["OUTOFORDER"]
    assert await cpo.violations() == [] and await emsp.violations() == []


async def test_a_session_by_command_ends_in_a_signed_cdr_and_tokens_authorize_in_real_time(pair):
    cpo, emsp = pair
    await cpo.control("scenario", {"signed": "valid", "tick_ms": 50, "result_delay_ms": 10})
    started = await emsp.control("start", {"location_id": "LOC-1", "evse_uid": "EVSE-2"})
    assert started["response"] == {"result": "ACCEPTED", "timeout": 30}
    await cpo.wait_log(lambda e: e.get("purpose") == "Session PUT" and e.get("status_code") == 1000)
    state = await emsp.control("state")
    assert state["commands"][started["uid"]]["result"] == {"result": "ACCEPTED"}
    [session] = state["sessions"].values()
    assert session["cdr_token"]["uid"] == "APP-0001" and session["auth_method"] == "COMMAND"

    stopped = await emsp.control("stop", {"session_id": session["id"]})
    assert stopped["response"]["result"] == "ACCEPTED"
    await cpo.wait_log(lambda e: str(e.get("purpose")).startswith("CDR POST") and e.get("http") == 201)
    [cdr] = (await emsp.control("state"))["cdrs"].values()
    assert cdr["session_id"] == session["id"] and cdr["signed_data"]["encoding_method"] == "OCMF"
    again = await cpo.control("repost-cdr", {"cdr_id": cdr["id"]})
    assert (again["http"], again["status_code"]) == (200, 2000)  # a CDR cannot be replaced

    pushed = await emsp.control(
        "token",
        {
            "uid": "04C0FFEE01",
            "type": "RFID",
            "contract_id": "NL-EMS-C1",
            "issuer": "EMS",
            "valid": True,
            "whitelist": "NEVER",
        },
    )
    assert pushed["pushed"] is True
    assert (await cpo.control("tap", {"uid": "04C0FFEE01", "location_id": "LOC-2", "evse_uid": "EVSE-4"}))[
        "started"
    ] is True
    await emsp.control("rule", {"uid": "04A1B2C3D4", "allowed": "NO_CREDIT"})
    assert await cpo.control("tap", {"uid": "04A1B2C3D4", "location_id": "LOC-2", "evse_uid": "EVSE-6"}) == {
        "started": False,
        "reason": "NO_CREDIT",
    }
    assert (await cpo.control("pull-tokens", {}))["received"] == 7
    assert [
        v["violation"]
        for v in await cpo.violations() + await emsp.violations()
        if not v["violation"].startswith("refused")
    ] == []


async def test_the_emsp_refuses_what_2_2_1_does_not_allow(pair):
    _, emsp = pair
    token = (await emsp.control("state"))["registration"]["our_token"]

    async def call(method: str, path: str, body: object = None) -> tuple[int, dict]:
        headers = {
            "Authorization": "Token " + base64.b64encode(token.encode()).decode(),
            "X-Request-ID": "r",
            "X-Correlation-ID": "c",
        }
        async with emsp.http.request(method, emsp.ocpi(f"2.2.1/{path}"), json=body, headers=headers) as response:
            return response.status, await response.json()

    session = {"id": "S-1", "country_code": "DE", "party_id": "EVP"}
    assert (await call("PUT", "sessions/DE/EVP/S-2", session))[1]["status_code"] == 2001  # incomplete, and not S-2
    assert (await call("PATCH", "locations/DE/EVP/LOC-1", {"name": "x"}))[1]["status_code"] == 2001  # no last_updated
    assert (await call("PUT", "tariffs/XX/ABC/T-1", {}))[0] == 404  # not the registered CPO
    assert (await call("POST", "cdrs", {"id": "CDR-1"}))[1]["status_code"] == 2001
    assert (await call("POST", "tokens/APP-0001/authorize?type=APP_USER"))[1]["status_code"] == 2002  # no location
    unknown = await call("POST", "tokens/NOPE/authorize", {"location_id": "LOC-1"})
    assert (unknown[0], unknown[1]["status_code"]) == (404, 2004) and "data" not in unknown[1]
    listed = await call("GET", "tokens?limit=2")
    assert [t["uid"] for t in listed[1]["data"]] == ["APP-0001", "04A1B2C3D4"]
    assert len([v for v in await emsp.violations() if v["violation"].startswith("refused")]) == 6
