"""The transaction record in the running daemon (real Core Client, simulator, raw charge point, Anvil):
every OCPP transaction, paid on chain or not, is recorded and anchored by the daemon's policy with its
own sender; `core-client records export --proof` of a chain session gives a file `ev-wallet
verify-record` accepts."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from typer.testing import CliRunner

from core_client.cli.main import app as core_app
from core_client.config import settings_to_toml
from ev_network.contracts import SessionState
from simulator.charge_point import Behaviour
from tools.harness.chain import TOKEN, Net
from tools.harness.core import PASSWORD, cp_ids, funded_driver, open_session, running_core, until, wait_chain
from wallet.cli import app as wallet_app

FAST = Behaviour(power_w=22_000, meter_interval_s=10, time_accel=100)
OCMF = 'OCMF|{"FV":"1.0","RD":[{"TM":"2026-12-01T10:00:00,000+0000 S","RV":1.234,"RU":"kWh"}]}|{"SD":"30"}'


async def test_daemon_records_every_transaction_and_anchors_by_its_policy(
    clean_chain: Net, tmp_path: Path, keyfile: Path
) -> None:
    net = clean_chain
    a, b = cp_ids("CPR", "CPX")
    async with running_core(net, tmp_path, keyfile, {a: 2, b: 2}, anchor_every_records=2) as core:
        records = core.daemon.records
        # a session the CSMS-less daemon does not bill: an RFID card it does not know (answered Invalid)
        raw = await core.raw(b)
        now = "2026-12-01T08:00:00Z"
        start = {"connectorId": 1, "idTag": "04A2B3C4D5E6F7", "meterStart": 500, "timestamp": now}
        card_tx = (await raw.call("StartTransaction", start))[2]["transactionId"]
        foreign = await core.raw(a)  # another charge point cannot close this record
        await foreign.call("StopTransaction", {"transactionId": card_tx, "meterStop": 10**9, "timestamp": now})
        signed = {"timestamp": now, "sampledValue": [{"value": OCMF, "format": "SignedData"}]}
        stop = {"transactionId": card_tx, "meterStop": 900, "timestamp": now, "reason": "Local"}
        await raw.call("StopTransaction", {**stop, "transactionData": [signed]})
        await until(lambda: len(records) == 1, 5, "the card's record")
        assert core.daemon.health()["records"] == {"logged": 1, "anchored": 0, "waiting": 1}  # 1 < 2: not due
        [card] = records.entries()
        assert (card.record.charge_point_id, card.record.meter_stop, card.record.signed_meter_data) == (b, 900, OCMF)
        assert card.record.matches_id_tag("04a2b3c4d5e6f7")
        await foreign.close()
        await raw.close()

        # a chain session, paid from the wallet
        driver = await funded_driver(net, 0)
        sim = await core.connect(a, FAST)
        session_id = await open_session(net, driver, core.stations[a], 1, 20 * TOKEN)
        transaction = await sim.wait_for_transaction(1, timeout=10)
        await wait_chain(net, session_id, SessionState.ACTIVE)
        await asyncio.sleep(0.3)
        stopped = await sim.stop(1)
        await wait_chain(net, session_id, SessionState.SETTLED)
        health = await until(
            lambda: (h := core.daemon.health())["records"]["anchored"] == 2 and h, 15, "the anchor of both records"
        )
        assert health["records"] == {"logged": 2, "anchored": 2, "waiting": 0}
        chain = records.entries()[1].record
        assert (chain.charge_point_id, chain.transaction_id, chain.meter_stop) == (a, transaction, stopped.meter_stop)
        id_tag = core.local(session_id).id_tag

        config = tmp_path / "core-client.toml"
        config.write_text(settings_to_toml(core.daemon.settings))
        out = tmp_path / "record.json"
        runner = CliRunner()
        exported = runner.invoke(
            core_app,
            ["records", "export", str(transaction), "--proof", "-o", str(out), "--config", str(config)],
            env={"EVN_OPERATOR_PASSWORD": PASSWORD},
        )
        assert exported.exit_code == 0, exported.output
        assert "not anchored" not in exported.output
        chain_args = ["--rpc-url", net.rpc_url, "--deployment", str(net.deployment_file)]
        verified = runner.invoke(wallet_app, ["verify-record", str(out), *chain_args, "--id-tag", id_tag])
        assert verified.exit_code == 0, verified.output
        assert f"transaction {transaction} at {a}/1" in verified.output
        assert f"record 1 is in anchor 0 of operator {net.operator.address}" in verified.output
        assert json.loads(out.read_text())["anchor"]["count"] == 2
