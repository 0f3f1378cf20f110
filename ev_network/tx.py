"""Sending transactions from one account: nonces for many in-flight transactions, gas, receipts,
and errors that name the contract's custom error on revert."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from requests.exceptions import ConnectionError as RequestsConnectionError
from requests.exceptions import Timeout as RequestsTimeout
from web3 import Web3
from web3.contract.contract import ContractFunction
from web3.exceptions import ContractLogicError, TimeExhausted, Web3RPCError

from ev_network.errors import ChainUnavailable, ContractRevert, TransactionFailed, decode_revert

log = logging.getLogger("ev_network.tx")
NETWORK_ERRORS = (RequestsConnectionError, RequestsTimeout, ConnectionError, TimeoutError)


def call_view(fn: ContractFunction, block: Any = "latest") -> Any:
    """Call a view function; reverts become :class:`ContractRevert`, network errors :class:`ChainUnavailable`."""
    try:
        return fn.call(block_identifier=block)
    except ContractLogicError as exc:
        raise decode_revert(exc.data) from None
    except NETWORK_ERRORS as exc:
        raise ChainUnavailable(f"chain unreachable: {exc}") from exc


class TxSender:
    """Signs and sends transactions for one account.

    Nonces are handed out locally under a lock, so many transactions can be in flight at once
    without waiting for each other; after a failed send the next call re-reads the pending nonce.
    Gas is estimated first, which also surfaces a revert (as :class:`ContractRevert`) before
    anything is sent.
    """

    def __init__(
        self,
        w3: Web3,
        account: LocalAccount,
        *,
        gas_margin: float = 1.25,
        receipt_timeout: float = 120.0,
        poll_interval: float = 0.05,
    ) -> None:
        self.w3 = w3
        self.account = account
        self.address = account.address
        self.gas_margin = gas_margin
        self.receipt_timeout = receipt_timeout
        self.poll_interval = poll_interval
        self._lock = threading.Lock()
        self._nonce: int | None = None

    def estimate(self, fn: ContractFunction) -> int:
        """Gas estimate for ``fn`` sent from this account, raising ContractRevert if it would revert."""
        try:
            # "pending": judged as the next block will run it (its timestamp), not by the latest block,
            # which on an idle chain can be older than a deadline that has already passed
            return fn.estimate_gas({"from": self.address}, block_identifier="pending")
        except ContractLogicError as exc:
            raise decode_revert(exc.data) from None
        except NETWORK_ERRORS as exc:
            raise ChainUnavailable(f"chain unreachable: {exc}") from exc

    def submit(self, fn: ContractFunction, *, gas: int | None = None) -> HexBytes:
        """Sign and send ``fn``; return its hash without waiting for it to be mined."""
        gas = gas or int(self.estimate(fn) * self.gas_margin)
        return self._sign_and_send(
            lambda nonce: fn.build_transaction({"from": self.address, "nonce": nonce, "gas": gas}), fn.fn_name
        )

    def wait(self, tx_hash: HexBytes, *, timeout: float | None = None) -> dict:
        """Wait for the receipt; a reverted transaction raises ContractRevert with the decoded error."""
        try:
            receipt = self.w3.eth.wait_for_transaction_receipt(
                tx_hash, timeout=timeout or self.receipt_timeout, poll_latency=self.poll_interval
            )
        except TimeExhausted as exc:
            raise TransactionFailed(f"transaction {tx_hash.hex()} not mined in time") from exc
        except NETWORK_ERRORS as exc:
            raise ChainUnavailable(f"chain unreachable: {exc}") from exc
        if receipt["status"] != 1:
            raise self._revert_reason(tx_hash, receipt)
        return receipt

    def transact(self, fn: ContractFunction, *, gas: int | None = None) -> dict:
        """Send ``fn`` and wait until it is mined; return the receipt."""
        return self.wait(self.submit(fn, gas=gas))

    def send_ether(self, to: str, wei: int) -> dict:
        """Send ``wei`` of the chain's native coin (gas money for a fresh account on a dev chain)."""
        try:
            fees = {"maxPriorityFeePerGas": 10**9, "maxFeePerGas": 2 * self.w3.eth.gas_price + 10**9}
            chain_id = self.w3.eth.chain_id
        except NETWORK_ERRORS as exc:
            raise ChainUnavailable(f"chain unreachable: {exc}") from exc
        transfer = {"to": to, "value": wei, "gas": 21000, "chainId": chain_id, **fees}
        return self.wait(self._sign_and_send(lambda nonce: {**transfer, "nonce": nonce}, "ether transfer"))

    def resync(self) -> None:
        """Forget the local nonce: the next send re-reads the account's pending nonce."""
        with self._lock:
            self._nonce = None

    def _sign_and_send(self, build: Callable[[int], dict], what: str) -> HexBytes:
        """Build the transaction for the next nonce, sign and send it; a nonce the node refuses is
        re-read (up to three tries), and any failure leaves the local nonce to be re-read."""
        for attempt in range(3):
            nonce = self._take_nonce()
            try:
                signed = self.account.sign_transaction(build(nonce))
                tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
                log.debug("sent %s nonce=%d hash=%s", what, nonce, tx_hash.hex())
                return tx_hash
            except NETWORK_ERRORS as exc:
                self.resync()
                raise ChainUnavailable(f"chain unreachable: {exc}") from exc
            except Web3RPCError as exc:
                self.resync()
                if "nonce" in str(exc).lower() and attempt < 2:
                    log.info("nonce out of step (%s), re-reading it", exc)
                    continue
                raise TransactionFailed(f"{what} rejected by the node: {exc}") from exc
        raise TransactionFailed(f"{what}: could not find a usable nonce")

    def _take_nonce(self) -> int:
        with self._lock:
            if self._nonce is None:
                try:
                    self._nonce = self.w3.eth.get_transaction_count(self.address, "pending")
                except NETWORK_ERRORS as exc:
                    raise ChainUnavailable(f"chain unreachable: {exc}") from exc
            nonce = self._nonce
            self._nonce += 1
            return nonce

    def _revert_reason(self, tx_hash: HexBytes, receipt: dict) -> ContractRevert | TransactionFailed:
        """Replay a failed transaction as a call at its block to recover the revert data."""
        tx = self.w3.eth.get_transaction(tx_hash)
        # web3 returns the calldata as "input"; eth_call takes it as "data"
        replay = {"from": tx["from"], "to": tx["to"], "data": tx["input"], "value": tx["value"], "gas": tx["gas"]}
        try:
            self.w3.eth.call(replay, receipt["blockNumber"] - 1)
        except ContractLogicError as exc:
            return decode_revert(exc.data)
        except Exception as exc:
            return TransactionFailed(f"transaction {tx_hash.hex()} reverted: {exc}")
        return TransactionFailed(f"transaction {tx_hash.hex()} reverted (out of gas?)")


def wait_for_chain(w3: Web3, timeout: float = 10.0) -> int:
    """Block until the node answers; return the chain id or raise ChainUnavailable."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return w3.eth.chain_id
        except Exception as exc:
            if time.monotonic() > deadline:
                raise ChainUnavailable(f"no JSON-RPC node answers at {w3.provider}: {exc}") from exc
            time.sleep(0.1)
