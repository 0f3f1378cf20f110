"""A Core Client's live data for a session it holds, without a daemon: its ``[live]`` app over a store
where the session (started on chain by the test) is HELD with the operator's reason."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from core_client.config import LiveSettings, Settings
from core_client.sessions.machine import SessionRecord, State
from core_client.sessions.service import SessionService
from core_client.storage.store import Store
from core_client.web.live import ReadingsSource, create_live_app
from ev_network.pricing import Tariff
from ev_network.web.server import HttpServer
from tools.harness.chain import TOKEN

BEYOND_THE_CONNECTOR = (
    "meterStop 100000000000 Wh is beyond what connector 1 can deliver since the start (at most 22 kW)"
)


@asynccontextmanager
async def held_session_live(
    database: Path, station: tuple[int, str], session_id: int, driver: str, why: str = BEYOND_THE_CONNECTOR
) -> AsyncIterator[str]:
    """The live URL of a Core Client (its store at ``database``) that holds ``session_id`` of ``driver``
    at ``station`` (id, charge point id; connector 1) for ``why``."""
    station_id, charge_point_id = station
    store = Store(database)
    store.add_station(station_id, charge_point_id, 2)
    store.insert_session(
        SessionRecord(
            session_id=session_id, station_id=station_id, charge_point_id=charge_point_id, connector=1,
            driver=driver, deposit=5 * TOKEN, tariff=Tariff(35 * TOKEN // 100, TOKEN // 2), state=State.HELD,
            requested_at=time.time(), started_at=time.time(), meter_start=1000, last_error=why,
        )
    )  # fmt: skip
    live = HttpServer(
        create_live_app(ReadingsSource(SessionService(Settings(), store).live), LiveSettings()), "127.0.0.1", 0
    )
    await live.start()
    try:
        yield live.url
    finally:
        await live.stop()
        store.close()
