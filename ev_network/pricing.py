"""Session pricing, exactly as the escrow computes it (integer arithmetic, rounding down).

One :func:`breakdown` (session fee, energy, time, total capped at the deposit) is the only place the
price math lives: the wallet's quotes and invoices and the Core Client's budget check use it.
Pure domain logic: no network. ``tests/contracts/test_pricing.py`` checks it against the contract."""

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


@dataclass(frozen=True)
class PriceBreakdown:
    """What a session costs, line by line. ``billed_s`` is the time charged (capped at the maximum
    duration when one was given); ``deposit`` (if given) caps the total."""

    session_fee: int
    energy: int
    time: int
    billed_s: int
    deposit: int | None = None

    @property
    def subtotal(self) -> int:
        """Fee + energy + time, before the cap at the deposit."""
        return self.session_fee + self.energy + self.time

    @property
    def total(self) -> int:
        """What settlement charges: the subtotal, never more than the deposit."""
        return self.subtotal if self.deposit is None else min(self.subtotal, self.deposit)

    @property
    def cap(self) -> int:
        """The adjustment to the deposit (zero, or negative when the deposit capped the subtotal)."""
        return self.total - self.subtotal

    @property
    def refund(self) -> int | None:
        """What goes back to the driver (None without a deposit)."""
        return None if self.deposit is None else self.deposit - self.total


def breakdown(
    tariff: Tariff,
    energy_wh: int,
    duration_s: int = 0,
    *,
    deposit: int | None = None,
    max_duration_s: int | None = None,
) -> PriceBreakdown:
    """The price of ``energy_wh`` over ``duration_s``: energy and time each round down, time is capped
    at ``max_duration_s`` and the total at ``deposit`` (each when given)."""
    billed = duration_s if max_duration_s is None else min(duration_s, max_duration_s)
    return PriceBreakdown(
        session_fee=tariff.session_fee,
        energy=energy_wh * tariff.price_per_kwh // 1000,
        time=billed * tariff.time_fee_per_hour // 3600,
        billed_s=billed,
        deposit=deposit,
    )


def price(tariff: Tariff, energy_wh: int, duration_s: int = 0) -> int:
    """Price before the cap at the deposit: fee + energy x price/kWh + time x fee/hour."""
    return breakdown(tariff, energy_wh, duration_s).subtotal


def settlement(tariff: Tariff, deposit: int, energy_wh: int, duration_s: int, max_duration_s: int) -> tuple[int, int]:
    """(cost, refund) of a settlement: time capped at max duration, cost capped at the deposit."""
    charge = breakdown(tariff, energy_wh, duration_s, deposit=deposit, max_duration_s=max_duration_s)
    return charge.total, deposit - charge.total


def affordable_energy_wh(tariff: Tariff, budget: int, duration_s: int = 0) -> int:
    """Most energy (Wh) whose price stays within ``budget`` after the fixed and time fees."""
    fixed = breakdown(tariff, 0, duration_s)
    left = budget - fixed.session_fee - fixed.time
    if left < 0:
        return 0
    if tariff.price_per_kwh == 0:
        return 2**40 - 1
    # largest e with e * price // 1000 <= left (the energy charge rounds down)
    return ((left + 1) * 1000 - 1) // tariff.price_per_kwh
