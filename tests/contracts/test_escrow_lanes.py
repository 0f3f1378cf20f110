"""Session ids and lanes on a real Anvil: an id is ``driver << 96 | lane << 16 | seq``; ``open`` takes the
driver's first lane without an open session and reuses its storage slot; an earlier session of the lane
reads Closed (its events keep its record); ids that name no session read None; someone else's id is
refused; all 256 lanes busy is NoFreeLane; a lane out of sequence numbers is skipped; and a reused
slot makes a returning driver's open cheaper."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ev_network.contracts import CancelReason, Escrow, Session, SessionState
from ev_network.events import EventReader, indexed_topic
from ev_network.session_ids import LANES, make_session_id, session_label
from tools.harness.chain import ESCROW_DEPOSIT, Env, Net, transaction_id_for
from tools.harness.contracts import ZERO, block_time, events, read_lane, reverts, write_lane

DEPOSIT = ESCROW_DEPOSIT
LAST_SEQ = 2**16 - 1


def test_open_takes_the_first_free_lane_and_reuses_it(env: Env) -> None:
    net, view, operator = env.net, env.net.escrow(), env.net.escrow(env.net.operator)
    me = env.driver.address
    from_block = net.w3.eth.block_number + 1
    first = env.open()
    assert first == make_session_id(me, 0, 1)
    second = env.open(connector=2)  # the first is still open: the next lane
    assert second == make_session_id(me, 1, 1)
    assert env.open(driver=env.other_driver) == make_session_id(env.other_driver.address, 0, 1)  # per driver
    operator.start(first, transaction_id_for(first), 1_000)
    settled = operator.settle(first, 4_000)
    assert view.get_session(first).state == SessionState.SETTLED  # still the latest of its lane

    third = env.open()  # lane 0 is free again: its slot is reused with the next sequence number
    assert third == make_session_id(me, 0, 2)
    assert (session_label(first), session_label(second), session_label(third)) == ("1", "1/1", "2")
    assert view.get_session(first) == Session(first, me, 0, 1, SessionState.CLOSED, 0, 0, 0, 0, 0)
    current = view.get_session(third)
    assert (current.lane, current.seq, current.state, current.deposit) == (0, 2, SessionState.REQUESTED, DEPOSIT)
    assert current.meter_start == 0  # nothing left over from the lane's earlier session

    # the Closed session's record is its events
    history = EventReader(net.w3, net.deployment.escrow).fetch(
        from_block, net.w3.eth.block_number, filters=[indexed_topic(first)]
    )
    assert [e.name for e in history] == ["SessionRequested", "SessionStarted", "SessionSettled"]
    requested, started, ended = (e.args for e in history)
    assert (requested["driver"], requested["connector"], requested["deposit"]) == (me, 1, DEPOSIT)
    assert (started["transactionId"], started["meterStart"]) == (transaction_id_for(first), 1_000)
    assert ended == events(view, settled, "SessionSettled")[0]
    assert (ended["meterStop"], ended["endedAt"]) == (4_000, block_time(net.w3, settled))
    assert ended["cost"] + ended["refund"] == DEPOSIT

    operator.reject(second, CancelReason.CONNECTOR_BUSY)
    fourth = env.open()  # lane 0 holds the open third session: lane 1 is reused
    assert fourth == make_session_id(me, 1, 2)
    assert view.get_session(second).state == SessionState.CLOSED
    assert view.get_session(third).state == SessionState.REQUESTED


def calls_on(net: Net, sid: int, driver: Escrow, operator: Escrow) -> dict[str, Callable[[], Any]]:
    """Every escrow function that takes a session id, called on ``sid``."""
    return {
        "start": lambda: operator.start(sid, 1, 0),
        "startBatch": lambda: operator.start_batch([sid], [1], [0]),
        "reject": lambda: operator.reject(sid, CancelReason.OTHER),
        "settle": lambda: operator.settle(sid, 9_000),
        "settleBatch": lambda: operator.settle_batch([sid], [9_000]),
        "settlementCost": lambda: net.escrow().settlement_cost(sid, 9_000),
        "cancel": lambda: driver.cancel(sid),
        "reclaim": lambda: driver.reclaim(sid),
        "requestStop": lambda: driver.request_stop(sid),
    }


def test_closed_and_unknown_ids_are_invalid_state(env: Env) -> None:
    net, view = env.net, env.net.escrow()
    operator, driver = net.escrow(net.operator), net.escrow(env.driver)
    me = env.driver.address
    closed = env.active()
    operator.settle(closed, 2_000)
    current = env.active()
    assert current == make_session_id(me, 0, 2)
    net.time_travel(net.deployment.start_timeout + net.deployment.max_duration + net.deployment.reclaim_grace)
    unknown = {
        "next seq": make_session_id(me, 0, 3),
        "unused lane": make_session_id(me, 7, 1),
        "seq 0": int(me, 16) << 96,
        "top stray bit": current | 1 << 95,  # bits 24-95 lie between the lane and the driver
        "low stray bit": current | 1 << 24,
        "nobody's lane": make_session_id(net.payout.address, 0, 1),
        "no driver": 999,
    }
    for kind, sid in {"closed": closed, **unknown}.items():
        state = SessionState.CLOSED if kind == "closed" else SessionState.NONE
        for name, call in calls_on(net, sid, driver, operator).items():
            with reverts("InvalidState") as info:
                call()
            assert info.value.args_ == (sid, state), (kind, name)
    for kind, sid in unknown.items():
        assert view.get_session(sid) == Session(sid, ZERO, 0, 0, SessionState.NONE, 0, 0, 0, 0, 0), kind
    assert view.get_session(closed).state == SessionState.CLOSED
    assert view.get_session(current).state == SessionState.ACTIVE  # untouched by all of the above
    driver.reclaim(current)  # past every timeout: only the live id works
    assert view.get_session(current).state == SessionState.EXPIRED


def test_someone_elses_session_id_is_refused(env: Env) -> None:
    net, view = env.net, env.net.escrow()
    requested, active = env.open(), env.active()  # lanes 0 and 1 of the driver
    env.open(driver=env.other_driver)  # the other driver has a lane 0, seq 1 session of its own
    net.time_travel(net.deployment.start_timeout + net.deployment.max_duration + net.deployment.reclaim_grace)
    other = net.escrow(env.other_driver)
    for sid, call in ((requested, other.cancel), (active, other.reclaim), (active, other.request_stop)):
        with reverts("NotDriver") as info:
            call(sid)
        assert info.value.args_ == (sid, env.other_driver.address)
    intruder = net.escrow(net.operator2)
    net.add_station("CP-LANES-OTHER", operator=net.operator2)  # an operator, of another station
    refused = {
        "start": lambda: intruder.start(requested, 1, 0),
        "startBatch": lambda: intruder.start_batch([requested], [1], [0]),
        "reject": lambda: intruder.reject(requested, CancelReason.OTHER),
        "settle": lambda: intruder.settle(active, 9_000),
        "settleBatch": lambda: intruder.settle_batch([active], [9_000]),
    }
    for name, call in refused.items():
        with reverts("NotStationOperator") as info:
            call()
        assert info.value.args_ == (env.station, net.operator2.address), name
    assert [view.get_session(s).state for s in (requested, active)] == [SessionState.REQUESTED, SessionState.ACTIVE]


def test_all_lanes_open_is_no_free_lane(env: Env) -> None:
    """256 real opens (pipelined, a few seconds); then one more is NoFreeLane until a lane ends."""
    net, view = env.net, env.net.escrow()
    driver = net.drivers[2]
    net.fund(driver)
    escrow, sender = net.escrow(driver), net.sender(driver)
    held = net.token().balance_of(net.deployment.escrow)
    hashes = [escrow.open(env.station, 1, 1 + lane, wait=False) for lane in range(LANES)]
    ids = [escrow.session_id_from(sender.wait(h)) for h in hashes]
    assert ids == [make_session_id(driver.address, lane, 1) for lane in range(LANES)]
    assert view.get_session(ids[-1]).deposit == LANES
    with reverts("NoFreeLane") as info:
        escrow.open(env.station, 1, DEPOSIT)
    assert info.value.args_ == (driver.address,)
    net.escrow(net.operator).reject(ids[200], CancelReason.OTHER)
    assert escrow.session_id_from(escrow.open(env.station, 2, DEPOSIT)) == make_session_id(driver.address, 200, 2)
    assert view.get_session(ids[200]).state == SessionState.CLOSED
    with reverts("NoFreeLane"):
        escrow.open(env.station, 1, DEPOSIT)
    deposits = sum(range(1, LANES + 1)) - 201 + DEPOSIT  # lane 200's deposit of 201 went back
    assert net.token().balance_of(net.deployment.escrow) - held == deposits


def test_a_lane_out_of_sequence_numbers_is_skipped(env: Env) -> None:
    """Storage is set with anvil_setStorageAt at the slot tools/harness/contracts.lane_slot computes; the
    first assertion proves that slot (and the field packing) against a real session."""
    net, view, operator = env.net, env.net.escrow(), env.net.escrow(env.net.operator)
    w3, escrow, me = net.w3, net.deployment.escrow, env.driver.address
    sid = env.open()
    stored = view.get_session(sid)
    assert read_lane(w3, escrow, me, 0) == {
        "deposit": DEPOSIT,
        "station_id": env.station,
        "tariff_id": stored.tariff_id,
        "state": SessionState.REQUESTED,
        "since": stored.since,
        "meter_start": 0,
        "seq": 1,
    }
    assert read_lane(w3, escrow, me, 1) == dict.fromkeys(read_lane(w3, escrow, me, 1), 0)
    operator.reject(sid, CancelReason.OTHER)

    write_lane(w3, escrow, me, 0, seq=LAST_SEQ - 1)  # lane 0: Cancelled, one sequence number left
    write_lane(w3, escrow, me, 2, seq=LAST_SEQ, state=SessionState.SETTLED)  # lane 2: none left
    assert view.get_session(make_session_id(me, 2, LAST_SEQ)).state == SessionState.SETTLED
    last = env.open()
    assert last == make_session_id(me, 0, LAST_SEQ)
    assert view.get_session(make_session_id(me, 0, LAST_SEQ - 1)).state == SessionState.CLOSED
    operator.start(last, transaction_id_for(last), 0)
    operator.settle(last, 1_000)  # lane 0 has used its last sequence number

    assert env.open() == make_session_id(me, 1, 1)  # lane 0 skipped for good
    assert env.open() == make_session_id(me, 3, 1)  # lane 2 too
    assert view.get_session(last).state == SessionState.SETTLED  # the last sessions stay readable
    assert view.get_session(make_session_id(me, 2, LAST_SEQ)).state == SessionState.SETTLED
    assert read_lane(w3, escrow, me, 0)["seq"] == LAST_SEQ


def test_a_returning_driver_opens_for_less_gas(env: Env) -> None:
    """A reused lane slot is overwritten (non-zero to non-zero) instead of filled from zero. Token
    balances stay non-zero throughout, so the opens differ only in the lane slot."""
    net, operator = env.net, env.net.escrow(env.net.operator)
    env.open(driver=env.other_driver)  # keeps the escrow's balance non-zero
    driver = net.escrow(env.driver)
    first = driver.open(env.station, 1, DEPOSIT)
    sid = driver.session_id_from(first)
    concurrent = driver.open(env.station, 1, DEPOSIT)  # lane 1: a fresh slot too
    assert driver.session_id_from(concurrent) == make_session_id(env.driver.address, 1, 1)
    operator.start(sid, transaction_id_for(sid), 0)
    operator.settle(sid, 1_000)
    returning = driver.open(env.station, 1, DEPOSIT)
    assert driver.session_id_from(returning) == make_session_id(env.driver.address, 0, 2)
    assert first["gasUsed"] - returning["gasUsed"] > 15_000
    assert concurrent["gasUsed"] - returning["gasUsed"] > 15_000  # the saving is the slot, not the order
