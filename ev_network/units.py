"""Token amounts as people write them (whole tokens with decimals, ``"12.5"``) -> the token's
smallest unit, which the chain stores. Decimal only: a float would lose cents on large amounts."""

from __future__ import annotations

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
