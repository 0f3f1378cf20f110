"""The shared bindings on a real Anvil: many in-flight transactions from one account, reverts that
name the custom error, an unreachable chain, and the encrypted keyfiles."""

from __future__ import annotations

import json
import stat
import time
from pathlib import Path

import pytest
from web3 import Web3

from ev_network.chain import connect
from ev_network.contracts import Escrow, SessionState, Token
from ev_network.devaccounts import dev_account
from ev_network.errors import ChainUnavailable, ContractRevert
from ev_network.keys import KeystoreError, create_keyfile, keyfile_address, load_keyfile
from ev_network.tx import TxSender, call_view
from tools.devchain import free_port
from tools.harness.chain import TARIFF, TOKEN, Net
from tools.harness.contracts import deploy_artifact, reverts


def test_twenty_transactions_in_flight_get_consecutive_nonces(clean_chain: Net) -> None:
    net = clean_chain
    driver = net.drivers[0]
    net.fund(driver, 100 * TOKEN, approve=False)
    sender = TxSender(net.w3, driver)
    token = Token(net.w3, net.deployment.token, sender)
    first_nonce = net.w3.eth.get_transaction_count(driver.address, "pending")
    recipients = [dev_account(30 + i).address for i in range(20)]
    hashes = [token.transfer(to, TOKEN + i, wait=False) for i, to in enumerate(recipients)]
    receipts = [sender.wait(h) for h in hashes]
    assert all(r["status"] == 1 for r in receipts)
    nonces = [net.w3.eth.get_transaction(h)["nonce"] for h in hashes]
    assert nonces == list(range(first_nonce, first_nonce + 20))
    assert net.w3.eth.get_transaction_count(driver.address) == first_nonce + 20
    assert [token.balance_of(to) for to in recipients] == [TOKEN + i for i in range(20)]


def test_sender_recovers_when_another_process_used_the_nonce(clean_chain: Net) -> None:
    net = clean_chain
    driver = net.drivers[1]
    net.fund(driver, 10 * TOKEN, approve=False)
    mine, theirs = TxSender(net.w3, driver), TxSender(net.w3, driver)
    Token(net.w3, net.deployment.token, mine).transfer(net.payout.address, 1)  # caches the next nonce
    Token(net.w3, net.deployment.token, theirs).transfer(net.payout.address, 1)  # takes it
    receipt = Token(net.w3, net.deployment.token, mine).transfer(net.payout.address, 1)
    assert receipt["status"] == 1
    assert net.w3.eth.get_transaction_count(driver.address) >= 3


def test_revert_names_the_custom_error_before_and_after_mining(clean_chain: Net) -> None:
    net = clean_chain
    escrow = net.escrow(net.drivers[0])
    with reverts("UnknownStation") as info:  # the gas estimate surfaces the revert: nothing is sent
        escrow.open(12345, 1, TOKEN)
    assert info.value.args_ == (12345,)
    assert "UnknownStation(12345)" in str(info.value)
    with reverts("UnknownStation"):
        call_view(escrow.contract.functions.getStation(777))
    # forced past the estimate: mined with status 0, and the receipt's revert is decoded too
    sender = net.sender(net.drivers[0])
    nonce_before = net.w3.eth.get_transaction_count(sender.address)
    tx_hash = sender.submit(escrow.contract.functions.open(12345, 1, TOKEN), gas=200_000)
    with reverts("UnknownStation"):
        sender.wait(tx_hash)
    assert net.w3.eth.get_transaction_count(sender.address) == nonce_before + 1


def test_closed_port_raises_chain_unavailable(net: Net) -> None:
    dead_url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ChainUnavailable, match="cannot reach the chain"):
        connect(dead_url, timeout=0.5)
    w3 = Web3(Web3.HTTPProvider(dead_url, request_kwargs={"timeout": 0.5}))
    sender = TxSender(w3, net.drivers[0])
    escrow = Escrow(w3, net.deployment, sender)
    with pytest.raises(ChainUnavailable):
        escrow.get_session(1)
    with pytest.raises(ChainUnavailable):
        escrow.open(1, 1, TOKEN)
    with pytest.raises(ChainUnavailable):
        sender.submit(escrow.contract.functions.open(1, 1, TOKEN), gas=100_000)


def test_keyfile_roundtrip(tmp_path: Path) -> None:
    key = dev_account(40).key
    path = tmp_path / "keys" / "operator.json"
    address = create_keyfile(path, "correct horse", key)
    assert address == dev_account(40).address
    assert keyfile_address(path).lower() == address.lower()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert key.hex().removeprefix("0x") not in path.read_text()
    assert json.loads(path.read_text())["crypto"]["kdf"] == "scrypt"
    account = load_keyfile(path, "correct horse")
    assert account.address == address and account.key == key


def test_keyfile_fresh_key_wrong_password_and_no_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "wallet.json"
    address = create_keyfile(path, "s3cret")
    assert Web3.is_checksum_address(address)
    content = path.read_text()
    with pytest.raises(KeystoreError, match="wrong password") as info:
        load_keyfile(path, "S3cret")
    assert "s3cret" not in str(info.value)
    with pytest.raises(KeystoreError, match="refusing to overwrite"):
        create_keyfile(path, "other", dev_account(41).key)
    assert path.read_text() == content
    assert load_keyfile(path, "s3cret").address == address
    with pytest.raises(KeystoreError, match="empty password"):
        create_keyfile(tmp_path / "empty.json", "")
    assert not (tmp_path / "empty.json").exists()
    with pytest.raises(KeystoreError, match="no keystore"):
        load_keyfile(tmp_path / "missing.json", "s3cret")
    (tmp_path / "garbage.json").write_text("not json")
    with pytest.raises(KeystoreError, match="not a readable keyfile"):
        load_keyfile(tmp_path / "garbage.json", "s3cret")


def test_contract_revert_without_data_is_still_an_error(clean_chain: Net) -> None:
    """A plain ERC-20 failure inside a call is decoded by name too (from the token's ABI)."""
    net = clean_chain
    poor = net.drivers[2]
    with pytest.raises(ContractRevert) as info:
        net.token(poor).transfer(net.payout.address, 1)
    assert info.value.name == "ERC20InsufficientBalance"
    assert info.value.args_ == (poor.address, 0, 1)


def test_time_gated_call_succeeds_once_the_deadline_passed_on_an_idle_chain(clean_chain: Net) -> None:
    """No block is mined while the driver waits (an idle automining dev chain): the gas estimate must
    judge the transaction as the next block would, not by the latest (old) block's timestamp."""
    net = clean_chain
    d = net.deployment
    escrow_address = deploy_artifact(
        net.sender(net.admin), "SessionEscrow", d.token, 1, 3600, 600, net.admin.address, d.meter_verifier
    )
    short = d.model_copy(update={"escrow": escrow_address, "start_timeout": 1})
    admin, operator, driver = (Escrow(net.w3, short, net.sender(a)) for a in (net.admin, net.operator, net.drivers[0]))
    admin.register_operator(net.operator.address, net.payout.address, "Quick Volt")
    station = operator.station_id_from(operator.add_station("CP-IDLE", 1, TARIFF))
    net.fund(net.drivers[0], 10 * TOKEN, approve=False)
    net.token(net.drivers[0]).approve(escrow_address, TOKEN)
    session_id = driver.session_id_from(driver.open(station, 1, TOKEN))
    allowed_at = driver.get_session(session_id).since + 1
    # wait on the chain's clock (after snapshot reverts it may lag the wall clock); mine nothing
    deadline = time.monotonic() + 15
    while net.w3.eth.get_block("pending")["timestamp"] < allowed_at + 1 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert net.w3.eth.get_block("latest")["timestamp"] < allowed_at, "a block was mined meanwhile"
    driver.cancel(session_id)
    assert driver.get_session(session_id).state == SessionState.CANCELLED
