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
    fleet_processes: int = 1
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
    """The running fleet processes (one asyncio loop each, the charge points dealt out in turn) and when
    every one was ready."""

    children: list[Child]
    ready: dict[str, Any]
    ready_at: float
    result_files: list[Path]

    @classmethod
    def start(
        cls, workdir: Path, tag: str, charge_points: list[tuple[str, str, str]], load: LoadProfile, processes: int = 1
    ) -> Fleet:
        """Connect ``(cp_id, password, url)`` charge points from ``processes`` fleet processes."""
        processes = max(1, min(processes, len(charge_points)))
        children, files = [], []
        try:
            for k in range(processes):
                name = f"fleet-{tag}" + (f"-{k + 1}" if processes > 1 else "")
                files.append(workdir / f"{name}.json")
                spec = {
                    "charge_points": charge_points[k::processes],
                    "connectors": load.connectors,
                    "behaviour": load.behaviour(),
                    "max_concurrent_connects": max(1, load.connect_concurrency // processes),
                    "result_file": str(files[-1]),
                }
                spec_file = workdir / f"{name}.spec.json"
                spec_file.write_text(json.dumps(spec))
                children.append(Child(name, ["-m", "benchmarks.load.fleet", str(spec_file)], workdir / f"{name}.log"))
            readies = [json.loads(c.expect("READY", timeout=120 + len(charge_points) * 0.2)) for c in children]
        except BaseException:
            for child in children:
                child.stop(5)
            raise
        ready = {
            "connected": sum(r["connected"] for r in readies),
            "failed": sum(r["failed"] for r in readies),
            "errors": [e for r in readies for e in r["errors"]],
            "seconds": max(r["seconds"] for r in readies),
        }
        return cls(children, ready, time.time(), files)

    def finish(self) -> dict[str, Any]:
        """Close the fleet; its measurements (every process's, merged; ``processes``: each one's CPU)."""
        for child in self.children:
            child.send("FINISH")
        try:
            for child in self.children:
                child.expect("DONE", timeout=120)
        finally:
            self.stop(10)
        parts = [json.loads(f.read_text()) for f in self.result_files]
        merged: dict[str, Any] = {key: [row for part in parts for row in part[key]] for key in LISTED}
        for key in ("cpu_seconds_after_ready", "calls_cut_by_shutdown", "max_rss_kb"):
            merged[key] = sum(part.get(key, 0) for part in parts)
        merged["processes"] = [
            {key: part.get(key) for key in ("cpu_seconds_after_ready", "connect_phase_cpu_utilisation", "max_rss_kb")}
            for part in parts
        ]
        return merged

    def stop(self, timeout: float = 5) -> None:
        for child in self.children:
            child.stop(timeout)


LISTED = ("connects", "connect_errors", "dropped", "calls", "starts", "stops")  # a fleet result's row lists


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
            "processes": len(fleet_result["processes"]),
            "cpu_seconds": round(fleet_result["cpu_seconds_after_ready"], 2),
            "cpu_utilisation": round(fleet_result["cpu_seconds_after_ready"] / fleet_wall, 2),
            "cpu_utilisation_per_process": [
                round(part["cpu_seconds_after_ready"] / fleet_wall, 2) for part in fleet_result["processes"]
            ],
            "connect_phase_cpu_utilisation_per_process": [
                part["connect_phase_cpu_utilisation"] for part in fleet_result["processes"]
            ],
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
        url = f"ws://127.0.0.1:{port}"
        fleet = Fleet.start(workdir, f"bare-{n}", [(cp, f"pw-{cp}", url) for cp in cp_ids], load, load.fleet_processes)
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
            fleet.stop()
        bare.send("QUIT")
        bare.stop(10)
