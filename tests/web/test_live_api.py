"""The Core Client's live data server (core_client.web.live) on the session readings over a real SQLite
Store, served by a real uvicorn and read over HTTP by the wallet's LiveClient: only the session's driver,
with a fresh signature, reads a session; the readings kept in memory show before they are written to the
store; the station list is public; requests beyond the rate limit get 429."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
from eth_account import Account

from core_client.config import LiveSettings
from core_client.sessions.machine import SessionRecord, State
from core_client.sessions.readings import Live
from core_client.storage.store import Store
from core_client.web.live import LiveRefused, ReadingsSource, create_live_app, verify_request
from ev_network.live_auth import sign_live_request
from ev_network.pricing import Tariff
from ev_network.session_ids import hex_session_id, make_session_id
from ev_network.web.server import HttpServer
from wallet.live_client import LiveClient, LiveUnavailable

TOKEN = 10**18
TARIFF = Tariff(price_per_kwh=35 * TOKEN // 100, session_fee=TOKEN // 2, time_fee_per_hour=0)
DRIVER = Account.create()
STRANGER = Account.create()
SESSION = make_session_id(DRIVER.address, 0, 1)
T0 = time.time()  # the first meter reading


def charging_record(store: Store, meter_last: int, at: float) -> SessionRecord:
    record = SessionRecord(
        session_id=SESSION,
        station_id=7,
        charge_point_id="CP-LIVE",
        connector=1,
        driver=DRIVER.address,
        deposit=10 * TOKEN,
        tariff=TARIFF,
        state=State.CHARGING,
        transaction_id=1,
        meter_start=1000,
        meter_last=meter_last,
        started_at=at - 60,
        meter_at=at,
        requested_at=at - 70,
    )
    if store.get_session(SESSION) is None:
        store.insert_session(record)
    else:
        store.save_session(record)
    return record


@pytest.fixture
async def live(tmp_path: Path) -> AsyncIterator[tuple[Store, str, Live]]:
    """A Store with station 7 (CP-LIVE) and DRIVER's session charging, its readings (core_client.sessions.readings.Live,
    as the daemon keeps them) served on a free port."""
    store = Store(tmp_path / "core.sqlite")
    store.add_station(7, "CP-LIVE", 2)
    store.set_connector_status("CP-LIVE", 1, "Charging", None)
    charging_record(store, 1000 + 500, T0)
    readings = Live(store)
    server = HttpServer(
        create_live_app(ReadingsSource(readings), LiveSettings(port=0, requests_per_minute=30)), "127.0.0.1", 0
    )
    await server.start()
    try:
        yield store, server.url, readings
    finally:
        await server.stop()
        store.close()


async def status_of(url: str) -> tuple[int, dict]:
    """GET ``url`` in a thread (the server runs in this event loop): status and JSON body."""
    return await asyncio.to_thread(_get, url)


def _get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def signed(base: str, account, expires: int, session_id: int = SESSION) -> str:
    signature = sign_live_request(account, session_id, expires)
    return f"{base}/sessions/{hex_session_id(session_id)}/live?expires={expires}&signature={signature}"


async def test_the_driver_reads_energy_power_cost_and_deposit_left(live):
    store, url, _ = live
    client = LiveClient(url, DRIVER)
    data = await asyncio.to_thread(client.session, SESSION)
    assert data["energy_wh"] == 500
    assert data["cost"] == TARIFF.session_fee + 500 * TARIFF.price_per_kwh // 1000  # ev_network.pricing
    assert data["deposit_left"] == 10 * TOKEN - data["cost"]
    assert data["connector_status"] == "Charging"
    assert data["power_w"] == 30_000  # 500 Wh in the 60 s since the start
    charging_record(store, 1000 + 600, T0 + 30)  # 100 Wh more in 30 s
    assert (await asyncio.to_thread(client.session, SESSION))["power_w"] == 12_000


async def test_readings_and_statuses_show_before_they_are_written_to_the_store(live):
    store, url, readings = live
    client = LiveClient(url, DRIVER)
    newer = replace(store.get_session(SESSION), meter_last=1000 + 800, meter_at=T0 + 60)
    readings.reading(newer)  # a MeterValues, in memory until the next flush
    readings.status("CP-LIVE", 1, "SuspendedEV", "NoError")
    data = await asyncio.to_thread(client.session, SESSION)
    assert store.get_session(SESSION).energy_wh == 500  # the store lags by a flush
    assert data["energy_wh"] == 800 and data["last_meter_at"] == T0 + 60
    assert data["connector_status"] == "SuspendedEV"
    stations = await asyncio.to_thread(LiveClient(url).stations)
    assert stations[0]["connectors"][0]["status"] == "SuspendedEV"


async def test_someone_else_expired_or_far_future_signatures_are_refused(live):
    _, url, _ = live
    now = int(time.time())
    assert (await status_of(signed(url, STRANGER, now + 60)))[0] == 403
    assert (await status_of(signed(url, DRIVER, now - 1)))[0] == 401  # a replay after its expiry
    assert (await status_of(signed(url, DRIVER, now + 100_000)))[0] == 401
    code, body = await status_of(f"{url}/sessions/{hex_session_id(SESSION)}/live")
    assert code == 401 and "sign the request" in body["error"]
    code, body = await status_of(f"{url}/sessions/{hex_session_id(SESSION)}/live?expires={now + 60}&signature=0x1234")
    assert code == 401 and "malformed" in body["error"]
    assert (await status_of(signed(url, DRIVER, now + 60, make_session_id(DRIVER.address, 0, 2))))[0] == 404
    with pytest.raises(LiveUnavailable, match="403"):
        await asyncio.to_thread(LiveClient(url, STRANGER).session, SESSION)


async def test_the_station_list_is_public_and_requests_are_rate_limited(live):
    _, url, _ = live
    stations = await asyncio.to_thread(LiveClient(url).stations)
    assert stations == [
        {
            "station_id": 7,
            "charge_point_id": "CP-LIVE",
            "connectors": [{"connector": 1, "status": "Charging"}, {"connector": 2, "status": "Unknown"}],
        }
    ]
    codes = [(await status_of(f"{url}/stations"))[0] for _ in range(30)]
    assert codes.count(429) >= 1 and codes[0] == 200  # 30 per minute, one used above


async def test_the_event_stream_sends_the_live_data(live):
    _, url, _ = live
    stream_url = LiveClient(url, DRIVER).session_url(SESSION, suffix="/events")

    def first_event() -> dict:
        with urllib.request.urlopen(stream_url, timeout=5) as response:
            for raw in response:
                line = raw.decode().strip()
                if line.startswith("data:"):
                    return json.loads(line[5:])
        raise AssertionError("no event")

    assert (await asyncio.to_thread(first_event))["energy_wh"] == 500


def test_verify_request_checks_expiry_window_and_signer():
    now = 1_000_000
    good = sign_live_request(DRIVER, SESSION, now + 60)
    assert verify_request(SESSION, DRIVER.address, str(now + 60), good, 300, now) == now + 60
    for expires, signature, status in [
        (str(now + 60), sign_live_request(STRANGER, SESSION, now + 60), 403),
        (str(now + 61), good, 403),  # the signature covers the expiry: changing it changes the signer
        (str(now - 1), sign_live_request(DRIVER, SESSION, now - 1), 401),
        ("soon", good, 400),
    ]:
        with pytest.raises(LiveRefused) as refused:
            verify_request(SESSION, DRIVER.address, expires, signature, 300, now)
        assert refused.value.status == status


@pytest.mark.issue(17, item=6)
async def test_open_event_streams_are_limited_per_session_whatever_the_address(live):
    """One driver's signature opened unlimited streams (the limit counted requests per address): 1,000
    open streams slowed every charge point. Now 4 per session, from any address; the fifth is 429."""
    _, url, _ = live
    stream_url = LiveClient(url, DRIVER).session_url(SESSION, suffix="/events")
    opened = []

    def open_stream() -> int:
        try:
            response = urllib.request.urlopen(stream_url, timeout=5)
        except urllib.error.HTTPError as exc:
            return exc.code
        for raw in response:  # the stream counts once it has sent its first event
            if raw.startswith(b"data:"):
                break
        opened.append(response)
        return response.status

    try:
        assert [await asyncio.to_thread(open_stream) for _ in range(4)] == [200] * 4
        assert await asyncio.to_thread(open_stream) == 429
        opened.pop().close()
        deadline = time.monotonic() + 5
        while (status := await asyncio.to_thread(open_stream)) == 429 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)  # until the server has noticed the closed stream
        assert status == 200  # a closed one frees its place
    finally:
        for response in opened:
            response.close()
