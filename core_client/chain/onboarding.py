"""A CPO's first day: reach the chain with bounded waits, tell whether this Core Client's key is
ready to run (registered operator, gas), and on a development chain register and fund it at once.

Each failure is one line that names what to fix: the host that does not resolve, the node that does
not answer within ``rpc_timeout_s``, the deployment file whose addresses hold no contract."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError
from web3 import Web3

from core_client.config import ConfigError, Settings
from core_client.errors import CoreClientError
from ev_network.chain import connect
from ev_network.contracts import Escrow
from ev_network.deployment import Deployment
from ev_network.devaccounts import ANVIL_CHAIN_ID, dev_account
from ev_network.errors import EVNetworkError
from ev_network.pricing import Tariff
from ev_network.tx import TxSender
from ev_network.units import to_units

GAS_FOR_READY = 2_000_000  # gas units the key must be able to pay for: about 20 starts and settlements
DEV_GAS_WEI = 10 * 10**18  # what `operator register --dev` sends: 10 ETH of a dev chain
DEV_REGISTRAR = 0  # Anvil's account 0 deploys and holds REGISTRAR_ROLE (scripts/deploy.py)
TARIFF_BITS = (96, 80, 80)  # the contract's Tariff: uint96 pricePerKWh, uint80 sessionFee, uint80 timeFeePerHour


class InvalidTariff(CoreClientError):
    """A tariff amount that is not a number of tokens, or too large for the contract."""


def tariff_from_tokens(amounts: dict[str, str], decimals: int) -> Tariff:
    """A Tariff from whole-token texts named by their option (price per kWh, session fee, time fee
    per hour, in that order), each checked against its field in the contract before any transaction."""
    units = []
    for (what, text), bits in zip(amounts.items(), TARIFF_BITS, strict=True):
        try:
            value = to_units(text, decimals)
        except ValueError as error:
            raise InvalidTariff(f"{what}: {error}") from None
        if value >= 2**bits:
            limit = (2**bits - 1) / 10**decimals
            raise InvalidTariff(f"{what} {text}: at most {limit:.6g} tokens (uint{bits} in the contract)")
        units.append(value)
    return Tariff(*units)


def connect_settings(settings: Settings) -> tuple[Web3, Deployment]:
    """The chain and deployment of a config, reached with bounded waits (``rpc_timeout_s``, no retries):
    :func:`ev_network.chain.connect` checks the chain id and the deployment's contracts."""
    try:
        deployment = Deployment.load(settings.deployment_file)
    except (OSError, ValidationError) as error:
        raise ConfigError(f"deployment_file {settings.deployment_file}: {error}") from None
    w3 = connect(
        settings.rpc_url, deployment, settings.rpc_timeout_s, wait=False, retries=False, timeout_name="rpc_timeout_s"
    )
    return w3, deployment


@dataclass(frozen=True)
class Readiness:
    """What ``core-client check`` reports about one operator key."""

    chain_id: int
    head: int
    address: str
    registered: bool
    name: str
    payout: str
    balance_wei: int
    needed_wei: int

    @property
    def problems(self) -> list[str]:
        """Why the daemon could not work with this key (empty: ready)."""
        found = [] if self.registered else ["not registered as operator"]
        if self.balance_wei == 0:
            found.append("no gas")
        elif self.balance_wei < self.needed_wei:
            found.append("low gas")
        return found


def readiness(w3: Web3, deployment: Deployment, address: str) -> Readiness:
    """Read whether ``address`` is a registered operator of the deployment and can pay for gas."""
    operator = Escrow(w3, deployment).operator_of(address)
    return Readiness(
        chain_id=w3.eth.chain_id,
        head=w3.eth.block_number,
        address=address,
        registered=operator.registered,
        name=operator.name,
        payout=operator.payout,
        balance_wei=w3.eth.get_balance(address),
        needed_wei=GAS_FOR_READY * w3.eth.gas_price,
    )


def register_on_dev_chain(w3: Web3, deployment: Deployment, address: str, payout: str, name: str) -> list[str]:
    """On a local Anvil (chain id 31337): register ``address`` as operator with Anvil's registrar
    account and send it gas money, each only if still needed. Returns what was done."""
    if w3.eth.chain_id != ANVIL_CHAIN_ID:
        raise EVNetworkError(
            f"--dev works only on a local Anvil (chain id {ANVIL_CHAIN_ID}), not chain {w3.eth.chain_id}"
        )
    sender = TxSender(w3, dev_account(DEV_REGISTRAR))
    done = []
    if not Escrow(w3, deployment).operator_of(address).registered:
        Escrow(w3, deployment, sender).register_operator(address, payout, name)
        done.append(f"registered {address} as operator {name!r}, payout {payout}")
    if w3.eth.get_balance(address) < GAS_FOR_READY * w3.eth.gas_price:
        sender.send_ether(address, DEV_GAS_WEI)
        done.append(f"sent {DEV_GAS_WEI / 10**18:g} ETH for gas to {address}")
    return done


def registrar_instructions(deployment: Deployment, rpc_url: str, address: str, payout: str, name: str) -> str:
    """What the registrar of a real chain runs to onboard ``address`` (and what the operator does next)."""
    return (
        f"On this chain the registrar (an account with REGISTRAR_ROLE) registers {address}, e.g. with Foundry's cast:\n"
        f'  cast send {deployment.escrow} "registerOperator(address,address,string)" {address} {payout} "{name}" '
        f"--rpc-url {rpc_url} --private-key <registrar key>\n"
        f"and you send {address} some of the chain's native coin for gas. Then `core-client check` says ready."
    )
