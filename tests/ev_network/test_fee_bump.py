"""Fee bumping (issue 9, part 3): a transaction that stays unmined is sent again with the same nonce
and at least 12.5% more fee; whichever version is mined, its receipt is found. On its own Anvil with
automatic mining switched off (``evm_setAutomine false``), so nothing is mined until the test says."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from web3 import Web3

from ev_network.chain import connect
from ev_network.devaccounts import dev_account
from ev_network.tx import TxSender
from tools.devchain import Anvil

RECIPIENT = "0x000000000000000000000000000000000000dEaD"


@pytest.fixture
def paused() -> Iterator[Web3]:
    """A fresh Anvil that mines only on ``evm_mine``."""
    with Anvil(accounts=3) as node:
        w3 = connect(node.url)
        w3.provider.make_request("evm_setAutomine", [False])
        yield w3


def mine(w3: Web3) -> None:
    w3.provider.make_request("evm_mine", [])


def until(check, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "not in time"
        time.sleep(0.02)


def transfer(w3: Web3, nonce: int, tip: int, cap: int) -> dict:
    return {
        "to": RECIPIENT,
        "value": 1,
        "gas": 21000,
        "chainId": w3.eth.chain_id,
        "nonce": nonce,
        "maxPriorityFeePerGas": tip,
        "maxFeePerGas": cap,
    }


def test_an_unmined_transfer_is_resent_with_a_higher_fee_and_one_version_is_mined(paused: Web3) -> None:
    w3 = paused
    sender = TxSender(w3, dev_account(1), bump_after=0.5, poll_interval=0.02)
    result: dict = {}
    waiting = threading.Thread(target=lambda: result.update(receipt=sender.send_ether(RECIPIENT, 10**15)))
    waiting.start()
    until(lambda: sender._pending)
    [first] = sender.hashes(next(iter(sender._pending)))
    original = w3.eth.get_transaction(first)
    until(lambda: len(sender.hashes(first)) >= 3)  # two bumps; the node keeps only the newest version
    hashes = sender.hashes(first)
    newest = w3.eth.get_transaction(hashes[-1])
    assert newest["nonce"] == original["nonce"] == 0
    for fee in ("maxFeePerGas", "maxPriorityFeePerGas"):
        assert newest[fee] >= original[fee] * 1.125**2
    mine(w3)
    waiting.join(10)
    receipt = result["receipt"]
    assert receipt["status"] == 1 and receipt["transactionHash"] in hashes[1:]  # a bumped version won
    assert w3.eth.get_transaction_count(dev_account(1).address) == 1  # one nonce used: one transfer made
    assert w3.eth.get_balance(RECIPIENT) == 10**15
    assert not sender._pending  # forgotten once mined


def test_without_bump_after_nothing_is_resent(paused: Web3) -> None:
    w3 = paused
    sender = TxSender(w3, dev_account(1))
    first = sender._sign_and_send(lambda nonce: transfer(w3, nonce, 10**9, 2 * 10**9), "transfer")
    for _ in range(3):
        assert sender.receipt(first) is None
    assert sender.hashes(first) == [first] and not sender._pending
    mine(w3)
    assert sender.wait(first, timeout=5)["transactionHash"] == first


def test_a_bump_below_an_eighth_is_refused_and_a_fee_cap_stops_bumping(paused: Web3) -> None:
    """Geth refuses a replacement paying less than 10% more, other nodes 12.5% (Anvil takes any
    increase): the factor is at least 1.125. With max_fee_per_gas the sender stops raising the fee
    at the cap instead of paying any price."""
    w3 = paused
    with pytest.raises(ValueError, match=r"at least 1\.125"):
        TxSender(w3, dev_account(2), bump_after=1, bump_factor=1.05)
    cap = 4 * 10**9
    capped = TxSender(w3, dev_account(1), bump_after=0.0, max_fee_per_gas=cap)
    first = capped._sign_and_send(lambda nonce: transfer(w3, nonce, 10**9, 2 * 10**9), "transfer")
    for _ in range(10):
        assert capped.receipt(first) is None
    versions = capped.hashes(first)
    assert 2 <= len(versions) < 10  # bumped, then held at the cap
    assert w3.eth.get_transaction(versions[-1])["maxFeePerGas"] <= cap
    mine(w3)
    assert capped.wait(first, timeout=5)["transactionHash"] == versions[-1]
