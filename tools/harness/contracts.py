"""Helpers shared by the contract tests (escrow, registry, token, property, pricing, bindings).

Nothing here mocks anything: every helper sends real signed transactions to the test Anvil."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from eth_abi import decode, encode
from web3 import Web3
from web3.logs import DISCARD

from ev_network.contracts import Escrow
from ev_network.errors import ContractRevert
from ev_network.tx import TxSender
from tools.devchain import ROOT

BUILD = ROOT / "build" / "contracts"
ZERO = "0x0000000000000000000000000000000000000000"


@contextmanager
def reverts(name: str) -> Iterator[pytest.ExceptionInfo[ContractRevert]]:
    """Expect a :class:`ContractRevert` whose custom error is ``name``."""
    with pytest.raises(ContractRevert) as info:
        yield info
    assert info.value.name == name, f"expected {name}, got {info.value.name!r} ({info.value})"


def events(escrow: Escrow, receipt: dict, name: str) -> list[dict[str, Any]]:
    """The decoded ``name`` events of ``receipt`` emitted by ``escrow``, as argument dicts."""
    found = getattr(escrow.contract.events, name)().process_receipt(receipt, errors=DISCARD)
    return [dict(e["args"]) for e in found if e["address"] == escrow.address]


def block_time(w3: Web3, receipt: dict) -> int:
    """The timestamp of the block ``receipt`` was mined in."""
    return w3.eth.get_block(receipt["blockNumber"])["timestamp"]


def set_next_timestamp(w3: Web3, timestamp: int) -> None:
    """Make the next mined block carry ``timestamp`` (for exact durations)."""
    w3.provider.make_request("evm_setNextBlockTimestamp", [timestamp])


def latest_timestamp(w3: Web3) -> int:
    return w3.eth.get_block("latest")["timestamp"]


def artifact(name: str) -> dict:
    """Brownie's build artifact of contract ``name`` (``abi`` and ``bytecode``)."""
    path = BUILD / f"{name}.json"
    if not path.exists():
        pytest.fail(f"{path} missing: run `make setup` to compile the contracts")
    return json.loads(path.read_text())


def deploy_artifact(sender: TxSender, name: str, *args: Any) -> str:
    """Deploy contract ``name`` from its build artifact with a signed transaction from ``sender``'s
    account; return its address. The sender re-reads its nonce afterwards."""
    data = artifact(name)
    w3 = sender.w3
    factory = w3.eth.contract(abi=data["abi"], bytecode=data["bytecode"])
    tx = factory.constructor(*args).build_transaction(
        {"from": sender.address, "nonce": w3.eth.get_transaction_count(sender.address, "pending")}
    )
    tx_hash = w3.eth.send_raw_transaction(sender.account.sign_transaction(tx).raw_transaction)
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30)
    sender.resync()
    assert receipt["status"] == 1, f"deploying {name} failed"
    return receipt["contractAddress"]


class BatchReader:
    """Reads many token balances and escrow sessions in one JSON-RPC batch (plain eth_call, decoded
    with eth_abi): the property test checks every account and session after every step, and
    per-call web3 overhead would dominate its runtime."""

    BALANCE_OF = Web3.keccak(text="balanceOf(address)")[:4]
    TOTAL_SUPPLY = Web3.keccak(text="totalSupply()")[:4]
    GET_SESSION = Web3.keccak(text="getSession(uint256)")[:4]
    SESSION_TYPE = "(address,uint8,uint16,uint8,uint96,uint32,uint32,uint32,uint40)"  # SessionInfo

    def __init__(self, w3: Web3, token: str, escrow: str) -> None:
        self.w3, self.token, self.escrow = w3, token, escrow

    def _calls(self, calls: list[tuple[str, bytes]]) -> list[bytes]:
        batch = [("eth_call", [{"to": to, "data": "0x" + data.hex()}, "latest"]) for to, data in calls]
        responses = self.w3.provider.make_batch_request(batch)
        assert isinstance(responses, list), f"batch call failed: {responses}"
        return [bytes.fromhex(r["result"].removeprefix("0x")) for r in responses]

    def balances(self, accounts: list[str]) -> tuple[dict[str, int], int]:
        """({account: balance}, totalSupply) at the latest block."""
        calls = [(self.token, self.BALANCE_OF + encode(["address"], [a])) for a in accounts]
        raw = self._calls([*calls, (self.token, self.TOTAL_SUPPLY)])
        values = [decode(["uint256"], r)[0] for r in raw]
        return dict(zip(accounts, values[:-1], strict=True)), values[-1]

    def sessions(self, session_ids: list[int]) -> dict[int, tuple]:
        """{session id: raw getSession tuple (driver, lane, seq, state, deposit, stationId, tariffId, since,
        meterStart)}."""
        if not session_ids:
            return {}
        raw = self._calls([(self.escrow, self.GET_SESSION + encode(["uint256"], [s])) for s in session_ids])
        decoded = [decode([self.SESSION_TYPE], r)[0] for r in raw]
        return {s: (Web3.to_checksum_address(d[0]), *d[1:]) for s, d in zip(session_ids, decoded, strict=True)}

    def transfer_recipients(self, from_block: int, to_block: int) -> set[str]:
        """Every address the token sent tokens to (mints included) in [from_block, to_block]."""
        if to_block < from_block:
            return set()
        topic = "0x" + Web3.keccak(text="Transfer(address,address,uint256)").hex().removeprefix("0x")
        logs = self.w3.eth.get_logs(
            {"address": self.token, "fromBlock": from_block, "toBlock": to_block, "topics": [topic]}
        )
        return {Web3.to_checksum_address(bytes(log["topics"][2])[-20:]) for log in logs}


# ------------------------------------------------------------------ escrow storage (lanes)
# SessionEscrow's storage, in declaration order along its inheritance (constants and immutables take
# no slot): AccessControl._roles (0); StationRegistry._tariffs (1), _stations (2), _chargePointIds (3),
# _meterPublicKeys (4), _stationIdByChargePoint (5), _operators (6), stationCount + tariffCount packed
# (7); SessionEscrow._lanes (8). tests/contracts/test_escrow_lanes.py checks the number against a real session's
# slot before writing any: a layout change fails there instead of writing to the wrong slot.
LANES_SLOT = 8
# The packed Session struct, lowest bits first: (field, bits).
SESSION_FIELDS = (
    ("deposit", 96),
    ("station_id", 32),
    ("tariff_id", 32),
    ("state", 8),
    ("since", 32),
    ("meter_start", 40),
    ("seq", 16),
)


def lane_slot(driver: str, lane: int) -> int:
    """The storage slot of ``driver``'s ``lane``. ``_lanes`` is a ``mapping(address => Session[256])``:
    the value of key k lives at keccak256(abi.encode(k, LANES_SLOT)), and a fixed-size array of
    one-slot structs fills the consecutive slots from there."""
    base = Web3.keccak(encode(["address", "uint256"], [driver, LANES_SLOT]))
    return int.from_bytes(base, "big") + lane


def read_lane(w3: Web3, escrow: str, driver: str, lane: int) -> dict[str, int]:
    """The lane's stored Session, unpacked into its fields."""
    word = int.from_bytes(w3.eth.get_storage_at(escrow, lane_slot(driver, lane)), "big")
    fields = {}
    for name, bits in SESSION_FIELDS:
        fields[name], word = word & ((1 << bits) - 1), word >> bits
    return fields


def write_lane(w3: Web3, escrow: str, driver: str, lane: int, **changes: int) -> None:
    """Overwrite fields of the lane's stored Session with ``anvil_setStorageAt`` (dev chain only)."""
    fields = {**read_lane(w3, escrow, driver, lane), **changes}
    word, shift = 0, 0
    for name, bits in SESSION_FIELDS:
        assert 0 <= fields[name] < 1 << bits, f"{name}={fields[name]} does not fit {bits} bits"
        word, shift = word | fields[name] << shift, shift + bits
    slot, value = f"0x{lane_slot(driver, lane):064x}", f"0x{word:064x}"
    w3.provider.make_request("anvil_setStorageAt", [escrow, slot, value])
