"""The proxy-mode journey of the demo (``make demo DEMO_ARGS=--proxy``): the Core Client in front of a
stand-in CSMS (npm's ocpp-rpc in strict mode, tests/interop/ocpp_rpc_csms.js). At one charge point a
driver taps a card of the CSMS's (the CSMS's own session: recorded, never settled) while another
driver's session is paid from the wallet (settled on chain under the CSMS's transaction id); both
records are anchored, and the paid one is exported and verified as an MSP does it, against the chain."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType

from core_client.proxy.config import UpstreamSettings
from scripts.demo_chain import TOKEN, DemoChain
from scripts.demo_parts import OPERATOR_PASSWORD, CoreProcess, connect_charge_points, driver_wallet, health
from scripts.demo_parts import start_core_client as start_core_process
from tools.devchain import ROOT, child_options, free_port, stop_process

CSMS_SCRIPT = ROOT / "tests" / "interop" / "ocpp_rpc_csms.js"
CHARGE_POINT = "VOLT-BER-001"
CARD = "CARD-0451"  # a card the stand-in CSMS knows (its cards start with CARD)


class Csms:
    """The stand-in CSMS as a child process; it logs every message it receives to ``log``."""

    def __init__(self, state_dir: Path) -> None:
        self.port, self.log = free_port(), state_dir / "csms.jsonl"
        command = ["node", str(CSMS_SCRIPT), str(self.port), str(self.log)]
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, **child_options()
        )
        line = self.process.stdout.readline() if self.process.stdout else ""
        if '"listening"' not in line:
            self.stop()
            raise RuntimeError(f"the stand-in CSMS did not start ({' '.join(command)}): {line.strip()!r}")

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ocpp/{{cp_id}}"

    def received(self, cp_id: str, method: str | None = None) -> list[dict]:
        """The CALLs the CSMS got from ``cp_id`` (of ``method``), in order."""
        entries = [json.loads(line) for line in self.log.read_text().splitlines() if line]
        return [
            e
            for e in entries
            if e["kind"] == "call" and e["identity"] == cp_id and (method is None or e["method"] == method)
        ]

    def stop(self) -> None:
        stop_process(self.process, 5)


async def proxy_journey(chain: DemoChain, state_dir: Path, summary: dict, demo: ModuleType) -> None:
    """The steps of ``--proxy``, with the demo's own ``step``, ``say``, log echo and session runner."""
    with demo.step("Stand-in CSMS", "is Node set up? `make setup` installs ocpp-rpc"):
        csms = Csms(state_dir)
        demo.say(f"ocpp-rpc CSMS (strict OCPP 1.6 schemas) on {csms.url}")
    try:
        with demo.step("Core Client in proxy mode", "see the core-client lines above"):
            upstream = UpstreamSettings(url=csms.url, pass_through=True, outbox=state_dir / "upstream-outbox.sqlite")
            core = start_core_process(chain, state_dir, demo.core_log, upstream=upstream, anchor_every_records=2)
        charge_points: dict = {}
        try:
            with demo.step("Charge points", "a simulated charge point could not connect; see the core-client log"):
                charge_points.update(await connect_charge_points(core))
                await asyncio.sleep(0.5)
                demo.say(f"connected through the Core Client to the CSMS: {health(core)['upstream']}")
            summary["proxy"] = await _sessions(chain, state_dir, csms, core, charge_points, demo)
        finally:
            for cp in charge_points.values():
                await cp.close()
            demo.say(f"Core Client stopped (exit code {await asyncio.to_thread(core.stop)})")
    finally:
        csms.stop()


async def _sessions(chain: DemoChain, state_dir: Path, csms: Csms, core: CoreProcess, charge_points, demo) -> dict:
    say, sim = demo.say, charge_points[CHARGE_POINT]
    with demo.step("Driver", "the driver's wallet could not be funded; is the chain still up?"):
        wallet = driver_wallet(chain, state_dir)
        await asyncio.to_thread(wallet.top_up, 30 * TOKEN, chain.admin)
    with demo.step("Two sessions at one charge point", "a session did not end; see the core-client lines above"):
        paid = demo.Scenario("paid from the wallet", CHARGE_POINT, 1, 20 * TOKEN, "driver")
        card_tx, settled = await asyncio.gather(_card_session(sim, say), demo.run_session(wallet, chain, paid))
        paid_tx = sim.connector(1).transactions[-1]
        [paid_tag] = [
            e["params"]["idTag"]
            for e in csms.received(CHARGE_POINT, "StartTransaction")
            if e["params"]["connectorId"] == 1
        ]
        say(f"the wallet's session ran as transaction {paid_tx} (the CSMS's id); the CSMS saw its idTag {paid_tag}")
    with demo.step("Anchor", "the records were not anchored; see the core-client lines above"):
        records = await _anchored(core)
        say(f"transaction record: {records['logged']} records, {records['anchored']} anchored on chain")
    with demo.step("What the CSMS saw", f"its log is {csms.log}"):
        seen = csms.received(CHARGE_POINT)
        counts = Counter(e["method"] for e in seen)
        say(f"every message of {CHARGE_POINT}, in order: " + ", ".join(f"{n} {method}" for method, n in counts.items()))
        for e in seen:
            if e["method"] in ("StartTransaction", "StopTransaction"):
                shown = {k: v for k, v in e["params"].items() if k != "transactionData"}
                say(f"  {e['method']} {json.dumps(shown, separators=(',', ':'))}")
    with demo.step("An MSP verifies the paid session's record", "see the commands' output above"):
        _export_and_verify(chain, state_dir, paid_tx, paid_tag, say)
    return {
        "card_transaction": card_tx,
        "paid_transaction": paid_tx,
        "paid_session": settled,
        "records": records,
        "csms_calls": dict(counts),
    }


async def _card_session(sim, say) -> int:
    """The CSMS's own session: its card tapped at connector 2, stopped at the charge point after 3 s."""
    transaction = await sim.start_local(2, CARD)
    if transaction is None:
        raise RuntimeError(f"the CSMS did not accept its card {CARD}")
    say(f"card {CARD} at {CHARGE_POINT}/2: accepted by the CSMS, transaction {transaction} (its id)")
    await asyncio.sleep(3)
    stopped = await sim.stop(2)
    say(f"card session stopped at the charge point ({stopped.energy_wh} Wh): the CSMS's to bill, not settled on chain")
    return transaction


async def _anchored(core: CoreProcess, timeout_s: float = 20) -> dict:
    for _ in range(int(timeout_s / 0.2)):
        records = health(core)["records"]
        if records["waiting"] == 0 and records["anchored"] >= 2:
            return records
        await asyncio.sleep(0.2)
    raise RuntimeError(f"records not anchored within {timeout_s}s: {records}")


def _export_and_verify(chain: DemoChain, state_dir: Path, transaction: int, id_tag: str, say) -> None:
    """``core-client records export --proof``, then ``ev-wallet verify-record`` (the chain only)."""
    record = state_dir / f"record-{transaction}.json"
    config, deployment = state_dir / "core-client.toml", state_dir / "deployment.json"
    commands = [
        ("core-client", "core_client.cli", "records", "export", str(transaction), "--proof", "-o", str(record)),
        ("ev-wallet", "wallet.cli", "verify-record", str(record), "--id-tag", id_tag),
    ]
    extra = {
        "core-client": ["--config", str(config)],
        "ev-wallet": ["--rpc-url", chain.anvil.url, "--deployment", str(deployment)],
    }
    env = {**os.environ, "EVN_OPERATOR_PASSWORD": OPERATOR_PASSWORD}
    for shown, module, *args in commands:
        say(f"$ {shown} {' '.join(args)}")
        done = subprocess.run(
            [sys.executable, "-m", module, *args, *extra[shown]], cwd=ROOT, env=env, capture_output=True, text=True
        )
        for line in (done.stdout + done.stderr).strip().splitlines():
            say(f"  {line}")
        if done.returncode != 0:
            raise RuntimeError(f"{shown} failed (exit code {done.returncode})")
