"""Random sequences of escrow operations against a Python model of the session state machine and the
drivers' lanes (tools/harness/property_machine.py, tools/harness/property_model.py): supply conserved, the escrow
holding exactly the open deposits, every id ever seen reading as the model says (Closed once its lane
moved on) after every step, and nothing stuck at the end."""

from __future__ import annotations

from hypothesis import settings
from hypothesis.stateful import run_state_machine_as_test

from ev_network.contracts import CancelReason, SessionState
from ev_network.pricing import Tariff
from ev_network.session_ids import driver_of, lane_of, seq_of
from tools.harness.chain import TARIFF, TOKEN, Net
from tools.harness.contracts import latest_timestamp
from tools.harness.property_machine import LANE_USE, OUTCOMES, make_machine
from tools.harness.property_model import build_world

T = TOKEN
SCRIPT: list[tuple[str, dict]] = [
    ("open", {"driver": 0, "station": 0, "connector": 1, "deposit": 20 * T}),  # S1
    ("open", {"driver": 1, "station": 1, "connector": 2, "deposit": 60 * T}),  # S2
    ("open", {"driver": 2, "station": 2, "connector": 1, "deposit": 60 * T}),  # S3 (timed)
    ("open", {"driver": 0, "station": 3, "connector": 2, "deposit": T // 2}),  # S4: driver 0's lane 1
    ("open", {"driver": 1, "station": 0, "connector": 0, "deposit": T}),
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
    ("open", {"driver": 2, "station": 3, "connector": 1, "deposit": T}),
    ("travel_until", {"session": 4, "deadline": "cancel", "offset": -1}),
    ("cancel", {"session": 4, "aim": False, "right": True}),  # one second early
    ("time_travel", {"seconds": 1}),
    ("cancel", {"session": 4, "aim": False, "right": True}),  # exactly at the deadline
    ("time_travel", {"seconds": 3_599}),
    ("settle", {"session": 1, "aim": False, "right": False, "energy": 1_000}),
    ("settle", {"session": 1, "aim": False, "right": True, "energy": -3}),
    ("settle", {"session": 1, "aim": False, "right": True, "energy": 40_000}),  # capped at the deposit
    ("settle", {"session": 1, "aim": False, "right": True, "energy": 1}),  # Settled
    ("cancel", {"session": 4, "aim": False, "right": True}),  # Cancelled
    ("settle_batch", {"drawn": [2, 3], "aim": False, "operator": 0, "energy": 100}),  # 3 is not theirs
    ("open", {"driver": 2, "station": 1, "connector": 1, "deposit": 5 * T}),  # S5: S3 still open, lane 1
    ("open", {"driver": 0, "station": 0, "connector": 2, "deposit": 5 * T}),  # S6 reuses lane 0: S1 Closed
    ("settle", {"session": 1, "aim": False, "right": True, "energy": 1}),  # Closed
    ("open", {"driver": 0, "station": 0, "connector": 1, "deposit": T}),  # S7 reuses lane 1: S4 Closed
    ("cancel", {"session": 4, "aim": False, "right": True}),  # Closed
    ("reject", {"session": 7, "aim": False, "right": True, "reason": CancelReason.CONNECTOR_BUSY}),
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
    ("open", {"driver": 0, "station": 0, "connector": 1, "deposit": T}),  # S8: lane 0 again, seq 3
    ("unknown_id", {"driver": 0, "kind": "next_seq", "action": "settle", "salt": 0}),
    ("unknown_id", {"driver": 1, "kind": "unused_lane", "action": "start", "salt": 5}),
    ("unknown_id", {"driver": 2, "kind": "stray_bits", "action": "cancel", "salt": 7}),
    ("unknown_id", {"driver": 0, "kind": "seq_zero", "action": "reclaim", "salt": 3}),
    ("unknown_id", {"driver": 1, "kind": "nobody", "action": "request_stop", "salt": 1}),
    ("unknown_id", {"driver": 0, "kind": "stray_bits", "action": "reject", "salt": 70}),
]
EXPECTED_OUTCOMES = {
    "open: ok": 8,
    "open: InvalidConnector": 1,
    "open: ZeroDeposit": 1,
    "open: StationInactive": 1,
    "start: NotStationOperator": 1,
    "start: ok": 5,
    "request_stop: NotDriver": 1,
    "request_stop: ok": 1,
    "cancel: TooEarly": 2,
    "cancel: ok": 1,
    "cancel: InvalidState": 2,
    "reject: NotStationOperator": 1,
    "reject: ok": 1,
    "settle: NotStationOperator": 1,
    "settle: MeterBelowStart": 1,
    "settle: ok": 1,
    "settle: InvalidState": 2,
    "settle_batch: ok": 2,
    "settle_batch: InvalidState": 1,
    "settle_batch: NotStationOperator": 1,
    "reclaim: TooEarly": 2,
    "reclaim: NotDriver": 1,
    "reclaim: ok": 1,
    "unknown_id: InvalidState": 6,
}


def test_scripted_walk_covers_every_transition(clean_chain: Net) -> None:
    """The machine and its model on a fixed path through every state, concurrent lanes, lane reuse,
    Closed ids and unknown ids, so the model itself is proven on each of them however hypothesis
    happens to sample. ``session``/``drawn`` values are ordinals: S<n> is the n-th opened session."""
    machine = make_machine(build_world(clean_chain))()
    dep, w3 = clean_chain.deployment, clean_chain.w3
    OUTCOMES.clear()
    LANE_USE.clear()
    ids: dict[int, int] = {}  # ordinal -> session id
    try:
        for name, kwargs in SCRIPT:
            kwargs = dict(kwargs)
            if "session" in kwargs:
                kwargs["session"] = ids[kwargs["session"]]
            if "drawn" in kwargs:
                kwargs["drawn"] = [ids[n] for n in kwargs["drawn"]]
            if name == "travel_until":  # make the next block land at the deadline + offset
                m = machine.model.sessions[kwargs["session"]]
                timeout = dep.start_timeout if kwargs["deadline"] == "cancel" else dep.max_duration + dep.reclaim_grace
                name, kwargs = (
                    "time_travel",
                    {"seconds": m.since + timeout + kwargs["offset"] - 1 - latest_timestamp(w3)},
                )
            result = getattr(machine, name)(**kwargs)
            if name == "open" and isinstance(result, int):
                ids[len(ids) + 1] = result
                machine.bundle("sessions").append(result)
            machine.chain_matches_the_model()
        drivers = [d.address for d in machine.model.world.drivers]
        lanes = {n: (driver_of(sid), lane_of(sid), seq_of(sid)) for n, sid in ids.items()}
        assert lanes == {
            1: (drivers[0], 0, 1),
            2: (drivers[1], 0, 1),
            3: (drivers[2], 0, 1),
            4: (drivers[0], 1, 1),  # S1 still open: the next lane
            5: (drivers[2], 1, 1),
            6: (drivers[0], 0, 2),  # S1 settled: lane 0 reused
            7: (drivers[0], 1, 2),  # lane 0 busy again, S4 cancelled: lane 1 reused
            8: (drivers[0], 0, 3),
        }
        closed = [n for n, sid in ids.items() if machine.model.sessions[sid].state == SessionState.CLOSED]
        assert closed == [1, 4, 6]
    finally:
        machine.teardown()
    assert dict(LANE_USE) == {"first": 3, "concurrent": 2, "reused": 3}
    assert dict(OUTCOMES) == EXPECTED_OUTCOMES


def test_escrow_state_machine(clean_chain: Net) -> None:
    world = build_world(clean_chain)
    OUTCOMES.clear()
    LANE_USE.clear()
    run_state_machine_as_test(
        lambda: make_machine(world)(),
        settings=settings(max_examples=40, stateful_step_count=20, deadline=None),
    )
    print("\nstate machine outcomes:", dict(sorted(OUTCOMES.items())), "lanes:", dict(LANE_USE))
    assert OUTCOMES["open: ok"], f"the machine never opened a session: {OUTCOMES}"
