"""The escrow's state machine as a Hypothesis RuleBasedStateMachine, checked against the Python model
of tools/harness/property_model.py; used by tests/contracts/test_property.py.

Three drivers, each opening several concurrent sessions (one per lane) and reusing lanes once their
sessions end; two operators with two stations each. Every call must succeed or revert with exactly
the custom error and arguments the model predicts; every open must return the id the model predicts
(driver, first free lane, the lane's next sequence number). After every step: the token's supply is
held by the accounts that ever received tokens; the escrow holds exactly the deposits of open
sessions; every session id the machine ever saw reads as the model says (Closed once its lane holds
a later session). At the end every open session is drained by its driver after the timeouts, so no
deposit stays stuck. Runs on the real Anvil; each example starts from an evm snapshot and reverts
it. Block timestamps advance exactly one second per block while a machine runs
(``anvil_setBlockTimestampInterval``), so the model knows every block's time: a transaction (and
its gas estimate, which runs against the pending block) sees the latest block's time + 1."""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, multiple, precondition, rule

from ev_network.contracts import CancelReason, SessionState
from ev_network.pricing import Tariff, settlement
from ev_network.tx import call_view
from tools.harness.chain import TOKEN, transaction_id_for
from tools.harness.contracts import ZERO, latest_timestamp, reverts, set_next_timestamp
from tools.harness.property_model import OPEN, UNKNOWN_KINDS, Expected, Model, ModelSession, World

MOSTLY = st.sampled_from([True, True, True, False])  # the right session / actor, usually
TARIFFS = st.builds(
    Tariff,
    price_per_kwh=st.integers(0, 2 * TOKEN),
    session_fee=st.integers(0, 2 * TOKEN),
    time_fee_per_hour=st.sampled_from([0, 1, TOKEN, 3 * TOKEN + 7]),
)
ACTIONS = ("start", "settle", "reject", "cancel", "reclaim", "request_stop")

OUTCOMES: Counter[str] = Counter()  # "rule: ok" or "rule: ExpectedError", over all examples
LANE_USE: Counter[str] = Counter()  # successful opens: "first" (lane 0, seq 1), "concurrent" (lane > 0), "reused"


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


def make_machine(world: World) -> type[RuleBasedStateMachine]:
    net, w3 = world.net, world.net.w3
    dep = net.deployment

    class EscrowMachine(RuleBasedStateMachine):
        sessions = Bundle("sessions")

        def __init__(self) -> None:
            super().__init__()
            self.snapshot = w3.provider.make_request("evm_snapshot", [])["result"]
            w3.provider.make_request("anvil_setBlockTimestampInterval", [1])
            self.model = Model(world)
            self.tariff_count = call_view(world.view.contract.functions.tariffCount())
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

        def refund(self, m: ModelSession, amount: int) -> None:
            self.move(dep.escrow, amount, world.drivers[m.driver].address)

        def attempt(self, action: str, expected: Expected, call: Callable[[], Any]) -> Any:
            """Run ``call``: it must revert with the ``expected`` error and arguments, or succeed when
            ``expected`` is None."""
            OUTCOMES[f"{action}: {expected[0] if expected else 'ok'}"] += 1
            if expected is None:
                return call()
            name, args = expected
            with reverts(name) as info:
                call()
            assert info.value.args_ == args, f"{action}: {name}{info.value.args_} != {name}{args}"
            return None

        def pick(self, drawn: int, wanted: SessionState, aim: bool) -> int:
            """Mostly (``aim``) a session in the ``wanted`` state, else the one drawn from the bundle
            (possibly Closed by now): random sessions alone would almost never walk a session to its end."""
            fitting = sorted(sid for sid, m in self.model.sessions.items() if m.state == wanted)
            return fitting[drawn % len(fitting)] if aim and fitting else drawn

        def operator_for(self, sid: int, right: bool) -> int:
            """The operator of the session's station, or the other one."""
            own = self.model.stations[self.model.sessions[sid].station].operator
            return own if right else 1 - own

        def driver_for(self, sid: int, right: bool) -> int:
            """The session's driver, or another one."""
            own = self.model.sessions[sid].driver
            return own if right else (own + 1) % len(world.drivers)

        def apply_settle(self, sid: int, meter_stop: int, ts: int) -> int:
            m = self.model.sessions[sid]
            cost, refund = settlement(m.tariff, m.deposit, meter_stop - m.meter_start, ts - m.since, dep.max_duration)
            m.state, m.since = SessionState.SETTLED, ts
            self.refund(m, refund)
            return cost

        def end(self, m: ModelSession, state: SessionState, ts: int) -> None:
            """Cancelled or expired: the whole deposit goes back to the driver."""
            m.state, m.since = state, ts
            self.refund(m, m.deposit)

        # -------------------------------------------------------------- rules
        @rule(
            target=sessions,
            driver=st.sampled_from([0, 0, 0, 1, 2]),  # driver 0 mostly: more concurrent lanes and reuse
            station=st.integers(0, 3),
            connector=st.sampled_from([1, 2, 1, 2, 1, 2, 0, 3]),  # mostly valid
            deposit=st.sampled_from([TOKEN // 2, 5 * TOKEN, 20 * TOKEN, 60 * TOKEN, 1, 0]),
        )
        @step
        def open(self, driver: int, station: int, connector: int, deposit: int) -> Any:
            escrow = world.driver_escrows[driver]
            expected = self.model.open_error(station, connector, deposit)
            ts = self.next_ts()
            station_id = self.model.stations[station].station_id
            receipt = self.attempt("open", expected, lambda: escrow.open(station_id, connector, deposit))
            if expected:
                return multiple()
            sid = escrow.session_id_from(receipt)
            assert sid == self.model.open(driver, station, deposit, ts), "not the driver's first free lane"
            m = self.model.sessions[sid]
            LANE_USE["reused" if m.seq > 1 else "concurrent" if m.lane else "first"] += 1
            self.move(world.drivers[driver].address, deposit, dep.escrow)
            return sid

        @precondition(lambda self: self.model.any_in(SessionState.REQUESTED))
        @rule(session=sessions, aim=MOSTLY, right=MOSTLY, meter=st.integers(0, 10**9))
        @step
        def start(self, session: int, aim: bool, right: bool, meter: int) -> None:
            sid = self.pick(session, SessionState.REQUESTED, aim)
            operator = self.operator_for(sid, right)
            expected = self.model.operator_error(sid, operator, SessionState.REQUESTED)
            ts = self.next_ts()
            escrow = world.operator_escrows[operator]
            self.attempt("start", expected, lambda: escrow.start(sid, transaction_id_for(sid), meter))
            if expected is None:
                m = self.model.sessions[sid]
                m.state, m.since, m.meter_start = SessionState.ACTIVE, ts, meter

        @precondition(lambda self: self.model.any_in(SessionState.ACTIVE))
        @rule(session=sessions, aim=MOSTLY, right=MOSTLY, energy=st.integers(-3, 200_000))
        @step
        def settle(self, session: int, aim: bool, right: bool, energy: int) -> None:
            sid = self.pick(session, SessionState.ACTIVE, aim)
            operator = self.operator_for(sid, right)
            meter_stop = max(self.model.sessions[sid].meter_start + energy, 0)
            expected = self.model.settle_error(sid, operator, meter_stop)
            ts = self.next_ts()
            self.attempt("settle", expected, lambda: world.operator_escrows[operator].settle(sid, meter_stop))
            if expected is None:
                self.move(dep.escrow, self.apply_settle(sid, meter_stop, ts), world.payouts[operator].address)

        @precondition(lambda self: self.model.any_in(SessionState.ACTIVE))
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
                for sid, m in sorted(self.model.sessions.items())
                if m.state == SessionState.ACTIVE and self.operator_for(sid, True) == operator
            ]
            batch = own if aim and own else drawn
            stops = [self.model.sessions[s].meter_start + energy for s in batch]
            expected: Expected = None
            for i, (sid, stop) in enumerate(zip(batch, stops, strict=True)):
                if sid in batch[:i]:  # the same session twice: the second settle finds it Settled
                    expected = ("InvalidState", (sid, SessionState.SETTLED))
                else:
                    expected = self.model.settle_error(sid, operator, stop)
                if expected:
                    break
            ts = self.next_ts()
            self.attempt("settle_batch", expected, lambda: world.operator_escrows[operator].settle_batch(batch, stops))
            if expected is None:
                total = sum(self.apply_settle(sid, stop, ts) for sid, stop in zip(batch, stops, strict=True))
                self.move(dep.escrow, total, world.payouts[operator].address)

        @precondition(lambda self: self.model.any_in(SessionState.REQUESTED))
        @rule(session=sessions, aim=MOSTLY, right=MOSTLY, reason=st.sampled_from(list(CancelReason)))
        @step
        def reject(self, session: int, aim: bool, right: bool, reason: CancelReason) -> None:
            sid = self.pick(session, SessionState.REQUESTED, aim)
            operator = self.operator_for(sid, right)
            expected = self.model.operator_error(sid, operator, SessionState.REQUESTED)
            ts = self.next_ts()
            self.attempt("reject", expected, lambda: world.operator_escrows[operator].reject(sid, reason))
            if expected is None:
                self.end(self.model.sessions[sid], SessionState.CANCELLED, ts)

        @precondition(lambda self: self.model.any_in(SessionState.REQUESTED))
        @rule(session=sessions, aim=MOSTLY, right=MOSTLY)
        @step
        def cancel(self, session: int, aim: bool, right: bool) -> None:
            sid = self.pick(session, SessionState.REQUESTED, aim)
            m, driver, ts = self.model.sessions[sid], self.driver_for(sid, right), self.next_ts()
            allowed_at = m.since + dep.start_timeout
            expected = self.model.driver_error(sid, driver, SessionState.REQUESTED, allowed_at, ts)
            self.attempt("cancel", expected, lambda: world.driver_escrows[driver].cancel(sid))
            if expected is None:
                self.end(m, SessionState.CANCELLED, ts)

        @precondition(lambda self: self.model.any_in(SessionState.ACTIVE))
        @rule(session=sessions, aim=MOSTLY, right=MOSTLY)
        @step
        def reclaim(self, session: int, aim: bool, right: bool) -> None:
            sid = self.pick(session, SessionState.ACTIVE, aim)
            m, driver, ts = self.model.sessions[sid], self.driver_for(sid, right), self.next_ts()
            allowed_at = m.since + dep.max_duration + dep.reclaim_grace
            expected = self.model.driver_error(sid, driver, SessionState.ACTIVE, allowed_at, ts)
            self.attempt("reclaim", expected, lambda: world.driver_escrows[driver].reclaim(sid))
            if expected is None:
                self.end(m, SessionState.EXPIRED, ts)

        @precondition(lambda self: self.model.any_in(SessionState.ACTIVE))
        @rule(session=sessions, aim=MOSTLY, right=MOSTLY)
        @step
        def request_stop(self, session: int, aim: bool, right: bool) -> None:
            sid = self.pick(session, SessionState.ACTIVE, aim)
            driver = self.driver_for(sid, right)
            expected = self.model.driver_error(sid, driver, SessionState.ACTIVE, 0, self.next_ts())
            receipt = self.attempt("request_stop", expected, lambda: world.driver_escrows[driver].request_stop(sid))
            if expected is None:
                stops = world.view.contract.events.StopRequested().process_receipt(receipt)
                station_id = self.model.stations[self.model.sessions[sid].station].station_id
                assert [(e["args"]["sessionId"], e["args"]["stationId"]) for e in stops] == [(sid, station_id)]

        @rule(
            driver=st.integers(0, 2),
            kind=st.sampled_from(UNKNOWN_KINDS),
            action=st.sampled_from(ACTIONS),
            salt=st.integers(0, 255),
        )
        @step
        def unknown_id(self, driver: int, kind: str, action: str, salt: int) -> None:
            """An id that names no session reads None, and every call on it is InvalidState(None)."""
            sid = self.model.unknown_id(driver, kind, salt)
            assert world.reader.sessions([sid])[sid] == (ZERO, *(0,) * 8), (kind, hex(sid))
            operator, own = world.operator_escrows[salt % 2], world.driver_escrows[driver]
            call = {
                "start": lambda: operator.start(sid, 1, 0),
                "settle": lambda: operator.settle(sid, 1),
                "reject": lambda: operator.reject(sid, CancelReason.OTHER),
                "cancel": lambda: own.cancel(sid),
                "reclaim": lambda: own.reclaim(sid),
                "request_stop": lambda: own.request_stop(sid),
            }[action]
            self.attempt("unknown_id", ("InvalidState", (sid, SessionState.NONE)), call)

        @rule(station=st.integers(0, 3), tariff=TARIFFS, toggle=st.integers(0, 3))
        @step
        def change_station(self, station: int, tariff: Tariff, toggle: int) -> None:
            """A new tariff (running sessions keep theirs), or (toggle == 0) open/close the station."""
            s = self.model.stations[station]
            if toggle == 0:
                world.operator_escrows[s.operator].set_active(s.station_id, not s.active)
                s.active = not s.active
            else:
                world.operator_escrows[s.operator].set_tariff(s.station_id, tariff)
                self.tariff_count += 1
                s.tariff, s.tariff_id = tariff, self.tariff_count

        @rule(seconds=st.sampled_from([1, 299, 300, 3_599, 86_400, 89_999, 90_000]))
        @step
        def time_travel(self, seconds: int) -> None:
            set_next_timestamp(w3, latest_timestamp(w3) + seconds)
            w3.provider.make_request("evm_mine", [])

        # --------------------------------------------------------- invariants
        @invariant()
        @step
        def chain_matches_the_model(self) -> None:
            """Supply held by known accounts; escrow == open deposits; every session id == the model."""
            head = w3.eth.block_number
            self.holders |= world.reader.transfer_recipients(self.scanned_block + 1, head)
            self.scanned_block = head
            accounts = sorted(self.holders | set(self.balances))
            balances, supply = world.reader.balances(accounts)
            assert sum(balances[a] for a in self.holders) == supply, "tokens outside the known holders"
            assert {a: balances[a] for a in self.balances} == self.balances
            open_deposits = sum(m.deposit for m in self.model.sessions.values() if m.state in OPEN)
            assert balances[dep.escrow] == self.base_escrow + open_deposits, "escrow != open deposits"
            for sid, raw in world.reader.sessions(list(self.model.sessions)).items():
                assert raw == self.model.expected_view(sid), hex(sid)

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
            for sid, m in self.model.sessions.items():
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
