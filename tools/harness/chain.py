"""The test network: Net (the deployed contracts and their actors on one Anvil), Env (a station and two
funded drivers for escrow tests), the tests' tariffs, and the transaction ids the tests' operator gives.
The fixtures that build them are in tests/conftest.py."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from eth_account.signers.local import LocalAccount
from web3 import Web3

from ev_network.contracts import Escrow, Token
from ev_network.deployment import Deployment
from ev_network.pricing import Tariff
from ev_network.session_ids import lane_of, seq_of
from ev_network.tx import TxSender

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
