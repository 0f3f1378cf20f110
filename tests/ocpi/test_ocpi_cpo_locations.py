"""Our stations as OCPI Locations and our chain tariffs as OCPI Tariffs for a roaming eMSP (issue 20 part 3):
paginated GETs checked page by page by the stand-in eMSP (tests/interop/ocpi_emsp.js: X-Total-Count,
X-Limit, Link, every object against the 2.2.1 tables), a live EVSE status pushed as PATCH, wrong tokens."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from core_client.ocpi.cpo.catalog import OurStation
from core_client.ocpi.cpo.modules import StatusPushes
from ev_network.pricing import Tariff
from tools.harness.ocpi.our_cpo import OurCpo, Stations, our_cpo, site
from tools.harness.ocpi.peers import StandInEmsp, emsp_platform

START = datetime(2026, 12, 6, 9, 0, tzinfo=timezone.utc)


def station(n: int) -> OurStation:
    return OurStation(
        station_id=n,
        charge_point_id=f"CP-{n}",
        connectors={1: "Available", 2: "Charging"},
        tariff=Tariff(price_per_kwh=357_000, session_fee=595_000, time_fee_per_hour=0),  # 0.357 / 0.595 gross
        updated=START + timedelta(minutes=n),
    )


@pytest.fixture
async def registered(tmp_path: Path) -> AsyncIterator[tuple[OurCpo, StandInEmsp]]:
    source = Stations([station(n) for n in range(1, 7)])  # CP-6 has no site: not published
    sites = {f"CP-{n}": site(n) for n in range(1, 6)}
    async with our_cpo(tmp_path, source, sites=sites, page_limit=2) as cpo, emsp_platform(tmp_path) as emsp:
        token_a = cpo.peers.issue("ems-roaming")
        assert (await emsp.control("register", {"versions_url": cpo.versions_url, "token_a": token_a}))["ok"]
        yield cpo, emsp


async def test_locations_and_tariffs_are_pulled_page_by_page_without_a_violation(registered):
    _, emsp = registered
    pulled = await emsp.control("pull", {"module": "locations", "limit": 50})
    assert pulled["received"] == 5 and [p["count"] for p in pulled["pages"]] == [2, 2, 1]
    assert all(p["total"] == 5 and p["limit"] == 2 and p["problems"] == [] for p in pulled["pages"])
    recent = await emsp.control("pull", {"module": "locations", "date_from": "2026-12-06T09:04:00Z"})
    assert recent["received"] == 2  # ST-4 and ST-5 changed since

    tariffs = await emsp.control("pull", {"module": "tariffs"})
    assert tariffs["received"] == 5 and all(p["problems"] == [] for p in tariffs["pages"])
    state = await emsp.control("state")
    [location] = [o for o in state["locations"].values() if o["id"] == "ST-1"]
    assert [(e["uid"], e["status"]) for e in location["evses"]] == [("CP-1-1", "AVAILABLE"), ("CP-1-2", "CHARGING")]
    assert location["evses"][0]["connectors"][0]["tariff_ids"] == ["ST-1"]
    assert await emsp.violations() == []


async def test_a_status_change_is_pushed_as_a_patch(registered, tmp_path: Path):
    cpo, emsp = registered
    await emsp.control("pull", {"module": "locations", "limit": 50})
    changed = replace(station(3), connectors={1: "Faulted", 2: "Charging"})
    took = await StatusPushes(cpo.settings, cpo.peers).evse_status(changed, 1, "Faulted")
    assert took == ["ems-roaming"]
    [location] = [o for o in (await emsp.control("state"))["locations"].values() if o["id"] == "ST-3"]
    assert [e["status"] for e in location["evses"]] == ["OUTOFORDER", "CHARGING"]
    assert await StatusPushes(cpo.settings, cpo.peers).evse_status(station(6), 1, "Faulted") == []  # not published
    assert await emsp.violations() == []


async def test_one_location_evse_connector_and_tariff_prices_net_of_vat(registered):
    cpo, emsp = registered
    token_c = cpo.peers.all()[0].token_c.get_secret_value()

    async def get(path: str, token: str = token_c) -> tuple[int, dict]:
        headers = {"Authorization": "Token " + base64.b64encode(token.encode()).decode()}
        async with emsp.http.get(cpo.settings.url("2.2.1", path), headers=headers) as response:
            return response.status, await response.json()

    status, body = await get("locations/ST-2/CP-2-2/1")
    assert status == 200 and body["data"]["id"] == "1" and body["data"]["standard"] == "IEC_62196_T2"
    status, body = await get("locations/ST-6")
    assert (status, body["status_code"]) == (404, 2003)
    status, body = await get("tariffs?limit=1")
    assert status == 200 and len(body["data"]) == 1
    [element] = body["data"][0]["elements"]
    assert [(c["type"], c["price"], c["vat"]) for c in element["price_components"]] == [
        ("ENERGY", 0.3, 19),
        ("FLAT", 0.5, 19),
    ]
    status, body = await get("locations", "not-ours")
    assert (status, body["status_code"]) == (401, 2000) and "timestamp" in body
    status, body = await get("locations?offset=x")
    assert (status, body["status_code"]) == (200, 2001)


async def test_an_emsp_without_a_mandate_has_its_start_session_refused_with_the_reason(registered):
    _, emsp = registered
    started = await emsp.control("start", {"location_id": "ST-1", "evse_uid": "CP-1-1", "connector_id": "1"})
    assert (started["http"], started["status_code"], started["response"]["result"]) == (200, 1000, "REJECTED")
    assert "eMSP ems-roaming has no payment mandate with this operator" in started["response"]["message"][0]["text"]
    unknown = await emsp.control("start", {"location_id": "ST-6"})
    assert (
        unknown["response"]["result"] == "REJECTED" and "unknown location" in unknown["response"]["message"][0]["text"]
    )
    stopped = await emsp.control("stop", {"session_id": "S-1"})
    assert stopped["response"]["result"] == "UNKNOWN_SESSION"
    assert await emsp.violations() == []


async def test_a_malformed_or_unknown_command_is_refused_with_the_ocpi_status(registered):
    cpo, emsp = registered
    token_c = cpo.peers.all()[0].token_c.get_secret_value()
    headers = {"Authorization": "Token " + base64.b64encode(token_c.encode()).decode()}

    async def post(command: str, body: object) -> tuple[int, dict]:
        url = cpo.settings.url("2.2.1", f"commands/{command}")
        async with emsp.http.post(url, json=body, headers=headers) as response:
            return response.status, await response.json()

    status, body = await post("START_SESSION", {"location_id": "ST-1", "response_url": "http://x/y"})  # no token
    assert (status, body["status_code"]) == (200, 2001) and "token" in body["status_message"]
    status, body = await post("START_SESSION", {"location_id": "ST-1", "connector_id": "1", "response_url": "http://x"})
    assert body["status_code"] == 2001  # connector_id without evse_uid
    status, body = await post("REBOOT", {})
    assert status == 404
    status, body = await post("RESERVE_NOW", {})
    assert body["data"]["result"] == "NOT_SUPPORTED"
