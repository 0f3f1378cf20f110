"""The escrow's state machine as a Hypothesis RuleBasedStateMachine, with a Python model of every
session, station and balance; used by tests/test_property.py.

Random sequences of escrow operations against the model.

Three drivers, two operators with two stations each. After every step: the token's supply is held
by the accounts that ever received tokens; the escrow holds exactly the deposits of open sessions;
every session on chain equals the model. At the end every open session is drained by its driver
after the timeouts, so no deposit stays stuck. Runs on the real Anvil; each example starts from an
evm snapshot and reverts it. Block timestamps advance exactly one second per block while a machine
runs (``anvil_setBlockTimestampInterval``), so the model knows every block's time: a transaction
(and its gas estimate, which runs against the pending block) sees the latest block's time + 1."""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    multiple,
    precondition,
    rule,
)

from ev_network.contracts import CancelReason, SessionState
from ev_network.pricing import Tariff, settlement
from tests.conftest import TARIFF, TIMED_TARIFF, TOKEN, Net
from tests.contracts_helpers import BatchReader, latest_timestamp, reverts, set_next_timestamp

OPEN = (SessionState.REQUESTED, SessionState.ACTIVE)
FUNDS = 1_000 * TOKEN
MOSTLY = st.sampled_from([True, True, True, False])  # the right session / actor, usually
TARIFFS = st.builds(
    Tariff,
    price_per_kwh=st.integers(0, 2 * TOKEN),
    session_fee=st.integers(0, 2 * TOKEN),
    time_fee_per_hour=st.sampled_from([0, 1, TOKEN, 3 * TOKEN + 7]),
)

OUTCOMES: Counter[str] = Counter()  # "rule: ok" or "rule: ExpectedError", over all examples


def step(method: Callable[..., Any]) -> Callable[..., Any]:
    """Mark the machine unhealthy while ``method`` runs, so teardown skips its final checks after
    a failure (the failure itself is what hypothesis must report)."""

    @functools.wraps(method)
    def wrapped(self: Any, **kwargs: Any) -> Any:
        self.healthy = False
        result = method(self, **kwargs)
        self.healthy = True
        return result

    return wrapped


@dataclass
class ModelSession:
    driver: int
    station: int
    deposit: int
    tariff: Tariff
    state: SessionState = SessionState.REQUESTED
    opened_at: int = 0
    started_at: int = 0
    meter_start: int = 0


@dataclass
class ModelStation:
    station_id: int
    operator: int
    tariff: Tariff
    active: bool = True


@dataclass
class World:
    """What the test function set up once: accounts, stations and bindings (each machine snapshots
    on top of it)."""

    net: Net
    drivers: list
    operators: list
    payouts: list
    stations: list[ModelStation] = field(default_factory=list)

    def __post_init__(self) -> None:
        net = self.net
        self.driver_escrows = [net.escrow(d) for d in self.drivers]
        self.operator_escrows = [net.escrow(o) for o in self.operators]
        self.view = net.escrow()
        self.reader = BatchReader(net.w3, net.deployment.token, net.deployment.escrow)


def make_machine(world: World) -> type[RuleBasedStateMachine]:
    net, w3 = world.net, world.net.w3
    dep = net.deployment

    class EscrowMachine(RuleBasedStateMachine):
        sessions = Bundle("sessions")

        def __init__(self) -> None:
            super().__init__()
            self.snapshot = w3.provider.make_request("evm_snapshot", [])["result"]
            w3.provider.make_request("anvil_setBlockTimestampInterval", [1])
            self.model: dict[int, ModelSession] = {}
            self.stations = [ModelStation(s.station_id, s.operator, s.tariff, s.active) for s in world.stations]
            tracked = [*(a.address for a in world.drivers + world.payouts), dep.escrow]
            self.balances, _ = world.reader.balances(tracked)
            self.base_escrow = self.balances[dep.escrow]
            self.scanned_block = w3.eth.block_number
            self.holders = world.reader.transfer_recipients(dep.deployment_block, self.scanned_block)
            self.healthy = True

        # ------------------------------------------------------------ helpers
        def next_ts(self) -> int:
            """Timestamp of the next block (one second after the latest, see the module docstring)."""
            return latest_timestamp(w3) + 1

        def move(self, source: str, amount: int, to: str) -> None:
            self.balances[source] -= amount
            self.balances[to] += amount

        def any_in(self, state: SessionState) -> bool:
            return any(m.state == state for m in self.model.values())

        def refund(self, m: ModelSession, amount: int) -> None:
            self.move(dep.escrow, amount, world.drivers[m.driver].address)

        def attempt(self, action: str, error: str | None, call: Callable[[], Any]) -> Any:
            """Run ``call``: it must revert with ``error``, or succeed when ``error`` is None."""
            OUTCOMES[f"{action}: {error or 'ok'}"] += 1
            if error is None:
                return call()
            with reverts(error):
                call()
            return None

        def operator_error(self, sid: int, operator: int, wanted: SessionState) -> str | None:
            m = self.model[sid]
            if m.state != wanted:
                return "InvalidState"
            return "NotStationOperator" if self.stations[m.station].operator != operator else None

        def settle_error(self, sid: int, operator: int, meter_stop: int) -> str | None:
            error = self.operator_error(sid, operator, SessionState.ACTIVE)
            return error or ("MeterBelowStart" if meter_stop < self.model[sid].meter_start else None)

        def driver_error(self, sid: int, driver: int, wanted: SessionState, allowed_at: int) -> str | None:
            m = self.model[sid]
            if m.state != wanted:
                return "InvalidState"
            if m.driver != driver:
                return "NotDriver"
            # the gas estimate (against the pending block) and the mined block both see next_ts()
            return "TooEarly" if self.next_ts() < allowed_at else None

        def pick(self, drawn: int, wanted: SessionState, aim: bool) -> int:
            """Mostly (``aim``) a session in the ``wanted`` state, else the one drawn from the bundle:
            random sessions alone would almost never walk a session to its end."""
            fitting = sorted(sid for sid, m in self.model.items() if m.state == wanted)
            return fitting[drawn % len(fitting)] if aim and fitting else drawn

        def operator_for(self, sid: int, right: bool) -> int:
            """The operator of the session's station, or the other one."""
            own = self.stations[self.model[sid].station].operator
            return own if right else 1 - own

        def driver_for(self, sid: int, right: bool) -> int:
            """The session's driver, or another one."""
            own = self.model[sid].driver
            return own if right else (own + 1) % len(world.drivers)

        def apply_settle(self, sid: int, meter_stop: int, ts: int) -> int:
            m = self.model[sid]
            cost, refund = settlement(
                m.tariff, m.deposit, meter_stop - m.meter_start, ts - m.started_at, dep.max_duration
            )
            m.state = SessionState.SETTLED
            self.refund(m, refund)
            return cost

        # -------------------------------------------------------------- rules
        @rule(
            target=sessions,
            driver=st.integers(0, 2),
            station=st.integers(0, 3),
            connector=st.sampled_from([1, 2, 1, 2, 1, 2, 0, 3]),  # mostly valid
            deposit=st.sampled_from([TOKEN // 2, 5 * TOKEN, 20 * TOKEN, 60 * TOKEN, 1, 0]),
        )
        @step
        def open(self, driver: int, station: int, connector: int, deposit: int) -> Any:
            s, escrow = self.stations[station], world.driver_escrows[driver]
            error = None
            if deposit == 0:
                error = "ZeroDeposit"
            elif not s.active:
                error = "StationInactive"
            elif connector not in (1, 2):
                error = "InvalidConnector"
            ts = self.next_ts()
            receipt = self.attempt("open", error, lambda: escrow.open(s.station_id, connector, deposit))
            if error:
                return multiple()
            sid = escrow.session_id_from(receipt)
            assert sid not in self.model
            self.model[sid] = ModelSession(driver, station, deposit, s.tariff, opened_at=ts)
            self.move(world.drivers[driver].address, deposit, dep.escrow)
            return sid

        @precondition(lambda self: self.any_in(SessionState.REQUESTED))
        @rule(session=sessions, aim=MOSTLY, right=MOSTLY, meter=st.integers(0, 10**9))
        @step
        def start(self, session: int, aim: bool, right: bool, meter: int) -> None:
            sid = self.pick(session, SessionState.REQUESTED, aim)
            operator = self.operator_for(sid, right)
            error = self.operator_error(sid, operator, SessionState.REQUESTED)
            ts = self.next_ts()
            self.attempt("start", error, lambda: world.operator_escrows[operator].start(sid, sid, meter))
            if error is None:
                m = self.model[sid]
                m.state, m.started_at, m.meter_start = SessionState.ACTIVE, ts, meter

        @precondition(lambda self: self.any_in(SessionState.ACTIVE))
        @rule(session=sessions, aim=MOSTLY, right=MOSTLY, energy=st.integers(-3, 200_000))
        @step
        def settle(self, session: int, aim: bool, right: bool, energy: int) -> None:
            sid = self.pick(session, SessionState.ACTIVE, aim)
            operator = self.operator_for(sid, right)
            meter_stop = max(self.model[sid].meter_start + energy, 0)
            error = self.settle_error(sid, operator, meter_stop)
            ts = self.next_ts()
            self.attempt("settle", error, lambda: world.operator_escrows[operator].settle(sid, meter_stop))
            if error is None:
                self.move(dep.escrow, self.apply_settle(sid, meter_stop, ts), world.payouts[operator].address)

        @precondition(lambda self: self.any_in(SessionState.ACTIVE))
        @rule(
            drawn=st.lists(sessions, min_size=1, max_size=4),
            aim=MOSTLY,
            operator=st.integers(0, 1),
            energy=st.integers(0, 50_000),
        )
        @step
        def settle_batch(self, drawn: list[int], aim: bool, operator: int, energy: int) -> None:
            """``aim``: every Active session of ``operator`` (if any); else the drawn list as it is."""
            own = [
                sid
                for sid, m in sorted(self.model.items())
                if m.state == SessionState.ACTIVE and self.operator_for(sid, True) == operator
            ]
            batch = own if aim and own else drawn
            stops = [self.model[s].meter_start + energy for s in batch]
            error, seen = None, set()
            for sid, stop in zip(batch, stops, strict=True):
                error = "InvalidState" if sid in seen else self.settle_error(sid, operator, stop)
                seen.add(sid)
                if error:
                    break
            ts = self.next_ts()
            self.attempt("settle_batch", error, lambda: world.operator_escrows[operator].settle_batch(batch, stops))
            if error is None:
                total = sum(self.apply_settle(sid, stop, ts) for sid, stop in zip(batch, stops, strict=True))
                self.move(dep.escrow, total, world.payouts[operator].address)

        @precondition(lambda self: self.any_in(SessionState.REQUESTED))
        @rule(session=sessions, aim=MOSTLY, right=MOSTLY, reason=st.sampled_from(list(CancelReason)))
        @step
        def reject(self, session: int, aim: bool, right: bool, reason: CancelReason) -> None:
            sid = self.pick(session, SessionState.REQUESTED, aim)
            operator = self.operator_for(sid, right)
            error = self.operator_error(sid, operator, SessionState.REQUESTED)
            self.attempt("reject", error, lambda: world.operator_escrows[operator].reject(sid, reason))
            if error is None:
                self.model[sid].state = SessionState.CANCELLED
                self.refund(self.model[sid], self.model[sid].deposit)

        @precondition(lambda self: self.any_in(SessionState.REQUESTED))
        @rule(session=sessions, aim=MOSTLY, right=MOSTLY)
        @step
        def cancel(self, session: int, aim: bool, right: bool) -> None:
            sid = self.pick(session, SessionState.REQUESTED, aim)
            m, driver = self.model[sid], self.driver_for(sid, right)
            error = self.driver_error(sid, driver, SessionState.REQUESTED, m.opened_at + dep.start_timeout)
            self.attempt("cancel", error, lambda: world.driver_escrows[driver].cancel(sid))
            if error is None:
                m.state = SessionState.CANCELLED
                self.refund(m, m.deposit)

        @precondition(lambda self: self.any_in(SessionState.ACTIVE))
        @rule(session=sessions, aim=MOSTLY, right=MOSTLY)
        @step
        def reclaim(self, session: int, aim: bool, right: bool) -> None:
            sid = self.pick(session, SessionState.ACTIVE, aim)
            m, driver = self.model[sid], self.driver_for(sid, right)
            allowed_at = m.started_at + dep.max_duration + dep.reclaim_grace
            error = self.driver_error(sid, driver, SessionState.ACTIVE, allowed_at)
            self.attempt("reclaim", error, lambda: world.driver_escrows[driver].reclaim(sid))
            if error is None:
                m.state = SessionState.EXPIRED
                self.refund(m, m.deposit)

        @precondition(lambda self: self.any_in(SessionState.ACTIVE))
        @rule(session=sessions, aim=MOSTLY, right=MOSTLY)
        @step
        def request_stop(self, session: int, aim: bool, right: bool) -> None:
            sid = self.pick(session, SessionState.ACTIVE, aim)
            driver = self.driver_for(sid, right)
            error = self.driver_error(sid, driver, SessionState.ACTIVE, 0)
            receipt = self.attempt("request_stop", error, lambda: world.driver_escrows[driver].request_stop(sid))
            if error is None:
                stops = world.view.contract.events.StopRequested().process_receipt(receipt)
                assert [e["args"]["sessionId"] for e in stops] == [sid]

        @rule(station=st.integers(0, 3), tariff=TARIFFS, toggle=st.integers(0, 3))
        @step
        def change_station(self, station: int, tariff: Tariff, toggle: int) -> None:
            """A new tariff (running sessions keep theirs), or (toggle == 0) open/close the station."""
            s = self.stations[station]
            if toggle == 0:
                world.operator_escrows[s.operator].set_active(s.station_id, not s.active)
                s.active = not s.active
            else:
                world.operator_escrows[s.operator].set_tariff(s.station_id, tariff)
                s.tariff = tariff

        @rule(seconds=st.sampled_from([1, 299, 300, 3_599, 86_400, 89_999, 90_000]))
        @step
        def time_travel(self, seconds: int) -> None:
            set_next_timestamp(w3, latest_timestamp(w3) + seconds)
            w3.provider.make_request("evm_mine", [])

        # --------------------------------------------------------- invariants
        @invariant()
        @step
        def chain_matches_the_model(self) -> None:
            """Supply held by known accounts; escrow == open deposits; every session == the model."""
            head = w3.eth.block_number
            self.holders |= world.reader.transfer_recipients(self.scanned_block + 1, head)
            self.scanned_block = head
            accounts = sorted(self.holders | set(self.balances))
            balances, supply = world.reader.balances(accounts)
            assert sum(balances[a] for a in self.holders) == supply, "tokens outside the known holders"
            assert {a: balances[a] for a in self.balances} == self.balances
            open_deposits = sum(m.deposit for m in self.model.values() if m.state in OPEN)
            assert balances[dep.escrow] == self.base_escrow + open_deposits, "escrow != open deposits"
            for sid, raw in world.reader.sessions(list(self.model)).items():
                m = self.model[sid]
                driver, deposit, station_id, _, state, _, opened_at, started_at, meter_start, _ = raw
                assert (SessionState(state), deposit, driver) == (
                    m.state,
                    m.deposit,
                    world.drivers[m.driver].address,
                ), sid
                assert (station_id, opened_at) == (self.stations[m.station].station_id, m.opened_at), sid
                assert (started_at, meter_start) == (m.started_at, m.meter_start), sid

        def teardown(self) -> None:
            try:
                if self.healthy:  # a failed step already reported: only clean up
                    self.drain()
            finally:
                w3.provider.make_request("anvil_removeBlockTimestampInterval", [])
                w3.provider.make_request("evm_revert", [self.snapshot])
                for sender in net.senders.values():
                    sender.resync()

        def drain(self) -> None:
            """After every timeout, each driver takes back every open deposit: nothing stays stuck."""
            longest = dep.start_timeout + dep.max_duration + dep.reclaim_grace
            set_next_timestamp(w3, latest_timestamp(w3) + longest + 1)
            w3.provider.make_request("evm_mine", [])
            for sid, m in self.model.items():
                if m.state == SessionState.REQUESTED:
                    world.driver_escrows[m.driver].cancel(sid)
                elif m.state == SessionState.ACTIVE:
                    world.driver_escrows[m.driver].reclaim(sid)
                else:
                    continue
                self.refund(m, m.deposit)
                assert world.view.get_session(sid).state in (SessionState.CANCELLED, SessionState.EXPIRED)
            balances, _ = world.reader.balances(list(self.balances))
            assert balances[dep.escrow] == self.base_escrow == 0
            assert balances == self.balances

    return EscrowMachine


def build_world(net: Net) -> World:
    """Three funded drivers, two operators with two stations each (one flat, one timed tariff)."""
    world = World(
        net, drivers=net.drivers[3:6], operators=[net.operator, net.operator2], payouts=[net.payout, net.payout2]
    )
    for i, (operator, tariff) in enumerate([(0, TARIFF), (0, TIMED_TARIFF), (1, TIMED_TARIFF), (1, TARIFF)]):
        station_id = net.add_station(f"CP-PROP-{i}", connectors=2, tariff=tariff, operator=world.operators[operator])
        world.stations.append(ModelStation(station_id, operator, tariff))
    for driver in world.drivers:
        net.fund(driver, FUNDS)
    return world
