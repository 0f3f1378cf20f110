"""One measured run of the load benchmark: N simulated charge points against one central system.

Both runs use the same load profile (:class:`LoadProfile`) and the same fleet process
(:mod:`benchmarks.load.fleet`): connect + boot + status for every charge point, then sessions started
from the central system (RemoteStartTransaction) at ``open_rate`` per second, each ending when the car
unplugs after ``energy_wh``. Against the Core Client a session begins with a driver's ``open``
transaction on chain and ends when its SessionSettled event is seen; against the bare central system
the benchmark's session driver sends the RemoteStart itself and a session ends at StopTransaction.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.load.proc import Child, Monitor, cpu_seconds
from benchmarks.load.report import by_cp, paired_delays, rate, reply_latencies, summary_ms

SIM_INTERVAL_S = 60.0  # simulated seconds per MeterValues


@dataclass
class LoadProfile:
    """What every charge point does, identical for both central systems."""

    sessions_per_cp: int = 1
    energy_wh: int = 1000
    power_w: float = 11000
    meter_interval_s: float = 1.0
    heartbeat_s: float = 30.0
    open_rate: float = 50.0
    session_cps: int | None = None
    connectors: int = 2
    connect_concurrency: int = 50
    deposit_tokens: int = 20
    run_timeout_s: float | None = None
    cc_settings: dict[str, Any] = field(default_factory=dict)

    def behaviour(self) -> dict[str, Any]:
        """The simulator's Behaviour fields."""
        return {
            "power_w": self.power_w,
            "meter_interval_s": SIM_INTERVAL_S,
            "time_accel": SIM_INTERVAL_S / self.meter_interval_s,
            "unplug_after_wh": self.energy_wh,
            "heartbeat_s": self.heartbeat_s,
        }

    @property
    def charging_s(self) -> float:
        """Real seconds a session charges before the car unplugs."""
        per_tick = self.power_w * SIM_INTERVAL_S / 3600
        return -(-self.energy_wh // per_tick) * self.meter_interval_s

    def session_cp_count(self, n: int) -> int:
        return n if self.session_cps is None else min(n, self.session_cps)

    def timeout(self, n: int) -> float:
        """How long the session phase of a run may take before it is cut off."""
        if self.run_timeout_s is not None:
            return self.run_timeout_s
        sessions = self.session_cp_count(n) * self.sessions_per_cp
        return (
            60
            + self.session_cp_count(n) / self.open_rate
            + self.sessions_per_cp * (self.charging_s + 20)
            + sessions / 5
        )


@dataclass
class Fleet:
    """The running fleet process and when it was ready."""

    child: Child
    ready: dict[str, Any]
    ready_at: float
    result_file: Path

    @classmethod
    def start(cls, workdir: Path, tag: str, url: str, pairs: list[tuple[str, str]], load: LoadProfile) -> Fleet:
        result_file = workdir / f"fleet-{tag}.json"
        spec = {
            "url": url,
            "charge_points": pairs,
            "connectors": load.connectors,
            "behaviour": load.behaviour(),
            "max_concurrent_connects": load.connect_concurrency,
            "result_file": str(result_file),
        }
        spec_file = workdir / f"fleet-{tag}.spec.json"
        spec_file.write_text(json.dumps(spec))
        child = Child(f"fleet-{tag}", ["-m", "benchmarks.load.fleet", str(spec_file)], workdir / f"fleet-{tag}.log")
        try:
            ready = json.loads(child.expect("READY", timeout=120 + len(pairs) * 0.2))
        except BaseException:
            child.stop(5)
            raise
        return cls(child, ready, time.time(), result_file)

    def finish(self) -> dict[str, Any]:
        """Close the fleet; its measurements."""
        self.child.send("FINISH")
        try:
            self.child.expect("DONE", timeout=120)
        finally:
            self.child.stop(10)
        return json.loads(self.result_file.read_text())


def measure(
    system: str,
    n: int,
    fleet_result: dict[str, Any],
    fleet: Fleet,
    go_at: float,
    opens: list[list[Any]],
    completions: list[list[Any]],
    central: dict[str, Any],
) -> dict[str, Any]:
    """The figures of one run. ``opens``/``completions``: ``[cp_id, time]`` of session requests and ends."""
    starts = by_cp(fleet_result["starts"])
    first_open = min((t for _, t in opens), default=None)
    last_done = max((t for _, t in completions), default=None)
    fleet_wall = max(time.time() - fleet.ready_at, 1e-9)
    connects = fleet_result["connects"]
    return {
        "system": system,
        "charge_points": n,
        "connected": fleet.ready["connected"],
        "connect_failed": fleet.ready["failed"],
        "connect_errors": fleet.ready["errors"][:5],
        "connect_seconds": round(fleet.ready["seconds"], 2),
        "connect_handshake_and_boot": summary_ms([end - begin for _, begin, end in connects]),
        "dropped_connections": len(fleet_result["dropped"]),
        "reply_latency": reply_latencies(fleet_result["calls"], go_at),
        "sessions": {
            "requested": len(opens),
            "started": len(fleet_result["starts"]),
            "stopped": len(fleet_result["stops"]),
            "completed": len(completions),
            "completed_per_s": rate(len(completions), first_open, last_done),
        },
        "open_to_start_transaction": summary_ms(paired_delays(by_cp(opens), starts)),
        "central": central,
        "fleet_process": {
            "cpu_seconds": round(fleet_result["cpu_seconds_after_ready"], 2),
            "cpu_utilisation": round(fleet_result["cpu_seconds_after_ready"] / fleet_wall, 2),
            "connect_phase_cpu_utilisation": fleet_result.get("connect_phase_cpu_utilisation"),
            "max_rss_mb": round(fleet_result["max_rss_kb"] / 1024, 1),
            "calls_cut_by_shutdown": fleet_result.get("calls_cut_by_shutdown", 0),
        },
    }


def central_figures(monitor: Monitor, pid: int, cpu_at_ready: float, cpu_at_start: float) -> dict[str, Any]:
    """CPU and memory of the central-system process."""
    monitor.stop()
    now = cpu_seconds(pid)
    return {
        "peak_rss_mb": round(monitor.peak_since_mark_kb / 1024, 1),
        "peak_rss_mb_incl_startup": round(monitor.peak_rss_kb / 1024, 1),
        "vmhwm_mb": round(monitor.vmhwm_kb / 1024, 1),
        "cpu_seconds_load": round(now - cpu_at_ready, 2),
        "cpu_seconds_total": round(now - cpu_at_start, 2),
    }


def run_bare(workdir: Path, n: int, cp_ids: list[str], load: LoadProfile, say: Any) -> dict[str, Any]:
    """The baseline: the bare ``ocpp`` central system in its own process, sessions by RemoteStart."""
    bare = Child(f"bare-{n}", ["-m", "benchmarks.load.bare", "0"], workdir / f"bare-{n}.log")
    fleet: Fleet | None = None
    try:
        port = int(bare.expect("LISTENING", timeout=30))
        cpu_start, monitor = cpu_seconds(bare.pid), Monitor(bare.pid)
        monitor.start()
        pairs = [(cp_id, f"pw-{cp_id}") for cp_id in cp_ids]
        fleet = Fleet.start(workdir, f"bare-{n}", f"ws://127.0.0.1:{port}", pairs, load)
        say(f"  bare: {fleet.ready['connected']}/{n} connected in {fleet.ready['seconds']:.1f}s; sessions running")
        cpu_ready, go_at = cpu_seconds(bare.pid), time.time()
        monitor.mark()
        session_ids = cp_ids[: load.session_cp_count(n)]
        bare.send(
            "GO "
            + json.dumps(
                {"cp_ids": session_ids, "sessions": load.sessions_per_cp, "open_rate": load.open_rate, "connector": 1}
            )
        )
        timed_out = None
        try:
            bare.expect("ALLDONE", timeout=load.timeout(n))
        except RuntimeError as error:
            timed_out = str(error).splitlines()[0]
        time.sleep(min(1.0, load.heartbeat_s))  # let the last Finishing/Available exchanges complete
        bare.send("REPORT")
        report = json.loads(bare.expect("SESSIONS", timeout=30))
        fleet_result = fleet.finish()
        central = central_figures(monitor, bare.pid, cpu_ready, cpu_start)
        stops = [[cp_id, sent] for cp_id, _tx, sent in fleet_result["stops"]]
        result = measure("bare", n, fleet_result, fleet, go_at, report["opens"], stops, central)
        result["sessions"]["rejected_remote_starts"] = report["rejected"]
        result["timed_out"] = timed_out is not None
        if timed_out:
            result["error"] = timed_out
        return result
    finally:
        if fleet is not None:
            fleet.child.stop(5)
        bare.send("QUIT")
        bare.stop(10)
