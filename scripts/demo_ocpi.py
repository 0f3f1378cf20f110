"""The OCPI journey of the demo (``make demo DEMO_ARGS=--ocpi``): the CPO's CSMS speaks OCPI 2.2.1 (a stand-in
CPO platform written from the specification, tests/interop/ocpi_cpo.js) and no charge point is re-pointed.
The Core Client registers with it as one more eMSP (the credentials handshake), lists its EVSEs with what
each would be on chain, imports one with its tariff converted, and a driver's wallet session runs through
OCPI commands: START_SESSION, the CSMS's Session pushes, STOP_SESSION, its CDR, settled on chain."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import urllib.request
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any

from core_client.ocpi.settings import OcpiSettings
from scripts.demo_chain import TOKEN, DemoChain
from scripts.demo_parts import OPERATOR_PASSWORD, driver_wallet
from scripts.demo_parts import start_core_client as start_core_process
from tools.devchain import ROOT, child_options, free_port, stop_process

CPO_SCRIPT = ROOT / "tests" / "interop" / "ocpi_cpo.js"
TOKEN_A = "demo-token-a-issued-by-the-cpo"
EVSE = "LOC-1/EVSE-2"  # 0.30 EUR/kWh + 19 % VAT at the stand-in CPO: a tariff the chain expresses exactly
CHARGING = {"kwh_per_second": 1.0, "tick_ms": 500, "result_delay_ms": 300}  # the stand-in's simulated EV


class CpoPlatform:
    """The stand-in CPO platform as a child process, with its control API."""

    def __init__(self, state_dir: Path, scenario: dict = CHARGING, options: list[str] | None = None) -> None:
        command = ["node", str(CPO_SCRIPT), "--port", str(free_port()), "--token-a", TOKEN_A]
        command += ["--state", str(state_dir / "cpo-state.json"), "--scenario", json.dumps(scenario), *(options or [])]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, **child_options())
        line = self.process.stdout.readline() if self.process.stdout else ""
        if '"ready"' not in line:
            self.stop()
            raise RuntimeError(f"the stand-in CPO platform did not start ({' '.join(command)}): {line.strip()!r}")
        self.ready = json.loads(line)
        self.base = f"http://127.0.0.1:{self.ready['port']}"

    @property
    def versions_url(self) -> str:
        return self.ready["versions_url"]

    def control(self, name: str, body: dict | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.base}/control/{name}", data=data, method="GET" if body is None else "POST"
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def stop(self) -> None:
        stop_process(self.process, 5)


async def ocpi_journey(chain: DemoChain, state_dir: Path, summary: dict, demo: ModuleType) -> None:
    """The steps of ``--ocpi``, with the demo's own ``step``, ``say``, log echo and session runner."""
    with demo.step("Stand-in CPO platform (OCPI 2.2.1)", "is Node set up? `make setup`"):
        cpo = CpoPlatform(state_dir)
        demo.say(f"the CPO's CSMS speaks OCPI at {cpo.versions_url}; it issued the token A {TOKEN_A!r}")
        demo.say("no charge point is re-pointed: the CSMS stays in charge of them, the Core Client is one more eMSP")
    try:
        port = free_port()
        ocpi = OcpiSettings(
            versions_url=cpo.versions_url, token_a=TOKEN_A, country_code="DE", party_id="EVN",
            business_name="EV Network demo", port=port, public_url=f"http://127.0.0.1:{port}/ocpi",
            session_pull_after_s=10, request_timeout_s=15,  # both below the demo's start_timeout_s (20 s)
        )  # fmt: skip
        with demo.step("Core Client in OCPI mode", "see the core-client lines above"):
            core = start_core_process(chain, state_dir, demo.core_log, ocpi=ocpi)
        try:
            with demo.step("Connect as an eMSP", "see the command's output above"):
                _cli(state_dir, demo.say, "ocpi", "register")
            with demo.step("The CSMS's EVSEs, and one imported", "see the command's output above"):
                _cli(state_dir, demo.say, "ocpi", "stations")
                _cli(state_dir, demo.say, "ocpi", "import", EVSE)
                station_id = _station_of(state_dir, EVSE)
            summary["ocpi"] = await _session(chain, state_dir, cpo, station_id, demo)
        finally:
            demo.say(f"Core Client stopped (exit code {await asyncio.to_thread(core.stop)})")
    finally:
        cpo.stop()


async def _session(chain: DemoChain, state_dir: Path, cpo: CpoPlatform, station_id: int, demo: ModuleType) -> dict:
    with demo.step("Driver", "the driver's wallet could not be funded; is the chain still up?"):
        wallet = driver_wallet(chain, state_dir)
        await asyncio.to_thread(wallet.top_up, 30 * TOKEN, chain.admin)
    with demo.step("A wallet session through OCPI", "a session did not settle; see the core-client lines above"):
        scenario = demo.Scenario("paid from the wallet, over OCPI", EVSE, 1, 20 * TOKEN, "driver")
        settled = await demo.run_session(wallet, chain, scenario, station_id=station_id)
    with demo.step("What the CSMS saw", "its exchanges are at /control/log of the stand-in"):
        log = cpo.control("log")
        received = Counter(f"{e['method']} {_module(e['url'])}" for e in log if e["direction"] == "in")
        sent = Counter(e.get("purpose") or e["method"] for e in log if e["direction"] == "out")
        demo.say("requests from the Core Client: " + ", ".join(f"{n} x {what}" for what, n in received.items()))
        demo.say("its pushes to the Core Client: " + ", ".join(f"{n} x {what}" for what, n in sent.items()))
        violations = [v["violation"] for v in cpo.control("violations")]
        demo.say(f"OCPI 2.2.1 violations it found in what the Core Client sent: {len(violations)}")
        for violation in violations[:5]:
            demo.say(f"  {violation}")
        [cdr] = cpo.control("state")["cdrs"]
        demo.say(f"its CDR {cdr['id']}: {cdr['total_energy']} kWh, {cdr['total_cost']['incl_vat']} EUR incl. VAT")
    return {"session": settled, "station_id": station_id, "cdr": cdr["id"], "violations": violations}


def _module(url: str) -> str:
    """``/ocpi/2.2.1/commands/START_SESSION`` -> ``commands/START_SESSION``; versions and details as such."""
    parts = url.split("?")[0].strip("/").split("/")
    return "/".join(parts[2:4]) if len(parts) > 2 else parts[-1]


def _cli(state_dir: Path, say, *args: str) -> str:
    """Run ``core-client ARGS --config ...`` and show the command and its output."""
    say(f"$ core-client {' '.join(args)}")
    env = {**os.environ, "EVN_OPERATOR_PASSWORD": OPERATOR_PASSWORD}
    command = [sys.executable, "-m", "core_client.cli", *args, "--config", str(state_dir / "core-client.toml")]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    for line in (done.stdout + done.stderr).strip().splitlines():
        say(f"  {line}")
    if done.returncode != 0:
        raise RuntimeError(f"core-client {' '.join(args)} failed (exit code {done.returncode})")
    return done.stdout


def _station_of(state_dir: Path, evse: str) -> int:
    """The chain station ``evse`` (LOCATION/UID) was imported as."""
    rows = json.loads(_cli(state_dir, lambda _: None, "ocpi", "stations", "--json"))["evses"]
    location, uid = evse.split("/")
    [row] = [r for r in rows if (r["location_id"], r["evse_uid"]) == (location, uid)]
    if row["station_id"] is None:
        raise RuntimeError(f"{evse} was not imported")
    return row["station_id"]
