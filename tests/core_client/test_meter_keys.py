"""``core-client stations meter-key set|rotate|remove`` against a real Anvil: the key as meters print it,
sent from the operator's encrypted keystore; malformed or empty keys refused in one line, nothing sent."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from typer.testing import CliRunner

from core_client.cli.main import app
from tools.devchain import ROOT
from tools.harness.core import cp_ids


def _point(key: ec.EllipticCurvePrivateKey, compressed: bool = False) -> bytes:
    form = serialization.PublicFormat.CompressedPoint if compressed else serialization.PublicFormat.UncompressedPoint
    return key.public_key().public_bytes(serialization.Encoding.X962, form)


def _der(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _pem(key: ec.EllipticCurvePrivateKey) -> str:
    pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return pem.decode()


@pytest.fixture
def operator_cli(clean_chain, tmp_path, monkeypatch):
    """(invoke, cp, net): the second operator's keystore and config, and one station of it, plain."""
    net = clean_chain
    runner = CliRunner()
    monkeypatch.setenv("EVN_OPERATOR_PASSWORD", "pw-123")
    monkeypatch.setenv("EVN_OPERATOR_KEY", net.operator2.key.hex())
    assert runner.invoke(app, ["keys", "import", "--keystore", str(tmp_path / "op2.json")]).exit_code == 0
    [cp] = cp_ids("MK")
    config = tmp_path / "cc.toml"
    config.write_text(f'rpc_url = "{net.rpc_url}"\ndeployment_file = "{net.deployment_file}"\nkeystore = "op2.json"\n')

    def invoke(*args: str):
        return runner.invoke(app, [*args, "--config", str(config)])

    add = invoke("stations", "add", cp, "--connectors", "2", "--price-per-kwh", "0.4", "--session-fee", "1")
    assert add.exit_code == 0, add.output
    return invoke, cp, net


def _listed(invoke, cp: str) -> dict:
    result = invoke("stations", "list", "--json")
    assert result.exit_code == 0, result.output
    [row] = [r for r in json.loads(result.output) if r["charge_point_id"] == cp]
    return row


def next_second(net) -> None:
    """A meter key changes at most once a chain second (MeterKeyChangedThisSecond): the next change lands
    in a later block second, however fast the test runs (the fresh-clone run failed on a quick machine)."""
    net.w3.provider.make_request("evm_increaseTime", [1])


def test_operator_sets_rotates_and_removes_a_meter_key_in_every_printed_form(operator_cli, tmp_path):
    invoke, cp, net = operator_cli
    escrow = net.escrow()
    assert _listed(invoke, cp)["meter_key"] == "plain"

    first = ec.generate_private_key(ec.SECP256R1())
    (tmp_path / "meter.pem").write_text(_pem(first))
    result = invoke("stations", "meter-key", "set", cp, "--file", str(tmp_path / "meter.pem"))
    assert result.exit_code == 0, result.output
    assert escrow.station_by_charge_point(cp).meter_public_key == _point(first)
    row = _listed(invoke, cp)
    assert row["meter_public_key"] == _point(first).hex() and row["meter_key"].startswith("sha256:")
    assert row["meter_key"] in invoke("stations", "list").output  # the table shows the fingerprint too

    again = invoke("stations", "meter-key", "set", cp, _point(first).hex())
    assert again.exit_code == 1 and "use rotate" in again.output and len(again.output.splitlines()) == 1

    forms = {
        "DER hex": lambda k: _der(k).hex(),
        "DER base64": lambda k: base64.b64encode(_der(k)).decode(),
        "uncompressed point, 0x": lambda k: "0x" + _point(k).hex(),
        "compressed point": lambda k: _point(k, compressed=True).hex(),
        "x||y, colons": lambda k: ":".join(f"{b:02X}" for b in _point(k)[1:]),
    }
    for name, form in forms.items():
        key = ec.generate_private_key(ec.SECP256R1())
        next_second(net)
        result = invoke("stations", "meter-key", "rotate", cp, form(key))
        assert result.exit_code == 0, (name, result.output)
        assert escrow.station_by_charge_point(cp).meter_public_key == _point(key), name

    next_second(net)
    result = invoke("stations", "meter-key", "remove", cp)
    assert result.exit_code == 0, result.output
    assert _listed(invoke, cp)["meter_key"] == "plain"
    result = invoke("stations", "meter-key", "remove", cp)
    assert result.exit_code == 1 and "no meter key" in result.output
    result = invoke("stations", "meter-key", "rotate", cp, _point(first).hex())
    assert result.exit_code == 1 and "use set" in result.output


def test_empty_or_malformed_meter_keys_are_refused_in_one_line_and_nothing_is_sent(operator_cli, tmp_path):
    invoke, cp, net = operator_cli
    nonce = net.w3.eth.get_transaction_count(net.operator2.address)
    wrong_curve = ec.generate_private_key(ec.SECP384R1())
    point = _point(ec.generate_private_key(ec.SECP256R1()))
    bad = {
        "": "empty",
        "   ": "empty",
        "zz-not-a-key": "is not valid base64",
        point.hex()[:-2]: "not a P-256 public key",  # a byte short
        "04" + "00" * 64: "not a P-256 public key",  # not on the curve
    }
    for key, message in bad.items():
        result = invoke("stations", "meter-key", "set", cp, key)
        assert result.exit_code == 1 and message in result.output, (key, result.output)
        assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
    (tmp_path / "p384.pem").write_text(_pem(wrong_curve))
    result = invoke("stations", "meter-key", "set", cp, "--file", str(tmp_path / "p384.pem"))
    assert result.exit_code == 1 and "not a P-256 (secp256r1) key" in result.output
    result = invoke("stations", "meter-key", "set", cp)
    assert result.exit_code == 1 and "either as KEY or with --file" in result.output
    result = invoke("stations", "meter-key", "set", "NO-SUCH-CP", point.hex())
    assert result.exit_code == 1 and "no station is registered for charge point NO-SUCH-CP" in result.output
    assert net.w3.eth.get_transaction_count(net.operator2.address) == nonce
    assert _listed(invoke, cp)["meter_key"] == "plain"


def test_register_station_script_refuses_a_set_but_empty_meter_key_instead_of_registering_it_plain(clean_chain):
    """``EVN_METER_KEY=$UNSET_VARIABLE``: the development script registered a plain station; now it says so
    in one line and registers nothing."""
    net = clean_chain
    [cp] = cp_ids("MKSCRIPT")
    env = {**os.environ, "EVN_RPC_URL": net.rpc_url, "EVN_DEPLOYMENT": str(net.deployment_file)}
    env |= {"EVN_METER_KEY": "", "EVN_OPERATOR_KEY": net.operator2.key.hex()}
    env["PATH"] = f"{ROOT / 'node_modules' / '.bin'}{os.pathsep}{env['PATH']}"
    command = [sys.executable, "-m", "tools.brownie_run", "scripts/register_station.py", "main", cp, "2", "0.3", "1"]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert "EVN_METER_KEY refused: the meter key is empty" in result.stderr + result.stdout
    assert net.escrow().station_by_charge_point(cp) is None
