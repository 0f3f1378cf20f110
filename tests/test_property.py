"""Random sequences of escrow operations against a Python model of the session state machine
(tests/property_machine.py): supply conserved, the escrow holding exactly the open deposits, every
session equal to the model after every step, and nothing stuck at the end."""

from __future__ import annotations

from hypothesis import settings
from hypothesis.stateful import run_state_machine_as_test

from ev_network.contracts import CancelReason
from ev_network.pricing import Tariff
from tests.conftest import TARIFF, TOKEN, Net
from tests.contracts_helpers import latest_timestamp
from tests.property_machine import OUTCOMES, build_world, make_machine


def test_scripted_walk_covers_every_transition(clean_chain: Net) -> None:
    """The machine and its model on a fixed path through every state, so the model itself is
    proven on each transition however hypothesis happens to sample."""
    machine = make_machine(build_world(clean_chain))()
    dep, w3 = clean_chain.deployment, clean_chain.w3
    OUTCOMES.clear()
    try:
        steps = [
            ("open", {"driver": 0, "station": 0, "connector": 1, "deposit": 20 * TOKEN}),  # session 1
            ("open", {"driver": 1, "station": 1, "connector": 2, "deposit": 60 * TOKEN}),  # session 2
            ("open", {"driver": 2, "station": 2, "connector": 1, "deposit": 60 * TOKEN}),  # session 3 (timed)
            ("open", {"driver": 0, "station": 3, "connector": 2, "deposit": TOKEN // 2}),  # session 4
            ("open", {"driver": 1, "station": 0, "connector": 0, "deposit": TOKEN}),
            ("open", {"driver": 1, "station": 0, "connector": 1, "deposit": 0}),
            ("start", {"session": 1, "aim": False, "right": False, "meter": 10}),
            ("start", {"session": 1, "aim": False, "right": True, "meter": 10}),
            ("start", {"session": 2, "aim": False, "right": True, "meter": 500}),
            ("start", {"session": 3, "aim": False, "right": True, "meter": 0}),
            ("request_stop", {"session": 1, "aim": False, "right": False}),
            ("request_stop", {"session": 1, "aim": False, "right": True}),
            ("cancel", {"session": 4, "aim": False, "right": True}),
            ("reject", {"session": 4, "aim": False, "right": False, "reason": CancelReason.OTHER}),
            ("change_station", {"station": 0, "tariff": Tariff(10**18, 0, 0), "toggle": 1}),
            ("change_station", {"station": 3, "tariff": TARIFF, "toggle": 0}),
            ("open", {"driver": 2, "station": 3, "connector": 1, "deposit": TOKEN}),
            ("travel_until", {"session": 4, "deadline": "cancel", "offset": -1}),
            ("cancel", {"session": 4, "aim": False, "right": True}),  # one second early
            ("time_travel", {"seconds": 1}),
            ("cancel", {"session": 4, "aim": False, "right": True}),  # exactly at the deadline
            ("time_travel", {"seconds": 3_599}),
            ("settle", {"session": 1, "aim": False, "right": False, "energy": 1_000}),
            ("settle", {"session": 1, "aim": False, "right": True, "energy": -3}),
            ("settle", {"session": 1, "aim": False, "right": True, "energy": 40_000}),  # capped at the deposit
            ("settle", {"session": 1, "aim": False, "right": True, "energy": 1}),
            ("cancel", {"session": 4, "aim": False, "right": True}),  # already cancelled
            ("settle_batch", {"drawn": [2, 3], "aim": False, "operator": 0, "energy": 100}),  # 3 is not theirs
            ("open", {"driver": 2, "station": 1, "connector": 1, "deposit": 5 * TOKEN}),  # session 5
            ("open", {"driver": 0, "station": 0, "connector": 2, "deposit": 5 * TOKEN}),  # session 6
            ("start", {"session": 5, "aim": False, "right": True, "meter": 0}),
            ("start", {"session": 6, "aim": False, "right": True, "meter": 0}),
            ("time_travel", {"seconds": 1_800}),
            ("settle_batch", {"drawn": [5, 6], "aim": False, "operator": 0, "energy": 2_000}),
            ("settle_batch", {"drawn": [2, 2], "aim": False, "operator": 0, "energy": 100}),
            ("reclaim", {"session": 2, "aim": False, "right": True}),
            ("travel_until", {"session": 2, "deadline": "reclaim", "offset": -1}),
            ("reclaim", {"session": 2, "aim": False, "right": True}),  # one second early
            ("time_travel", {"seconds": 1}),
            ("reclaim", {"session": 2, "aim": False, "right": False}),
            ("reclaim", {"session": 2, "aim": False, "right": True}),  # exactly at the deadline
            ("settle_batch", {"drawn": [3], "aim": True, "operator": 1, "energy": 7_000}),  # time fee capped
        ]
        for name, kwargs in steps:
            if name == "travel_until":  # make the next block land at the deadline + offset
                m = machine.model[kwargs["session"]]
                deadline = (
                    m.opened_at + dep.start_timeout
                    if kwargs["deadline"] == "cancel"
                    else m.started_at + dep.max_duration + dep.reclaim_grace
                )
                name, kwargs = "time_travel", {"seconds": deadline + kwargs["offset"] - 1 - latest_timestamp(w3)}
            result = getattr(machine, name)(**kwargs)
            if name == "open" and isinstance(result, int):
                machine.bundle("sessions").append(result)
            machine.chain_matches_the_model()
    finally:
        machine.teardown()
    expected = {
        "open: ok": 6,
        "open: InvalidConnector": 1,
        "open: ZeroDeposit": 1,
        "open: StationInactive": 1,
        "start: NotStationOperator": 1,
        "start: ok": 5,
        "request_stop: NotDriver": 1,
        "request_stop: ok": 1,
        "cancel: TooEarly": 2,
        "cancel: ok": 1,
        "cancel: InvalidState": 1,
        "reject: NotStationOperator": 1,
        "settle: NotStationOperator": 1,
        "settle: MeterBelowStart": 1,
        "settle: ok": 1,
        "settle: InvalidState": 1,
        "settle_batch: ok": 2,
        "settle_batch: InvalidState": 1,
        "settle_batch: NotStationOperator": 1,
        "reclaim: TooEarly": 2,
        "reclaim: NotDriver": 1,
        "reclaim: ok": 1,
    }
    assert dict(OUTCOMES) == expected


def test_escrow_state_machine(clean_chain: Net) -> None:
    world = build_world(clean_chain)
    OUTCOMES.clear()
    run_state_machine_as_test(
        lambda: make_machine(world)(),
        settings=settings(max_examples=25, stateful_step_count=20, deadline=None),
    )
    print("\nstate machine outcomes:", dict(sorted(OUTCOMES.items())))
    assert OUTCOMES["open: ok"], f"the machine never opened a session: {OUTCOMES}"
