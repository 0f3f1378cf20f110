"""Random sequences of mandate operations on a real Anvil (a Hypothesis state machine): whatever payers,
operators and an outsider do, in any order, no operator opens a session above a mandate's cap per session,
all sessions of a mandate together never lock more than its total, nothing opens or is pulled from a payer
after a revoke or past the expiry, only the payer changes a mandate, and tokens are conserved (the escrow
holds exactly the open deposits; an operator's payout gains exactly the costs it settled, each at most its
session's deposit). Each example starts from an evm snapshot and reverts it; blocks advance one second
each, so the machine knows the time every transaction sees (the latest block's + 1)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from ev_network.errors import ContractRevert
from ev_network.mandates import Mandates, token_ref
from tools.harness.chain import TOKEN, Net
from tools.harness.contracts import latest_timestamp

SALT = b"\x11" * 32
CARD, OTHER_CARD = "04A2B3C4D5E6F7", "0000DEAD"
AMOUNTS = st.integers(0, 30).map(lambda n: n * TOKEN // 2)
OUTCOMES: Counter[str] = Counter()  # "open: ok" or "open: <error>", over all examples


@dataclass
class ModelMandate:
    mandate_id: int
    payer: int
    named: set[int]
    cap: int
    total: int
    expiry: int
    committed: int = 0
    revoked: bool = False


@dataclass
class ModelSession:
    session_id: int
    mandate: int
    operator: int
    deposit: int
    cost: int | None = None  # None while open


@dataclass
class Ledger:
    mandates: list[ModelMandate] = field(default_factory=list)
    sessions: list[ModelSession] = field(default_factory=list)


def make_machine(net: Net, stations: list[int]) -> type[RuleBasedStateMachine]:
    payers = [net.drivers[7], net.drivers[8]]
    operators = [net.operator, net.operator2]
    payouts = [net.payout, net.payout2]
    outsider = net.drivers[9]

    class MandateMachine(RuleBasedStateMachine):
        @initialize()
        def start(self) -> None:
            self.snapshot = net.w3.provider.make_request("evm_snapshot", [])["result"]
            net.w3.provider.make_request("anvil_setBlockTimestampInterval", [1])
            net.w3.provider.make_request("evm_mine", [])
            self.ledger = Ledger()
            token = net.token()
            self.watched = [a.address for a in (*payers, *payouts)] + [net.deployment.escrow]
            self.start_balances = {a: token.balance_of(a) for a in self.watched}
            for payer in range(len(payers)):  # one usable mandate per payer to begin with
                self.create(payer=payer, named={0, 1}, cap=10 * TOKEN, total=25 * TOKEN, lifetime=120)

        def mandates(self, account) -> Mandates:
            return Mandates(net.w3, net.deployment, net.sender(account))

        def now(self) -> int:
            return latest_timestamp(net.w3) + 1  # what the next transaction sees

        @rule(
            payer=st.integers(0, 1),
            named=st.sampled_from([{0, 1}, {0, 1}, {0}, {1}, set()]),
            cap=AMOUNTS,
            total=AMOUNTS,
            lifetime=st.integers(2, 120),
        )
        def create(self, payer: int, named: set[int], cap: int, total: int, lifetime: int) -> None:
            expiry = self.now() + lifetime
            addresses = [operators[i].address for i in sorted(named)]
            receipt = self.mandates(payers[payer]).create(
                addresses, cap, total, expiry, token_refs=[token_ref(SALT, CARD)]
            )
            mandate_id = self.mandates(payers[payer]).mandate_id_from(receipt)
            self.ledger.mandates.append(ModelMandate(mandate_id, payer, set(named), cap, total, expiry))

        @precondition(lambda self: self.ledger.mandates)
        @rule(data=st.data(), operator=st.integers(0, 1), linked=st.sampled_from([True, True, True, False]))
        def open(self, data, operator: int, linked: bool) -> None:
            m = data.draw(st.sampled_from(self.ledger.mandates))
            left = max(m.total - m.committed, 0)
            edges = [m.cap, m.cap // 2, left, left + 1, m.cap + 1, 0]
            deposit = data.draw(st.one_of(st.sampled_from(edges), AMOUNTS))
            now = self.now()
            allowed = (
                not m.revoked
                and now < m.expiry
                and operator in m.named
                and linked
                and 0 < deposit <= m.cap
                and m.committed + deposit <= m.total
            )
            card = CARD if linked else OTHER_CARD
            try:
                receipt = self.mandates(operators[operator]).open_session(
                    m.mandate_id, token_ref(SALT, card), stations[operator], 1, deposit, 1, 0
                )
            except ContractRevert as refused:
                assert not allowed, f"open refused ({refused}) though the mandate allowed it"
                OUTCOMES[f"open: {refused.name}"] += 1
                return
            OUTCOMES["open: ok"] += 1
            assert allowed, f"an open the mandate forbids succeeded: {m}, operator {operator}, deposit {deposit}"
            m.committed += deposit
            session_id = self.mandates(operators[operator]).session_id_from(receipt)
            self.ledger.sessions.append(ModelSession(session_id, m.mandate_id, operator, deposit))

        @precondition(lambda self: any(s.cost is None for s in self.ledger.sessions))
        @rule(data=st.data(), energy=st.integers(0, 200_000))
        def settle(self, data, energy: int) -> None:
            s = data.draw(st.sampled_from([s for s in self.ledger.sessions if s.cost is None]))
            receipt = net.escrow(operators[s.operator]).settle(s.session_id, energy)
            (settled,) = net.escrow().contract.events.SessionSettled().process_receipt(receipt)
            cost = settled["args"]["cost"]
            assert cost <= s.deposit
            s.cost = cost

        @precondition(lambda self: self.ledger.mandates)
        @rule(data=st.data(), by_payer=st.booleans())
        def revoke(self, data, by_payer: bool) -> None:
            m = data.draw(st.sampled_from(self.ledger.mandates))
            account = payers[m.payer] if by_payer else data.draw(st.sampled_from([outsider, *operators]))
            try:
                self.mandates(account).revoke(m.mandate_id)
            except ContractRevert as refused:
                assert not by_payer and refused.name == "NotPayer"
                return
            assert by_payer
            m.revoked = True

        @precondition(lambda self: self.ledger.mandates)
        @rule(data=st.data(), cap=AMOUNTS, total=AMOUNTS, lifetime=st.integers(2, 40), by_payer=st.booleans())
        def set_limits(self, data, cap: int, total: int, lifetime: int, by_payer: bool) -> None:
            m = data.draw(st.sampled_from(self.ledger.mandates))
            account = payers[m.payer] if by_payer else data.draw(st.sampled_from([outsider, *operators]))
            expiry = self.now() + lifetime
            try:
                self.mandates(account).set_limits(m.mandate_id, cap, total, expiry)
            except ContractRevert as refused:
                assert not by_payer and refused.name == "NotPayer"
                return
            assert by_payer
            m.cap, m.total, m.expiry = cap, total, expiry

        @rule(seconds=st.integers(1, 30))
        def time_travel(self, seconds: int) -> None:
            net.w3.provider.make_request("evm_increaseTime", [seconds])
            net.w3.provider.make_request("evm_mine", [])

        @invariant()
        def mandates_match_the_model(self) -> None:
            for m in getattr(self, "ledger", Ledger()).mandates:
                on_chain = self.mandates(outsider).get(m.mandate_id)
                assert (on_chain.committed, on_chain.revoked) == (m.committed, m.revoked)
                deposits = sum(s.deposit for s in self.ledger.sessions if s.mandate == m.mandate_id)
                assert deposits == m.committed

        @invariant()
        def tokens_conserved(self) -> None:
            if not hasattr(self, "ledger"):
                return
            token = net.token()
            now = {a: token.balance_of(a) for a in self.watched}
            assert sum(now.values()) == sum(self.start_balances.values())
            open_deposits = sum(s.deposit for s in self.ledger.sessions if s.cost is None)
            escrow = net.deployment.escrow
            assert now[escrow] - self.start_balances[escrow] == open_deposits
            for i, payout in enumerate(payouts):
                settled = [s for s in self.ledger.sessions if s.operator == i and s.cost is not None]
                assert now[payout.address] - self.start_balances[payout.address] == sum(s.cost for s in settled)
            payer_of = {m.mandate_id: m.payer for m in self.ledger.mandates}
            for p, payer in enumerate(payers):
                # a payer pays exactly its open deposits and its settled costs: nothing else is ever pulled
                own = [s for s in self.ledger.sessions if payer_of[s.mandate] == p]
                paid = sum(s.deposit if s.cost is None else s.cost for s in own)
                assert self.start_balances[payer.address] - now[payer.address] == paid

        def teardown(self) -> None:
            if hasattr(self, "snapshot"):
                net.w3.provider.make_request("anvil_removeBlockTimestampInterval", [])
                net.w3.provider.make_request("evm_revert", [self.snapshot])
                for sender in net.senders.values():
                    sender.resync()

    return MandateMachine


def test_no_sequence_lets_an_operator_take_more_than_a_mandate_allows(net: Net) -> None:
    snapshot = net.w3.provider.make_request("evm_snapshot", [])["result"]
    try:
        stations = [net.add_station("CP-MANDATE-A"), net.add_station("CP-MANDATE-B", operator=net.operator2)]
        for payer in (net.drivers[7], net.drivers[8]):
            net.fund(payer, 1000 * TOKEN)
        machine = make_machine(net, stations)
        run_state_machine_as_test(
            machine,
            settings=settings(max_examples=15, stateful_step_count=30, deadline=None, database=None, derandomize=True),
        )
    finally:
        net.w3.provider.make_request("evm_revert", [snapshot])
        for sender in net.senders.values():
            sender.resync()
    refusals = {name for name in OUTCOMES if name != "open: ok"}
    assert OUTCOMES["open: ok"] > 0 and len(refusals) >= 3, f"the runs exercised too little: {OUTCOMES}"
