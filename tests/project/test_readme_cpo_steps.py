"""Issue 9, part 2, a CPO's first day: the README's "For a CPO" commands, run in order exactly as
written, on a real Anvil with the contracts the Brownie script deployed (what `make deploy` makes).
A brand-new key must end up registered, funded, serving its charge point. Nothing is mocked."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from simulator.charge_point import SimChargePoint
from tools.devchain import ROOT, free_port

pytestmark = pytest.mark.issue(9)


def readme_cpo_steps() -> list[str]:
    """The command lines of the README's "For a CPO" code block."""
    section = (ROOT / "README.md").read_text().split("## For a CPO", 1)[1].split("\n## ", 1)[0]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip()]


class Shell:
    """Runs README lines as bash would for what they use: `a && b`, `cd`, `export`, a trailing `&`."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.cwd, self.env = cwd, env
        self.background: list[subprocess.Popen] = []

    def run(self, line: str) -> list[subprocess.CompletedProcess]:
        words = shlex.split(line, comments=True)
        background = words[-1:] == ["&"]
        done = []
        for command in _split(words[:-1] if background else words, "&&"):
            if command[0] == "cd":
                self.cwd = (self.cwd / command[1]).resolve()
            elif command[0] == "export":
                name, _, value = command[1].partition("=")
                self.env[name] = value
            elif background:
                self.background.append(subprocess.Popen(command, cwd=self.cwd, env=self.env, stderr=subprocess.PIPE))
            else:
                result = subprocess.run(
                    command, cwd=self.cwd, env=self.env, capture_output=True, text=True, timeout=120
                )
                done.append(result)
                if result.returncode != 0:
                    break
        return done

    def stop(self) -> None:
        for process in self.background:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _split(words: list[str], separator: str) -> list[list[str]]:
    commands: list[list[str]] = [[]]
    for word in words:
        commands.append([]) if word == separator else commands[-1].append(word)
    return [c for c in commands if c]


def _ok(results: list[subprocess.CompletedProcess], line: str) -> str:
    assert all(r.returncode == 0 for r in results), (line, [(r.stdout, r.stderr) for r in results])
    return results[-1].stdout if results else ""  # cd and export run in the shell itself


async def test_the_readme_cpo_steps_work_as_written_on_a_fresh_deploy(clean_chain, tmp_path):
    net = clean_chain
    checkout = tmp_path / "checkout"  # where the README is followed: examples/ and deployments/ as in the repo
    shutil.copytree(ROOT / "examples", checkout / "examples")
    (checkout / "deployments").mkdir()
    shutil.copy(net.deployment_file, checkout / "deployments" / "local.json")
    listen, control = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EVN_CC_", "EVN_OPERATOR"))}
    env |= {
        "PATH": f"{ROOT / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        "EVN_CC_RPC_URL": net.rpc_url,  # the test's Anvil instead of the example's :8545
        "EVN_CC_LISTEN_PORT": str(listen),
        "EVN_CC_CONTROL_PORT": str(control),
    }
    shell = Shell(checkout, env)
    steps = readme_cpo_steps()
    assert [s.split()[:2] for s in steps if s.startswith("core-client")] == [
        ["core-client", "keys"],
        ["core-client", "operator"],
        ["core-client", "check"],
        ["core-client", "stations"],
        ["core-client", "run"],
        ["core-client", "health"],
    ]
    try:
        for line in steps:
            if line.startswith("core-client operator"):  # before it: a new key is not ready, and says why
                [check] = shell.run("core-client check -c core-client.toml")
                assert check.returncode == 1
                assert check.stderr.strip() == "error: not ready: not registered as operator, no gas", check.stderr
            if line.startswith("core-client health"):  # the daemon started by the line before needs a moment
                health = _retry(shell, line, 60)
                continue
            results = shell.run(line)
            if not line.rstrip().endswith("&"):
                output = _ok(results, line)
            if line.startswith("core-client keys create"):
                address = output.strip()
            if line.startswith("core-client check"):
                assert output.strip().endswith("ready") and "not" not in output.splitlines()[-1]
        assert health["operator"] == address and health["chain_reachable"]
        station = net.escrow().station_by_charge_point("CP-0001")
        assert station is not None and station.operator == address
        sim = await SimChargePoint.connect(f"ws://127.0.0.1:{listen}", "CP-0001", "change-me-0001", 2)
        assert sim.boot_status == "Accepted"  # registered for this operator: the daemon serves it
        await sim.close()
    finally:
        shell.stop()


def _retry(shell: Shell, line: str, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        [result] = shell.run(line)
        if result.returncode == 0:
            return json.loads(result.stdout)
        daemon = shell.background[-1]
        assert daemon.poll() is None, daemon.stderr.read().decode() if daemon.stderr else "daemon exited"
        assert time.monotonic() < deadline, result.stderr
        time.sleep(0.5)
