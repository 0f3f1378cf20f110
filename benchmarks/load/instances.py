"""The Core Client side of a load run: one instance on SQLite or PostgreSQL, or several instances of one
operator on one PostgreSQL (``--instances N``), each a ``core_client.cli run`` process with its own OCPP
and control ports. The charge points are dealt out to the instances' OCPP ports in turn (round robin,
as a TCP load balancer would: no balancer process of ours takes CPU from the instances).

The first instance starts alone and takes the signer lease (it leads: it signs, watches the chain and
anchors); the others start once it serves and stand by, serving their charge points. Per instance: its
role, the charge points it holds, CPU seconds and peak RSS from /proc; PostgreSQL's CPU (the server
and its backends) is measured apart."""

from __future__ import annotations

import json
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.load.chain import PASSWORD_ENV, BenchChain
from benchmarks.load.proc import Child, ChildFailed, Monitor, cpu_seconds, tree_cpu_seconds
from benchmarks.load.report import reply_latencies
from benchmarks.load.runs import LoadProfile, central_figures
from core_client.config import Settings, hash_password, settings_to_toml
from core_client.health import serving
from tools.devchain import free_port


def write_config(
    path: Path, chain: BenchChain, passwords: dict[str, str], load: LoadProfile, database: Path | str
) -> Settings:
    """An instance's TOML config (charge point passwords as sha256); returns the settings written."""
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
    """GET /health of an instance's control endpoint."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=timeout) as response:
        return json.loads(response.read())


def wait_ready(daemon: Child, port: int, head: int, timeout: float = 90) -> dict[str, Any]:
    """Wait until /health answers with a role and the event cursor is at ``head`` (stations known)."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if not daemon.alive():
            raise ChildFailed(f"{daemon.name} exited (code {daemon.process.returncode}){daemon.tail()}")
        try:
            state = health(port)
            if serving(state) and (state.get("last_processed_block") or 0) >= head:
                return state
        except OSError as error:
            last_error = error
        time.sleep(0.2)
    raise ChildFailed(f"{daemon.name} was not ready within {timeout:.0f}s ({last_error}){daemon.tail()}")


@dataclass
class Instance:
    """One running Core Client process and its measurements."""

    name: str
    settings: Settings
    child: Child
    monitor: Monitor
    cpu_start: float
    cpu_ready: float = 0.0
    at_ready: dict[str, Any] | None = None  # /health when the fleet was connected

    @property
    def ocpp_url(self) -> str:
        return f"ws://127.0.0.1:{self.settings.listen_port}"

    def health(self) -> dict[str, Any]:
        return health(self.settings.control_port)


class Instances:
    """``count`` Core Client processes of the chain's operator on ``database`` (a SQLite file or a
    PostgreSQL URL; several need PostgreSQL). ``postgres_pid``: the PostgreSQL server's, for its CPU."""

    def __init__(
        self,
        workdir: Path,
        tag: str,
        chain: BenchChain,
        passwords: dict[str, str],
        load: LoadProfile,
        count: int,
        database: Path | str,
        postgres_pid: int | None = None,
    ) -> None:
        self.workdir, self.tag, self.chain, self.load = workdir, tag, chain, load
        self.passwords, self.count, self.database = passwords, count, database
        self.postgres_pid = postgres_pid
        self.running: list[Instance] = []
        self.postgres_cpu_ready = 0.0

    def start(self, head: int) -> None:
        """Start the first instance and wait until it serves (it leads), then the others."""
        self._start(1, head)
        for index in range(2, self.count + 1):
            self._start(index, head)

    def _start(self, index: int, head: int) -> None:
        name = f"core-client-{self.tag}" + (f"-{index}" if self.count > 1 else "")
        settings = write_config(self.workdir / f"{name}.toml", self.chain, self.passwords, self.load, self.database)
        child = Child(
            name,
            ["-m", "core_client.cli", "run", "--config", str(self.workdir / f"{name}.toml")],
            self.workdir / f"{name}.log",
            env={PASSWORD_ENV: self.chain.password},
        )
        instance = Instance(name, settings, child, Monitor(child.pid), cpu_seconds(child.pid))
        self.running.append(instance)
        instance.monitor.start()
        # a fresh instance first reads every StationRegistered: 5,000 of them took over 90 s on a loaded machine
        wait_ready(child, settings.control_port, head, timeout=90 + 0.1 * len(self.passwords))

    def assignment(self, cp_ids: list[str]) -> list[tuple[str, str, str]]:
        """``(cp_id, password, OCPP url)``: charge point i goes to instance i mod N."""
        urls = [instance.ocpp_url for instance in self.running]
        return [(cp, self.passwords[cp], urls[i % len(urls)]) for i, cp in enumerate(cp_ids)]

    def mark_ready(self) -> None:
        """The fleet is connected: the load phase starts (CPU and peak RSS are measured from here)."""
        for instance in self.running:
            instance.cpu_ready = cpu_seconds(instance.child.pid)
            instance.monitor.mark()
            try:
                instance.at_ready = instance.health()
            except OSError as error:
                instance.at_ready = {"error": str(error)}
        if self.postgres_pid is not None:
            self.postgres_cpu_ready = tree_cpu_seconds(self.postgres_pid)

    def alive(self) -> bool:
        return all(instance.child.alive() for instance in self.running)

    def exited(self) -> str | None:
        """Which instance exited, with its log's tail (None: all run)."""
        for instance in self.running:
            if not instance.child.alive():
                return f"{instance.name} exited (code {instance.child.process.returncode}){instance.child.tail(5)}"
        return None

    def leader_health(self) -> dict[str, Any]:
        """/health of the instance that leads (of the first that answers if none does)."""
        answers = []
        for instance in self.running:
            try:
                answers.append(instance.health())
            except OSError as error:
                answers.append({"queue_depth": f"/health of {instance.name} failed: {error}"})
        return next((a for a in answers if a.get("role") == "leader"), answers[0])

    def figures(self, calls: list[list[Any]], go_at: float, load_wall_s: float) -> dict[str, Any]:
        """Per instance (role, charge points held, session writes lost to another instance and decided again,
        reply p50/p99, CPU, peak RSS), their sums, PostgreSQL's CPU."""
        names = {instance.ocpp_url: instance.name for instance in self.running}
        home = {cp: names[url] for cp, _, url in self.assignment(list(self.passwords))}
        per: list[dict[str, Any]] = []
        for instance in self.running:
            mine = [row for row in calls if home.get(row[0]) == instance.name]
            replies = reply_latencies(mine, go_at)
            central = central_figures(instance.monitor, instance.child.pid, instance.cpu_ready, instance.cpu_start)
            at_ready = instance.at_ready or {}
            try:  # inputs decided again because another instance had written their session (rev7)
                conflicts = instance.health().get("conflicts")
            except OSError as error:
                conflicts = f"/health failed: {error}"
            per.append(
                {
                    "name": instance.name,
                    "role": at_ready.get("role"),
                    "charge_points_held": len(at_ready.get("connected_charge_points", [])),
                    "conflicts": conflicts,
                    "reply_latency": {
                        phase: {k: replies[phase].get(k) for k in ("count", "p50_ms", "p99_ms")}
                        for phase in ("all", "session_phase")
                    },
                    **central,
                    "cpu_utilisation_load": round(central["cpu_seconds_load"] / max(load_wall_s, 1e-9), 2),
                }
            )
        result: dict[str, Any] = {
            "count": len(per),
            "database": "postgresql" if isinstance(self.database, str) else "sqlite",
            "per_instance": per,
            "cpu_seconds_load": round(sum(p["cpu_seconds_load"] for p in per), 2),
            "peak_rss_mb": round(sum(p["peak_rss_mb"] for p in per), 1),
        }
        if self.postgres_pid is not None:
            used = tree_cpu_seconds(self.postgres_pid) - self.postgres_cpu_ready
            result["postgresql_cpu_seconds_load"] = round(used, 2)
        return result

    def stop(self, say: Any) -> None:
        """SIGTERM every instance (each drains what it sent), the leader last."""
        for instance in reversed(self.running):
            instance.monitor.stop()
            code = instance.child.stop(30)
            if code not in (0, -15, None):
                say(f"  {instance.name} exited with code {code}; log: {instance.child.log_file}")
