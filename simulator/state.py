"""The simulated charge point's configuration and per-connector state, and meter-value builders."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

from ocpp.charge_point import remove_nones, snake_to_camel_case
from ocpp.v16 import datatypes
from ocpp.v16.enums import ChargePointStatus, Measurand, UnitOfMeasure


@dataclass
class Behaviour:
    """How a simulated charge point and the car plugged into it behave.

    ``time_accel`` is simulated seconds per real second: with ``meter_interval_s=10`` and
    ``time_accel=60`` a MeterValues is sent every 1/6 real second, each adding 10 simulated
    seconds of energy. Timestamps in messages stay real (wall clock) time. ``heartbeat_s`` is in
    real seconds; None uses the interval from the BootNotification response.
    """

    power_w: float = 11000
    meter_interval_s: float = 10
    time_accel: float = 1.0
    accept_remote_start: bool = True
    unplug_after_wh: int | None = None
    authorize_remote: bool = False
    heartbeat_s: float | None = None
    initial_meter_wh: int = 1_000_000
    signing_meter: str | None = None  # a simulator.meter.MeterMode: the meter signs OCMF Begin/End records

    def __post_init__(self) -> None:
        if self.time_accel <= 0 or self.meter_interval_s <= 0 or self.power_w < 0:
            raise ValueError("time_accel and meter_interval_s must be positive, power_w not negative")

    @property
    def tick_real_s(self) -> float:
        """Real seconds between two MeterValues."""
        return self.meter_interval_s / self.time_accel

    @property
    def tick_energy_wh(self) -> float:
        """Energy added to the meter register per MeterValues interval."""
        return self.power_w * self.meter_interval_s / 3600


@dataclass
class StopRecord:
    """What the charge point sent in a StopTransaction."""

    connector_id: int
    transaction_id: int
    id_tag: str | None
    meter_start: int
    meter_stop: int
    reason: str
    timestamp: str
    transaction_data: list[dict]  # as sent: camelCase keys, string values

    @property
    def energy_wh(self) -> int:
        """Energy delivered in the transaction, from the meter register."""
        return self.meter_stop - self.meter_start


@dataclass
class Connector:
    """One connector (connector 0 is the charge point's main controller and never charges)."""

    connector_id: int
    register_wh: float
    status: str = ChargePointStatus.available
    available: bool = True
    unavailable_scheduled: bool = False
    busy: bool = False  # a transaction is being prepared, running or finishing
    transaction_id: int | None = None
    id_tag: str | None = None
    meter_start: int | None = None
    started_at: str | None = None
    stop_reason: str | None = None
    stop_requested: asyncio.Event = field(default_factory=asyncio.Event)
    session: asyncio.Task | None = None
    transactions: list[int] = field(default_factory=list)
    stops: list[StopRecord] = field(default_factory=list)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    tx_cursor: int = 0
    stop_cursor: int = 0

    @property
    def meter_wh(self) -> int:
        """The meter register in whole Wh (a meter never rounds up)."""
        return int(self.register_wh)

    @property
    def charging(self) -> bool:
        """True while a transaction id is held and the session task runs."""
        return self.transaction_id is not None and self.session is not None and not self.session.done()

    async def notify(self) -> None:
        """Wake whoever waits for a transaction start or stop on this connector."""
        async with self.changed:
            self.changed.notify_all()

    async def wait(self, ready: Callable[[], bool], timeout: float) -> None:
        """Wait until ``ready()`` holds; raises TimeoutError after ``timeout`` seconds."""

        async def until_ready() -> None:
            async with self.changed:
                await self.changed.wait_for(ready)

        await asyncio.wait_for(until_ready(), timeout)


def utc_now() -> str:
    """An OCPP timestamp (UTC, millisecond precision, 'Z' suffix)."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def meter_value(
    energy_wh: int, context: str, power_w: float | None = None, timestamp: str | None = None
) -> datatypes.MeterValue:
    """One MeterValue: the energy register in Wh, optionally the active power in W."""
    sampled = [
        datatypes.SampledValue(
            value=str(energy_wh),
            context=context,
            measurand=Measurand.energy_active_import_register,
            unit=UnitOfMeasure.wh,
        )
    ]
    if power_w is not None:
        sampled.append(
            datatypes.SampledValue(
                value=str(round(power_w)),
                context=context,
                measurand=Measurand.power_active_import,
                unit=UnitOfMeasure.w,
            )
        )
    return datatypes.MeterValue(timestamp=timestamp or utc_now(), sampled_value=sampled)


def as_sent(value: datatypes.MeterValue) -> dict:
    """A MeterValue as it goes on the wire: camelCase keys, no empty fields, plain strings."""
    return json.loads(json.dumps(snake_to_camel_case(remove_nones(asdict(value)))))
