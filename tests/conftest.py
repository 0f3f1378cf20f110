"""Shared fixtures: one real Anvil per test run, the contracts deployed by the real Brownie script,
funded accounts, and a chain snapshot reverted after every test that asks for ``clean_chain``."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount
from web3 import Web3

from ev_network.chain import connect
from ev_network.contracts import Escrow, Token
from ev_network.deployment import Deployment
from ev_network.devaccounts import dev_account
from ev_network.pricing import Tariff
from ev_network.session_ids import lane_of, seq_of
from ev_network.tx import TxSender
from tests.core_helpers import keyfile  # noqa: F401  (fixture shared by the Core Client tests)
from tests.pg_fixtures import db_location, pg_url, postgres  # noqa: F401  (both storage engines)
from tools.devchain import Anvil, deploy_with_brownie

TOKEN = 10**18
TARIFF = Tariff(price_per_kwh=35 * TOKEN // 100, session_fee=TOKEN // 2, time_fee_per_hour=0)
TIMED_TARIFF = Tariff(price_per_kwh=30 * TOKEN // 100, session_fee=TOKEN // 4, time_fee_per_hour=2 * TOKEN)


@dataclass
class Net:
    """The deployed network and its actors. Each actor has its own TxSender (own nonce stream)."""

    w3: Web3
    deployment: Deployment
    deployment_file: Path
    rpc_url: str
    admin: LocalAccount
    operator: LocalAccount
    payout: LocalAccount
    operator2: LocalAccount
    payout2: LocalAccount
    drivers: list[LocalAccount]
    senders: dict[str, TxSender]

    def escrow(self, account: LocalAccount | None = None) -> Escrow:
        return Escrow(self.w3, self.deployment, self.sender(account) if account else None)

    def token(self, account: LocalAccount | None = None) -> Token:
        return Token(self.w3, self.deployment.token, self.sender(account) if account else None)

    def sender(self, account: LocalAccount) -> TxSender:
        if account.address not in self.senders:
            self.senders[account.address] = TxSender(self.w3, account)
        return self.senders[account.address]

    def time_travel(self, seconds: int) -> None:
        """Move the chain's clock forward and mine a block."""
        self.w3.provider.make_request("evm_increaseTime", [seconds])
        self.w3.provider.make_request("evm_mine", [])

    def add_station(self, charge_point_id: str, connectors: int = 2, tariff: Tariff = TARIFF, operator=None) -> int:
        escrow = self.escrow(operator or self.operator)
        return escrow.station_id_from(escrow.add_station(charge_point_id, connectors, tariff))

    def fund(self, driver: LocalAccount, amount: int = 1000 * TOKEN, approve: bool = True) -> None:
        self.token(self.admin).mint(driver.address, amount)
        if approve:
            self.token(driver).approve(self.deployment.escrow, 2**256 - 1)


@pytest.fixture(scope="session")
def anvil() -> Iterator[Anvil]:
    with Anvil() as node:
        yield node


@pytest.fixture(scope="session")
def net(anvil: Anvil, tmp_path_factory: pytest.TempPathFactory) -> Net:
    """Deployed with scripts/deploy.py through Brownie; operators registered (stations: per test)."""
    out = tmp_path_factory.mktemp("deploy") / "deployment.json"
    deployment = deploy_with_brownie(anvil.url, out, env={"EVN_START_TIMEOUT": "300"})
    w3 = connect(anvil.url, deployment)
    admin, operator, payout, operator2, payout2 = (dev_account(i) for i in range(5))
    network = Net(
        w3=w3,
        deployment=deployment,
        deployment_file=out,
        rpc_url=anvil.url,
        admin=admin,
        operator=operator,
        payout=payout,
        operator2=operator2,
        payout2=payout2,
        drivers=[dev_account(i) for i in range(5, 15)],
        senders={},
    )
    registrar = network.escrow(admin)
    registrar.register_operator(operator.address, payout.address, "Volt Charging GmbH")
    registrar.register_operator(operator2.address, payout2.address, "Second Ampere SA")
    return network


@pytest.fixture
def clean_chain(net: Net) -> Iterator[Net]:
    """The network, reverted to this point after the test (stations, sessions, balances, time)."""
    snapshot = net.w3.provider.make_request("evm_snapshot", [])["result"]
    yield net
    net.w3.provider.make_request("evm_revert", [snapshot])
    for sender in net.senders.values():
        sender.resync()


ESCROW_DEPOSIT = 20 * TOKEN


@dataclass
class Env:
    """A station of net.operator (TARIFF, 2 connectors) and two funded drivers, for escrow tests."""

    net: Net
    station: int
    driver: LocalAccount
    other_driver: LocalAccount

    def balances(self) -> dict[str, int]:
        token = self.net.token()
        who = {
            "driver": self.driver.address,
            "payout": self.net.payout.address,
            "escrow": self.net.deployment.escrow,
        }
        return {name: token.balance_of(address) for name, address in who.items()}

    def open(self, deposit: int = ESCROW_DEPOSIT, station: int | None = None, connector: int = 1, driver=None) -> int:
        escrow = self.net.escrow(driver or self.driver)
        return escrow.session_id_from(escrow.open(station or self.station, connector, deposit))

    def active(
        self, meter_start: int = 1000, deposit: int = ESCROW_DEPOSIT, station: int | None = None, driver=None
    ) -> int:
        session_id = self.open(deposit, station, driver=driver)
        self.net.escrow(self.net.operator).start(session_id, transaction_id_for(session_id), meter_start)
        return session_id


def transaction_id_for(session_id: int) -> int:
    """The OCPP transaction id the tests' operator gives a session: 7000 + lane * 1000 + seq (fits uint32)."""
    return 7000 + lane_of(session_id) * 1000 + seq_of(session_id)


@pytest.fixture
def env(clean_chain: Net) -> Env:
    net = clean_chain
    station = net.add_station("CP-ESCROW-1", connectors=2, tariff=TARIFF)
    driver, other = net.drivers[0], net.drivers[1]
    net.fund(driver)
    net.fund(other)
    return Env(net, station, driver, other)
