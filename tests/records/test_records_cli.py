"""The record commands end to end on a real Anvil: `core-client records list/anchor/export --proof` on
the Core Client's database, and `ev-wallet verify-record FILE` as an MSP runs it (chain only)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from core_client.cli.main import app as core_app
from core_client.config import settings_to_toml
from core_client.records.log import TransactionLog
from ev_network.records import RecordAnchor
from tools.harness.chain import Net
from tools.harness.core import PASSWORD, settings_for
from tools.harness.records import add_transactions
from wallet.cli import app as wallet_app


def test_export_anchor_and_verify_from_the_command_lines(tmp_path: Path, clean_chain: Net, keyfile: Path) -> None:
    net = clean_chain
    settings = settings_for(net, tmp_path, keyfile, {})
    config = tmp_path / "core-client.toml"
    config.write_text(settings_to_toml(settings))
    log = TransactionLog(settings.database, RecordAnchor(net.w3, net.deployment.record_anchor))
    add_transactions(log, 41, 3)
    runner = CliRunner()

    def core(*args: str):
        return runner.invoke(
            core_app, ["records", *args, "--config", str(config)], env={"EVN_OPERATOR_PASSWORD": PASSWORD}
        )

    def verify(file: Path, *extra: str):
        chain = ["--rpc-url", net.rpc_url, "--deployment", str(net.deployment_file)]
        return runner.invoke(wallet_app, ["verify-record", str(file), *chain, *extra])

    listed = core("list", "--json")
    assert listed.exit_code == 0, listed.output
    assert [(r["index"], r["transaction_id"], r["anchor"]) for r in json.loads(listed.stdout)] == [
        (0, 41, None),
        (1, 42, None),
        (2, 43, None),
    ]
    early = tmp_path / "early.json"
    result = core("export", "42", "--proof", "--out", str(early))
    assert result.exit_code == 0 and "not anchored yet" in result.output
    result = verify(early)
    assert result.exit_code == 1 and result.output.strip().startswith("error: record 1 of operator")
    assert "not anchored yet" in result.output and len(result.output.strip().splitlines()) == 1

    result = core("anchor")
    assert result.exit_code == 0 and "anchor 0: records 0-2" in result.output, result.output
    assert "nothing to anchor" in core("anchor").output
    table = core("list").output
    assert "3 records, 3 anchored in 1 anchors" in table and "not yet" not in table

    proved = tmp_path / "record-42.json"
    assert core("export", "42", "--proof", "-o", str(proved)).exit_code == 0
    result = verify(proved, "--id-tag", "RFID-0042")
    assert result.exit_code == 0, result.output
    assert result.output.startswith(
        "transaction 42 at CP-REC-1/1: 777 Wh, stopped 2025-12-01T00:42:30Z (EVDisconnected)"
    )
    assert f"record 1 is in anchor 0 of operator {net.operator.address} (Volt Charging GmbH)" in result.output
    answer = json.loads(verify(proved, "--json").stdout)
    assert answer["verified"] and answer["anchor_id"] == 0 and answer["count"] == 3
    result = verify(proved, "--id-tag", "rfid-0041")
    assert result.exit_code == 1 and "not of idTag rfid-0041" in result.output

    exported = json.loads(proved.read_text())
    exported["record"]["meter_stop"] += 1
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(exported))
    result = verify(tampered)
    assert result.exit_code == 1 and "changed, dropped or reordered" in result.output
    assert len(result.output.strip().splitlines()) == 1

    (tmp_path / "garbage.json").write_text("{not json")
    result = verify(tmp_path / "garbage.json")
    assert result.exit_code == 1 and result.output.startswith("error: ") and "Traceback" not in result.output
    result = core("export", "999")
    assert result.exit_code == 1 and "no record of transaction 999" in result.output


def test_verify_record_refuses_malformed_files_in_one_line(tmp_path: Path, net: Net) -> None:
    runner = CliRunner()
    exported = {
        "record": {
            "charge_point_id": "CP",
            "connector": 1,
            "transaction_id": 1,
            "id_tag_salt": "0x" + "00" * 32,
            "id_tag_hash": "0x" + "00" * 32,
            "start_time": 0,
            "stop_time": 0,
            "meter_start": 0,
            "meter_stop": 0,
        },
        "index": 0,
        "previous": "0xzz",
        "leaf": "0x" + "00" * 32,
        "operator": net.operator.address,
    }
    for change in (
        {},
        {"previous": "0x" + "00" * 32, "operator": "nobody"},
        {"previous": "0x" + "00" * 32, "index": 2**70},
    ):
        path = tmp_path / "bad.json"
        path.write_text(json.dumps({**exported, **change}))
        args = ["verify-record", str(path), "--rpc-url", net.rpc_url, "--deployment", str(net.deployment_file)]
        result = runner.invoke(wallet_app, args)
        assert result.exit_code == 1 and result.output.startswith("error: ") and "unexpected" not in result.output
        assert len(result.output.strip().splitlines()) == 1, result.output
