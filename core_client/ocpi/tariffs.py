"""An OCPI Tariff as the chain's tariff (:class:`ev_network.pricing.Tariff`: a session fee, a price per
kWh and a fee per hour), exactly or not at all.

Mapping: ``FLAT`` -> session fee, ``ENERGY`` (per kWh) -> price per kWh, ``TIME`` (per hour charging)
-> fee per hour. Prices on chain are gross (VAT included, :mod:`ev_network.operator_profile`), so each
OCPI price (excluding VAT) is multiplied by 1 + VAT and must then be a whole number of the token's
smallest unit; the VAT rate is kept for the invoice (one rate per tariff, as the chain's invoices split
net and VAT with one rate). OCPI ``TIME`` prices charging time; the chain's time fee counts the session's
length, from its start on chain to the CDR's ``end_date_time`` (settleAt), idle time with the EV plugged in
included: the same while the EV charges throughout, more when it sits idle. Such a tariff is imported (the
issue asks TIME -> per hour) and :func:`time_fee_note` says so wherever it is shown; a CDR whose cost
differs (its idle time) is recorded as a cost difference in ``/health``.

Anything the chain cannot express exactly is refused, naming the part: restrictions (time of day,
dates, days of week, kWh, current, power, duration, reservation), ``PARKING_TIME``, a ``step_size``
other than 1 for ENERGY (1 Wh) or TIME (1 s), two price components of one dimension, different VAT
rates, ``min_price`` / ``max_price``, an end date or a start in the future, a tariff type other than
REGULAR, another currency, more decimals than the token has, an amount beyond the contract's field.
Pure: no network, no chain.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from core_client.chain.onboarding import TARIFF_BITS
from core_client.ocpi.errors import TariffNotExpressible
from core_client.ocpi.models import Tariff as OcpiTariff
from core_client.ocpi.models import TariffRestrictions
from core_client.ocpi.models.enums import TariffDimensionType, TariffType
from ev_network.pricing import Tariff
from ev_network.units import format_amount

# what each group of restrictions limits, by its fields
RESTRICTION_KINDS = {
    ("start_time", "end_time"): "time of day",
    ("start_date", "end_date"): "dates",
    ("day_of_week",): "days of the week",
    ("min_kwh", "max_kwh"): "energy",
    ("min_current", "max_current"): "current",
    ("min_power", "max_power"): "power",
    ("min_duration", "max_duration"): "duration",
    ("reservation",): "reservation",
}
STEP_UNIT = {TariffDimensionType.ENERGY: "per Wh", TariffDimensionType.TIME: "per second"}
CHAIN_FIELD = {  # dimension -> (Tariff field, index in TARIFF_BITS)
    TariffDimensionType.ENERGY: ("price_per_kwh", 0),
    TariffDimensionType.FLAT: ("session_fee", 1),
    TariffDimensionType.TIME: ("time_fee_per_hour", 2),
}


@dataclass(frozen=True)
class ChainTariff:
    """A converted tariff: ``tariff`` as the chain takes it (gross, token units), the VAT rate in percent
    it includes (None: the OCPI tariff applies no VAT), and where it came from."""

    tariff: Tariff
    vat_percent: Decimal | None
    source: str  # country/party/id of the OCPI tariff

    @property
    def vat_text(self) -> str:
        """``incl. 19% VAT`` or ``no VAT``."""
        return "no VAT" if self.vat_percent is None else f"incl. {self.vat_percent.normalize():f}% VAT"

    @property
    def vat_rate_bp(self) -> int | None:
        """The VAT rate in 1/100 % (1900 = 19 %), as the operator profile writes it."""
        return None if self.vat_percent is None else int(self.vat_percent * 100)


def vat_refusal(converted: ChainTariff, operator_vat_bp: int | None) -> str | None:
    """Why ``converted`` cannot be a station's tariff of an operator whose profile has VAT rate
    ``operator_vat_bp`` (1/100 %; None: no rate published), or None when it can."""
    if operator_vat_bp is None or converted.vat_rate_bp is None or converted.vat_rate_bp == operator_vat_bp:
        return None
    return (
        f"its tariff's VAT ({converted.vat_text}) differs from the {operator_vat_bp / 100:g}% of your operator "
        "profile (invoices split VAT at that rate)"
    )


def prices_text(tariff: Tariff, decimals: int) -> str:
    """``0.357/kWh + 0/session + 0/h`` (token amounts)."""
    return (
        f"{format_amount(tariff.price_per_kwh, decimals)}/kWh + {format_amount(tariff.session_fee, decimals)}/session"
        f" + {format_amount(tariff.time_fee_per_hour, decimals)}/h"
    )


def time_fee_note(tariff: Tariff) -> str:
    """What a CPO must know about a converted tariff with a time fee (empty without one)."""
    if not tariff.time_fee_per_hour:
        return ""
    return "; its time fee counts the whole session, start to the CDR's end, idle time included (OCPI TIME: charging)"


def tariff_name(tariff: OcpiTariff) -> str:
    return f"{tariff.country_code}/{tariff.party_id}/{tariff.id}"


def convert(tariff: OcpiTariff, currency: str, decimals: int, at: datetime) -> ChainTariff:
    """``tariff`` on chain, for a token priced in ``currency`` with ``decimals`` decimals, valid at ``at``;
    TariffNotExpressible naming every part that cannot be expressed exactly."""
    problems = _whole_tariff_problems(tariff, currency, at)
    components: dict[TariffDimensionType, tuple[int, Decimal, Decimal | None]] = {}
    for number, element in enumerate(tariff.elements, start=1):
        if element.restrictions is not None:
            problems += [f"element {number}: {kind} restrictions" for kind in _restriction_kinds(element.restrictions)]
        for component in element.price_components:
            dimension = component.type
            if dimension is TariffDimensionType.PARKING_TIME:
                problems.append(f"element {number}: PARKING_TIME (the chain has no parking fee)")
                continue
            if dimension in STEP_UNIT and component.step_size != 1:
                problems.append(
                    f"element {number}: {dimension.value} step_size {component.step_size} "
                    f"(the chain bills {STEP_UNIT[dimension]})"
                )
            if component.price < 0:
                problems.append(f"element {number}: negative {dimension.value} price {component.price}")
            if dimension in components:
                problems.append(
                    f"several {dimension.value} price components (elements {components[dimension][0]} and {number})"
                )
                continue
            components[dimension] = (number, component.price, component.vat)
    rates = {vat for _, _, vat in components.values()}
    if len(rates) > 1:
        shown = ", ".join(sorted("none" if r is None else f"{r}%" for r in rates))
        problems.append(f"different VAT rates ({shown}): the chain's invoice has one rate")
    vat = next(iter(rates)) if len(rates) == 1 else None
    if vat is not None and (vat < 0 or vat * 100 != (vat * 100).to_integral_value()):
        problems.append(f"VAT rate {vat}% (the operator profile keeps a rate in 1/100 %)")
    amounts = {"price_per_kwh": 0, "session_fee": 0, "time_fee_per_hour": 0}
    for dimension, (number, price, _) in components.items():
        field, bits_index = CHAIN_FIELD[dimension]
        units, problem = _units(price, vat, currency, decimals, TARIFF_BITS[bits_index])
        if problem:
            problems.append(f"element {number}: {dimension.value} {problem}")
        amounts[field] = units
    if problems:
        raise TariffNotExpressible(f"tariff {tariff_name(tariff)}: " + "; ".join(problems))
    return ChainTariff(Tariff(**amounts), vat, tariff_name(tariff))


def _whole_tariff_problems(tariff: OcpiTariff, currency: str, at: datetime) -> list[str]:
    problems = []
    if tariff.currency.upper() != currency.upper():
        problems.append(f"currency {tariff.currency}, but the chain's token is priced in {currency}")
    if tariff.type not in (None, TariffType.REGULAR):
        problems.append(f"type {tariff.type.value} (only a tariff for all sessions, or REGULAR, prices app sessions)")
    if tariff.min_price is not None:
        problems.append("min_price (the chain has no minimum price)")
    if tariff.max_price is not None:
        problems.append("max_price (the chain caps a session at its deposit, not at a price)")
    if tariff.end_date_time is not None:
        problems.append(f"end_date_time {tariff.end_date_time.isoformat()} (a chain tariff does not expire)")
    if tariff.start_date_time is not None and tariff.start_date_time > at:
        problems.append(f"start_date_time {tariff.start_date_time.isoformat()} is in the future")
    return problems


def _restriction_kinds(restrictions: TariffRestrictions) -> list[str]:
    """The kinds of restriction set (a field set to an empty list restricts nothing)."""
    return [
        kind
        for fields, kind in RESTRICTION_KINDS.items()
        if any(getattr(restrictions, field) not in (None, []) for field in fields)
    ]


def _units(price: Decimal, vat: Decimal | None, currency: str, decimals: int, bits: int) -> tuple[int, str | None]:
    """(gross price in token units, None), or (0, why it cannot be expressed)."""
    gross = price if vat is None else price * (100 + vat) / 100
    units = gross.scaleb(decimals)
    shown = f"{price} {currency}" + ("" if vat is None else f" + {vat}% VAT = {gross.normalize()} {currency}")
    if units != units.to_integral_value():
        return 0, f"price {shown} has more decimals than the token's {decimals}"
    if units >= 2**bits:
        return 0, f"price {shown} is beyond the contract's uint{bits}"
    return int(units), None
