"""``core-client cards add|list|remove`` against a real Anvil: the operator accepts the grant a driver's
``ev-wallet card add`` printed; the grants file (``cards_file``) is written whole with mode 0600, its
comments kept; a grant is checked on chain (exists, names this operator, not revoked) before it is added;
each mistake is one line, nothing written."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from core_client.chain.grants import read_grants
from core_client.cli.main import app
from ev_network.keys import create_keyfile
from ev_network.mandates import parse_grant
from tools.harness.chain import TOKEN
from tools.harness.core import PASSWORD
from tools.harness.wallet import driver_wallet
from wallet.cards import Cards


@pytest.fixture
def cards_cli(net, tmp_path, monkeypatch):
    """invoke(*args) -> (exit code, non-empty output lines), with a config of net.operator and cards_file."""
    monkeypatch.setenv("EVN_OPERATOR_PASSWORD", PASSWORD)
    create_keyfile(tmp_path / "operator.json", PASSWORD, net.operator.key)
    config = tmp_path / "cc.toml"
    config.write_text(
        f'rpc_url = "{net.rpc_url}"\ndeployment_file = "{net.deployment_file}"\nkeystore = "operator.json"\n'
        'cards_file = "grants/cards.txt"\n'
    )
    runner = CliRunner()

    def invoke(*args: str):
        result = runner.invoke(app, ["cards", *args, "--config", str(config)])
        assert result.exception is None or isinstance(result.exception, SystemExit), result.output
        return result.exit_code, [line for line in result.output.splitlines() if line.strip()]

    return invoke


def _card(net, tmp_path: Path, driver_index: int, uid: str, operator: str):
    driver = net.drivers[driver_index]
    net.fund(driver)
    return Cards(driver_wallet(net, driver), tmp_path / f"wallet-{driver_index}").add(
        uid, operator, 5 * TOKEN, 10 * TOKEN
    )


def test_the_operator_adds_lists_and_removes_a_drivers_grant(net, tmp_path, cards_cli):
    cards_file = tmp_path / "grants" / "cards.txt"
    card = _card(net, tmp_path, 3, "0A1B2C3D", net.operator.address)

    code, out = cards_cli("add", card.grant, "--label", "driver 3")
    assert code == 0 and out == [
        f"mandate {card.mandate_id} added to {cards_file}: the Core Client accepts its cards within cards_poll_s (2 s)"
    ]
    assert stat.S_IMODE(cards_file.stat().st_mode) == 0o600  # the salt lets one test uids against the reference
    assert read_grants(cards_file) == {card.mandate_id: parse_grant(card.grant)[1]}  # what the daemon reads
    assert cards_cli("add", card.grant) == (0, [f"mandate {card.mandate_id} is granted already in {cards_file}"])
    assert cards_file.read_text().count("evcard:") == 1

    code, out = cards_cli("list", "--json")
    [row] = json.loads("\n".join(out))
    assert (row["mandate_id"], row["label"], row["status"]) == (card.mandate_id, "driver 3", "active")
    assert (row["cap_per_session"], row["total"], row["committed"]) == (5 * TOKEN, 10 * TOKEN, 0)
    code, out = cards_cli("list")
    assert code == 0 and out[0].startswith(
        f"mandate {card.mandate_id} (driver 3) active: payer {net.drivers[3].address}"
    )
    assert "up to 5.00 per session, committed 0.00 of 10.00" in out[0]

    cards_file.write_text("# cards of our fleet customers\n" + cards_file.read_text())
    cards_file.chmod(0o644)
    code, out = cards_cli("list", "--offline")
    assert out == [
        f"mandate {card.mandate_id} (driver 3)",
        f"warning: {cards_file} is readable by others (chmod 600 it: grants hold the cards' salts)",
    ]

    assert cards_cli("remove", str(card.mandate_id)) == (
        0,
        [f"mandate {card.mandate_id} removed from {cards_file}: its cards are refused within cards_poll_s"],
    )
    assert cards_file.read_text() == "# cards of our fleet customers\n"  # comments kept
    assert stat.S_IMODE(cards_file.stat().st_mode) == 0o600
    assert read_grants(cards_file) == {}
    assert cards_cli("remove", str(card.mandate_id)) == (
        1,
        [f"error: no grant of mandate {card.mandate_id} in {cards_file} (`core-client cards list` shows them)"],
    )


def test_grants_that_would_open_nothing_here_are_refused_in_one_line_and_nothing_is_written(net, tmp_path, cards_cli):
    cards_file = tmp_path / "grants" / "cards.txt"
    elsewhere = _card(net, tmp_path, 4, "0A1B2C3E", net.operator2.address)  # a mandate for another operator
    code, out = cards_cli("add", elsewhere.grant)
    assert code == 1 and len(out) == 1
    assert f"mandate {elsewhere.mandate_id} is not naming this operator {net.operator.address}" in out[0]
    assert not cards_file.exists()

    code, out = cards_cli("add", "evcard:12:00ff")
    assert code == 1 and out == ["error: not a card grant (expected evcard:<mandate id>:<64 hex digits>)"]
    code, out = cards_cli("add", "evcard:99999:" + "00" * 32)
    assert code == 1 and out == [
        "error: mandate 99999 is unknown on this chain: not added (--offline adds it unchecked)"
    ]

    card = _card(net, tmp_path, 5, "0A1B2C3F", net.operator.address)
    Cards(driver_wallet(net, net.drivers[5]), tmp_path / "wallet-5").remove("0A1B2C3F")  # the driver revoked it
    code, out = cards_cli("add", card.grant)
    assert code == 1 and out == [
        f"error: mandate {card.mandate_id} is revoked: not added (--offline adds it unchecked)"
    ]
    assert not cards_file.exists()

    # the same mandate with another salt (a forged or outdated grant), and a file broken by hand
    assert cards_cli("add", card.grant, "--offline")[0] == 0
    other_salt = f"evcard:{card.mandate_id}:{'11' * 32}"
    code, out = cards_cli("add", other_salt, "--offline")
    assert code == 1 and out == [
        f"error: mandate {card.mandate_id} is granted already with another salt: `core-client cards remove "
        f"{card.mandate_id}` first if the driver linked the card again"
    ]
    cards_file.write_text(cards_file.read_text() + "evcard:oops\n")
    before = cards_file.read_text()
    code, out = cards_cli("add", elsewhere.grant, "--offline")
    assert code == 1 and out == [
        f"error: {cards_file} line 2: not a card grant (expected evcard:<mandate id>:<64 hex digits>)"
    ]
    assert cards_file.read_text() == before


def test_a_config_without_cards_file_says_what_to_set(net, tmp_path, cards_cli):
    config = tmp_path / "cc.toml"
    config.write_text(config.read_text().replace('cards_file = "grants/cards.txt"\n', ""))
    code, out = cards_cli("list")
    assert code == 1 and out == [
        'error: the config sets no cards_file: add e.g. cards_file = "cards.txt" (the daemon reads grants there)'
    ]
