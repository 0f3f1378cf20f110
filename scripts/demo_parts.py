"""The demo's moving parts besides the chain: the Core Client daemon (a real subprocess), the
simulated charge points and the driver's wallet."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core_client.config import Settings, settings_to_toml
from core_client.health import serving
from ev_network.keys import create_keyfile
from scripts.demo_chain import STATIONS, DemoChain
from simulator.charge_point import Behaviour, SimChargePoint
from tools.devchain import ROOT, child_options, free_port, stop_process
from wallet.config import WalletConfig
from wallet.core import Wallet
from wallet.keystore import Keystore

OPERATOR_PASSWORD = os.environ.get("EVN_OPERATOR_PASSWORD", "demo operator password")
DRIVER_PASSWORD = os.environ.get("EVN_WALLET_PASSWORD", "demo driver password")
CP_PASSWORD = "demo-secret-{}"

# How each simulated charge point behaves: time runs 120x faster than the wall clock.
BEHAVIOURS = {
    "VOLT-BER-001": Behaviour(power_w=22_000, meter_interval_s=10, time_accel=120, signing_meter="signed"),
    "VOLT-BER-002": Behaviour(power_w=150_000, meter_interval_s=10, time_accel=120),
    "VOLT-POT-001": Behaviour(power_w=11_000, meter_interval_s=10, time_accel=120, unplug_after_wh=3_000),
}


@dataclass
class CoreProcess:
    process: subprocess.Popen
    ocpp_url: str
    control_url: str

    def stop(self, timeout: float = 15) -> int:
        """SIGTERM (a clean shutdown), SIGKILL if it does not stop in time."""
        return stop_process(self.process, timeout)


def start_core_client(chain: DemoChain, state_dir: Path, echo, name: str = "core-client", **config: Any) -> CoreProcess:
    """Write the operator's keyfile and config ``name``.toml (plus ``config``: say, ``live`` and
    ``dashboard``, or a PostgreSQL ``database``), start ``core-client run``, wait for /health."""
    keyfile = state_dir / "operator-key.json"
    if not keyfile.exists():
        create_keyfile(keyfile, OPERATOR_PASSWORD, chain.operator.key)
    settings = Settings(
        listen_port=free_port(),
        control_port=free_port(),
        rpc_url=chain.anvil.url,
        deployment_file=state_dir / "deployment.json",
        keystore=keyfile,
        database=config.pop("database", state_dir / "core-client.sqlite"),
        charge_points={s.charge_point_id: CP_PASSWORD.format(s.charge_point_id) for s in STATIONS},
        start_timeout_s=20,
        reconnect_grace_s=5,
        settle_batch_window_s=0.2,
        poll_interval_s=0.2,
        max_power_kw=20_000,  # the stations' time runs 120x fast: 150 kW look like 18 MW
        **config,
    )
    config_file = state_dir / f"{name}.toml"
    config_file.write_text(settings_to_toml(settings))
    env = {**os.environ, "EVN_OPERATOR_PASSWORD": OPERATOR_PASSWORD, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "core_client.cli", "run", "--config", str(config_file)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **child_options(),
    )
    threading.Thread(target=_pipe_lines, args=(process, echo), daemon=True).start()
    core = CoreProcess(process, f"ws://127.0.0.1:{settings.listen_port}", f"http://127.0.0.1:{settings.control_port}")
    try:
        _wait_health(core)
    except BaseException:
        core.stop()
        raise
    return core


def health(core: CoreProcess) -> dict:
    with urllib.request.urlopen(core.control_url + "/health", timeout=2) as response:
        return json.loads(response.read())


async def connect_charge_points(
    core: CoreProcess, behaviours: dict[str, Behaviour] = BEHAVIOURS, via: str | None = None, **options: Any
) -> dict[str, SimChargePoint]:
    """The demo's stations as simulated charge points, behaving as ``behaviours`` says (by charge point id),
    connected to ``core`` (or ``via`` that URL: a load balancer), with SimChargePoint.connect's ``options``."""
    charge_points = {}
    for station in STATIONS:
        cp_id = station.charge_point_id
        charge_points[cp_id] = await SimChargePoint.connect(
            via or core.ocpp_url, cp_id, CP_PASSWORD.format(cp_id), station.connectors, behaviours[cp_id], **options
        )
    return charge_points


def driver_wallet(chain: DemoChain, state_dir: Path) -> Wallet:
    """The driver's wallet in ``state_dir/wallet`` (an encrypted keystore; created on the first run)."""
    config = WalletConfig.resolve(
        home=state_dir / "wallet", rpc_url=chain.anvil.url, deployment_file=state_dir / "deployment.json"
    )
    keystore = Keystore(config)
    address = keystore.default() if keystore.accounts() else keystore.create(DRIVER_PASSWORD)
    return Wallet(chain.w3, chain.deployment, keystore.unlock(address, DRIVER_PASSWORD), poll_interval=0.2)


def _pipe_lines(process: subprocess.Popen, echo) -> None:
    for line in process.stdout:
        echo(line.rstrip())


def _wait_health(core: CoreProcess, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if core.process.poll() is not None:
            raise RuntimeError(f"the Core Client exited at start (code {core.process.returncode}); see its log above")
        try:
            if serving(health(core)):
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the Core Client did not answer on {core.control_url}/health within {timeout}s")
