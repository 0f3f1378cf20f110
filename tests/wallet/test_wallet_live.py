"""`ev-wallet charge` and `ev-wallet status` with the live data of a real Core Client daemon ([live] in
its config), a simulated charge point and the test Anvil: energy and cost rise while it charges, the
invoice comes from the chain; without the live data (an endpoint that does not answer) the chain's view
alone, said in one line."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import threading
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

from core_client.config import LiveSettings
from core_client.sessions.machine import State
from ev_network.session_ids import make_session_id
from ev_network.units import format_amount
from simulator.charge_point import Behaviour
from tools.devchain import free_port
from tools.harness.core import ROOT, cp_ids, now_iso, running_core, until
from tools.harness.wallet import Cli, settled_event

# 22 kW, a MeterValues every 0.25 s (about 61 Wh each); the car unplugs after 1.5 kWh (about 6 s)
CHARGING = Behaviour(power_w=22_000, meter_interval_s=10, time_accel=40, unplug_after_wh=1_500)
FIGURES = re.compile(r"session \d+: ([\d.]+) kWh, ([\d.]+) kW, cost ([\d.]+) EVE, deposit left ([\d.]+) EVE")


class Charge:
    """``ev-wallet charge`` in a subprocess (the daemon runs in this test's event loop), its output kept."""

    def __init__(self, cli: Cli, *args: str) -> None:
        command = [sys.executable, "-m", "wallet.cli", "charge", *args, "--poll", "0.1"]
        env = {**os.environ, **cli.env}
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=lambda: self.lines.extend(iter(self.process.stdout.readline, "")))
        self._reader.start()

    async def output(self, timeout: float = 90) -> str:
        try:
            code = await asyncio.to_thread(self.process.wait, timeout)
        finally:
            if self.process.poll() is None:
                self.process.kill()
        await asyncio.to_thread(self._reader.join, 5)
        out = "".join(self.lines)
        assert code == 0, out
        return out


async def test_charge_and_status_show_energy_and_cost_rising_from_the_daemons_live_data(
    clean_chain, tmp_path: Path, keyfile: Path
):
    net = clean_chain
    (cp,) = cp_ids("CP-LIVE-CLI")
    cli = Cli(net, tmp_path / "home")
    address = await asyncio.to_thread(cli.new_account, "20")
    async with running_core(net, tmp_path, keyfile, {cp: 2}, live=LiveSettings(port=0, poll_interval_s=0.2)) as core:
        await core.connect(cp, CHARGING)
        live_url = core.daemon.front_ends["live"].url
        charge = Charge(cli, cp, "--connector", "1", "--deposit", "5", "--live-url", live_url)

        # while it charges, status shows the daemon's live figures (a reading it holds in memory)
        session_id = make_session_id(address, 0, 1)
        await until(lambda: core.local(session_id) is not None, 60, "session requested")
        await core.wait_local(session_id, State.CHARGING, timeout=60)
        await until(lambda: core.local(session_id).energy_wh > 0, 10, "energy")
        shown = await asyncio.to_thread(cli, "status", "1", "--live-url", live_url)
        live_line = next(line for line in shown.stdout.splitlines() if line.startswith("  live    "))
        assert re.search(r"[\d.]+ kWh, [\d.]+ kW, cost [\d.]+ EVE, deposit left [\d.]+ EVE", live_line), live_line
        assert "connector Charging" in live_line
        as_json = await asyncio.to_thread(cli.json, "status", "1", "--live-url", live_url)
        assert as_json["live"]["energy_wh"] > 0 and as_json["live"]["driver"].lower() == address.lower()
        assert as_json["live_error"] is None

        out = await charge.output()

    figures = [tuple(Decimal(x) for x in m.groups()) for m in FIGURES.finditer(out)]
    assert len(figures) >= 3, out  # a line per meter reading
    energies, costs, left = [f[0] for f in figures], [f[2] for f in figures], [f[3] for f in figures]
    assert energies == sorted(energies) and energies[-1] > energies[0] >= 0
    assert costs == sorted(costs) and costs[-1] > costs[0] and left == sorted(left, reverse=True)
    assert 5 - Decimal("0.0002") <= costs[0] + left[0] <= 5  # they add up to the deposit (each rounded down)
    settled = settled_event(net, session_id)
    assert out.index("kWh, ") < out.index("settled:") < out.index("INVOICE EVN-")
    assert "TOTAL" in out and format_amount(settled["cost"], 18) in out.split("INVOICE EVN-")[1]
    assert costs[-1] <= Decimal(format_amount(settled["cost"], 18))  # the invoice is the chain's, not the live data
    assert "no live data" not in out


async def test_without_live_data_charge_and_status_follow_the_chain(clean_chain, tmp_path: Path, keyfile: Path):
    net = clean_chain
    (cp,) = cp_ids("CP-NOLIVE")
    cli = Cli(net, tmp_path / "home")
    address = await asyncio.to_thread(cli.new_account, "20")
    dead = f"http://127.0.0.1:{free_port()}"  # no Core Client publishes live data there
    async with running_core(net, tmp_path, keyfile, {cp: 2}) as core:
        # the car stays plugged in until both status lines are read (on a busy machine the CLI takes longer
        # than CHARGING's 1.5 kWh), then unplugs
        sim = await core.connect(cp, replace(CHARGING, unplug_after_wh=None))
        charge = Charge(cli, cp, "--connector", "1", "--deposit", "5", "--live-url", dead)
        session_id = make_session_id(address, 0, 1)
        await until(lambda: core.local(session_id) is not None, 60, "session requested")
        await core.wait_local(session_id, State.CHARGING, timeout=60)
        shown = (await asyncio.to_thread(cli, "status", "1", "--live-url", dead)).stdout
        assert f"  live    none: cannot reach the Core Client's live data at {dead}" in shown
        assert "Session 1: charging" in shown
        plain = (await asyncio.to_thread(cli, "status", "1")).stdout  # no live URL: today's output
        assert "live" not in plain and plain.splitlines()[0] == "Session 1: charging"
        await sim.unplug(1)
        out = await charge.output()
    assert out.count("no live data (cannot reach the Core Client's live data at") == 1, out
    assert not FIGURES.search(out)
    assert "settled:" in out and "INVOICE EVN-" in out
    assert format_amount(settled_event(net, session_id)["cost"], 18) in out


async def test_status_says_a_session_is_held_why_and_when_the_deposit_comes_back(
    clean_chain, tmp_path: Path, keyfile: Path
):
    """Issue 19: a held session is not "charging" to the driver: `ev-wallet status` says it is held, the
    operator's reason (from the daemon's live data) and when the deposit comes back at the latest."""
    net = clean_chain
    (cp,) = cp_ids("CP-HELD-CLI")
    cli = Cli(net, tmp_path / "home")
    address = await asyncio.to_thread(cli.new_account, "20")
    async with running_core(net, tmp_path, keyfile, {cp: 2}, live=LiveSettings(port=0, poll_interval_s=0.2)) as core:
        raw = await core.raw(cp)
        live_url = core.daemon.front_ends["live"].url
        charge = Charge(cli, cp, "--connector", "1", "--deposit", "5", "--live-url", live_url)
        try:
            tag = (await raw.next_call("RemoteStartTransaction", timeout=60))[3]["idTag"]
            start = {"connectorId": 1, "idTag": tag, "meterStart": 1000, "timestamp": now_iso()}
            transaction_id = (await raw.call("StartTransaction", start))[2]["transactionId"]
            session_id = make_session_id(address, 0, 1)
            await core.wait_local(session_id, State.CHARGING, timeout=30)
            stop = {"transactionId": transaction_id, "meterStop": 10**11, "timestamp": now_iso(), "idTag": tag}
            assert (await raw.call("StopTransaction", stop))[2]["idTagInfo"]["status"] == "Accepted"
            held = await core.wait_local(session_id, State.HELD, timeout=10)
            shown = (await asyncio.to_thread(cli, "status", "1", "--live-url", live_url)).stdout
            [line] = [line for line in shown.splitlines() if line.startswith("  HELD    ")]
            assert held.last_error in line and "the deposit comes back at the latest from" in line, shown
        finally:
            charge.process.kill()
            await raw.close()
