"""The Core Client run of the load benchmark: the daemon as a subprocess on the benchmark's Anvil.

Sessions are app-started as in production: driver i sends ``open`` (deposit into escrow) for charge
point i; the daemon sees SessionRequested, sends RemoteStartTransaction, the charge point charges
until the car unplugs after ``energy_wh``, the daemon settles on chain. A driver's next session is
opened when the previous one's SessionSettled (or SessionCancelled) is seen.
"""

from __future__ import annotations

import json
import queue
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.load.chain import PASSWORD_ENV, TOKEN, BenchChain, SettlementWatcher, send_tx
from benchmarks.load.proc import Child, ChildFailed, Monitor, cpu_seconds
from benchmarks.load.report import summary_ms
from benchmarks.load.runs import Fleet, LoadProfile, central_figures, measure
from core_client.config import Settings, hash_password, settings_to_toml
from core_client.health import serving
from tools.devchain import free_port


def write_config(
    path: Path, chain: BenchChain, passwords: dict[str, str], load: LoadProfile, database: Path
) -> Settings:
    """The daemon's TOML config (charge point passwords as sha256); returns the settings written."""
    settings = Settings.model_validate(
        {
            "listen_host": "127.0.0.1",
            "listen_port": free_port(),
            "control_host": "127.0.0.1",
            "control_port": free_port(),
            "rpc_url": chain.anvil.url,
            "deployment_file": chain.deployment_file,
            "keystore": chain.keystore,
            "password_env": PASSWORD_ENV,
            "database": database,
            "heartbeat_interval_s": max(1, int(load.heartbeat_s)),
            "charge_points": {cp: hash_password(pw) for cp, pw in passwords.items()},
            # the simulators' time runs fast: their readings must stay plausible (core_client.sessions.decisions)
            "max_power_kw": 2 * load.power_w * load.behaviour()["time_accel"] / 1000,
            **load.cc_settings,
        }
    )
    path.write_text(settings_to_toml(settings))
    return settings


def health(port: int, timeout: float = 5) -> dict[str, Any]:
    """GET /health of the daemon's control endpoint."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=timeout) as response:
        return json.loads(response.read())


def wait_ready(daemon: Child, port: int, head: int, timeout: float = 90) -> dict[str, Any]:
    """Wait until /health answers and the event watcher has read up to ``head`` (stations known)."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if not daemon.alive():
            raise ChildFailed(f"the Core Client exited (code {daemon.process.returncode}){daemon.tail()}")
        try:
            state = health(port)
            if serving(state) and (state.get("last_processed_block") or 0) >= head:
                return state
        except OSError as error:
            last_error = error
        time.sleep(0.2)
    raise ChildFailed(f"the Core Client was not ready within {timeout:.0f}s ({last_error}){daemon.tail()}")


class SessionDriver:
    """Opens sessions on chain (ramp, then one after another per charge point) and notes every end."""

    def __init__(self, chain: BenchChain, cp_ids: list[str], sessions: int, deposit: int) -> None:
        self.chain, self.cp_ids, self.sessions = chain, cp_ids, sessions
        self.txs = chain.prepare_opens(cp_ids, deposit)
        self.index = {chain.drivers[i].address.lower(): i for i in range(len(cp_ids))}
        self.remaining = [sessions] * len(cp_ids)
        self.opens: list[list[Any]] = []
        self.settled: list[dict[str, Any]] = []
        self.cancelled: list[dict[str, Any]] = []
        self.errors: list[str] = []
        self.transactions: dict[int, int] = {}  # session id -> OCPP transaction id (from SessionStarted)
        self.total = len(cp_ids) * sessions
        self.done = threading.Event()
        self._queue: queue.Queue[int | None] = queue.Queue()
        self._lock = threading.Lock()

    def on_event(self, event: Any, seen: float) -> None:
        """SessionSettled / SessionCancelled from the watcher thread: note it, open the next session.
        SessionStarted (always in an earlier transaction) gives the session's OCPP transaction id."""
        if event.name == "SessionStarted":
            self.transactions[event.args["sessionId"]] = event.args["transactionId"]
            return
        i = self.index.get(str(event.args["driver"]).lower())
        if i is None:
            return
        row = {"cp_id": self.cp_ids[i], "seen": seen, "session_id": event.args["sessionId"]}
        with self._lock:
            if event.name == "SessionSettled":
                row.update(
                    transaction_id=self.transactions.pop(event.args["sessionId"], None),
                    energy_wh=event.args["meterStop"] - event.args["meterStart"],
                )
                self.settled.append(row)
            else:
                row["reason"] = int(event.args["reason"]) if "reason" in event.args else None
                self.cancelled.append(row)
            self._check_done()
        if self.remaining[i] > 0:
            self._queue.put(i)

    def _check_done(self) -> None:
        if len(self.settled) + len(self.cancelled) + len(self.errors) >= self.total:
            self.done.set()

    def _open(self, i: int) -> None:
        self.remaining[i] -= 1
        sent = time.time()
        try:
            send_tx(self.chain.w3, self.txs[i])
            self.opens.append([self.cp_ids[i], sent])
        except Exception as error:  # counted as an ended session and reported; the run goes on
            with self._lock:
                self.errors.append(f"{self.cp_ids[i]}: {error}")
                self._check_done()

    def _sender(self) -> None:
        while (i := self._queue.get()) is not None:
            self._open(i)

    def run(self, rate: float, timeout: float, alive: Callable[[], bool]) -> bool:
        """Ramp the first sessions at ``rate`` per second, wait until every session ended; False on
        timeout or as soon as ``alive()`` (the daemon, the event watcher) turns False."""
        sender = threading.Thread(target=self._sender, name="session-opener", daemon=True)
        sender.start()
        started = time.monotonic()
        for i in range(len(self.cp_ids)):
            delay = started + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self._queue.put(i)
        finished = False
        while not finished and alive() and time.monotonic() - started < timeout:
            finished = self.done.wait(min(1.0, max(0.0, timeout - (time.monotonic() - started))))
        self._queue.put(None)
        sender.join(timeout=5)
        return finished


def run_core_client(
    workdir: Path, n: int, cp_ids: list[str], chain: BenchChain, load: LoadProfile, say: Any
) -> dict[str, Any]:
    """The Core Client daemon in its own process against a reverted chain and a fresh database."""
    chain.revert()
    passwords = {cp_id: f"pw-{cp_id}-{n}" for cp_id in cp_ids}
    config = workdir / f"core-client-{n}.toml"
    settings = write_config(config, chain, passwords, load, workdir / f"core-client-{n}.sqlite")
    session_ids = cp_ids[: load.session_cp_count(n)]
    driver = SessionDriver(chain, session_ids, load.sessions_per_cp, load.deposit_tokens * TOKEN)
    head = chain.w3.eth.block_number
    daemon = Child(
        f"core-client-{n}",
        ["-m", "core_client.cli", "run", "--config", str(config)],
        workdir / f"core-client-{n}.log",
        env={PASSWORD_ENV: chain.password},
    )
    fleet: Fleet | None = None
    watcher: SettlementWatcher | None = None
    try:
        cpu_start, monitor = cpu_seconds(daemon.pid), Monitor(daemon.pid)
        monitor.start()
        wait_ready(daemon, settings.control_port, head)
        url = f"ws://127.0.0.1:{settings.listen_port}"
        fleet = Fleet.start(workdir, f"core-client-{n}", url, list(passwords.items()), load)
        say(
            f"  core_client: {fleet.ready['connected']}/{n} connected in {fleet.ready['seconds']:.1f}s; sessions running"
        )
        cpu_ready, go_at = cpu_seconds(daemon.pid), time.time()
        monitor.mark()
        watcher = SettlementWatcher(chain, driver.on_event)
        watcher.start()
        finished = driver.run(load.open_rate, load.timeout(n), lambda: daemon.alive() and watcher.error is None)
        watcher.stop()
        time.sleep(min(1.0, load.heartbeat_s))  # the last Finishing/Available exchanges
        try:
            final_health = health(settings.control_port)
        except OSError as error:
            final_health = {"queue_depth": f"/health failed: {error}"}
        fleet_result = fleet.finish()
        central = central_figures(monitor, daemon.pid, cpu_ready, cpu_start)
        ends = [[row["cp_id"], row["seen"]] for row in driver.settled + driver.cancelled]
        result = measure("core_client", n, fleet_result, fleet, go_at, driver.opens, ends, central)
        _settle_figures(result, fleet_result, driver)
        result["sessions"]["open_errors"] = len(driver.errors)
        result["sessions"]["open_error_examples"] = driver.errors[:3]
        result["daemon_health_at_end"] = {
            k: final_health.get(k) for k in ("queue_depth", "pending_jobs_by_kind", "failed_jobs", "sessions_by_state")
        }
        result["daemon_settings"] = settings.model_dump(
            mode="json", exclude_unset=True, exclude={"keystore", "password_env", "charge_points"}
        )
        result["timed_out"] = not finished or watcher.error is not None
        if result["timed_out"]:
            if watcher.error is not None:
                result["error"] = f"event watcher failed: {watcher.error!r}"
            elif not daemon.alive():
                result["error"] = f"the Core Client exited (code {daemon.process.returncode}){daemon.tail(5)}"
            else:
                result["error"] = f"not every session ended within {load.timeout(n):.0f}s"
        return result
    finally:
        if watcher is not None:
            watcher.stop()
        if fleet is not None:
            fleet.child.stop(5)
        code = daemon.stop(30)
        if code not in (0, -15, None):
            say(f"  core_client exited with code {code}; log: {daemon.log_file}")


def _settle_figures(result: dict[str, Any], fleet_result: dict[str, Any], driver: SessionDriver) -> None:
    """StopTransaction -> SessionSettled latency (matched by charge point and transaction id), settle rate."""
    stop_sent = {(cp_id, tx_id): sent for cp_id, tx_id, sent in fleet_result["stops"]}
    latencies = [
        row["seen"] - stop_sent[key]
        for row in driver.settled
        if (key := (row["cp_id"], row["transaction_id"])) in stop_sent
    ]
    first_stop = min(stop_sent.values(), default=None)
    last_settled = max((row["seen"] for row in driver.settled), default=None)
    sessions = result["sessions"]
    sessions["settled"] = len(driver.settled)
    sessions["cancelled"] = len(driver.cancelled)
    sessions["cancel_reasons"] = sorted({row.get("reason") for row in driver.cancelled} - {None})
    span = (last_settled - first_stop) if first_stop and last_settled and last_settled > first_stop else None
    sessions["settled_per_s"] = round(len(driver.settled) / span, 2) if span else None
    result["stop_to_settled"] = summary_ms(latencies)
    result["stop_to_settled"]["unmatched"] = len(driver.settled) - len(latencies)
