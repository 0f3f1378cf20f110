"""Token amounts: whole tokens with decimals (what people type and read) <-> the token's smallest
unit (what the chain stores). Decimal only: a float would lose cents on large amounts."""

from __future__ import annotations

from datetime import datetime, timezone

from ev_network.units import format_amount, format_time, format_wait, format_wh_as_kwh, money, to_units
from wallet.errors import WalletError

__all__ = [
    "format_amount",
    "format_duration",
    "format_time",
    "format_wait",
    "format_wh_as_kwh",
    "iso_utc",
    "money",
    "parse_amount",
]


def parse_amount(text: str, decimals: int) -> int:
    """``"12.5"`` with 18 decimals -> 12500000000000000000; ``_`` may group digits (``"1_000"``).
    Rejects negatives, NaN and sub-unit digits with a WalletError."""
    try:
        return to_units(text.replace("_", ""), decimals)
    except ValueError as exc:
        raise WalletError(str(exc)) from None


def iso_utc(timestamp: int) -> str:
    """A unix time as ISO 8601 UTC, e.g. ``2025-01-31T12:00:00Z``: for JSON; people read
    :func:`format_time`."""
    return datetime.fromtimestamp(timestamp, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_duration(seconds: int) -> str:
    """``3725`` -> ``"1:02:05"``."""
    seconds = max(0, int(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
