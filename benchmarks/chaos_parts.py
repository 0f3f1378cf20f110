"""The Core Client as a process of the chaos benchmark (:mod:`benchmarks.chaos`), SIGKILLed and started
again on the same config and database (several of them, one operator: :mod:`benchmarks.chaos_cluster`)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from core_client.config import Settings, hash_password, settings_to_toml
from core_client.health import serving
from tools.devchain import ROOT, child_options, free_port, stop_process

PASSWORD_ENV = "EVN_CHAOS_OPERATOR_PASSWORD"


class Daemon:
    """``core-client run`` on one config; :meth:`kill` is SIGKILL, :meth:`start` starts it again."""

    def __init__(self, workdir: Path, settings: Settings, password: str, name: str = "core-client") -> None:
        self.settings, self.password, self.name = settings, password, name
        self.config = workdir / f"{name}.toml"
        self.config.write_text(settings_to_toml(settings))
        self.log_file = workdir / f"{name}.log"
        self.process: subprocess.Popen | None = None
        self.starts = 0

    @classmethod
    def configure(
        cls, workdir: Path, rpc_url: str, chain: Any, passwords: dict[str, str], name: str = "core-client", **extra: Any
    ) -> Daemon:
        """A daemon ``name`` for ``chain`` (deployment_file, keystore, password, w3: a BenchChain or the tests'
        network) with these charge point passwords, reading events from the next block on (``extra``:
        more settings, or other values: ``database``, ``start_block``)."""
        settings = Settings.model_validate(
            {
                "listen_port": free_port(),
                "control_port": free_port(),
                "rpc_url": rpc_url,
                "deployment_file": chain.deployment_file,
                "keystore": chain.keystore,
                "password_env": PASSWORD_ENV,
                "database": workdir / "core-client.sqlite",
                "charge_points": {cp: hash_password(pw) for cp, pw in passwords.items()},
                "start_block": chain.w3.eth.block_number + 1,
                **extra,
            }
        )
        return cls(workdir, settings, chain.password, name)

    @property
    def ocpp_url(self) -> str:
        return f"ws://127.0.0.1:{self.settings.listen_port}"

    def start(self) -> None:
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "core_client.cli", "run", "--config", str(self.config)],
                cwd=ROOT,
                env={**os.environ, PASSWORD_ENV: self.password},
                stdout=log,
                stderr=subprocess.STDOUT,
                **child_options(),
            )
        self.starts += 1

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    async def serve(self, timeout: float = 60) -> dict:
        """Start it; its /health once it serves."""
        self.start()
        return await self.wait_healthy(timeout)

    async def crash(self, pause: float) -> dict[str, Any]:
        """SIGKILL, and start again after ``pause`` seconds; what happened (for the kill log)."""
        self.kill()
        await asyncio.sleep(pause)
        self.start()
        return {"down_s": round(pause, 2)}

    def stop(self, timeout: float = 30) -> int | None:
        """SIGTERM (drains what was sent), SIGKILL after ``timeout``."""
        return stop_process(self.process, timeout) if self.process is not None else None

    async def close(self) -> None:
        self.stop()

    def health(self) -> dict | None:
        try:
            url = f"http://127.0.0.1:{self.settings.control_port}/health"
            with urllib.request.urlopen(url, timeout=2) as response:
                return json.loads(response.read())
        except OSError:
            return None

    async def wait_healthy(self, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"the Core Client exited (code {self.process.returncode}): see {self.log_file}")
            if serving(health := await asyncio.to_thread(self.health)):
                return health
            await asyncio.sleep(0.2)
        raise RuntimeError(f"the Core Client did not answer /health within {timeout:.0f}s: see {self.log_file}")
