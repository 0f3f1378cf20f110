"""The EV token (minting by role) and opening a session with an EIP-2612 permit, on a real Anvil."""

from __future__ import annotations

from web3 import Web3

from ev_network.contracts import SessionState
from tools.harness.chain import TOKEN, Net
from tools.harness.contracts import latest_timestamp, reverts

MINTER_ROLE = Web3.keccak(text="MINTER_ROLE")
DEPOSIT = 15 * TOKEN


def _nonce(net: Net, owner: str) -> int:
    return net.token().contract.functions.nonces(owner).call()


def test_only_the_minter_role_mints(clean_chain: Net) -> None:
    net = clean_chain
    driver = net.drivers[0]
    supply = net.token().total_supply()
    with reverts("AccessControlUnauthorizedAccount") as info:
        net.token(driver).mint(driver.address, TOKEN)
    assert info.value.args_ == (driver.address, MINTER_ROLE)
    with reverts("AccessControlUnauthorizedAccount"):
        net.token(net.operator).mint(net.operator.address, TOKEN)
    assert net.token().total_supply() == supply
    net.token(net.admin).mint(driver.address, 3 * TOKEN)
    assert net.token().total_supply() == supply + 3 * TOKEN
    assert net.token().balance_of(driver.address) == 3 * TOKEN
    assert net.token().supports_permit()


def test_open_with_a_valid_permit_needs_no_approval(clean_chain: Net) -> None:
    net = clean_chain
    driver, escrow_address = net.drivers[0], net.deployment.escrow
    station = net.add_station("CP-PERMIT")
    net.fund(driver, 100 * TOKEN, approve=False)
    token = net.token()
    assert token.allowance(driver.address, escrow_address) == 0
    nonce = _nonce(net, driver.address)
    permit = token.sign_permit(driver, escrow_address, DEPOSIT, latest_timestamp(net.w3) + 3600)
    escrow = net.escrow(driver)
    receipt = escrow.open_with_permit(station, 1, DEPOSIT, permit)
    session = net.escrow().get_session(escrow.session_id_from(receipt))
    assert (session.state, session.deposit, session.driver) == (SessionState.REQUESTED, DEPOSIT, driver.address)
    assert _nonce(net, driver.address) == nonce + 1
    assert token.allowance(driver.address, escrow_address) == 0
    assert token.balance_of(driver.address) == 100 * TOKEN - DEPOSIT
    assert token.balance_of(escrow_address) == DEPOSIT


def test_a_permit_above_the_deposit_leaves_a_standing_allowance_only_its_owner_can_use(clean_chain: Net) -> None:
    net = clean_chain
    driver, other, escrow_address = net.drivers[0], net.drivers[1], net.deployment.escrow
    station = net.add_station("CP-PERMIT")
    net.fund(driver, 100 * TOKEN, approve=False)
    net.fund(other, 100 * TOKEN, approve=False)
    token, escrow = net.token(), net.escrow(driver)
    unlimited = 2**256 - 1
    permit = token.sign_permit(driver, escrow_address, unlimited, latest_timestamp(net.w3) + 3600)
    first = escrow.session_id_from(escrow.open_with_permit(station, 1, DEPOSIT, permit, allowance=unlimited))
    assert token.allowance(driver.address, escrow_address) == unlimited
    # the next session opens without a permit; the allowance stays (the token never decrements "unlimited")
    second = escrow.session_id_from(escrow.open(station, 2, DEPOSIT))
    assert token.allowance(driver.address, escrow_address) == unlimited
    assert token.balance_of(driver.address) == 100 * TOKEN - 2 * DEPOSIT
    assert {net.escrow().get_session(sid).driver for sid in (first, second)} == {driver.address}
    # someone else's open draws on their own tokens and allowance, never the driver's
    with reverts("ERC20InsufficientAllowance"):
        net.escrow(other).open(station, 1, DEPOSIT)
    assert token.balance_of(driver.address) == 100 * TOKEN - 2 * DEPOSIT
    # a permit below the deposit does not let the open through
    small = token.sign_permit(other, escrow_address, DEPOSIT - 1, latest_timestamp(net.w3) + 3600)
    with reverts("ERC20InsufficientAllowance"):
        net.escrow(other).open_with_permit(station, 1, DEPOSIT, small, allowance=DEPOSIT - 1)
    assert token.balance_of(other.address) == 100 * TOKEN


def test_replayed_or_invalid_permit_without_allowance_reverts(clean_chain: Net) -> None:
    net = clean_chain
    driver, thief, escrow_address = net.drivers[0], net.drivers[1], net.deployment.escrow
    station = net.add_station("CP-PERMIT")
    net.fund(driver, 100 * TOKEN, approve=False)
    net.fund(thief, 100 * TOKEN, approve=False)
    token, escrow = net.token(), net.escrow(driver)
    deadline = latest_timestamp(net.w3) + 3600
    permit = token.sign_permit(driver, escrow_address, DEPOSIT, deadline)
    escrow.open_with_permit(station, 1, DEPOSIT, permit)

    with reverts("ERC20InsufficientAllowance") as info:  # replay: the nonce is used up
        escrow.open_with_permit(station, 1, DEPOSIT, permit)
    assert info.value.args_ == (escrow_address, 0, DEPOSIT)
    fresh = token.sign_permit(driver, escrow_address, DEPOSIT, deadline)
    with reverts("ERC20InsufficientAllowance"):  # a permit for less than the deposit
        escrow.open_with_permit(station, 1, DEPOSIT + 1, fresh)
    with reverts("ERC20InsufficientAllowance"):  # someone else's signature
        net.escrow(thief).open_with_permit(station, 1, DEPOSIT, fresh)
    expired = token.sign_permit(driver, escrow_address, DEPOSIT, latest_timestamp(net.w3) - 1)
    with reverts("ERC20InsufficientAllowance"):
        escrow.open_with_permit(station, 1, DEPOSIT, expired)
    _, v, r, _ = fresh
    with reverts("ERC20InsufficientAllowance"):  # tampered signature
        escrow.open_with_permit(station, 1, DEPOSIT, (deadline, v, r, bytes(31) + b"\x01"))
    assert token.balance_of(escrow_address) == DEPOSIT
    assert token.balance_of(thief.address) == 100 * TOKEN
    # the unused fresh permit still works
    escrow.open_with_permit(station, 2, DEPOSIT, fresh)
    assert token.balance_of(escrow_address) == 2 * DEPOSIT


def test_failed_permit_is_ignored_when_an_allowance_exists(clean_chain: Net) -> None:
    net = clean_chain
    driver, escrow_address = net.drivers[0], net.deployment.escrow
    station = net.add_station("CP-PERMIT")
    net.fund(driver, 100 * TOKEN, approve=False)
    token = net.token()
    net.token(driver).approve(escrow_address, 2 * DEPOSIT)
    nonce = _nonce(net, driver.address)
    bogus = (latest_timestamp(net.w3) + 3600, 27, b"\x11" * 32, b"\x22" * 32)
    net.escrow(driver).open_with_permit(station, 1, DEPOSIT, bogus)
    assert _nonce(net, driver.address) == nonce
    assert token.allowance(driver.address, escrow_address) == DEPOSIT
    assert token.balance_of(escrow_address) == DEPOSIT


def test_front_run_permit_still_lets_the_driver_open(clean_chain: Net) -> None:
    """Someone who copies the permit from the mempool and submits it first cannot block the session."""
    net = clean_chain
    driver, relayer, escrow_address = net.drivers[0], net.drivers[1], net.deployment.escrow
    station = net.add_station("CP-PERMIT")
    net.fund(driver, 100 * TOKEN, approve=False)
    permit = net.token().sign_permit(driver, escrow_address, DEPOSIT, latest_timestamp(net.w3) + 3600)
    deadline, v, r, s = permit
    front_runner = net.token(relayer)
    front_runner._send(
        front_runner.contract.functions.permit(driver.address, escrow_address, DEPOSIT, deadline, v, r, s), True
    )
    assert net.token().allowance(driver.address, escrow_address) == DEPOSIT
    net.escrow(driver).open_with_permit(station, 1, DEPOSIT, permit)
    assert net.token().allowance(driver.address, escrow_address) == 0
    assert net.token().balance_of(escrow_address) == DEPOSIT
