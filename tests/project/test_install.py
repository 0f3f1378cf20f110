"""The checkout works from any path (issue 9, #13) and the demo stops what it started on every exit
path (#14): a copy of this checkout under ``jane.doe/ev network`` deploys with ``make deploy``, and
a demo that fails, or is killed, leaves no Anvil behind."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ev_network.deployment import Deployment
from tools.devchain import Anvil

ROOT = Path(__file__).resolve().parents[2]
UNFUNDED_KEY = "0x" + "11" * 32  # a valid key with no ether on a fresh Anvil: the deploy fails


def copy_checkout(target: Path) -> Path:
    """The tracked files of this checkout (modification times kept, so setup finds nothing to redo), its
    compiled contracts, and links to its .venv and node_modules (installing those takes minutes; setup never
    installs into the linked .venv: see the test below)."""
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True, check=True)
    for name in filter(None, tracked.stdout.split("\0")):
        if (ROOT / name).is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, target / name)
    shutil.copytree(ROOT / "build", target / "build", ignore=shutil.ignore_patterns("deployments", ".deploy.lock"))
    for linked in (".venv", "node_modules"):
        (target / linked).symlink_to(ROOT / linked)
    return target


def test_setup_never_installs_into_a_linked_venv(tmp_path):
    """A copy of a checkout whose .venv links to the checkout's environment, with pyproject.toml newer than
    that environment's install marker (a checkout that merged a new dependency): setup leaves the linked
    environment alone (an editable install from the copy would point it at the copy, deleted with tmp_path)."""
    theirs = tmp_path / "their-venv"  # an environment whose pip is missing: any install attempt fails
    (theirs / "bin").mkdir(parents=True)
    (theirs / "bin" / "python").symlink_to(sys.executable)
    (theirs / ".installed").touch()
    os.utime(theirs / ".installed", (0, 0))  # installed long before pyproject.toml last changed
    copy = tmp_path / "copy"
    (copy / "tools").mkdir(parents=True)
    shutil.copy2(ROOT / "tools" / "setup_venv.sh", copy / "tools")
    shutil.copy2(ROOT / "pyproject.toml", copy)
    (copy / ".venv").symlink_to(theirs)
    result = subprocess.run(["tools/setup_venv.sh"], cwd=copy, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "not installing into another checkout's environment" in result.stdout
    assert sorted(p.name for p in theirs.iterdir()) == [".installed", "bin"]  # no install, no log
    assert (theirs / ".installed").stat().st_mtime == 0


def processes_mentioning(text: str) -> list[int]:
    """Pids of live processes whose command line contains ``text``."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and text in (proc / "cmdline").read_bytes().decode(errors="replace"):
                found.append(int(proc.name))
        except OSError:
            continue
    return [pid for pid in found if pid != os.getpid()]


def gone(text: str, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while processes_mentioning(text):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_make_deploy_works_from_a_path_with_a_dot_and_a_space(tmp_path):
    checkout = copy_checkout(tmp_path / "jane.doe" / "ev network")
    solcx = tmp_path / "solc x's"  # setup.sh writes the solc stand-in here, naming the checkout's path
    out = tmp_path / "deployment.json"
    with Anvil() as node:
        env = {**os.environ, "EVN_RPC_URL": node.url, "EVN_DEPLOYMENT": str(out), "SOLCX_BINARY_PATH": str(solcx)}
        result = subprocess.run(["make", "deploy"], cwd=checkout, env=env, capture_output=True, text=True, timeout=240)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        assert "EV Network deployed" in result.stdout
        deployment = Deployment.load(out)
        assert deployment.rpc_url == node.url and deployment.chain_id == 31337
    [stand_in] = solcx.glob("solc-v*")
    # called from elsewhere it falls back to the checkout's tools/solc.js: the quoted path must hold
    version = subprocess.run([str(stand_in), "--version"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert version.returncode == 0 and "Version: 0.8." in version.stdout, version.stderr


def demo(state_dir: Path, **env: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "scripts.demo", "--fresh", "--state-dir", str(state_dir)]
    return subprocess.Popen(
        command, cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_demo_that_fails_after_starting_anvil_stops_it(tmp_path):
    state_dir = tmp_path / "demo-state"
    process = demo(state_dir, EVN_DEPLOYER_KEY=UNFUNDED_KEY)
    output, _ = process.communicate(timeout=240)
    assert process.returncode == 1, output[-3000:]
    assert "Anvil listening" in output and "step 'Chain' failed" in output
    assert gone(str(state_dir), timeout=5), f"left running: {processes_mentioning(str(state_dir))}"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc and uses PR_SET_PDEATHSIG")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_a_demo_killed_while_deploying_leaves_no_anvil(tmp_path, sig):
    state_dir = tmp_path / "demo-state"
    process = demo(state_dir)
    try:
        for line in process.stdout:
            if "Anvil listening" in line:
                break
        assert processes_mentioning(str(state_dir)), "Anvil should be running now"
        process.send_signal(sig)
        process.communicate(timeout=90)  # keep reading its output: a full pipe would block its clean-up
    finally:
        if process.poll() is None:
            process.kill()
    assert gone(str(state_dir)), f"left running: {processes_mentioning(str(state_dir))}"


def test_slither_triage_passes_triaged_findings_and_fails_on_new_or_stale_ones(tmp_path, capsys):
    """``make lint`` runs slither, then tools/slither_triage.py against tools/slither-triage.toml."""
    from tools.slither_triage import main as triage

    def finding(check: str, name: str, parent: str) -> dict:
        element = {"type": "function", "name": name, "type_specific_fields": {"parent": {"name": parent}}}
        return {"check": check, "impact": "Low", "description": f"{check} in {name}\n", "elements": [element]}

    rules = tmp_path / "triage.toml"
    rules.write_text('[[accepted]]\ncheck = "timestamp"\nelement = "SessionEscrow.cancel"\nreason = "minutes"\n')
    report = tmp_path / "slither.json"

    def run(*findings: dict) -> int:
        report.write_text(json.dumps({"success": True, "results": {"detectors": list(findings)}}))
        return triage([str(report), str(rules)])

    assert run(finding("timestamp", "cancel", "SessionEscrow")) == 0
    assert (
        run(finding("timestamp", "cancel", "SessionEscrow"), finding("reentrancy-eth", "settle", "SessionEscrow")) == 1
    )
    assert "reentrancy-eth in SessionEscrow.settle (not triaged)" in capsys.readouterr().out
    assert run() == 1  # the triaged finding is gone: the entry must go too
    assert "no longer reported" in capsys.readouterr().out
