"""tools/setup_browser.sh (step 6 of tools/setup.sh, so of `make test`): nothing to do when Chromium is
there; without it and without root, it says what to do in two lines and exits 1 (setup goes on)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tools.devchain import ROOT
from tools.harness.browser import CHROMIUM

SCRIPT = ROOT / "tools" / "setup_browser.sh"


@pytest.fixture
def world_readable_script() -> Iterator[Path]:
    """A copy of the script that any user may run: the checkout may be readable by its owner only (root
    in a 0700 folder, as `mktemp -d` makes one), and so may pytest's temporary folders and $TMPDIR."""
    folder = Path(tempfile.mkdtemp(prefix="evn-setup-browser-", dir="/tmp"))
    try:
        folder.chmod(0o755)
        script = Path(shutil.copy(SCRIPT, folder))
        script.chmod(0o755)
        yield script
    finally:
        shutil.rmtree(folder)


def test_nothing_to_do_when_chromium_is_there():
    done = subprocess.run(
        [SCRIPT], capture_output=True, text=True, timeout=30, env={**os.environ, "EVN_CHROMIUM": CHROMIUM}
    )
    assert done.returncode == 0 and done.stdout == ""


def test_without_chromium_and_without_root_it_says_what_to_do(world_readable_script: Path):
    as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] if os.geteuid() == 0 else []
    assert not as_nobody or shutil.which("setpriv"), "setpriv (util-linux) runs the script as a user without root"
    env = {"PATH": os.environ["PATH"], "EVN_CHROMIUM": "/nonexistent/chromium"}
    done = subprocess.run(
        [*as_nobody, world_readable_script],
        cwd=world_readable_script.parent,
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )
    assert done.returncode == 1, done.stderr
    lines = done.stdout.strip().splitlines()
    assert "no Chromium at /nonexistent/chromium" in lines[0]
    assert "apt-get install -y chromium" in lines[1] and len(lines) == 2
