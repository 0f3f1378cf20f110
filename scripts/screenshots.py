"""Screenshots of the driver's web app and the CPO dashboard, phone (390x844) and desktop, into docs/img/.

They are taken from the real apps, on the browser test's real stack (Anvil, Core Client, a simulated
charge point): the journey test saves them at each step when EVN_SCREENSHOTS is set. Run from the
project root: ``.venv/bin/python -m scripts.screenshots [DIR]`` (needs Chromium: tools/setup_browser.sh)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    target = Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "docs" / "img").resolve()
    env = {**os.environ, "EVN_SCREENSHOTS": str(target)}
    test = "tests/browser/test_journey.py"
    result = subprocess.run([sys.executable, "-m", "pytest", test, "-q", "-x"], cwd=ROOT, env=env, check=False)
    if result.returncode == 0:
        print(f"screenshots in {target}: " + ", ".join(sorted(p.name for p in target.glob("*.png"))))
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
