"""The Core Client run of the load benchmark: the daemon as a subprocess on the benchmark's Anvil (or
several instances of one operator on one PostgreSQL: :mod:`benchmarks.load.instances`).

Sessions are app-started as in production: driver i sends ``open`` (deposit into escrow) for charge
point i; the daemon sees SessionRequested, sends RemoteStartTransaction, the charge point charges
until the car unplugs after ``energy_wh``, the daemon settles on chain. A driver's next session is
opened when the previous one's SessionSettled (or SessionCancelled) is seen.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.load.chain import TOKEN, BenchChain, SettlementWatcher, send_tx
from benchmarks.load.instances import Instances
from benchmarks.load.report import summary_ms
from benchmarks.load.runs import Fleet, LoadProfile, measure
from tools.pgserver import PostgresServer


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
    workdir: Path,
    n: int,
    cp_ids: list[str],
    chain: BenchChain,
    load: LoadProfile,
    say: Any,
    instances: int = 1,
    postgres: PostgresServer | None = None,
) -> dict[str, Any]:
    """The Core Client in ``instances`` processes against a reverted chain and a fresh database: a SQLite
    file, or (with ``postgres``) a new database on that server, which several instances share."""
    chain.revert()
    tag = f"{n}" if instances == 1 else f"{n}x{instances}"
    passwords = {cp_id: f"pw-{cp_id}-{n}" for cp_id in cp_ids}
    if postgres is not None:
        database: Path | str = postgres.create_database(f"load_{n}_{instances}_{int(time.time())}")
    else:
        database = workdir / f"core-client-{tag}.sqlite"
    session_ids = cp_ids[: load.session_cp_count(n)]
    driver = SessionDriver(chain, session_ids, load.sessions_per_cp, load.deposit_tokens * TOKEN)
    head = chain.w3.eth.block_number
    cluster = Instances(
        workdir, tag, chain, passwords, load, instances, database, postgres.process.pid if postgres else None
    )
    fleet: Fleet | None = None
    watcher: SettlementWatcher | None = None
    try:
        cluster.start(head)
        fleet = Fleet.start(workdir, f"core-client-{tag}", cluster.assignment(cp_ids), load, load.fleet_processes)
        say(
            f"  core_client x{instances}: {fleet.ready['connected']}/{n} connected in {fleet.ready['seconds']:.1f}s"
            f" ({len(fleet.children)} fleet process(es)); sessions running"
        )
        go_at = time.time()
        cluster.mark_ready()
        watcher = SettlementWatcher(chain, driver.on_event)
        watcher.start()
        finished = driver.run(load.open_rate, load.timeout(n), lambda: cluster.alive() and watcher.error is None)
        watcher.stop()
        time.sleep(min(1.0, load.heartbeat_s))  # the last Finishing/Available exchanges
        final_health = cluster.leader_health()
        fleet_result = fleet.finish()
        load_wall = time.time() - go_at
        figures = cluster.figures(fleet_result["calls"], go_at, load_wall)
        central = {
            "cpu_seconds_load": figures["cpu_seconds_load"],
            "peak_rss_mb": figures["peak_rss_mb"],
            **{k: sum(p[k] for p in figures["per_instance"]) for k in ("cpu_seconds_total", "vmhwm_mb")},
        }
        ends = [[row["cp_id"], row["seen"]] for row in driver.settled + driver.cancelled]
        result = measure("core_client", n, fleet_result, fleet, go_at, driver.opens, ends, central)
        _settle_figures(result, fleet_result, driver)
        result["instances"] = figures
        result["sizing"] = sizing(figures, n, load_wall, result["sessions"]["settled"])
        result["sessions"]["open_errors"] = len(driver.errors)
        result["sessions"]["open_error_examples"] = driver.errors[:3]
        result["daemon_health_at_end"] = {
            k: final_health.get(k) for k in ("queue_depth", "pending_jobs_by_kind", "failed_jobs", "sessions_by_state")
        }
        result["daemon_settings"] = cluster.running[0].settings.model_dump(
            mode="json", exclude_unset=True, exclude={"keystore", "password_env", "charge_points", "database"}
        )
        result["timed_out"] = not finished or watcher.error is not None
        if result["timed_out"]:
            if watcher.error is not None:
                result["error"] = f"event watcher failed: {watcher.error!r}"
            elif (exited := cluster.exited()) is not None:
                result["error"] = exited
            else:
                result["error"] = f"not every session ended within {load.timeout(n):.0f}s"
        return result
    finally:
        if watcher is not None:
            watcher.stop()
        if fleet is not None:
            fleet.stop()
        cluster.stop(say)


def sizing(figures: dict[str, Any], n: int, load_wall_s: float, settled: int) -> dict[str, Any]:
    """What the run cost, for sizing: the instances' CPU per 1,000 charge points (seconds over the run, and
    cores on average while it ran), per settled session, and PostgreSQL's share where it ran."""
    cpu = figures["cpu_seconds_load"]
    result = {
        "load_seconds": round(load_wall_s, 1),
        "instances_cpu_seconds_per_1000_cp": round(cpu * 1000 / n, 2),
        "instances_cores_per_1000_cp": round(cpu / max(load_wall_s, 1e-9) * 1000 / n, 3),
        "instances_cpu_ms_per_settled_session": round(cpu * 1000 / settled, 1) if settled else None,
        "peak_rss_mb_per_1000_cp": round(figures["peak_rss_mb"] * 1000 / n, 1),
    }
    if "postgresql_cpu_seconds_load" in figures:
        pg = figures["postgresql_cpu_seconds_load"]
        result["postgresql_cpu_seconds_per_1000_cp"] = round(pg * 1000 / n, 2)
        result["postgresql_cores_per_1000_cp"] = round(pg / max(load_wall_s, 1e-9) * 1000 / n, 3)
    return result


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
    sessions["settled_distinct"] = len({row["session_id"] for row in driver.settled})  # one settle per session
    sessions["cancelled"] = len(driver.cancelled)
    sessions["cancel_reasons"] = sorted({row.get("reason") for row in driver.cancelled} - {None})
    span = (last_settled - first_stop) if first_stop and last_settled and last_settled > first_stop else None
    sessions["settled_per_s"] = round(len(driver.settled) / span, 2) if span else None
    result["stop_to_settled"] = summary_ms(latencies)
    result["stop_to_settled"]["unmatched"] = len(driver.settled) - len(latencies)
