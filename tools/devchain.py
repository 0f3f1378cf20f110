"""Development chains: start a local Anvil on a free port and deploy with the Brownie script.

Used by the tests, the demo and the benchmarks; not part of the runtime packages (a Core Client or
wallet in production needs none of it). Anvil's accounts are in :mod:`ev_network.devaccounts`."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import ctypes
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from ev_network.deployment import Deployment
from ev_network.errors import ChainUnavailable, EVNetworkError

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port nobody listens on right now (Anvil cannot pick one itself)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _die_with_parent() -> None:
    """In a child between fork and exec (Linux): get SIGTERM when the parent dies, even by SIGKILL."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def child_options() -> dict:
    """Popen options for a helper process (Anvil, a Core Client) that must not outlive its starter.

    On Linux the child is signalled when the starting thread ends, so this applies only to children
    started from the main thread (whose end is the process's end); atexit and signal handlers cover
    the orderly exits."""
    if sys.platform.startswith("linux") and threading.current_thread() is threading.main_thread():
        return {"preexec_fn": _die_with_parent}
    return {}


def exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit, so ``finally`` blocks and atexit stop what was started."""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


def stop_process(process: subprocess.Popen, timeout: float) -> int:
    """SIGTERM (a clean shutdown), SIGKILL if it has not ended after ``timeout`` seconds; the exit code."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def anvil_binary() -> str:
    """Anvil from npm (@foundry-rs/anvil): the platform binary itself, else npm's wrapper, else PATH."""
    for local in [
        *sorted((ROOT / "node_modules" / "@foundry-rs").glob("anvil-*/bin/anvil")),
        ROOT / "node_modules" / ".bin" / "anvil",
    ]:
        if local.exists():
            return str(local)
    found = shutil.which("anvil")
    if not found:
        raise EVNetworkError("anvil not found: run `make setup` (npm install @foundry-rs/anvil)")
    return found


class Anvil:
    """A local Anvil process. Use as a context manager, or call :meth:`start` and :meth:`stop`.

    ``prune_history``: the state of only the latest ``prune_history`` blocks is kept (reads at an older
    block fail, as on a pruned node; None: every block's); for long runs with many blocks. Keep a few:
    with none, a read at "latest" fails whenever a block is mined while it runs (Anvil prunes the state
    it was reading: ``BlockOutOfRangeError``), which no real node does."""

    def __init__(
        self,
        port: int | None = None,
        state: Path | None = None,
        block_time: float | None = None,
        accounts: int = 20,
        prune_history: int | None = None,
    ) -> None:
        self.port = port or free_port()
        self.prune_history = prune_history
        self.state = state
        self.block_time = block_time
        self.accounts = accounts
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> Anvil:
        cmd = [anvil_binary(), "--port", str(self.port), "--accounts", str(self.accounts), "--silent"]
        if self.state is not None:
            self.state.parent.mkdir(parents=True, exist_ok=True)
            cmd += ["--state", str(self.state)]
        if self.block_time:
            cmd += ["--block-time", str(self.block_time)]
        if self.prune_history is not None:
            # keep the state of the latest blocks only, as a pruned real node (otherwise Anvil keeps a copy
            # of the state for every block: memory grows with blocks x state size; benchmarks/anvil_memory.py)
            cmd += ["--prune-history", str(self.prune_history)]
        self.process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **child_options())
        atexit.register(self.stop)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode() if self.process.stderr else ""
                self.process = None
                raise ChainUnavailable(f"anvil exited at start (port {self.port}): {err.strip()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise ChainUnavailable(f"anvil did not listen on port {self.port} within {timeout}s")

    def stop(self) -> None:
        """Stop Anvil (SIGTERM, so ``--state`` is written), then make sure it is gone."""
        if self.process is not None:
            stop_process(self.process, timeout=10)
        self.process = None
        atexit.unregister(self.stop)

    def __enter__(self) -> Anvil:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def deploy_with_brownie(rpc_url: str, out: Path, env: dict[str, str] | None = None, timeout: float = 300) -> Deployment:
    """Run scripts/deploy.py through Brownie against ``rpc_url``; return the deployment.

    Through ``tools/brownie_run.py`` (like ``brownie run scripts/deploy.py --network evnet-anvil``,
    which fails in a checkout whose path has a dot in a folder name)."""
    python = ROOT / ".venv" / "bin" / "python"
    command = [
        str(python) if python.exists() else sys.executable,
        "-m",
        "tools.brownie_run",
        "scripts/deploy.py",
        "--network",
        "evnet-anvil",
    ]
    run_env = {**os.environ, "EVN_RPC_URL": rpc_url, "EVN_DEPLOYMENT": str(out), **(env or {})}
    run_env["PATH"] = f"{ROOT / 'node_modules' / '.bin'}{os.pathsep}{run_env.get('PATH', '')}"
    # Brownie re-checks the contracts it recorded for chain 31337 and fails on a fresh Anvil that
    # reuses the chain id; those records are useless (the deployment file is ours): the runner drops
    # them. Brownie still writes them while deploying: deploys from concurrent processes in this
    # checkout (two test runs, a test run and the demo) take turns, or one would load the other's.
    lock_path = ROOT / "build" / ".deploy.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        result = subprocess.run(
            command, cwd=ROOT, env=run_env, capture_output=True, text=True, timeout=timeout, **child_options()
        )
    if result.returncode != 0 or not out.exists():
        raise EVNetworkError(
            f"brownie deploy failed (exit {result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    return Deployment.load(out)


class ChainProxy:
    """A TCP forwarder to the chain's node (or to any TCP server, e.g. PostgreSQL); :meth:`pause` drops every
    connection and refuses new ones (the chain is unreachable), :meth:`resume` listens again on the same
    port; :meth:`partition` cuts the network silently (see there). With more ports, each new connection
    goes to the first one that accepts it (a load balancer that checks ports: a Core Client instance that
    is down is passed over); with ``spread``, the first one tried turns with each connection (round robin).
    :attr:`targets` may be changed at any time (the balancer sends new connections elsewhere)."""

    def __init__(self, target_port: int, *more_ports: int, port: int | None = None, spread: bool = False) -> None:
        self.target_port, self.port = target_port, port or free_port()
        self.targets = (target_port, *more_ports)
        self.spread, self._turn = spread, 0
        self.server: asyncio.Server | None = None
        self._pipes: set[asyncio.StreamWriter] = set()
        self._upstream: set[asyncio.StreamWriter] = set()
        self.silent = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def resume(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def pause(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None
        for writer in list(self._pipes):
            writer.transport.abort()
        self._pipes.clear()

    def partition(self, server_drops_after: float) -> None:
        """A network partition: from now on nothing passes either way, and no side is told (the client's
        connections stay open, new ones are accepted and never answered); after ``server_drops_after``
        seconds the server side is dropped, as a server's TCP keepalives drop a silent client."""
        self.silent = True
        asyncio.get_running_loop().call_later(server_drops_after, self._drop_upstream)

    def _drop_upstream(self) -> None:
        for writer in list(self._upstream):
            writer.transport.abort()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.silent:  # accepted, never answered
            self._pipes.add(writer)
            with contextlib.suppress(OSError):
                while await reader.read(65536):
                    pass
            return
        turn, self._turn = self._turn, self._turn + 1 if self.spread else 0
        for target in self.targets[turn % len(self.targets) :] + self.targets[: turn % len(self.targets)]:
            try:
                up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target)
                break
            except OSError:
                continue
        else:
            writer.transport.abort()
            return
        self._pipes.update({writer, up_writer})
        self._upstream.add(up_writer)
        try:
            await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer), return_exceptions=True)
        except asyncio.CancelledError:  # the caller's loop is closing: end quietly
            writer.transport.abort()
            up_writer.transport.abort()
        self._pipes.difference_update({writer, up_writer})
        self._upstream.discard(up_writer)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                if not self.silent:
                    writer.write(data)
                    await writer.drain()
        finally:
            if not self.silent:  # partitioned: the other side learns nothing
                writer.transport.abort()
