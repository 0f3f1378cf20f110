"""Helpers of the Core Client tests: a real daemon (in-process or as a subprocess) on the test Anvil,
real simulated charge points, a raw OCPP client for hand-made frames, and a pausable TCP proxy
between the daemon and the chain. Nothing is mocked."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import websockets
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from eth_account.signers.local import LocalAccount

from core_client.config import Settings, settings_to_toml
from core_client.daemon import Daemon
from core_client.health import serving
from core_client.sessions.machine import SessionRecord, State
from ev_network.contracts import Session, SessionState
from ev_network.events import ChainEvent, EventReader, indexed_topic
from ev_network.keys import create_keyfile
from ev_network.session_ids import hex_session_id
from simulator.charge_point import Behaviour, SimChargePoint
from tools.devchain import ROOT
from tools.harness.chain import TARIFF, TOKEN

PASSWORD = "operator keystore password"
FAST = {
    "poll_interval_s": 0.1,
    "settle_batch_window_s": 0.3,
    "start_timeout_s": 5,
    "reconnect_grace_s": 0,
    "ocpp_response_timeout_s": 5,
    "rpc_timeout_s": 2,
    "max_power_kw": 100_000,  # the simulators' time runs 40-200x fast: 22 kW look like 4.4 MW
}
QUICK_CHARGE = Behaviour(power_w=22_000, meter_interval_s=10, time_accel=100)  # a MeterValues every 0.1 s


def make_keyfile(directory: Path, account: LocalAccount) -> Path:
    """The operator's key in an encrypted keyfile (as ``core-client keys import`` writes it)."""
    path = directory / "operator.json"
    if not path.exists():
        create_keyfile(path, PASSWORD, account.key)
    return path


async def funded_driver(net: Any, index: int) -> LocalAccount:
    """Driver ``index`` of the test network, with tokens and an unlimited allowance for the escrow."""
    driver = net.drivers[index]
    await asyncio.to_thread(net.fund, driver)
    return driver


def cp_ids(*names: str) -> list[str]:
    """Charge point ids unique on the shared test chain."""
    tag = uuid.uuid4().hex[:6]
    return [f"{name}-{tag}" for name in names]


def settings_for(net: Any, tmp_path: Path, keyfile: Path, passwords: dict[str, str], **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "rpc_url": net.rpc_url,
        "deployment_file": net.deployment_file,
        "keystore": keyfile,
        "database": tmp_path / "core.sqlite",
        "charge_points": passwords,
        "listen_port": 0,
        "control_port": 0,
        "start_block": net.w3.eth.block_number + 1,
        **FAST,
    }
    values.update(overrides)
    return Settings(**values)


@dataclass
class Core:
    """A running Core Client (in-process) and what a test needs around it."""

    net: Any
    daemon: Daemon
    stations: dict[str, int]
    passwords: dict[str, str]
    sims: list[SimChargePoint] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.daemon.ocpp.address[1]}"

    @property
    def control_url(self) -> str:
        return f"http://127.0.0.1:{self.daemon.control.address[1]}"

    async def raw(self, cp_id: str, **kwargs: Any) -> RawCP:
        """A bare OCPP client of ``cp_id``, booted (Accepted)."""
        raw = await RawCP.connect(self.url, cp_id, self.passwords[cp_id], **kwargs)
        assert (await raw.boot())[2]["status"] == "Accepted"
        return raw

    async def connect(self, cp_id: str, behaviour: Behaviour | None = None, connectors: int = 2) -> SimChargePoint:
        sim = await SimChargePoint.connect(self.url, cp_id, self.passwords[cp_id], connectors, behaviour)
        self.sims.append(sim)
        return sim

    def local(self, session_id: int) -> SessionRecord | None:
        """The daemon's record of the session (with its latest meter reading, kept in memory)."""
        return self.daemon.service.session(session_id)

    async def wait_idle(self, timeout: float = 20) -> None:
        """Wait until the daemon's chain queue is empty (no job pending or sent): whatever its decisions so
        far put on the queue has reached the chain, and nothing more is on its way."""
        await until(lambda: self.daemon.health()["queue_depth"] == 0, timeout, "an empty chain queue")

    async def wait_local(self, session_id: int, *states: State, timeout: float = 20) -> SessionRecord:
        """Wait until the daemon's own record of the session is in one of ``states``."""
        return await until(
            lambda: _in(self.local(session_id), states), timeout, f"session {hex_session_id(session_id)} in {states}"
        )


async def until(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    """Poll ``check`` (sync) until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)


def _in(record: SessionRecord | None, states: tuple[State, ...]) -> SessionRecord | None:
    return record if record is not None and record.state in states else None


# ------------------------------------------------------------------ chain side


def session_record(
    session_id: int, charge_point_id: str, driver: str, state: State = State.REQUESTED, **fields: Any
) -> SessionRecord:
    """A session as the Core Client's store keeps it, for tests that write the store directly (a previous
    run's state): station 1, connector 1, a deposit of 20 tokens at TARIFF (tariff id 1), requested now;
    ``fields`` set any other field or change these."""
    defaults: dict[str, Any] = {
        "station_id": 1,
        "connector": 1,
        "deposit": 20 * TOKEN,
        "tariff": TARIFF,
        "tariff_id": 1,
        "requested_at": time.time(),
    }
    return SessionRecord(
        session_id=session_id, charge_point_id=charge_point_id, driver=driver, state=state, **(defaults | fields)
    )


async def open_session(net: Any, driver: LocalAccount, station_id: int, connector: int, deposit: int) -> int:
    """The driver opens a session (in a thread: the daemon shares this event loop)."""
    escrow = net.escrow(driver)
    receipt = await asyncio.to_thread(escrow.open, station_id, connector, deposit)
    return escrow.session_id_from(receipt)


async def wait_chain(net: Any, session_id: int, state: SessionState, timeout: float = 20) -> Session:
    """Wait until the escrow has the session in ``state``."""
    deadline = time.monotonic() + timeout
    while True:
        session = await asyncio.to_thread(net.escrow().get_session, session_id)
        if session.state is state:
            return session
        if time.monotonic() > deadline:
            raise AssertionError(
                f"session {hex_session_id(session_id)} is {session.state.name} on chain, expected {state.name}"
            )
        await asyncio.sleep(0.1)


def chain_events(net: Any, name: str, session_id: int, from_block: int = 0) -> list[ChainEvent]:
    """Every ``name`` event of one session."""
    reader = EventReader(net.w3, net.deployment.escrow)
    return reader.fetch(from_block, net.w3.eth.block_number, [name], [indexed_topic(session_id)])


def balances(net: Any, *accounts: str) -> list[int]:
    token = net.token()
    return [token.balance_of(a) for a in accounts]


# ------------------------------------------------------------- raw OCPP client


class RawCP:
    """A bare OCPP-J client: sends hand-made frames, answers the central system's CALLs."""

    def __init__(self, connection: Any, answers: dict[str, dict | None] | None = None) -> None:
        self.connection = connection
        self.answers = {
            "RemoteStartTransaction": {"status": "Accepted"},
            "RemoteStopTransaction": {"status": "Accepted"},
            **(answers or {}),
        }
        self.received: list[list] = []
        self.calls: asyncio.Queue[list] = asyncio.Queue()
        self._results: asyncio.Queue[list] = asyncio.Queue()
        self._ids = itertools.count(1)
        self._reader = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def connect(cls, url: str, cp_id: str, password: str, **kwargs: Any) -> RawCP:
        token = base64.b64encode(f"{cp_id}:{password}".encode()).decode()
        connection = await websockets.connect(
            f"{url}/{cp_id}", subprotocols=["ocpp1.6"], additional_headers={"Authorization": f"Basic {token}"}
        )
        return cls(connection, **kwargs)

    async def _read(self) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for text in self.connection:
                frame = json.loads(text)
                self.received.append(frame)
                if frame[0] == 2:
                    await self.calls.put(frame)
                    answer = self.answers.get(frame[2], {})
                    if answer is not None:  # None: never answered (a charge point that hangs)
                        await self.connection.send(json.dumps([3, frame[1], answer]))
                else:
                    await self._results.put(frame)

    async def send_raw(self, text: str | bytes, timeout: float = 5) -> list:
        """Send any frame; return the next CALLRESULT/CALLERROR."""
        await self.connection.send(text)
        return await asyncio.wait_for(self._results.get(), timeout)

    async def call(self, action: str, payload: dict, timeout: float = 5) -> list:
        """Send a CALL; return the answer frame ([3, id, payload] or [4, id, code, description, details])."""
        unique_id = f"m{next(self._ids)}"
        answer = await self.send_raw(json.dumps([2, unique_id, action, payload]), timeout)
        assert answer[1] == unique_id, answer
        return answer

    async def boot(self) -> list:
        return await self.call("BootNotification", {"chargePointVendor": "Raw", "chargePointModel": "Frames"})

    async def next_call(self, action: str, timeout: float = 10) -> list:
        """The next CALL named ``action`` that the central system sent (others are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            frame = await asyncio.wait_for(self.calls.get(), max(0.01, deadline - time.monotonic()))
            if frame[2] == action:
                return frame

    async def close(self) -> None:
        await self.connection.close()
        self._reader.cancel()


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def start_payload(connector: int, id_tag: str, meter: int) -> dict:
    """A StartTransaction payload (now)."""
    return {"connectorId": connector, "idTag": id_tag, "meterStart": meter, "timestamp": now_iso()}


def stop_payload(transaction_id: int, meter: int, id_tag: str | None = None) -> dict:
    """A StopTransaction payload (now, reason Local: what a charge point that omits the reason means)."""
    payload = {"transactionId": transaction_id, "meterStop": meter, "timestamp": now_iso(), "reason": "Local"}
    return {**payload, "idTag": id_tag} if id_tag else payload


# ---------------------------------------------------------- pausable TCP proxy


# ------------------------------------------------------------ daemon as a process


def write_config(path: Path, settings: Settings) -> Path:
    """A TOML config file of ``settings`` (for ``core-client run --config``)."""
    path.write_text(settings_to_toml(settings))
    return path


def spawn_daemon(config: Path, log_file: Path) -> subprocess.Popen:
    """``python -m core_client.cli run --config CONFIG`` with the keystore password in the environment."""
    env = {**os.environ, "EVN_OPERATOR_PASSWORD": PASSWORD}
    with log_file.open("ab") as handle:
        return subprocess.Popen(
            [sys.executable, "-m", "core_client.cli", "run", "--config", str(config)],
            cwd=ROOT,
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
        )


def stop_daemon(daemon: subprocess.Popen) -> int:
    """SIGTERM a daemon of :func:`spawn_daemon` unless it has ended, and wait for it; its exit status."""
    if daemon.poll() is None:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(20)
    return daemon.returncode


async def wait_health(url: str, timeout: float = 30) -> dict:
    """Poll GET /health until the daemon answers with its role (not "starting": a leader's OCPP port is open)."""
    import urllib.request

    def get() -> dict | None:
        try:
            with urllib.request.urlopen(url + "/health", timeout=1) as response:
                return json.loads(response.read())
        except OSError:
            return None

    deadline = time.monotonic() + timeout
    while True:
        health = await asyncio.to_thread(get)
        if serving(health):
            return health
        if time.monotonic() > deadline:
            raise AssertionError(f"no Core Client health (past starting) at {url} after {timeout}s: {health}")
        await asyncio.sleep(0.2)


@contextlib.asynccontextmanager
async def running_core(
    net: Any, tmp_path: Path, keyfile: Path, connectors: dict[str, int], **overrides: Any
) -> AsyncIterator[Core]:
    """Register stations (charge point id -> connectors) for net.operator, run a daemon, stop it after."""
    stations = {cp: await asyncio.to_thread(net.add_station, cp, n) for cp, n in connectors.items()}
    passwords = {cp: f"pw-{cp}" for cp in connectors}
    settings = settings_for(net, tmp_path, keyfile, passwords, **overrides)
    daemon = Daemon(settings, PASSWORD)
    await daemon.start()
    # start gives the chain START_PROBE_S, then serves OCPP and starts the chain side when the chain answers;
    # a loaded machine can miss that bound, and these tests begin with a reachable chain
    await until(lambda: daemon.chain_started, 30, "the daemon's chain side started")
    core = Core(net, daemon, stations, passwords)
    try:
        yield core
    finally:
        for sim in core.sims:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(sim.close(), 5)
        await daemon.stop(drain_timeout=5)


def ocmf_record(
    key: ec.EllipticCurvePrivateKey, id_tag: str, tx: str, rv: str, unit: str = "Wh", page: str = "T7"
) -> str:
    """A compact OCMF record of one reading, written and signed here, numbers and pagination as given
    (an independent signer: it shares no code with ev_network.ocmf)."""
    payload = (
        f'{{"FV":"1.0","GI":"Independent","PG":"{page}","MS":"IND-0001","ID":"{id_tag}",'
        f'"RD":[{{"TM":"2024-01-02T03:04:05,000+0000 S","TX":"{tx}","RV":{rv},"RU":"{unit}","ST":"G"}}]}}'
    )
    der = key.sign(payload.encode(), ec.ECDSA(hashes.SHA256()))
    return f'OCMF|{payload}|{{"SA":"ECDSA-secp256r1-SHA256","SD":"{der.hex()}"}}'


def signed_value(record: str, context: str) -> dict:
    """A MeterValue carrying one signed record (camelCase, as on the wire)."""
    sample = {"value": record, "context": context, "format": "SignedData", "unit": "Wh"}
    return {"timestamp": now_iso(), "sampledValue": [sample]}
