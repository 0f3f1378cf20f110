"""ev_network.pricing must compute exactly what the escrow computes: quote() over a grid and random
tariffs, and real settlements (deposit cap, time cap, rounding) against settlement()."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ev_network.contracts import Escrow
from ev_network.pricing import Tariff, affordable_energy_wh, price, settlement
from tools.harness.chain import TARIFF, TIMED_TARIFF, TOKEN, Net
from tools.harness.contracts import events, latest_timestamp, set_next_timestamp

UINT96, UINT80, UINT40 = 2**96 - 1, 2**80 - 1, 2**40 - 1
GRID_TARIFFS = [
    TARIFF,
    TIMED_TARIFF,
    Tariff(price_per_kwh=1, session_fee=0, time_fee_per_hour=1),  # everything rounds to 0 at first
    Tariff(price_per_kwh=999, session_fee=1, time_fee_per_hour=3599),
    Tariff(price_per_kwh=1001, session_fee=0, time_fee_per_hour=3601),
    Tariff(price_per_kwh=0, session_fee=7, time_fee_per_hour=0),
    Tariff(price_per_kwh=UINT96, session_fee=UINT80, time_fee_per_hour=UINT80),
]
ENERGIES = [0, 1, 999, 1000, 1001, 123_456, UINT40]
DURATIONS = [0, 1, 3599, 3600, 3601, 86_400, 2**32]
SETTINGS = settings(max_examples=20, deadline=None, database=None)


@dataclass
class Pricing:
    net: Net
    station: int
    driver_escrow: Escrow
    operator: Escrow

    def tariff_id(self, tariff: Tariff) -> int:
        """Set ``tariff`` on the test station; return the new tariff record's id."""
        self.operator.set_tariff(self.station, tariff)
        return self.net.escrow().get_station(self.station).tariff_id

    def settle(self, tariff: Tariff, deposit: int, meter_start: int, energy: int, duration: int) -> tuple[int, int]:
        """A real session under ``tariff``: returns (cost, refund) from the SessionSettled event."""
        self.tariff_id(tariff)
        session_id = self.driver_escrow.session_id_from(self.driver_escrow.open(self.station, 1, deposit))
        t0 = latest_timestamp(self.net.w3) + 1
        set_next_timestamp(self.net.w3, t0)
        self.operator.start(session_id, 1, meter_start)
        set_next_timestamp(self.net.w3, t0 + duration)
        receipt = self.operator.settle(session_id, meter_start + energy)
        settled = events(self.net.escrow(), receipt, "SessionSettled")[0]
        assert settled["endedAt"] - settled["startedAt"] == duration
        return settled["cost"], settled["refund"]


@pytest.fixture(scope="module")
def pricing(net: Net) -> Iterator[Pricing]:
    """A station and a rich driver for this module; the chain is reverted when the module ends."""
    snapshot = net.w3.provider.make_request("evm_snapshot", [])["result"]
    station = net.add_station("CP-PRICING", connectors=1)
    driver = net.drivers[8]
    net.fund(driver, amount=2**100)
    yield Pricing(net, station, net.escrow(driver), net.escrow(net.operator))
    net.w3.provider.make_request("evm_revert", [snapshot])
    for sender in net.senders.values():
        sender.resync()


def test_quote_matches_price_over_a_grid(pricing: Pricing) -> None:
    for tariff in GRID_TARIFFS:
        tariff_id = pricing.tariff_id(tariff)
        for energy, duration in itertools.product(ENERGIES, DURATIONS):
            assert pricing.net.escrow().quote(tariff_id, energy, duration) == price(tariff, energy, duration), (
                tariff,
                energy,
                duration,
            )


def test_rounding_is_down_per_wh_and_per_second() -> None:
    one_per_kwh = Tariff(price_per_kwh=1000, session_fee=0, time_fee_per_hour=3600)
    assert price(one_per_kwh, 1) == 1 and price(one_per_kwh, 0, 1) == 1
    odd = Tariff(price_per_kwh=1999, session_fee=5, time_fee_per_hour=7199)
    assert price(odd, 1) == 5 + 1  # 1.999 rounds down
    assert price(odd, 0, 1) == 5 + 1  # 1.9997 rounds down
    assert price(odd, 1, 1) == 5 + 1 + 1  # energy and time round separately
    assert settlement(TIMED_TARIFF, 10**30, 0, 10**9, 86_400) == (
        price(TIMED_TARIFF, 0, 86_400),
        10**30 - price(TIMED_TARIFF, 0, 86_400),
    )


@SETTINGS
@given(
    tariff=st.builds(
        Tariff,
        price_per_kwh=st.integers(0, UINT96),
        session_fee=st.integers(0, UINT80),
        time_fee_per_hour=st.integers(0, UINT80),
    ),
    energy=st.integers(0, UINT40),
    duration=st.integers(0, 10**7),
)
def test_quote_matches_price_for_random_tariffs(pricing: Pricing, tariff: Tariff, energy: int, duration: int) -> None:
    tariff_id = pricing.tariff_id(tariff)
    assert pricing.net.escrow().quote(tariff_id, energy, duration) == price(tariff, energy, duration)


def test_settlement_matches_real_settles_at_the_edges(pricing: Pricing) -> None:
    max_duration = pricing.net.deployment.max_duration
    exact = price(TARIFF, 10_000)
    cases = [
        (TARIFF, exact, 0, 10_000, 0),  # price == deposit: no refund
        (TARIFF, exact + 1, 0, 10_000, 0),  # one unit refunded
        (TARIFF, exact - 1, 0, 10_000, 0),  # capped
        (TARIFF, TOKEN, 5_000, 0, 10),  # no energy: the session fee alone
        (TIMED_TARIFF, 100 * TOKEN, 0, 1, 1),  # one Wh, one second
        (TIMED_TARIFF, 100 * TOKEN, 0, 0, max_duration),  # exactly the max duration
        (TIMED_TARIFF, 100 * TOKEN, 0, 0, max_duration + 600),  # time capped
        (Tariff(1999, 0, 7199), 10**6, 123, 1, 1),  # both round down
    ]
    for tariff, deposit, meter_start, energy, duration in cases:
        expected = settlement(tariff, deposit, energy, duration, max_duration)
        assert pricing.settle(tariff, deposit, meter_start, energy, duration) == expected, (
            tariff,
            deposit,
            energy,
            duration,
        )


@SETTINGS
@given(
    tariff=st.builds(
        Tariff,
        price_per_kwh=st.integers(0, 10**18),
        session_fee=st.integers(0, 10**18),
        time_fee_per_hour=st.integers(0, 10**19),
    ),
    deposit=st.integers(1, 10**21),
    energy=st.integers(0, 10**6),
    duration=st.integers(0, 100_000),
)
def test_settlement_matches_random_real_settles(
    pricing: Pricing, tariff: Tariff, deposit: int, energy: int, duration: int
) -> None:
    expected = settlement(tariff, deposit, energy, duration, pricing.net.deployment.max_duration)
    assert pricing.settle(tariff, deposit, 1_000, energy, duration) == expected


@settings(max_examples=200, deadline=None, database=None)
@given(
    tariff=st.builds(
        Tariff,
        price_per_kwh=st.integers(0, 10**18),
        session_fee=st.integers(0, 10**18),
        time_fee_per_hour=st.integers(0, 10**18),
    ),
    budget=st.integers(0, 10**21),
    duration=st.integers(0, 100_000),
)
def test_affordable_energy_is_the_most_the_budget_buys(tariff: Tariff, budget: int, duration: int) -> None:
    energy = affordable_energy_wh(tariff, budget, duration)
    if price(tariff, 0, duration) > budget:
        assert energy == 0
        return
    assert price(tariff, energy, duration) <= budget
    if tariff.price_per_kwh:
        assert price(tariff, energy + 1, duration) > budget


def test_affordable_energy_counts_the_rounding_down() -> None:
    """1 Wh at 1.5 units/kWh... rounds to 1 unit: a budget of 1 buys 1 Wh, not 0."""
    tariff = Tariff(price_per_kwh=1500, session_fee=0)
    assert price(tariff, 1) == 1
    assert affordable_energy_wh(tariff, 1) == 1
    assert affordable_energy_wh(Tariff(price_per_kwh=500, session_fee=3), 3) == 1  # 1 Wh costs 0 more
