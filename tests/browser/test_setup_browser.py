"""tools/setup_browser.sh (step 6 of tools/setup.sh, so of `make test`): nothing to do when Chromium is
there; without it and without root, it says what to do in two lines and exits 1 (setup goes on)."""

from __future__ import annotations

import os
import shutil
import subprocess

from tools.devchain import ROOT
from tools.harness.browser import CHROMIUM

SCRIPT = str(ROOT / "tools" / "setup_browser.sh")


def test_nothing_to_do_when_chromium_is_there():
    done = subprocess.run(
        [SCRIPT], capture_output=True, text=True, timeout=30, env={**os.environ, "EVN_CHROMIUM": CHROMIUM}
    )
    assert done.returncode == 0 and done.stdout == ""


def test_without_chromium_and_without_root_it_says_what_to_do():
    as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] if os.geteuid() == 0 else []
    assert not as_nobody or shutil.which("setpriv"), "setpriv (util-linux) runs the script as a user without root"
    env = {"PATH": os.environ["PATH"], "EVN_CHROMIUM": "/nonexistent/chromium"}
    done = subprocess.run([*as_nobody, SCRIPT], capture_output=True, text=True, timeout=30, env=env)
    assert done.returncode == 1
    lines = done.stdout.strip().splitlines()
    assert "no Chromium at /nonexistent/chromium" in lines[0]
    assert "apt-get install -y chromium" in lines[1] and len(lines) == 2
