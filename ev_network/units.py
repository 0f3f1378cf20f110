"""Token amounts as people write and read them (whole tokens with decimals, ``"12.5"``) <-> the
token's smallest unit, which the chain stores. Decimal only: a float would lose cents on large amounts.
Also how people read money, times and waits on screen and paper (:func:`money`, :func:`format_time`,
:func:`format_wait`)."""

from __future__ import annotations

import math
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation


def to_units(text: str, decimals: int) -> int:
    """``"12.5"`` with 18 decimals -> 12500000000000000000. Raises ValueError for anything that is not a
    non-negative amount the token can represent exactly (NaN, negatives, digits below one unit)."""
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise ValueError(f"{text!r} is not an amount: write whole tokens, e.g. 12.5") from None
    if not value.is_finite() or value < 0:
        raise ValueError(f"{text!r} is not an amount: it must be a positive number of tokens")
    if value.adjusted() > 60:
        raise ValueError(f"{text!r} is too large an amount")
    units = value.scaleb(decimals)
    if units != units.to_integral_value():
        raise ValueError(f"{text!r} has more than {decimals} decimal places, the token's precision")
    return int(units)


def format_amount(units: int, decimals: int, min_places: int = 2) -> str:
    """12500000000000000000 with 18 decimals -> ``"12.50"``: exact, trailing zeros trimmed to ``min_places``."""
    sign = "-" if units < 0 else ""
    text = f"{Decimal(abs(units)).scaleb(-decimals):f}" if decimals else str(abs(units))
    whole, _, frac = text.partition(".")
    frac = frac.rstrip("0").ljust(min(min_places, decimals), "0")
    return f"{sign}{whole}.{frac}" if frac else f"{sign}{whole}"


def format_wh_as_kwh(energy_wh: int) -> str:
    """Energy in Wh as kWh with three decimals (exact): 12345 -> ``"12.345"``."""
    return f"{Decimal(energy_wh).scaleb(-3):.3f}"


def short_amount(units: int, decimals: int, places: int = 4) -> str:
    """An amount for a figure on a small screen or a status line: rounded down to ``places`` decimals
    (invoices keep them all)."""
    step = 10 ** max(0, decimals - places)
    return format_amount(units - units % step, decimals)


MONEY_PLACES = 4  # an amount of money on screen and paper: what a driver can check against a balance


def money(units: int, decimals: int) -> str:
    """An amount of money as people read it: rounded half up to :data:`MONEY_PLACES` decimals, at least
    two (``0.56615`` -> ``"0.5662"``, ``0.475756302521008403`` -> ``"0.4758"``, ``2`` -> ``"2.00"``). The
    same on the session page, the invoice page, its PDF and ``ev-wallet invoice``; JSON keeps exact units."""
    step = 10 ** max(0, decimals - MONEY_PLACES)
    sign = -1 if units < 0 else 1
    rounded = (abs(units) + step // 2) // step * step
    return format_amount(sign * rounded, decimals)


def format_time(timestamp: float) -> str:
    """A unix time as people read it, one format on every page, invoice and terminal line:
    ``2026-12-06 12:03:11 UTC`` (JSON keeps ISO 8601)."""
    return datetime.fromtimestamp(timestamp, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def format_wait(seconds: float) -> str:
    """A time to wait, rounded up to a unit people use: 45 -> ``"45 s"``, 300 -> ``"5 min"``,
    5400 -> ``"1 h 30 min"``, 89993 -> ``"25 h"``."""
    seconds = max(0, math.ceil(seconds))
    if seconds < 60:
        return f"{seconds} s"
    hours, minutes = divmod(-(-seconds // 60), 60)
    if not hours:
        return f"{minutes} min"
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"
