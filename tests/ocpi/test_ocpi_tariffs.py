"""OCPI Tariff -> chain Tariff: exact conversions, and every inexpressible part refused by name."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import pytest

from core_client.ocpi.errors import TariffNotExpressible
from core_client.ocpi.models import Tariff as OcpiTariff
from core_client.ocpi.tariffs import convert
from ev_network.pricing import Tariff, price
from tools.harness.ocpi.objects import price as component
from tools.harness.ocpi.objects import tariff

NOW = datetime(2026, 12, 6, 12, tzinfo=timezone.utc)
E18 = 10**18


def chain(raw: dict[str, Any], currency: str = "EUR", decimals: int = 18):
    return convert(OcpiTariff.model_validate(raw), currency, decimals, NOW)


def refused(raw: dict[str, Any], decimals: int = 18, currency: str = "EUR") -> str:
    with pytest.raises(TariffNotExpressible) as error:
        chain(raw, currency, decimals)
    return str(error.value)


def test_energy_and_flat_with_vat_become_gross_prices() -> None:
    converted = chain(tariff("T1", component("ENERGY", "0.25"), component("FLAT", "0.50")))
    assert converted.tariff == Tariff(price_per_kwh=3025 * E18 // 10000, session_fee=605 * E18 // 1000)
    assert converted.vat_percent == Decimal("21") and converted.vat_rate_bp == 2100
    assert converted.source == "NL/TNM/T1"
    # 20 kWh: 0.50 + 20 x 0.25 = 5.50 excl. VAT, 6.655 incl. 21 % VAT
    assert price(converted.tariff, 20_000) == 6655 * E18 // 1000


def test_time_per_hour_and_no_vat() -> None:
    converted = chain(tariff("T2", component("TIME", "2.00", vat=None)))
    assert converted.tariff == Tariff(price_per_kwh=0, session_fee=0, time_fee_per_hour=2 * E18)
    assert converted.vat_percent is None and converted.vat_rate_bp is None


def test_free_of_charge_tariff() -> None:
    assert chain(tariff("FREE", component("FLAT", "0.00", vat=None))).tariff == Tariff(0, 0, 0)


def test_one_component_per_dimension_in_several_unrestricted_elements() -> None:
    raw = tariff("T3")
    raw["elements"] = [
        {"price_components": [component("FLAT", "1", vat="19")]},
        {"price_components": [component("ENERGY", "0.30", vat="19")]},
    ]
    assert chain(raw).tariff == Tariff(price_per_kwh=357 * E18 // 1000, session_fee=119 * E18 // 100)


@pytest.mark.parametrize(
    "restrictions, named",
    [
        ({"start_time": "13:30", "end_time": "19:45"}, "element 1: time of day restrictions"),
        ({"day_of_week": ["MONDAY"]}, "element 1: days of the week restrictions"),
        ({"max_power": 32}, "element 1: power restrictions"),
        ({"min_kwh": 20}, "element 1: energy restrictions"),
        ({"max_duration": 1800}, "element 1: duration restrictions"),
        ({"start_date": "2026-12-24"}, "element 1: dates restrictions"),
        ({"reservation": "RESERVATION"}, "element 1: reservation restrictions"),
    ],
)
def test_restrictions_are_refused_by_kind(restrictions: dict[str, Any], named: str) -> None:
    raw = tariff("R")
    raw["elements"][0]["restrictions"] = restrictions
    assert named in refused(raw)


def test_parking_time_and_step_sizes_are_refused() -> None:
    assert "element 1: PARKING_TIME" in refused(
        tariff("P", component("ENERGY", "0.25"), component("PARKING_TIME", "1"))
    )
    assert "TIME step_size 300 (the chain bills per second)" in refused(
        tariff("S", component("TIME", "2", step_size=300))
    )
    assert "ENERGY step_size 500 (the chain bills per Wh)" in refused(
        tariff("S", component("ENERGY", "1", step_size=500))
    )
    assert chain(tariff("F", component("FLAT", "1", step_size=7))).tariff.session_fee == 121 * E18 // 100  # no unit


def test_two_components_of_one_dimension_are_refused() -> None:
    raw = tariff("D")
    raw["elements"] = [
        {"price_components": [component("ENERGY", "0.20")], "restrictions": {"max_power": 16}},
        {"price_components": [component("ENERGY", "0.50")]},
    ]
    message = refused(raw)
    assert "element 1: power restrictions" in message
    assert "several ENERGY price components (elements 1 and 2)" in message


def test_different_vat_rates_are_refused() -> None:
    message = refused(tariff("V", component("FLAT", "0.50", vat="20"), component("ENERGY", "0.25", vat="10")))
    assert "different VAT rates (10%, 20%)" in message
    assert "different VAT rates (21%, none)" in refused(
        tariff("V", component("FLAT", "1"), component("ENERGY", "1", vat=None))
    )


@pytest.mark.parametrize(
    "fields, named",
    [
        ({"currency": "USD"}, "currency USD, but the chain's token is priced in EUR"),
        ({"min_price": {"excl_vat": 1}}, "min_price"),
        ({"max_price": {"excl_vat": 10}}, "max_price"),
        ({"end_date_time": "2027-01-01T00:00:00Z"}, "end_date_time"),
        ({"start_date_time": "2027-01-01T00:00:00Z"}, "start_date_time 2027-01-01T00:00:00+00:00 is in the future"),
        ({"type": "PROFILE_FAST"}, "type PROFILE_FAST"),
    ],
)
def test_whole_tariff_properties_the_chain_lacks_are_refused(fields: dict[str, Any], named: str) -> None:
    assert named in refused(tariff("W", **fields))


def test_past_start_and_regular_type_are_fine() -> None:
    assert chain(tariff("OK", type="REGULAR", start_date_time="2026-01-01T00:00:00Z")).tariff.price_per_kwh > 0


def test_amounts_the_token_cannot_hold_exactly_are_refused() -> None:
    message = refused(tariff("X", component("ENERGY", "0.25")), decimals=2)
    assert "ENERGY price 0.25 EUR + 21% VAT = 0.3025 EUR has more decimals than the token's 2" in message
    assert chain(tariff("X", component("ENERGY", "0.25", vat=None)), decimals=2).tariff.price_per_kwh == 25
    assert "beyond the contract's uint80" in refused(tariff("B", component("FLAT", "2000000", vat=None)))
    assert "negative ENERGY price" in refused(tariff("N", component("ENERGY", "-0.1")))


def test_every_problem_is_named_in_one_line() -> None:
    raw = tariff("M", component("ENERGY", "0.25", step_size=100), component("PARKING_TIME", "2"), currency="GBP")
    message = refused(raw)
    assert "\n" not in message
    assert message.startswith("tariff NL/TNM/M: currency GBP")
    assert "PARKING_TIME" in message and "step_size 100" in message
