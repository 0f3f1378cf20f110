"""Sending transactions from one account: nonces for many in-flight transactions, gas, receipts,
fee bumping for a transaction that stays unmined, and errors that name the contract's custom error
on revert."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from web3 import Web3
from web3.contract.contract import ContractFunction
from web3.exceptions import ContractLogicError, TransactionNotFound, Web3RPCError

from ev_network.errors import ChainUnavailable, ContractRevert, TransactionFailed, chain_errors
from ev_network.reverts import decode_revert

log = logging.getLogger("ev_network.tx")
MIN_BUMP = 1.125  # a replacement (same nonce) must pay at least 12.5% more, or nodes refuse it
TRACKED_MAX = 10_000  # unmined transactions whose versions are kept for bumping


@dataclass
class Pending:
    """One nonce's transaction: its fields as last signed, and the hash of every version sent."""

    tx: dict
    what: str
    hashes: list[HexBytes] = field(default_factory=list)
    sent_at: float = field(default_factory=time.monotonic)


def call_view(fn: ContractFunction, block: Any = "latest") -> Any:
    """Call a view function; reverts become :class:`ContractRevert`, network errors :class:`ChainUnavailable`."""
    try:
        with chain_errors(fn.w3):
            return fn.call(block_identifier=block)
    except ContractLogicError as exc:
        raise decode_revert(exc.data) from None


class TxSender:
    """Signs and sends transactions for one account.

    Nonces are handed out locally under a lock, so many transactions can be in flight at once
    without waiting for each other; after a failed send the next call re-reads the pending nonce.
    Gas is estimated first, which also surfaces a revert (as :class:`ContractRevert`) before
    anything is sent.

    With ``bump_after`` (seconds), a transaction still unmined that long after it was sent is sent
    again with the same nonce and fees raised by ``bump_factor`` (at least +12.5%, what nodes require
    of a replacement), at most up to ``max_fee_per_gas``; :meth:`receipt` and :meth:`wait` look for
    the receipt of every version sent (:meth:`hashes`), since any one of them may be mined.
    """

    def __init__(
        self,
        w3: Web3,
        account: LocalAccount,
        *,
        gas_margin: float = 1.25,
        receipt_timeout: float = 120.0,
        poll_interval: float = 0.05,
        bump_after: float | None = None,
        bump_factor: float = MIN_BUMP,
        max_fee_per_gas: int | None = None,
    ) -> None:
        if bump_factor < MIN_BUMP:
            raise ValueError(f"bump_factor must be at least {MIN_BUMP} (nodes refuse smaller replacements)")
        self.w3 = w3
        self.account = account
        self.address = account.address
        self.gas_margin = gas_margin
        self.receipt_timeout = receipt_timeout
        self.poll_interval = poll_interval
        self._lock = threading.Lock()
        self._nonce: int | None = None
        self.bump_after, self.bump_factor, self.max_fee_per_gas = bump_after, bump_factor, max_fee_per_gas
        self._pending: OrderedDict[HexBytes, Pending] = OrderedDict()  # every version's hash -> its nonce's record

    def estimate(self, fn: ContractFunction) -> int:
        """Gas estimate for ``fn`` sent from this account, raising ContractRevert if it would revert."""
        try:
            # "pending": judged as the next block will run it (its timestamp), not by the latest block,
            # which on an idle chain can be older than a deadline that has already passed
            with chain_errors(self.w3):
                return fn.estimate_gas({"from": self.address}, block_identifier="pending")
        except ContractLogicError as exc:
            raise decode_revert(exc.data) from None

    def submit(self, fn: ContractFunction, *, gas: int | None = None) -> HexBytes:
        """Sign and send ``fn``; return its hash without waiting for it to be mined."""
        gas = gas or int(self.estimate(fn) * self.gas_margin)
        return self._sign_and_send(
            lambda nonce: fn.build_transaction({"from": self.address, "nonce": nonce, "gas": gas}), fn.fn_name
        )

    def wait(self, tx_hash: HexBytes, *, timeout: float | None = None) -> dict:
        """Wait for the receipt (of any version of the transaction, bumping its fee when due); a reverted
        transaction raises ContractRevert with the decoded error."""
        deadline = time.monotonic() + (timeout or self.receipt_timeout)
        while (receipt := self.receipt(tx_hash)) is None:
            if time.monotonic() > deadline:
                raise TransactionFailed(f"transaction {HexBytes(tx_hash).hex()} not mined in time")
            time.sleep(self.poll_interval)
        tx_hash = receipt["transactionHash"]
        if receipt["status"] != 1:
            raise self._revert_reason(tx_hash, receipt)
        return receipt

    def receipt(self, tx_hash: HexBytes) -> dict | None:
        """The receipt of ``tx_hash`` or of a version of it sent with a higher fee; None while none is
        mined (after sending a bumped version if one is due). Does not check the status."""
        pending = self._pending.get(HexBytes(tx_hash))
        for version in reversed(pending.hashes if pending else [HexBytes(tx_hash)]):
            try:
                with chain_errors(self.w3):
                    found = self.w3.eth.get_transaction_receipt(version)
            except TransactionNotFound:
                continue
            self._forget(pending)
            return found
        due = pending is not None and self.bump_after is not None
        if due and time.monotonic() - pending.sent_at >= self.bump_after:
            self._bump(pending)
        return None

    def hashes(self, tx_hash: HexBytes) -> list[HexBytes]:
        """Every version sent of the transaction ``tx_hash`` (one unless its fee was bumped), oldest first."""
        pending = self._pending.get(HexBytes(tx_hash))
        return list(pending.hashes) if pending else [HexBytes(tx_hash)]

    def transact(self, fn: ContractFunction, *, gas: int | None = None) -> dict:
        """Send ``fn`` and wait until it is mined; return the receipt."""
        return self.wait(self.submit(fn, gas=gas))

    def send_ether(self, to: str, wei: int) -> dict:
        """Send ``wei`` of the chain's native coin (gas money for a fresh account on a dev chain)."""
        with chain_errors(self.w3):
            fees = {"maxPriorityFeePerGas": 10**9, "maxFeePerGas": 2 * self.w3.eth.gas_price + 10**9}
            chain_id = self.w3.eth.chain_id
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
                with chain_errors(self.w3):
                    tx = build(nonce)
                    tx_hash = self.w3.eth.send_raw_transaction(self.account.sign_transaction(tx).raw_transaction)
                log.debug("sent %s nonce=%d hash=%s", what, nonce, tx_hash.hex())
                if self.bump_after is not None:
                    self._track(Pending(tx, what, [HexBytes(tx_hash)]))
                return tx_hash
            except ChainUnavailable:
                self.resync()
                raise
            except Web3RPCError as exc:
                self.resync()
                if "nonce" in str(exc).lower() and attempt < 2:
                    log.info("nonce out of step (%s), re-reading it", exc)
                    continue
                raise TransactionFailed(f"{what} rejected by the node: {exc}") from exc
        raise TransactionFailed(f"{what}: could not find a usable nonce")

    def _bump(self, pending: Pending) -> None:
        """Send ``pending`` again, same nonce, fees raised by bump_factor (and to the current gas price)."""
        tx = dict(pending.tx)
        cap = self.max_fee_per_gas
        with chain_errors(self.w3):
            floor = self.w3.eth.gas_price
        keys = ("maxFeePerGas", "maxPriorityFeePerGas") if "maxFeePerGas" in tx else ("gasPrice",)
        for key in keys:
            tx[key] = math.ceil(tx[key] * self.bump_factor)
        tx[keys[0]] = max(tx[keys[0]], floor + tx.get("maxPriorityFeePerGas", 0))
        if cap is not None and tx[keys[0]] > cap:
            log.warning(
                "%s nonce=%d: not bumped, the fee would pass max_fee_per_gas %d", pending.what, tx["nonce"], cap
            )
            pending.sent_at = time.monotonic()
            return
        try:
            with chain_errors(self.w3):
                signed = self.account.sign_transaction(tx).raw_transaction
                tx_hash = HexBytes(self.w3.eth.send_raw_transaction(signed))
        except Web3RPCError as exc:  # e.g. "nonce too low": a version was mined meanwhile
            log.info("%s nonce=%d: bumped version refused (%s)", pending.what, tx["nonce"], exc)
            pending.sent_at = time.monotonic()
            return
        pending.tx, pending.sent_at = tx, time.monotonic()
        pending.hashes.append(tx_hash)
        self._track(pending)
        log.info(
            "%s nonce=%d unmined: sent again with fee %d (%s)", pending.what, tx["nonce"], tx[keys[0]], tx_hash.hex()
        )

    def _track(self, pending: Pending) -> None:
        with self._lock:
            self._pending[pending.hashes[-1]] = pending
            while len(self._pending) > TRACKED_MAX:
                self._pending.popitem(last=False)

    def _forget(self, pending: Pending | None) -> None:
        if pending is not None:
            with self._lock:
                for version in pending.hashes:
                    self._pending.pop(version, None)

    def _take_nonce(self) -> int:
        with self._lock:
            if self._nonce is None:
                with chain_errors(self.w3):
                    self._nonce = self.w3.eth.get_transaction_count(self.address, "pending")
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
