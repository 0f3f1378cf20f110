"""The one fold of a session's events (ev_network.session_view) and the one price breakdown
(ev_network.pricing.breakdown), on hand-built events: pure domain logic, no chain."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ev_network.contracts import CancelReason, SessionState
from ev_network.events import ChainEvent
from ev_network.pricing import Tariff, breakdown, price, settlement
from ev_network.session_ids import make_session_id
from ev_network.session_view import SessionEventsIncomplete, fold
from tools.harness.chain import TARIFF, TIMED_TARIFF, TOKEN
from wallet.invoice import invoice_lines

DRIVER = "0x" + "ab" * 20
SID = make_session_id(DRIVER, 0, 1)
OTHER = make_session_id(DRIVER, 1, 1)


def event(name: str, block: int, session_id: int = SID, **args) -> ChainEvent:
    return ChainEvent(name, {"sessionId": session_id, **args}, block, 0, f"0x{block:064x}")


def requested(block: int = 10, session_id: int = SID) -> ChainEvent:
    return event("SessionRequested", block, session_id, driver=DRIVER, stationId=3, connector=2,
                 deposit=10 * TOKEN, tariffId=4)  # fmt: skip


def settled(block: int = 13, cost: int = 3 * TOKEN) -> ChainEvent:
    return event("SessionSettled", block, driver=DRIVER, operator="0xop", stationId=3, tariffId=4, meterStart=100,
                 meterStop=8_350, startedAt=1_000, endedAt=1_900, cost=cost, refund=10 * TOKEN - cost,
                 payout="0xpay")  # fmt: skip


STARTED = event("SessionStarted", 11, transactionId=7, meterStart=100, startedAt=1_000)


def block_time(block: int) -> int:
    return 900 + block


def test_a_settled_session_in_any_order_with_another_sessions_events_mixed_in() -> None:
    events = [settled(), event("StopRequested", 12, stationId=3), STARTED, requested(),
              event("SessionStarted", 12, OTHER, transactionId=9, meterStart=0, startedAt=5)]  # fmt: skip
    view = fold(events, block_time)
    assert view.state is SessionState.SETTLED and view.ended and view.stop_requested
    assert (view.session_id, view.driver, view.station_id, view.connector, view.deposit, view.tariff_id) == (
        SID, DRIVER, 3, 2, 10 * TOKEN, 4)  # fmt: skip
    assert (view.transaction_id, view.meter_start, view.meter_stop, view.energy_wh) == (7, 100, 8_350, 8_250)
    assert (view.opened_at, view.started_at, view.ended_at, view.duration_s) == (910, 1_000, 1_900, 900)
    assert (view.cost, view.refund, view.operator, view.payout) == (3 * TOKEN, 7 * TOKEN, "0xop", "0xpay")
    assert (view.open_tx, view.start_tx, view.end_tx) == (f"0x{10:064x}", f"0x{11:064x}", f"0x{13:064x}")


def test_each_step_of_a_running_session() -> None:
    assert fold([requested()]).state is SessionState.REQUESTED
    assert fold([requested()]).opened_at is None  # no block_time: times the events do not carry are unknown
    active = fold([requested(), STARTED])
    assert active.state is SessionState.ACTIVE and not active.ended and active.duration_s is None
    assert fold([requested(), STARTED, event("StopRequested", 12, stationId=3)]).stop_requested


def test_cancelled_and_expired_take_their_end_time_from_the_block() -> None:
    cancelled = fold([requested(), event("SessionCancelled", 20, driver=DRIVER, refund=10 * TOKEN, reason=2)],
                     block_time)  # fmt: skip
    assert cancelled.state is SessionState.CANCELLED and cancelled.cancel_reason is CancelReason.CONNECTOR_BUSY
    assert (cancelled.ended_at, cancelled.cost, cancelled.refund) == (920, 0, 10 * TOKEN)
    expired = fold([requested(), STARTED, event("SessionExpired", 30, driver=DRIVER, refund=10 * TOKEN)], block_time)
    assert expired.state is SessionState.EXPIRED and (expired.ended_at, expired.duration_s) == (930, -70)


def test_without_its_request_the_story_cannot_be_told() -> None:
    with pytest.raises(SessionEventsIncomplete):
        fold([STARTED, settled()])
    with pytest.raises(SessionEventsIncomplete):
        fold([])


def test_breakdown_caps_time_at_the_max_duration_and_the_total_at_the_deposit() -> None:
    charge = breakdown(TIMED_TARIFF, 10_000, 7_200, max_duration_s=3_600)
    assert (charge.session_fee, charge.energy, charge.time, charge.billed_s) == (
        TOKEN // 4,
        3 * TOKEN,
        2 * TOKEN,
        3_600,
    )
    assert charge.total == charge.subtotal == price(TIMED_TARIFF, 10_000, 3_600) and charge.cap == 0
    assert charge.refund is None
    capped = breakdown(TIMED_TARIFF, 10_000, 7_200, deposit=4 * TOKEN, max_duration_s=3_600)
    assert (capped.total, capped.cap, capped.refund) == (4 * TOKEN, 4 * TOKEN - capped.subtotal, 0)


@settings(max_examples=200, deadline=None, database=None)
@given(
    tariff=st.builds(Tariff, st.integers(0, 10**18), st.integers(0, 10**18), st.integers(0, 10**19)),
    deposit=st.integers(1, 10**21),
    energy=st.integers(0, 10**7),
    duration=st.integers(0, 10**6),
)
def test_the_invoice_lines_add_up_to_what_settlement_charges(tariff, deposit, energy, duration) -> None:
    charge = breakdown(tariff, energy, duration, deposit=deposit, max_duration_s=86_400)
    assert (charge.total, charge.refund) == settlement(tariff, deposit, energy, duration, 86_400)
    lines = invoice_lines(tariff, energy, charge)
    assert sum(line.amount for line in lines) == charge.total
    assert any(line.description == "Capped at the deposit" for line in lines) == (charge.subtotal > deposit)
    assert any(line.description == "Charging time" for line in lines) == bool(tariff.time_fee_per_hour)


def test_price_is_the_breakdowns_subtotal() -> None:
    assert (
        price(TARIFF, 8_250) == breakdown(TARIFF, 8_250).subtotal == TOKEN // 2 + 8_250 * TARIFF.price_per_kwh // 1000
    )
