"""Session pricing, exactly as the escrow computes it (integer arithmetic, rounding down).

Pure domain logic: no network. ``tests/test_pricing.py`` checks it against the contract."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Tariff:
    """A tariff record. Amounts in the token's smallest unit."""

    price_per_kwh: int
    session_fee: int
    time_fee_per_hour: int = 0

    def as_tuple(self) -> tuple[int, int, int]:
        """The tuple the contract takes (pricePerKWh, sessionFee, timeFeePerHour)."""
        return (self.price_per_kwh, self.session_fee, self.time_fee_per_hour)


def price(tariff: Tariff, energy_wh: int, duration_s: int = 0) -> int:
    """Price before the cap at the deposit: fee + energy x price/kWh + time x fee/hour."""
    return tariff.session_fee + energy_wh * tariff.price_per_kwh // 1000 + duration_s * tariff.time_fee_per_hour // 3600


def settlement(tariff: Tariff, deposit: int, energy_wh: int, duration_s: int, max_duration_s: int) -> tuple[int, int]:
    """(cost, refund) of a settlement: time capped at max duration, cost capped at the deposit."""
    cost = min(price(tariff, energy_wh, min(duration_s, max_duration_s)), deposit)
    return cost, deposit - cost


def affordable_energy_wh(tariff: Tariff, budget: int, duration_s: int = 0) -> int:
    """Most energy (Wh) whose price stays within ``budget`` after the fixed and time fees."""
    left = budget - tariff.session_fee - duration_s * tariff.time_fee_per_hour // 3600
    if left < 0:
        return 0
    if tariff.price_per_kwh == 0:
        return 2**40 - 1
    # largest e with e * price // 1000 <= left (the energy charge rounds down)
    return ((left + 1) * 1000 - 1) // tariff.price_per_kwh
