"""Live session data for drivers, and the public list of stations (config section ``[live]``, off unless
configured).

- ``GET /stations``: the operator's stations with each connector's live availability (public, read-only).
- ``GET /sessions/{id}/live?expires=T&signature=S``: one session's live data, to that session's driver
  only. ``S`` is the driver's EIP-191 signature of ``evn-live:<session id>:<T>``
  (:func:`ev_network.live_auth.live_message`); refused once ``T`` has passed, when ``T`` is further ahead
  than ``max_validity_s``, or when the signer is not the session's driver.
- ``GET /sessions/{id}/live/events?...``: the same data as server-sent events, one per change, until
  the session ends or the signature expires.

Every client address gets ``requests_per_minute`` requests (429 beyond). The server reads through
:class:`LiveSource`; :class:`ReadingsSource` implements it on the daemon's session readings
(:class:`core_client.sessions.readings.Live`: the latest meter readings and connector statuses are in memory, the
store lags them by a flush). The daemon serves it (:mod:`core_client.web.front_ends`).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

from pydantic import BaseModel
from sse_starlette.sse import EventSourceResponse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from core_client.config import LiveSettings
from core_client.sessions.machine import RUNNING, TERMINAL, SessionRecord, State, cost_so_far
from core_client.sessions.readings import Live
from ev_network.live_auth import live_signer
from ev_network.session_ids import hex_session_id, parse_session_id


class HeldStream:
    """An event stream's response that holds its slot in the stream limits until it ends, however it
    ends (finished, client gone, server stopping, or never started)."""

    def __init__(self, response: EventSourceResponse, release: Callable[[], None]) -> None:
        self.response, self.release = response, release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.response(scope, receive, send)
        finally:
            self.release()


class ConnectorLive(BaseModel):
    connector: int
    status: str  # the charge point's last StatusNotification (Available, Charging, ...), or Unknown


class StationLive(BaseModel):
    station_id: int
    charge_point_id: str
    connectors: list[ConnectorLive]


class LiveSession(BaseModel):
    """What a driver sees of a running session. Amounts in token units, energy in Wh, times unix seconds."""

    session_id: str
    driver: str
    state: str
    station_id: int
    charge_point_id: str
    connector: int
    connector_status: str
    energy_wh: int
    power_w: int
    cost: int
    deposit: int
    deposit_left: int
    price_per_kwh: int
    session_fee: int
    time_fee_per_hour: int
    started_at: float | None
    last_meter_at: float | None
    ended: bool
    held: str | None = None  # why the session is held for the operator (nothing settled yet), if it is


class LiveSource(Protocol):
    """What the live server reads; the Core Client implements it."""

    async def session(self, session_id: int) -> LiveSession | None: ...

    async def stations(self) -> list[StationLive]: ...


class ReadingsSource:
    """:class:`LiveSource` on the Core Client's session readings (read-only). Power is what the charge
    point reported with its last MeterValues (Power.Active.Import, when plausible); else it comes from
    the last two meter readings this source saw of a session (the average since the start for the first
    one), at most what a connector delivers (``max_power_kw``). Read on the store's thread, where the
    session service's state lives: the event loop serving the charge points never waits for the database
    (``*_now``: on that thread already)."""

    def __init__(self, live: Live) -> None:
        self.live = live
        self._last: dict[int, tuple[float, int, int]] = {}  # session -> (meter_at, meter_last, power_w)

    async def stations(self) -> list[StationLive]:
        return await self.live.store.thread.run(self.stations_now)

    async def session(self, session_id: int) -> LiveSession | None:
        return await self.live.store.thread.run(self.session_now, session_id)

    def stations_now(self) -> list[StationLive]:
        return [
            StationLive(
                station_id=sid,
                charge_point_id=cp,
                connectors=[
                    ConnectorLive(connector=n, status=self.live.connector_status(cp, n) or "Unknown")
                    for n in range(1, count + 1)
                ],
            )
            for sid, (cp, count) in self.live.store.stations().items()
        ]

    def session_now(self, session_id: int) -> LiveSession | None:
        record = self.live.session(session_id)
        if record is None:
            return None
        energy = record.energy_wh
        if record.cost is not None:
            cost = record.cost
        else:
            elapsed = (record.meter_at or record.started_at or 0) - (record.started_at or 0)
            cost = min(record.deposit, cost_so_far(record.tariff, energy, elapsed)) if record.started_at else 0
        return LiveSession(
            session_id=hex_session_id(session_id),
            driver=record.driver,
            state=record.state.value,
            station_id=record.station_id,
            charge_point_id=record.charge_point_id,
            connector=record.connector,
            connector_status=self.live.connector_status(record.charge_point_id, record.connector) or "Unknown",
            energy_wh=energy,
            power_w=self._power(record),
            cost=cost,
            deposit=record.deposit,
            deposit_left=record.deposit - cost,
            price_per_kwh=record.tariff.price_per_kwh,
            session_fee=record.tariff.session_fee,
            time_fee_per_hour=record.tariff.time_fee_per_hour,
            started_at=record.started_at,
            last_meter_at=record.meter_at,
            ended=record.state in TERMINAL,
            held=record.last_error if record.state is State.HELD else None,
        )

    def _power(self, record: SessionRecord) -> int:
        reported = self.live.power(record.session_id)
        if record.state not in RUNNING or (record.meter_at is None and reported is None):
            self._last.pop(record.session_id, None)
            return 0
        return reported if reported is not None else self._derived_power(record)

    def _derived_power(self, record: SessionRecord) -> int:
        if record.meter_at is None or record.meter_last is None:
            return 0
        seen = self._last.get(record.session_id)
        if seen is not None and seen[0] == record.meter_at:
            return seen[2]
        if seen is not None:
            then, meter, hours = seen[0], seen[1], (record.meter_at - seen[0]) / 3600
        else:
            then, meter = record.started_at or record.meter_at, record.meter_start or record.meter_last
            hours = (record.meter_at - then) / 3600
        power = min(max(0, round((record.meter_last - meter) / hours) if hours > 0 else 0), self.live.max_power_w)
        self._last[record.session_id] = (record.meter_at, record.meter_last, power)
        return power


class LiveRefused(Exception):
    """A live data request that is refused; ``status`` is the HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def verify_request(
    session_id: int, driver: str, expires: str | None, signature: str | None, max_validity_s: int, now: float
) -> int:
    """Check a signed live request of ``driver``'s session; returns its expiry, raises LiveRefused."""
    if not expires or not signature:
        raise LiveRefused(401, "sign the request: ?expires=<unix time>&signature=<signature of the driver>")
    try:
        expiry = int(expires)
    except ValueError:
        raise LiveRefused(400, "expires must be a unix time in seconds") from None
    if expiry < now:
        raise LiveRefused(401, "the signed request has expired: sign a new one")
    if expiry > now + max_validity_s:
        raise LiveRefused(401, f"the signed request expires too late: at most {max_validity_s} s ahead")
    try:
        signer = live_signer(session_id, expiry, signature)
    except Exception:
        raise LiveRefused(401, "the signature is malformed") from None
    if signer.lower() != driver.lower():
        raise LiveRefused(403, "only the session's driver may read its live data")
    return expiry


class RateLimit:
    """ASGI middleware: at most ``per_minute`` requests per client address in each minute."""

    def __init__(self, app: ASGIApp, per_minute: int) -> None:
        self.app, self.per_minute = app, per_minute
        self._window, self._counts = 0, {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            window = int(time.monotonic() // 60)
            if window != self._window:
                self._window, self._counts = window, {}
            host = (scope.get("client") or ("?", 0))[0]
            self._counts[host] = self._counts.get(host, 0) + 1
            if self._counts[host] > self.per_minute:
                response = JSONResponse({"error": "too many requests: try again in a minute"}, status_code=429)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_live_app(source: LiveSource, settings: LiveSettings) -> ASGIApp:
    """The live data server's ASGI app."""

    async def authorised(request: Request) -> tuple[int, LiveSession]:
        try:
            session_id = parse_session_id(request.path_params["session_id"])
        except ValueError as exc:
            raise LiveRefused(400, str(exc)) from None
        live = await source.session(session_id)
        if live is None:
            raise LiveRefused(404, f"no session {hex_session_id(session_id)} at this operator")
        q = request.query_params
        expiry = verify_request(
            session_id, live.driver, q.get("expires"), q.get("signature"), settings.max_validity_s, time.time()
        )
        return expiry, live

    async def stations(request: Request) -> JSONResponse:
        return JSONResponse({"stations": [s.model_dump() for s in await source.stations()]})

    async def session(request: Request) -> JSONResponse:
        _, live = await authorised(request)
        return JSONResponse(live.model_dump())

    streams: Counter[int] = Counter()  # session -> its open event streams (from any address)

    async def events(request: Request) -> HeldStream:
        expiry, live = await authorised(request)
        session_id = parse_session_id(request.path_params["session_id"])
        if streams[session_id] >= settings.max_streams_per_session:
            raise LiveRefused(429, f"{settings.max_streams_per_session} event streams of this session are open already")
        if streams.total() >= settings.max_streams:
            raise LiveRefused(503, "too many event streams open: try again later")
        streams[session_id] += 1  # counted now, not when the stream starts: requests arriving together all count

        def release() -> None:
            streams[session_id] -= 1
            if streams[session_id] <= 0:
                del streams[session_id]

        async def stream() -> AsyncIterator[dict[str, Any]]:
            last = None
            while time.time() < expiry:
                current = await source.session(session_id) or live
                data = json.dumps(current.model_dump())
                if data != last:
                    last = data
                    yield {"event": "live", "data": data}
                if current.ended:
                    return
                await asyncio.sleep(settings.poll_interval_s)

        return HeldStream(EventSourceResponse(stream()), release)

    async def refused(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, LiveRefused)
        return JSONResponse({"error": str(exc)}, status_code=exc.status)

    app = Starlette(
        routes=[
            Route("/stations", stations),
            Route("/sessions/{session_id}/live", session),
            Route("/sessions/{session_id}/live/events", events),
        ],
        exception_handlers={LiveRefused: refused},
    )
    return RateLimit(app, settings.requests_per_minute)
