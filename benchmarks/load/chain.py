"""Chain side of the load benchmark: a fresh Anvil with the contracts, many stations and drivers set up
fast, and a watcher that timestamps settlements.

Setup and the drivers' ``open`` transactions are sent unsigned from accounts Anvil impersonates
(``anvil_autoImpersonateAccount``): eth-account signs in pure Python here (about 7 ms a signature
without coincurve), and the drivers' signing cost is not what the benchmark measures. The Core Client
signs its own transactions as in production. Used by :mod:`benchmarks.load`.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

from ev_network.chain import connect
from ev_network.contracts import Escrow, Token
from ev_network.deployment import Deployment
from ev_network.devaccounts import dev_account
from ev_network.events import EventReader
from ev_network.keys import create_keyfile
from ev_network.pricing import Tariff
from ev_network.tx import TxSender
from tools.devchain import Anvil, deploy_with_brownie

TOKEN = 10**18
TARIFF = Tariff(price_per_kwh=35 * TOKEN // 100, session_fee=TOKEN // 2)
DRIVER_TOKENS = 10_000 * TOKEN
FEES = {"maxFeePerGas": 50 * 10**9, "maxPriorityFeePerGas": 10**9}
PASSWORD_ENV = "EVN_BENCH_OPERATOR_PASSWORD"


def driver_account(index: int) -> LocalAccount:
    """Benchmark driver ``index``: a fixed throwaway key (dev chain only)."""
    return Account.from_key(Web3.keccak(text=f"evn-bench-driver-{index}"))


def prepare(sender: str, to: str, data: str, gas: int) -> dict[str, str]:
    """An ``eth_sendTransaction`` request body (the node assigns the nonce; Anvil impersonates ``sender``)."""
    return {"from": sender, "to": to, "data": data, "gas": hex(gas), **{k: hex(v) for k, v in FEES.items()}}


def send_tx(w3: Web3, tx: dict[str, str]) -> str:
    """Send one prepared transaction (one JSON-RPC call, no signing in this process); its hash."""
    response = w3.provider.make_request("eth_sendTransaction", [tx])
    if "error" in response:
        raise RuntimeError(f"eth_sendTransaction failed: {response['error']}")
    return response["result"]


def send_burst(w3: Web3, txs: list[dict[str, str]]) -> list[dict]:
    """Send prepared transactions with mining paused, mine them in as few blocks as fit, check receipts.

    Anvil's automine mines one block per transaction and falls behind a burst; this is much faster.
    """
    w3.provider.make_request("evm_setAutomine", [False])
    try:
        hashes = [send_tx(w3, tx) for tx in txs]
        for _ in range(len(txs) + 1):
            if int(w3.provider.make_request("txpool_status", [])["result"]["pending"], 16) == 0:
                break
            w3.provider.make_request("evm_mine", [])
    finally:
        w3.provider.make_request("evm_setAutomine", [True])
    receipts = [w3.provider.make_request("eth_getTransactionReceipt", [h]).get("result") or {} for h in hashes]
    failed = [r for r in receipts if r.get("status") != "0x1"]
    if failed:
        raise RuntimeError(f"{len(failed)} of {len(txs)} setup transactions reverted")
    return receipts


def _gas(fn: Any, sender: str, margin: float = 1.3) -> int:
    return int(fn.estimate_gas({"from": sender}) * margin)


@dataclass
class BenchChain:
    """A fresh Anvil with the EV Network deployed, an operator, stations and funded drivers."""

    anvil: Anvil
    w3: Web3
    deployment: Deployment
    deployment_file: Path
    keystore: Path
    password: str
    operator: LocalAccount
    stations: dict[str, int] = field(default_factory=dict)  # charge point id -> station id
    drivers: list[LocalAccount] = field(default_factory=list)
    _snapshot: str | None = None

    @property
    def escrow(self) -> Escrow:
        return Escrow(self.w3, self.deployment)

    def snapshot(self) -> None:
        """Remember the chain state (stations registered, drivers funded)."""
        self._snapshot = self.w3.provider.make_request("evm_snapshot", [])["result"]

    def revert(self) -> None:
        """Back to the snapshot (and take it again: Anvil drops a snapshot when reverting to it)."""
        if self._snapshot is not None:
            self.w3.provider.make_request("evm_revert", [self._snapshot])
        self.snapshot()

    def prepare_opens(self, cp_ids: list[str], deposit: int, connector: int = 1) -> list[dict[str, str]]:
        """For charge point ``cp_ids[i]``: driver i's ``open`` transaction (send it once per session)."""
        escrow = self.escrow.contract
        gas = _gas(escrow.functions.open(self.stations[cp_ids[0]], connector, deposit), self.drivers[0].address, 1.5)
        return [
            prepare(
                self.drivers[i].address,
                escrow.address,
                escrow.encode_abi("open", [self.stations[cp_id], connector, deposit]),
                gas,
            )
            for i, cp_id in enumerate(cp_ids)
        ]

    def stop(self) -> None:
        self.anvil.stop()


RECENT_STATES = 8  # 20,000 storage slots: Anvil at 73 MB after 300 blocks (40 MB with none, 181 MB with 64)


def bench_anvil() -> Anvil:
    """The benchmark's chain: Anvil as a pruned node. Automine makes a block per transaction and Anvil
    otherwise keeps a copy of the whole state per block: at 1,000 stations and drivers that grew Anvil
    by ~73 MB/s once settles and the anchor flowed (benchmarks/anvil_memory.py measures it). It keeps
    the state of the latest RECENT_STATES blocks, as a real pruned node keeps recent ones: with none, a
    read at "latest" failed whenever a block was mined while it waited (BlockOutOfRangeError: the Core
    Client's session reads and the chaos benchmark's polls under load)."""
    return Anvil(accounts=5, prune_history=RECENT_STATES)


def setup_chain(
    workdir: Path, cp_ids: list[str], connectors: int, say: Callable[[str], None], drivers: int | None = None
) -> BenchChain:
    """Start Anvil, deploy with Brownie, register the operator, its stations and one driver per station
    (or ``drivers`` drivers).

    Setup transactions are sent unsigned from accounts Anvil impersonates (no signing cost here).
    """
    anvil = bench_anvil().start()
    try:
        deployment_file = workdir / "deployment.json"
        deployment = deploy_with_brownie(anvil.url, deployment_file, env={"EVN_START_TIMEOUT": "600"})
        w3 = connect(anvil.url, deployment)
        w3.provider.make_request("anvil_autoImpersonateAccount", [True])
        admin, operator, payout = dev_account(0), dev_account(1), dev_account(2)
        Escrow(w3, deployment, TxSender(w3, admin)).register_operator(operator.address, payout.address, "Bench CPO")
        password = secrets.token_urlsafe(16)
        keystore = workdir / "operator.json"
        create_keyfile(keystore, password, operator.key)
        chain = BenchChain(anvil, w3, deployment, deployment_file, keystore, password, operator)
        t0 = time.monotonic()
        if cp_ids:
            _register_stations(chain, cp_ids, connectors)
            say(f"  {len(cp_ids)} stations registered in {time.monotonic() - t0:.1f}s")
        t0 = time.monotonic()
        count = len(cp_ids) if drivers is None else drivers
        _fund_drivers(chain, admin.address, count)
        say(f"  {count} drivers funded and approved in {time.monotonic() - t0:.1f}s")
        chain.snapshot()
        return chain
    except BaseException:
        anvil.stop()
        raise


def _register_stations(chain: BenchChain, cp_ids: list[str], connectors: int) -> None:
    escrow = chain.escrow.contract
    operator = chain.operator.address
    gas = _gas(escrow.functions.addStation(cp_ids[0], connectors, TARIFF.as_tuple(), b""), operator)
    first = chain.w3.eth.block_number + 1
    send_burst(
        chain.w3,
        [
            prepare(
                operator, escrow.address, escrow.encode_abi("addStation", [cp, connectors, TARIFF.as_tuple(), b""]), gas
            )
            for cp in cp_ids
        ],
    )
    reader = EventReader(chain.w3, chain.deployment.escrow)
    for event in reader.fetch(first, chain.w3.eth.block_number, ["StationRegistered"]):
        chain.stations[event.args["chargePointId"]] = event.args["stationId"]
    missing = set(cp_ids) - set(chain.stations)
    if missing:
        raise RuntimeError(f"{len(missing)} stations were not registered, e.g. {sorted(missing)[0]}")


def _fund_drivers(chain: BenchChain, admin: str, count: int) -> None:
    w3 = chain.w3
    chain.drivers = [driver_account(i) for i in range(count)]
    for driver in chain.drivers:
        w3.provider.make_request("anvil_setBalance", [driver.address, hex(100 * 10**18)])
    token = Token(w3, chain.deployment.token).contract
    gas = _gas(token.functions.mint(chain.drivers[0].address, DRIVER_TOKENS), admin)
    send_burst(
        w3,
        [
            prepare(admin, token.address, token.encode_abi("mint", [d.address, DRIVER_TOKENS]), gas)
            for d in chain.drivers
        ],
    )
    approve = token.encode_abi("approve", [chain.deployment.escrow, 2**256 - 1])
    gas = _gas(token.functions.approve(chain.deployment.escrow, 2**256 - 1), chain.drivers[0].address)
    send_burst(w3, [prepare(d.address, token.address, approve, gas) for d in chain.drivers])


class SettlementWatcher(threading.Thread):
    """Polls the escrow's SessionSettled / SessionCancelled events (and SessionStarted, which carries the
    OCPP transaction id SessionSettled does not) and notes when each was first seen; in chain order.

    ``on_event(event, seen_at)`` is called from this thread. The timestamp is wall-clock time of the
    poll that found the event (poll interval ``interval`` seconds: the resolution of settle latencies).
    """

    NAMES: ClassVar[list[str]] = ["SessionStarted", "SessionSettled", "SessionCancelled"]

    def __init__(self, chain: BenchChain, on_event: Callable[[Any, float], None], interval: float = 0.02) -> None:
        super().__init__(name="settlement-watcher", daemon=True)
        self.reader = EventReader(chain.w3, chain.deployment.escrow)
        self.on_event = on_event
        self.interval = interval
        self.next_block = chain.w3.eth.block_number + 1
        self.halt = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.halt.is_set():
                head = self.reader.head()
                if head >= self.next_block:
                    events = self.reader.fetch(self.next_block, head, self.NAMES)
                    seen = time.time()
                    for event in events:
                        self.on_event(event, seen)
                    self.next_block = head + 1
                self.halt.wait(self.interval)
        except BaseException as error:  # reported by the benchmark, which then stops the run
            self.error = error

    def stop(self) -> None:
        self.halt.set()
        self.join(timeout=5)
