"""Our stations as OCPI Locations and our chain tariffs as OCPI Tariffs (pure: no network, no chain).

One Location per station (id ``ST-<station id>``), one EVSE per OCPP connector (uid ``<charge point
id>-<connector>``, one Connector ``1`` each), from the station's :class:`Site` in ``[ocpi_cpo.sites]``
(OCPI needs an address and coordinates the chain does not hold: a station without a site is not
published). One Tariff per station (id ``ST-<station id>``): the chain's price per kWh -> ENERGY, session
fee -> FLAT, fee per hour -> TIME. Chain prices are gross (VAT included); OCPI prices exclude VAT, so with
a VAT rate each price is the gross divided by 1 + VAT, to 4 decimals (the chain's gross price is what is
billed)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from enum import Enum

from pydantic import BaseModel, ConfigDict

from core_client.ocpi.models import EVSE, Connector, GeoLocation, Location, PriceComponent, TariffElement
from core_client.ocpi.models import Tariff as OcpiTariff
from core_client.ocpi.models.enums import Capability, ConnectorFormat, ConnectorType, PowerType, Status
from core_client.ocpi.models.enums import TariffDimensionType as Dimension
from core_client.ocpi.transport import Party
from ev_network.pricing import Tariff

FOUR_DECIMALS = Decimal("0.0001")


class OcppStatus(str, Enum):
    """An OCPP 1.6 connector status as the charge point reports it (StatusNotification)."""

    AVAILABLE = "Available"
    PREPARING = "Preparing"
    CHARGING = "Charging"
    SUSPENDED_EVSE = "SuspendedEVSE"
    SUSPENDED_EV = "SuspendedEV"
    FINISHING = "Finishing"
    RESERVED = "Reserved"
    UNAVAILABLE = "Unavailable"
    FAULTED = "Faulted"


EVSE_STATUS = {
    OcppStatus.AVAILABLE: Status.AVAILABLE,
    OcppStatus.PREPARING: Status.BLOCKED,  # a car is plugged in, no session yet
    OcppStatus.CHARGING: Status.CHARGING,
    OcppStatus.SUSPENDED_EVSE: Status.CHARGING,
    OcppStatus.SUSPENDED_EV: Status.CHARGING,
    OcppStatus.FINISHING: Status.BLOCKED,
    OcppStatus.RESERVED: Status.RESERVED,
    OcppStatus.UNAVAILABLE: Status.INOPERATIVE,
    OcppStatus.FAULTED: Status.OUTOFORDER,
}


def evse_status(ocpp_status: str | None) -> Status:
    """The OCPI EVSE status of an OCPP connector status (UNKNOWN when none or not an OCPP 1.6 status)."""
    try:
        return EVSE_STATUS[OcppStatus(ocpp_status)]
    except ValueError:
        return Status.UNKNOWN


class Site(BaseModel):
    """Where a station is and what its connectors are (``[ocpi_cpo.sites."<charge point id>"]``)."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    address: str
    city: str
    postal_code: str | None = None
    country: str  # ISO 3166-1 alpha-3
    latitude: str  # e.g. "52.37403"
    longitude: str
    time_zone: str  # IANA, e.g. "Europe/Berlin"
    standard: ConnectorType = ConnectorType.IEC_62196_T2
    format: ConnectorFormat = ConnectorFormat.SOCKET
    power_type: PowerType = PowerType.AC_3_PHASE
    max_voltage: int = 400
    max_amperage: int = 32


@dataclass(frozen=True)
class OurStation:
    """One of our stations as the registry knows it: its connectors' OCPP statuses and its chain tariff."""

    station_id: int
    charge_point_id: str
    connectors: dict[int, str]  # connector -> last OCPP status ("Unknown" when none)
    tariff: Tariff
    updated: datetime  # when any of it last changed


def location_id(station_id: int) -> str:
    return f"ST-{station_id}"


def evse_uid(charge_point_id: str, connector: int) -> str:
    return f"{charge_point_id}-{connector}"


def location(station: OurStation, site: Site, us: Party) -> Location:
    """The station as an OCPI Location (validated against 2.2.1)."""
    at = station.updated
    evses = [
        EVSE(
            uid=evse_uid(station.charge_point_id, number),
            status=evse_status(status),
            capabilities=[Capability.REMOTE_START_STOP_CAPABLE],
            connectors=[
                Connector(
                    id="1",
                    standard=site.standard,
                    format=site.format,
                    power_type=site.power_type,
                    max_voltage=site.max_voltage,
                    max_amperage=site.max_amperage,
                    tariff_ids=[location_id(station.station_id)],
                    last_updated=at,
                )
            ],
            last_updated=at,
        )
        for number, status in sorted(station.connectors.items())
    ]
    return Location(
        country_code=us.country_code,
        party_id=us.party_id,
        id=location_id(station.station_id),
        publish=True,
        name=site.name,
        address=site.address,
        city=site.city,
        postal_code=site.postal_code,
        country=site.country,
        coordinates=GeoLocation(latitude=site.latitude, longitude=site.longitude),
        evses=evses,
        time_zone=site.time_zone,
        last_updated=at,
    )


def tariff(station: OurStation, us: Party, currency: str, decimals: int, vat_percent: Decimal | None) -> OcpiTariff:
    """The station's chain tariff as an OCPI Tariff in ``currency`` (one token = one ``currency`` unit)."""
    amounts = [
        (Dimension.ENERGY, station.tariff.price_per_kwh),
        (Dimension.FLAT, station.tariff.session_fee),
        (Dimension.TIME, station.tariff.time_fee_per_hour),
    ]
    components = [
        PriceComponent(type=dimension, price=_net(units, decimals, vat_percent), vat=vat_percent, step_size=1)
        for dimension, units in amounts
        if units
    ] or [PriceComponent(type=Dimension.FLAT, price=Decimal(0), vat=vat_percent, step_size=1)]
    return OcpiTariff(
        country_code=us.country_code,
        party_id=us.party_id,
        id=location_id(station.station_id),
        currency=currency,
        elements=[TariffElement(price_components=components)],
        last_updated=station.updated,
    )


def _net(units: int, decimals: int, vat_percent: Decimal | None) -> Decimal:
    gross = Decimal(units).scaleb(-decimals)
    net = gross if vat_percent is None else gross * 100 / (100 + vat_percent)
    return net.quantize(FOUR_DECIMALS, rounding=ROUND_HALF_EVEN)
