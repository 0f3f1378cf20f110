"""Helpers of the EV Wallet tests: wallet homes with real encrypted keyfiles, gas for fresh accounts,
the operator's side driven with real signed transactions, and receipts/balances to compare with."""

from __future__ import annotations

import json
from pathlib import Path

from eth_account.signers.local import LocalAccount
from typer.testing import CliRunner
from web3 import Web3

from ev_network.contracts import Escrow
from ev_network.events import EventReader, indexed_topic
from wallet.cli import app
from wallet.config import WalletConfig
from wallet.core import Wallet
from wallet.keystore import Keystore

PASSWORD = "correct horse battery staple"
GAS_MONEY = 10 * 10**18


class Cli:
    """Runs ev-wallet commands in-process with the test chain's environment; keeps every output."""

    def __init__(self, net, home: Path) -> None:
        self.net = net
        self.runner = CliRunner()
        self.env = {
            "EVN_WALLET_HOME": str(home),
            "EVN_RPC_URL": net.rpc_url,
            "EVN_DEPLOYMENT": str(net.deployment_file),
            "EVN_WALLET_PASSWORD": PASSWORD,
        }
        self.outputs: list[str] = []

    def __call__(self, *args: str, ok: bool = True, env: dict | None = None):
        result = self.runner.invoke(app, list(args), env={**self.env, **(env or {})})
        self.outputs.append(result.output)
        if ok:
            assert result.exit_code == 0, (args, result.output, result.exception)
        return result

    def json(self, *args: str) -> dict:
        return json.loads(self(*args, "--json").stdout)

    def new_account(self, topup: str | None = None) -> str:
        """A new account made by ``ev-wallet account create`` (the home's default if it is the first), with
        gas, and ``topup`` tokens (``ev-wallet topup``) when given; its address."""
        address = self("account", "create").stdout.split("created account ")[1].split()[0]
        give_gas(self.net, address)
        if topup is not None:
            self("topup", topup)
        return address

    def assert_no_key(self, key_hex: str) -> None:
        key_hex = key_hex.lower().removeprefix("0x")
        for output in self.outputs:
            assert key_hex not in output.lower()


def wallet_config(net, home: Path) -> WalletConfig:
    """A wallet home in ``home`` pointed at the test chain."""
    return WalletConfig.resolve(home=home, rpc_url=net.rpc_url, deployment_file=net.deployment_file)


def give_gas(net, address: str, wei: int = GAS_MONEY) -> None:
    """Native currency for a fresh account (Anvil's cheat code)."""
    net.w3.provider.make_request("anvil_setBalance", [address, hex(wei)])


def fresh_wallet(net, home: Path, poll_interval: float = 0.05) -> tuple[Wallet, Keystore]:
    """A new random account created in the keystore at ``home``, unlocked, with gas (no tokens)."""
    keystore = Keystore(wallet_config(net, home))
    address = keystore.create(PASSWORD)
    give_gas(net, address)
    account = keystore.unlock(address, PASSWORD)
    return Wallet(net.w3, net.deployment, account, poll_interval=poll_interval), keystore


def funded_wallet(net, home: Path, tokens: int, poll_interval: float = 0.05) -> Wallet:
    """:func:`fresh_wallet` topped up with ``tokens`` (smallest units), minted by the token's admin."""
    wallet, _ = fresh_wallet(net, home, poll_interval)
    wallet.top_up(tokens, net.admin)
    return wallet


def driver_wallet(net, driver: LocalAccount, poll_interval: float = 0.05) -> Wallet:
    """A wallet of one of the funded dev drivers (no keystore involved)."""
    return Wallet(net.w3, net.deployment, driver, poll_interval=poll_interval)


def nonce(net, address: str) -> int:
    return net.w3.eth.get_transaction_count(address, "pending")


def operator_start(net, session_id: int, transaction_id: int = 1, meter_start: int = 0, operator=None) -> dict:
    """The operator starts the session on chain (what the Core Client does on StartTransaction)."""
    return net.escrow(operator or net.operator).start(session_id, transaction_id, meter_start)


def operator_settle(net, session_id: int, meter_stop: int, operator=None) -> dict:
    """The operator settles the session on chain (what the Core Client does on StopTransaction)."""
    return net.escrow(operator or net.operator).settle(session_id, meter_stop)


def session_events(net, session_id: int, name: str) -> list[dict]:
    """The arguments of every ``name`` event of ``session_id``."""
    reader = EventReader(net.w3, net.deployment.escrow)
    found = reader.fetch(net.deployment.deployment_block, reader.head(), [name], [indexed_topic(session_id)])
    return [event.args for event in found]


def settled_event(net, session_id: int) -> dict:
    """The SessionSettled event's arguments of ``session_id``."""
    found = session_events(net, session_id, "SessionSettled")
    assert len(found) == 1, found
    return found[0]


def block_time(net, tx_hash) -> int:
    """The timestamp of the block that mined ``tx_hash``."""
    receipt = net.w3.eth.get_transaction_receipt(tx_hash)
    return int(net.w3.eth.get_block(receipt["blockNumber"])["timestamp"])


def set_next_block_time(net, timestamp: int) -> None:
    net.w3.provider.make_request("evm_setNextBlockTimestamp", [timestamp])


def latest_time(net) -> int:
    return int(net.w3.eth.get_block("latest")["timestamp"])


def tx_selector(net, tx_hash: str) -> bytes:
    """The 4-byte function selector a transaction called."""
    return bytes(net.w3.eth.get_transaction(tx_hash)["input"])[:4]


def function_selector(escrow: Escrow, name: str) -> bytes:
    """The 4-byte selector of escrow function ``name``."""
    abi = next(item for item in escrow.contract.abi if item.get("type") == "function" and item["name"] == name)
    signature = f"{name}({','.join(i['type'] for i in abi['inputs'])})"
    return bytes(Web3.keccak(text=signature)[:4])
