"""Shared fixtures: one real Anvil per test run, the contracts deployed by the real Brownie script,
funded accounts, a chain snapshot reverted after every test that asks for ``clean_chain``, and the
operator's encrypted keyfile, and the Core Client's state on both engines: one throwaway PostgreSQL
server per test run (tools/pgserver.py; started on first use, stopped at the end of the run, however it
ends) and, per test, a new empty schema on it (as good as a database of its own, and 100 times faster to
make) or a new SQLite file. What they build (Net, Env, the tariffs) is in tools/harness/chain.py."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from ev_network.chain import connect
from ev_network.devaccounts import dev_account
from tools.devchain import Anvil, deploy_with_brownie
from tools.harness.chain import TARIFF, Env, Net
from tools.harness.core import make_keyfile
from tools.pgserver import PostgresServer


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


@pytest.fixture
def env(clean_chain: Net) -> Env:
    net = clean_chain
    station = net.add_station("CP-ESCROW-1", connectors=2, tariff=TARIFF)
    driver, other = net.drivers[0], net.drivers[1]
    net.fund(driver)
    net.fund(other)
    return Env(net, station, driver, other)


@pytest.fixture(scope="module")
def keyfile(net: Net, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The operator's key in an encrypted keyfile (password tools.harness.core.PASSWORD), once per test module."""
    return make_keyfile(tmp_path_factory.mktemp("operator"), net.operator)


ENGINES = ("sqlite", "postgresql")
_names = itertools.count(1)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server of this test run (Debian's binaries, a free port, its own folder)."""
    with PostgresServer() as server:
        yield server


@pytest.fixture
def pg_url(postgres: PostgresServer) -> str:
    """A new empty schema on the test run's server: the postgresql:// URL that works in it alone."""
    return postgres.create_schema(f"test_{next(_names)}")


@pytest.fixture(params=ENGINES)
def db_location(request: pytest.FixtureRequest, tmp_path: Path) -> str | Path:
    """Where a test's Core Client state lives, once per engine: a new SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        return tmp_path / "cc.sqlite"
    return request.getfixturevalue("pg_url")
