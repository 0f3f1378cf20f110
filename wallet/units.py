"""Token amounts: whole tokens with decimals (what people type and read) <-> the token's smallest
unit (what the chain stores). Decimal only: a float would lose cents on large amounts."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

from ev_network.units import to_units
from wallet.errors import WalletError


def parse_amount(text: str, decimals: int) -> int:
    """``"12.5"`` with 18 decimals -> 12500000000000000000; ``_`` may group digits (``"1_000"``).
    Rejects negatives, NaN and sub-unit digits with a WalletError."""
    try:
        return to_units(text.replace("_", ""), decimals)
    except ValueError as exc:
        raise WalletError(str(exc)) from None


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


def iso_utc(timestamp: int) -> str:
    """A unix time as ISO 8601 UTC, e.g. ``2025-01-31T12:00:00Z``."""
    return datetime.fromtimestamp(timestamp, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_duration(seconds: int) -> str:
    """``3725`` -> ``"1:02:05"``."""
    seconds = max(0, int(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
