"""Payment mandates on a real Anvil: a payer lets named operators open sessions against its tokens within a
cap per session, a total and an expiry; a card is linked by a salted reference; every refusal has its own
error and moves no token; refunds go to the payer."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from web3 import Web3

from ev_network.contracts import SessionState
from ev_network.mandates import Mandates, new_salt, token_ref
from ev_network.pricing import price
from tools.harness.chain import TARIFF, TOKEN, Env
from tools.harness.contracts import events, latest_timestamp, reverts

CAP, TOTAL = 20 * TOKEN, 50 * TOKEN
CARD = "04A2B3C4D5E6F7"


@dataclass
class Setup:
    env: Env
    salt: bytes
    mandate: int

    def payer(self) -> Mandates:
        return Mandates(self.env.net.w3, self.env.net.deployment, self.env.net.sender(self.env.driver))

    def operator(self, account=None) -> Mandates:
        net = self.env.net
        return Mandates(net.w3, net.deployment, net.sender(account or net.operator))

    def open(self, deposit: int = CAP, ref: bytes | None = None, account=None, station: int | None = None):
        ref = token_ref(self.salt, CARD) if ref is None else ref
        return self.operator(account).open_session(
            self.mandate, ref, station or self.env.station, 1, deposit, 4242, 1_000
        )


@pytest.fixture
def setup(env: Env) -> Setup:
    salt = new_salt()
    payer = Mandates(env.net.w3, env.net.deployment, env.net.sender(env.driver))
    expiry = latest_timestamp(env.net.w3) + 30 * 86400
    receipt = payer.create([env.net.operator.address], CAP, TOTAL, expiry, token_refs=[token_ref(salt, CARD)])
    return Setup(env, salt, payer.mandate_id_from(receipt))


def test_a_named_operator_opens_a_started_session_and_the_payer_gets_the_refund(setup: Setup) -> None:
    env, net = setup.env, setup.env.net
    before = env.balances()
    receipt = setup.open(deposit=15 * TOKEN)
    session_id = setup.operator().session_id_from(receipt)
    session = net.escrow().get_session(session_id)
    assert (session.driver, session.state, session.deposit, session.meter_start) == (
        env.driver.address,
        SessionState.ACTIVE,
        15 * TOKEN,
        1_000,
    )
    assert env.balances()["driver"] == before["driver"] - 15 * TOKEN
    (opened,) = events(setup.operator(), receipt, "MandateSessionOpened")
    assert (opened["deposit"], opened["committed"], opened["tokenRef"]) == (
        15 * TOKEN,
        15 * TOKEN,
        token_ref(setup.salt, CARD),
    )
    assert [e["sessionId"] for e in events(net.escrow(), receipt, "SessionStarted")] == [session_id]
    assert setup.payer().get(setup.mandate).left == TOTAL - 15 * TOKEN

    net.escrow(net.operator).settle(session_id, 1_000 + 4_000)  # settles as any session
    cost = price(TARIFF, 4_000)
    after = env.balances()
    assert after["payout"] - before["payout"] == cost
    assert after["driver"] == before["driver"] - cost  # the refund went back to the payer


def test_the_card_reference_does_not_reveal_the_card() -> None:
    salt = new_salt()
    assert token_ref(salt, CARD) == token_ref(salt, CARD.lower())
    assert token_ref(salt, CARD) != token_ref(new_salt(), CARD)  # two payers' refs of one card are unrelated
    assert token_ref(salt, CARD) != Web3.keccak(text=CARD)  # not the plain, brute-forceable hash


def test_each_refusal_has_its_own_error_and_moves_nothing(setup: Setup) -> None:
    env, net = setup.env, setup.env.net
    payer = setup.payer()
    before = env.balances()

    with reverts("OverSessionCap") as info:
        setup.open(deposit=CAP + 1)
    assert info.value.args_ == (setup.mandate, CAP + 1, CAP)
    with reverts("OperatorNotNamed"):
        setup.open(account=net.operator2)
    with reverts("TokenNotLinked"):
        setup.open(ref=token_ref(setup.salt, "0000DEAD"))
    with reverts("UnknownMandate"):
        Mandates(net.w3, net.deployment, net.sender(net.operator)).open_session(
            999, b"\0" * 32, env.station, 1, 1, 1, 0
        )
    other_station = net.add_station("CP-OF-OPERATOR-2", operator=net.operator2)
    payer.set_operator(setup.mandate, net.operator2.address, True)
    with reverts("NotStationOperator"):  # a named operator opens only at its own stations
        setup.open(account=net.operator2, station=setup.env.station)
    with reverts("ZeroDeposit"):
        setup.open(deposit=0)
    with reverts("NotPayer"):
        setup.operator().revoke(setup.mandate)
    direct = net.escrow().contract.functions.openActiveSession(
        env.driver.address, net.operator.address, env.station, 1, 1, 1, 0
    )
    with reverts("AccessControlUnauthorizedAccount"):  # only the mandates contract opens for payers
        net.sender(net.operator).transact(direct)
    assert env.balances() == before

    setup.open(deposit=CAP)
    setup.open(deposit=CAP, account=net.operator2, station=other_station)
    with reverts("OverTotal") as info:
        setup.open(deposit=CAP)
    assert info.value.args_ == (setup.mandate, CAP, TOTAL - 2 * CAP)
    setup.open(deposit=TOTAL - 2 * CAP)  # exactly what is left
    with reverts("OverTotal"):
        setup.open(deposit=1)
    assert env.balances()["driver"] == before["driver"] - TOTAL


def test_revoked_or_expired_opens_nothing_and_running_sessions_still_settle(setup: Setup) -> None:
    env, net = setup.env, setup.env.net
    payer = setup.payer()
    running = setup.operator().session_id_from(setup.open(deposit=10 * TOKEN))
    receipt = payer.revoke(setup.mandate)
    assert events(payer, receipt, "MandateRevoked")[0]["mandateId"] == setup.mandate
    with reverts("MandateIsRevoked"):
        setup.open(deposit=1)
    net.escrow(net.operator).settle(running, 2_000)  # its deposit was locked before: it settles as usual

    expiry = latest_timestamp(net.w3) + 100
    second = payer.mandate_id_from(payer.create([net.operator.address], CAP, TOTAL, expiry, any_token=True))
    with reverts("InvalidExpiry"):
        payer.set_limits(second, CAP, TOTAL, latest_timestamp(net.w3))
    net.time_travel(100)
    with reverts("MandateExpired") as info:
        setup.operator().open_session(second, b"\0" * 32, env.station, 1, TOKEN, 1, 0)
    assert info.value.args_ == (second, expiry)


def test_an_emsp_mandate_takes_any_token_and_is_funded_by_permit(env: Env) -> None:
    net = env.net
    emsp = net.drivers[2]
    net.fund(emsp, approve=False)
    token = net.token(emsp)
    permit = token.sign_permit(emsp, net.deployment.escrow, TOTAL, latest_timestamp(net.w3) + 3600)
    mandates = Mandates(net.w3, net.deployment, net.sender(emsp))
    expiry = latest_timestamp(net.w3) + 86400
    receipt = mandates.create([net.operator.address], CAP, TOTAL, expiry, any_token=True, permit=permit)
    mandate_id = mandates.mandate_id_from(receipt)
    assert token.allowance(emsp.address, net.deployment.escrow) == TOTAL
    operator = Mandates(net.w3, net.deployment, net.sender(net.operator))
    ref = token_ref(new_salt(), "NL-EMS-C12345678")  # any of the eMSP's tokens
    receipt = operator.open_session(mandate_id, ref, env.station, 2, CAP, 77, 0)
    assert net.escrow().get_session(operator.session_id_from(receipt)).driver == emsp.address
    assert token.allowance(emsp.address, net.deployment.escrow) == TOTAL - CAP


def test_every_change_is_an_event(setup: Setup) -> None:
    net = setup.env.net
    payer = setup.payer()
    ref = token_ref(setup.salt, "11223344")
    expiry = latest_timestamp(net.w3) + 7 * 86400
    changes = [
        (payer.set_limits(setup.mandate, TOKEN, 2 * TOKEN, expiry), "MandateLimitsSet", (TOKEN, 2 * TOKEN, expiry)),
        (
            payer.set_operator(setup.mandate, net.operator2.address, True),
            "MandateOperatorSet",
            (net.operator2.address, True),
        ),
        (payer.set_token(setup.mandate, ref, True), "MandateTokenSet", (ref, True)),
        (payer.set_token(setup.mandate, ref, False), "MandateTokenSet", (ref, False)),
    ]
    for receipt, name, args in changes:
        (event,) = events(payer, receipt, name)
        assert tuple(event.values())[1:] == args
    assert not payer.is_linked(setup.mandate, ref)
    assert payer.is_operator(setup.mandate, net.operator2.address)
