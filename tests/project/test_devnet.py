"""`make devnet` itself, on ports of the test's choosing: Anvil, the live data and the dashboard each
where they were told, and a driver charging at the 22 kW AC station sees about 22 kW (the charge
points run in real time)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from eth_account import Account

from ev_network.chain import connect
from ev_network.deployment import Deployment
from ev_network.devaccounts import dev_account
from tools.devchain import ROOT, free_port
from wallet.core import Wallet
from wallet.live_client import LiveClient, LiveUnavailable

TOKEN = 10**18
AC_POWER_W = 22_000  # VOLT-BER-001, "2 x 22 kW AC"


class Output:
    """The lines a process prints, read in a thread; :meth:`wait_for` a line containing a text."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.lines: list[str] = []
        self.changed = threading.Condition()
        threading.Thread(target=self._read, args=(process,), daemon=True).start()

    def _read(self, process: subprocess.Popen) -> None:
        for line in process.stdout:
            with self.changed:
                self.lines.append(line.rstrip())
                self.changed.notify_all()
        with self.changed:
            self.lines.append("<exited>")
            self.changed.notify_all()

    def wait_for(self, text: str, timeout: float) -> None:
        with self.changed:
            found = self.changed.wait_for(
                lambda: any(text in line or line == "<exited>" for line in self.lines), timeout
            )
            assert found and self.lines[-1] != "<exited>", "\n".join(self.lines[-40:])


def test_devnet_serves_on_the_ports_given_and_shows_a_stations_real_power(tmp_path: Path):
    anvil, live, dashboard = free_port(), free_port(), free_port()
    state = tmp_path / "devnet"
    command = [sys.executable, "-m", "scripts.devnet", "--fresh", "--state-dir", str(state), "--port", str(anvil)]
    command += ["--live-port", str(live), "--dashboard-port", str(dashboard)]
    env = {**os.environ, "COLUMNS": "400"}  # one line per line
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = Output(process)
    try:
        output.wait_for("the CPO dashboard:", timeout=300)
        text = "\n".join(output.lines)
        assert f"http://127.0.0.1:{live}" in text and f"http://127.0.0.1:{dashboard}/" in text
        assert f"EVN_DEPLOYMENT={state / 'deployment.json'}" in text  # deployments/local.json left alone
        with urllib.request.urlopen(f"http://127.0.0.1:{dashboard}/login", timeout=10) as response:
            assert response.status == 200 and b"Dashboard password" in response.read()

        driver = Account.create()
        wallet = Wallet(connect(f"http://127.0.0.1:{anvil}"), Deployment.load(state / "deployment.json"), driver)
        wallet.top_up(20 * TOKEN, dev_account(0))  # a dev chain's faucet: tokens and gas
        opened = wallet.open("VOLT-BER-001", 1, 10 * TOKEN)
        client = LiveClient(f"http://127.0.0.1:{live}", driver)
        deadline, data = time.monotonic() + 90, None
        while data is None or data["power_w"] == 0:  # until the first meter reading after the start
            assert time.monotonic() < deadline, data
            time.sleep(0.5)
            with contextlib.suppress(LiveUnavailable):  # until the Core Client has seen the session
                data = client.session(opened.session_id)
        assert 0.8 * AC_POWER_W <= data["power_w"] <= 1.25 * AC_POWER_W, data
        wallet.request_stop(opened.session_id)
    finally:
        process.send_signal(signal.SIGINT)
        code = process.wait(60)
    assert code == 0, "\n".join(output.lines[-40:])


def test_devnet_with_two_instances_one_leads_and_the_other_takes_over_with_the_charge_points(tmp_path: Path):
    """``--instances 2``: two Core Clients on a PostgreSQL of the devnet's own, one leading, both serving the
    three charge points that the load balancer spreads over them, each with its own live data and dashboard
    (they shared the given ports: the second one ended at start, "Address already in use"); the leader
    SIGKILLed, the other leads and the leader's charge points come back to it."""
    state = tmp_path / "devnet"
    command = [sys.executable, "-m", "scripts.devnet", "--instances", "2", "--state-dir", str(state)]
    command += ["--port", str(free_port()), "--live-port", str(free_port()), "--dashboard-port", str(free_port())]
    env = {**os.environ, "COLUMNS": "400"}
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = Output(process)
    try:
        output.wait_for("(the leader): another instance leads", timeout=300)
        roles, lives = {}, []
        for line in output.lines:
            if match := re.search(r"core-client-(\d): pid (\d+), (\w+), (\S+)/health, live data (\S+)/,", line):
                roles[match[3]] = (int(match[2]), match[4])
                lives.append(match[5])
        for live in lives:  # each instance serves its own live data
            with urllib.request.urlopen(live + "/stations", timeout=5) as response:
                assert len(json.loads(response.read())["stations"]) == 3, live
        (leader_pid, leader_url), (_, standby_url) = roles["leader"], roles["standby"]
        served = [len(_health(url)["connected_charge_points"]) for url in (leader_url, standby_url)]
        assert sorted(served) == [1, 2], served  # round robin: both instances serve charge points
        os.kill(leader_pid, signal.SIGKILL)
        deadline, health = time.monotonic() + 60, {}
        while health.get("role") != "leader" or len(health["connected_charge_points"]) < 3:
            assert time.monotonic() < deadline, health
            time.sleep(0.5)
            with contextlib.suppress(OSError):
                health = _health(standby_url)
    finally:
        process.send_signal(signal.SIGINT)
        code = process.wait(60)
    assert code == 0, "\n".join(output.lines[-40:])


def _health(control_url: str) -> dict:
    with urllib.request.urlopen(control_url + "/health", timeout=5) as response:
        return json.loads(response.read())
