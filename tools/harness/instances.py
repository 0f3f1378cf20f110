"""Core Client instances of one operator as real processes (``core-client run``), each with its config,
log, OCPP and control ports: what the multi-instance tests start, kill, cut off and start again."""

from __future__ import annotations

import json
import signal
import subprocess
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core_client.config import DashboardSettings, Settings, hash_password
from tools.devchain import free_port
from tools.harness.core import settings_for, spawn_daemon, until, wait_health, write_config


@dataclass
class Instance:
    """One Core Client process (started by :meth:`start`, again after it ended)."""

    name: str
    settings: Settings
    config: Path
    log: Path
    process: subprocess.Popen | None = None

    @property
    def control(self) -> str:
        return f"http://127.0.0.1:{self.settings.control_port}"

    @property
    def dashboard(self) -> str:
        assert self.settings.dashboard is not None
        return f"http://127.0.0.1:{self.settings.dashboard.port}"

    @property
    def ocpp(self) -> str:
        return f"ws://127.0.0.1:{self.settings.listen_port}"

    def start(self) -> subprocess.Popen:
        self.process = spawn_daemon(self.config, self.log)
        return self.process

    async def started(self, timeout: float = 30) -> str:
        """Start it; its role once it knows it ("leader" or "standby")."""
        self.start()
        return (await wait_health(self.control, timeout))["role"]

    def health(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.control + "/health", timeout=2) as response:
            return json.loads(response.read())

    async def role(self, role: str, timeout: float) -> dict[str, Any]:
        """Wait until its /health says ``role``; that health."""

        def check() -> dict | None:
            try:
                health = self.health()
            except OSError:
                return None
            return health if health["role"] == role else None

        return await until(check, timeout, f"instance {self.name} to be {role}")

    async def ended(self, timeout: float) -> int:
        """Wait until its process has ended (without being told to); its exit status."""
        process = self.process
        assert process is not None
        await until(lambda: process.poll() is not None, timeout, f"instance {self.name} to end")
        return process.returncode

    def stop(self) -> int | None:
        """SIGTERM and wait (if it still runs); its exit status."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(20)
        return self.process.returncode

    def text(self) -> str:
        return self.log.read_text(errors="replace")


def instances(
    net: Any,
    tmp_path: Path,
    keyfile: Path,
    passwords: dict[str, str],
    databases: dict[str, str],
    dashboard_password: str | None = None,
    **overrides: Any,
) -> list[Instance]:
    """One instance per ``databases`` entry (name -> its PostgreSQL URL: the same server, maybe through a
    proxy), all of the same operator, each on free ports (with ``dashboard_password``: each with its
    dashboard too), with the settings ``overrides``."""
    made = []
    for name, database in databases.items():
        extra: dict[str, Any] = dict(overrides)
        if dashboard_password is not None:
            extra["dashboard"] = DashboardSettings(port=free_port(), password=hash_password(dashboard_password))
        settings = settings_for(
            net,
            tmp_path,
            keyfile,
            passwords,
            database=database,
            listen_port=free_port(),
            control_port=free_port(),
            **extra,
        )
        made.append(
            Instance(name, settings, write_config(tmp_path / f"{name}.toml", settings), tmp_path / f"{name}.log")
        )
    return made
