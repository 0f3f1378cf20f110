"""Tariffs module objects (mod_tariffs.asciidoc): Tariff, TariffElement, PriceComponent, TariffRestrictions."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints

from core_client.ocpi.models.base import (
    URL,
    CiString,
    CountryCode,
    DateTime,
    DisplayText,
    Int,
    Number,
    OcpiModel,
    PartyId,
    Price,
    String,
)
from core_client.ocpi.models.enums import DayOfWeek, ReservationRestrictionType, TariffDimensionType, TariffType
from core_client.ocpi.models.locations import EnergyMix, HourMinute

Date = Annotated[str, StringConstraints(pattern=r"^([12][0-9]{3})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$")]


class PriceComponent(OcpiModel):
    type: TariffDimensionType
    price: Number  # per unit, excluding VAT
    vat: Number | None = None  # percent; absent: no VAT applicable (not the same as 0)
    step_size: Int


class TariffRestrictions(OcpiModel):
    start_time: HourMinute | None = None
    end_time: HourMinute | None = None
    start_date: Date | None = None
    end_date: Date | None = None
    min_kwh: Number | None = None
    max_kwh: Number | None = None
    min_current: Number | None = None
    max_current: Number | None = None
    min_power: Number | None = None
    max_power: Number | None = None
    min_duration: Int | None = None
    max_duration: Int | None = None
    day_of_week: list[DayOfWeek] | None = None
    reservation: ReservationRestrictionType | None = None


class TariffElement(OcpiModel):
    price_components: Annotated[list[PriceComponent], Field(min_length=1)]
    restrictions: TariffRestrictions | None = None


class Tariff(OcpiModel):
    country_code: CountryCode
    party_id: PartyId
    id: CiString(36)
    currency: String(3)
    type: TariffType | None = None
    tariff_alt_text: list[DisplayText] | None = None
    tariff_alt_url: URL | None = None
    min_price: Price | None = None
    max_price: Price | None = None
    elements: Annotated[list[TariffElement], Field(min_length=1)]
    start_date_time: DateTime | None = None
    end_date_time: DateTime | None = None
    energy_mix: EnergyMix | None = None
    last_updated: DateTime
