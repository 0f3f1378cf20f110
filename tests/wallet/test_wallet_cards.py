"""ev-wallet card add|list|remove against a real Anvil: a card linked to a mandate of the account, the
operator opening a session for it with the grant, list showing what was committed, remove revoking at once;
the uid never published."""

from __future__ import annotations

import stat

import pytest

from ev_network.errors import ContractRevert, EVNetworkError
from ev_network.mandates import Mandate, Mandates, format_grant, parse_grant, token_ref
from tools.harness.chain import TARIFF, TOKEN
from tools.harness.wallet import Cli
from wallet.cards import CardError, card_status, normal_uid

UID = "04a2b3c4d5e6f7"


@pytest.fixture
def cli(net, tmp_path) -> Cli:
    return Cli(net, tmp_path / "home")


def test_card_add_list_session_under_it_remove_revokes(clean_chain, cli, tmp_path):
    net = clean_chain
    station = net.add_station("CP-CARD-1", connectors=1, tariff=TARIFF)
    cli.new_account("100")
    out = cli("card", "add", UID, "--operator", net.operator.address, "--cap", "20", "--total", "50").stdout
    grant = out.split("grant for the operator: ")[1].split()[0]
    mandate_id, salt = parse_grant(grant)
    assert UID.upper() not in out.split("grant")[1]  # the grant names the mandate and salt, not the card

    listed = cli.json("card", "list")
    assert [(c["uid"], c["status"], c["mandate_id"]) for c in listed] == [(UID.upper(), "active", mandate_id)]
    assert (listed[0]["cap_per_session"], listed[0]["total"], listed[0]["committed"]) == (20 * TOKEN, 50 * TOKEN, 0)
    card_file = next((tmp_path / "home" / "cards").iterdir())
    assert stat.S_IMODE(card_file.stat().st_mode) == 0o600

    operator = Mandates(net.w3, net.deployment, net.sender(net.operator))
    ref = token_ref(salt, UID)
    receipt = operator.open_session(mandate_id, ref, station, 1, 15 * TOKEN, 7, 0)
    tx = net.w3.eth.get_transaction(receipt["transactionHash"])
    assert UID.upper().encode().hex() not in tx["input"].hex()  # only the salted reference is on chain
    assert cli.json("card", "list")[0]["committed"] == 15 * TOKEN
    assert "04A2B3C4D5E6F7 active: committed 15.00 EVE of 50.00 EVE" in cli("card", "list").stdout

    assert f"mandate {mandate_id} revoked" in cli("card", "remove", UID).stdout
    assert Mandates(net.w3, net.deployment).get(mandate_id).revoked
    assert cli.json("card", "list") == []
    with pytest.raises(ContractRevert, match="MandateIsRevoked"):
        operator.open_session(mandate_id, ref, station, 1, 5 * TOKEN, 8, 0)


def test_card_errors_are_one_line(clean_chain, cli):
    net = clean_chain
    cli.new_account("100")
    bad = cli("card", "add", "04 A2", "--operator", net.operator.address, "--cap", "1", "--total", "2", ok=False)
    assert bad.exit_code == 1 and "card uid" in bad.output and "Traceback" not in bad.output
    over = cli("card", "add", UID, "--operator", net.operator.address, "--cap", "5", "--total", "2", ok=False)
    assert "cap per session" in over.output
    missing = cli("card", "remove", "CAFE", ok=False)
    assert missing.exit_code == 1 and "no card 'CAFE'" in missing.output
    cli("card", "add", UID, "--operator", net.operator.address, "--cap", "1", "--total", "2")
    twice = cli("card", "add", UID, "--operator", net.operator.address, "--cap", "1", "--total", "2", ok=False)
    assert "already linked" in twice.output


def test_card_status_grant_and_uid_rules():
    m = Mandate(
        1, "0x" + "11" * 20, cap_per_session=5, total=10, committed=0, expiry=100, revoked=False, any_token=False
    )
    assert card_status(m, now=99) == "active"
    assert card_status(m, now=100) == "expired"
    assert card_status(Mandate(**{**m.__dict__, "committed": 10}), now=0) == "exhausted"
    assert card_status(Mandate(**{**m.__dict__, "revoked": True}), now=0) == "revoked"
    assert parse_grant(format_grant(7, b"\x01" * 32)) == (7, b"\x01" * 32)
    for bad in ("evcard:7", "evcard:x:00", "other:7:" + "00" * 32, "evcard:0:" + "00" * 32):
        with pytest.raises(EVNetworkError, match="not a card grant"):
            parse_grant(bad)
    assert normal_uid(" 04ab ") == "04AB"
    with pytest.raises(CardError):
        normal_uid("x" * 21)
