"""The driver's receipt of a signed session (issue 12), on a real Anvil: the invoice carries the meter's
OCMF records, the key as registered on chain and the wallet's own verification, and the operator's
legal data with net / VAT / gross lines (OperatorProfile), the same on the web page, in the PDF and in
`ev-wallet invoice`, amounts rounded as money there; `ev-wallet verify` re-checks it online from the
chain and offline from the invoice JSON, and fails with one line on a changed record or reading."""

from __future__ import annotations

import json
import re

import pytest
from pypdf import PdfReader

from ev_network.ocmf import Reason, parse, session_id_tag, signed_settlement
from ev_network.operator_profile import OperatorProfiles, Profile, vat_split
from ev_network.session_ids import hex_session_id
from ev_network.units import format_amount, money
from ev_network.web.server import HttpServer
from simulator.meter import SigningMeter
from tools.harness.chain import TARIFF, Env
from tools.harness.contracts import reverts
from tools.harness.wallet import PASSWORD, Cli, wallet_config
from tools.harness.web import WebClient
from wallet.invoice import build_invoice, render_pdf, render_text
from wallet.keystore import Keystore
from wallet.web import create_app

BEGIN_WH, ENERGY_WH = 1_234_567, 12_345
LEGAL = Profile("Volt Charging GmbH", "Hauptstrasse 1\n10115 Berlin\nDeutschland", "DE123456789", 1900)


def profiles(env: Env, account=None) -> OperatorProfiles:
    net = env.net
    return OperatorProfiles(net.w3, net.deployment.operator_profile, net.escrow(account or net.operator).sender)


def signed_session(env: Env) -> int:
    """A session at a metered station, settled on its meter's signed records."""
    net, meter = env.net, SigningMeter.for_charge_point("CP-RECEIPT")
    escrow = net.escrow(net.operator)
    station = escrow.station_id_from(escrow.add_station("CP-RECEIPT", 2, TARIFF, meter.public_key_der))
    session_id = env.active(meter_start=BEGIN_WH, station=station)
    tag = session_id_tag(session_id)
    begin = parse(meter.record(Reason.BEGIN, BEGIN_WH, tag))
    end = parse(meter.record(Reason.END, BEGIN_WH + ENERGY_WH, tag))
    escrow.settle_signed(signed_settlement(session_id, begin, end, meter.public_key_der))
    return session_id


@pytest.fixture
def cli(clean_chain, tmp_path) -> Cli:
    return Cli(clean_chain, tmp_path / "home")


def test_invoice_of_a_signed_session_carries_the_verified_records_and_vat_lines(env: Env, tmp_path):
    profiles(env).set_profile(LEGAL)
    session_id = signed_session(env)
    inv = build_invoice(env.net.w3, env.net.deployment, session_id)
    proof = inv.meter_proof
    assert proof is not None and proof.verified and proof.energy_wh == ENERGY_WH == inv.energy_wh
    assert (proof.begin.reading_wh, proof.end.reading_wh) == (inv.meter_start_wh, inv.meter_stop_wh)
    registered = env.net.escrow().get_station(inv.station_id).meter_public_key
    assert bytes.fromhex(proof.meter_public_key) == bytes(registered)
    assert proof.begin.record.startswith("OCMF|") and session_id_tag(session_id) in proof.end.record
    seller = inv.seller
    assert seller is not None and (seller.net, seller.vat) == vat_split(inv.total, 1900)
    assert seller.net + seller.vat == inv.total and seller.vat > 0
    text = render_text(inv)
    for expected in ("Seller    Volt Charging GmbH", "VAT id DE123456789", "VAT 19 %", "Meter     VERIFIED"):
        assert expected in text, expected
    assert render_pdf(inv, tmp_path / "inv.pdf").read_bytes().startswith(b"%PDF")


async def test_the_page_the_pdf_and_the_text_show_the_same_invoice_in_money(env: Env, tmp_path):
    profiles(env).set_profile(LEGAL)
    session_id = signed_session(env)
    inv = build_invoice(env.net.w3, env.net.deployment, session_id)
    config = wallet_config(env.net, tmp_path / "home")
    Keystore(config).import_key(env.driver.key.hex(), PASSWORD)
    server = HttpServer(create_app(config), "127.0.0.1", 0)
    await server.start()
    try:
        client = WebClient(server.url)
        await client.get("/")
        await client.post("/unlock", {"password": PASSWORD})
        status, html = await client.get(f"/sessions/{hex_session_id(session_id)}/invoice")
    finally:
        await server.stop()
    assert status == 200
    page = " ".join(re.sub(r"<[^>]+>", " ", html).split())
    pdf = "".join(p.extract_text() for p in PdfReader(render_pdf(inv, tmp_path / "inv.pdf")).pages)
    text = render_text(inv)
    net, vat = (f"{money(units, 18)} EVE" for units in vat_split(inv.total, 1900))
    assert (net, vat, format_amount(inv.total, 18)) == (
        "4.0511 EVE",
        "0.7697 EVE",
        "4.82075",
    )  # 4.0511 + 0.7697 = 4.8208
    shown = [
        "Volt Charging GmbH",
        "Hauptstrasse 1, 10115 Berlin, Deutschland",
        "VAT id DE123456789",
        net,
        "VAT 19 %",
        vat,
        "4.8208 EVE",
        "charged exactly 4.82075 EVE",
        "VERIFIED: both records verified against the meter key registered on chain",
        inv.settle_tx,
    ]
    for rendering in (page, " ".join(pdf.split()), " ".join(text.split())):
        missing = [item for item in shown if item not in rendering]
        assert not missing, (missing, rendering)
        assert not re.search(r"\d\.\d{6,} EVE", rendering)  # no amount with 18 decimals
        assert re.search(
            rf"Begin {BEGIN_WH} Wh at \d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d UTC \(T1\)", rendering
        )  # one time format


def test_verify_online_and_offline_and_refuses_a_changed_record(env: Env, cli: Cli, tmp_path):
    session_id = signed_session(env)
    sid = hex_session_id(session_id)
    online = cli("verify", sid)
    assert f"{ENERGY_WH} Wh signed by meter" in online.output and "VERIFIED" in online.output
    path = tmp_path / "invoice.json"
    cli("invoice", sid, "--format", "json", "--output", str(path))
    assert cli.json("verify", sid, "--invoice", str(path))["verified"] is True
    original = json.loads(path.read_text())
    assert original["seller"] is None  # this operator published no legal data: said, not invented

    def broken(change) -> str:
        data = json.loads(json.dumps(original))
        change(data)
        path.write_text(json.dumps(data))
        result = cli("verify", sid, "--invoice", str(path), ok=False)
        assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1
        return result.output

    more = str(BEGIN_WH + ENERGY_WH + 1000)
    record = original["meter_proof"]["end"]["record"]
    assert "NOT verified" in broken(lambda d: d["meter_proof"]["end"].update(record=record.replace(
        f'"RV":{(BEGIN_WH + ENERGY_WH) / 1000}', f'"RV":{int(more) / 1000}'
    )))  # fmt: skip
    assert "the invoice bills" in broken(lambda d: d.update(meter_stop_wh=int(more)))
    assert "is the invoice of session" in cli("verify", "99", "--invoice", str(path), ok=False).output


def test_plain_session_invoice_says_the_reading_is_the_operators(env: Env, cli: Cli):
    session_id = env.active()
    env.net.escrow(env.net.operator).settle(session_id, 1000 + 5_000)
    inv = build_invoice(env.net.w3, env.net.deployment, session_id)
    assert inv.meter_proof is None and "the reading is the operator's" in render_text(inv)
    result = cli("verify", hex_session_id(session_id), ok=False)
    assert result.exit_code == 1 and "no signed meter records" in result.output


def test_only_a_registered_operator_writes_its_own_profile(env: Env):
    with reverts("NotRegisteredOperator"):
        profiles(env, env.driver).set_profile(LEGAL)
    with reverts("InvalidVatRate"):
        profiles(env).set_profile(Profile("A", "B", "", 10_001))
    with reverts("IncompleteProfile"):
        profiles(env).set_profile(Profile("", "B", "", 1900))
    profiles(env).set_profile(LEGAL)
    assert profiles(env).profile_of(env.net.operator.address) == LEGAL
    assert profiles(env).profile_of(env.net.operator2.address) is None
