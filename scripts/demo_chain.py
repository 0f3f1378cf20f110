"""The demo's chain side: a local Anvil with kept state, the Brownie deployment, the operator (with its
legal data for invoices), its stations and tariffs (VOLT-BER-001's meter key registered: its sessions
settle only on signed records), and a funded driver. Idempotent: a second run continues where the first
stopped (same chain state, same deployment, stations already registered)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from eth_account.signers.local import LocalAccount
from eth_utils import function_abi_to_4byte_selector
from web3 import Web3

from ev_network.chain import connect
from ev_network.contracts import Escrow, Token
from ev_network.deployment import Deployment, load_abi
from ev_network.devaccounts import dev_account
from ev_network.operator_profile import OperatorProfiles, Profile
from ev_network.pricing import Tariff
from ev_network.tx import TxSender
from simulator.meter import SigningMeter
from tools.devchain import Anvil, deploy_with_brownie

TOKEN = 10**18
OPERATOR_NAME = "Volt Charging GmbH"
LEGAL = Profile(OPERATOR_NAME, "Invalidenstrasse 1\n10115 Berlin\nGermany", "DE123456789", 1900)
SIGNING_STATION = "VOLT-BER-001"  # its simulated meter signs OCMF records; the key is registered on chain


@dataclass(frozen=True)
class DemoStation:
    charge_point_id: str
    connectors: int
    tariff: Tariff
    label: str


STATIONS = (
    DemoStation("VOLT-BER-001", 2, Tariff(39 * TOKEN // 100, TOKEN // 2, 0), "Berlin Mitte, 2 x 22 kW AC"),
    DemoStation("VOLT-BER-002", 2, Tariff(59 * TOKEN // 100, TOKEN, 0), "Berlin Adlershof, 150 kW DC"),
    DemoStation("VOLT-POT-001", 1, Tariff(35 * TOKEN // 100, 0, 6 * TOKEN), "Potsdam, AC with time fee"),
)


class StaleState(Exception):
    """The kept chain state holds contracts of an older EV Network version: start over."""


@dataclass
class DemoChain:
    anvil: Anvil
    w3: Web3
    deployment: Deployment
    admin: LocalAccount
    operator: LocalAccount
    payout: LocalAccount
    station_ids: dict[str, int]

    def escrow(self, account: LocalAccount | None = None) -> Escrow:
        return Escrow(self.w3, self.deployment, TxSender(self.w3, account) if account else None)

    def token(self, account: LocalAccount | None = None) -> Token:
        return Token(self.w3, self.deployment.token, TxSender(self.w3, account) if account else None)


def start_chain(state_dir: Path, say, port: int | None = None) -> DemoChain:
    """Start Anvil (state in ``state_dir``), deploy unless the deployment is still there, register."""
    anvil = Anvil(port=port, state=state_dir / "anvil-state.json").start()
    try:
        return _deploy_and_register(anvil, state_dir, say)
    except BaseException:
        anvil.stop()  # whatever failed (stale state, deploy, Ctrl-C): stop the Anvil started here
        raise


def _deploy_and_register(anvil: Anvil, state_dir: Path, say) -> DemoChain:
    say(f"Anvil listening on {anvil.url} (state: {state_dir / 'anvil-state.json'})")
    deployment_file = state_dir / "deployment.json"
    w3 = connect(anvil.url)
    deployment = _existing_deployment(w3, deployment_file)
    if deployment is None:
        say("deploying EVToken and SessionEscrow with Brownie (scripts/deploy.py)")
        deployment = deploy_with_brownie(anvil.url, deployment_file, env={"EVN_START_TIMEOUT": "60"})
    else:
        say(f"continuing with the deployment in {deployment_file} (escrow {deployment.escrow})")
    deployment = deployment.model_copy(update={"rpc_url": anvil.url})
    deployment.save(deployment_file)
    chain = DemoChain(anvil, w3, deployment, dev_account(0), dev_account(1), dev_account(2), {})
    _register(chain, say)
    return chain


def _existing_deployment(w3: Web3, path: Path) -> Deployment | None:
    """The kept deployment, None if there is none on this chain; StaleState if it is of an older version."""
    if not path.exists():
        return None
    deployment = Deployment.load(path)
    code = bytes(w3.eth.get_code(deployment.escrow))
    if not code:
        return None
    missing = [f["name"] for f in load_abi("SessionEscrow") if f["type"] == "function" and not _dispatches(code, f)]
    if missing:
        raise StaleState(
            f"the escrow kept in {path.parent} is of an older EV Network version (no {', '.join(missing[:3])})"
        )
    return deployment


def _dispatches(code: bytes, function: dict) -> bool:
    """Whether the contract's dispatcher has ``function``'s selector (PUSH4 <selector>)."""
    return b"\x63" + function_abi_to_4byte_selector(function) in code


def _register(chain: DemoChain, say) -> None:
    escrow = chain.escrow(chain.operator)
    if not escrow.operator_of(chain.operator.address).registered:
        chain.escrow(chain.admin).register_operator(chain.operator.address, chain.payout.address, OPERATOR_NAME)
        say(f"operator {OPERATOR_NAME} registered: account {chain.operator.address}, payout {chain.payout.address}")
    for station in STATIONS:
        existing = escrow.station_by_charge_point(station.charge_point_id)
        if existing is None:
            receipt = escrow.add_station(station.charge_point_id, station.connectors, station.tariff)
            station_id = escrow.station_id_from(receipt)
            say(f"station {station_id} {station.charge_point_id} registered: {station.label}")
        else:
            station_id = existing.station_id
        chain.station_ids[station.charge_point_id] = station_id
    key = SigningMeter.for_charge_point(SIGNING_STATION).public_key_der
    signing = chain.station_ids[SIGNING_STATION]
    if not escrow.get_station(signing).meter_public_key:
        escrow.set_meter_public_key(signing, key)
        say(f"station {signing} {SIGNING_STATION}: meter key registered (its sessions settle on signed records)")
    if chain.deployment.operator_profile is not None:
        profiles = OperatorProfiles(chain.w3, chain.deployment.operator_profile, escrow.sender)
        if profiles.profile_of(chain.operator.address) != LEGAL:
            profiles.set_profile(LEGAL)
            say(
                f"operator legal data published: {LEGAL.legal_name}, VAT id {LEGAL.vat_id}, VAT {LEGAL.vat_rate_bp / 100:g} %"
            )
