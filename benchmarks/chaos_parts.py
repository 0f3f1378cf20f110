"""Moving parts of the chaos benchmark (:mod:`benchmarks.chaos`): the Core Client as a process that
can be SIGKILLed and started again on the same config and database, and a TCP proxy between it and
the chain that can be cut (a chain outage)."""

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
from ev_network.devchain import ROOT, child_options, free_port

PASSWORD_ENV = "EVN_CHAOS_OPERATOR_PASSWORD"


class Daemon:
    """``core-client run`` on one config; :meth:`kill` is SIGKILL, :meth:`start` starts it again."""

    def __init__(self, workdir: Path, settings: Settings, password: str) -> None:
        self.settings, self.password = settings, password
        self.config = workdir / "core-client.toml"
        self.config.write_text(settings_to_toml(settings))
        self.log_file = workdir / "core-client.log"
        self.process: subprocess.Popen | None = None
        self.starts = 0

    @classmethod
    def configure(cls, workdir: Path, rpc_url: str, chain: Any, passwords: dict[str, str], **extra: Any) -> Daemon:
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
        return cls(workdir, settings, chain.password)

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

    def stop(self, timeout: float = 30) -> int | None:
        """SIGTERM (drains what was sent), SIGKILL after ``timeout``."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

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
            if (health := await asyncio.to_thread(self.health)) is not None:
                return health
            await asyncio.sleep(0.2)
        raise RuntimeError(f"the Core Client did not answer /health within {timeout:.0f}s: see {self.log_file}")


class ChainCut:
    """A TCP forwarder to the chain's node; :meth:`cut` drops every connection and refuses new ones
    (the chain is unreachable), :meth:`restore` listens again on the same port."""

    def __init__(self, target_port: int) -> None:
        self.target_port, self.port = target_port, free_port()
        self.server: asyncio.Server | None = None
        self._pipes: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def restore(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def cut(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None
        for writer in list(self._pipes):
            writer.transport.abort()
        self._pipes.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self._pipes.update({writer, up_writer})
        try:
            await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer), return_exceptions=True)
        except asyncio.CancelledError:  # the benchmark's loop is closing: end quietly
            writer.transport.abort()
            up_writer.transport.abort()
        self._pipes.difference_update({writer, up_writer})

    @staticmethod
    async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            writer.transport.abort()
