"""`make demo` itself: the whole journey on a fresh chain, checked through its JSON summary."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_demo_settles_three_sessions_that_end_three_ways_and_its_balances_add_up(tmp_path):
    summary_file = tmp_path / "summary.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "scripts.demo",
            "--fresh",
            "--state-dir",
            str(tmp_path / "state"),
            "--summary",
            str(summary_file),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    summary = json.loads(summary_file.read_text())
    assert summary["ok"] is True

    sessions = summary["sessions"]
    assert sorted(s["scenario"] for s in sessions) == ["budget", "driver", "unplug"]
    assert all(s["state"] == "settled" for s in sessions)
    assert len({s["session_id"] for s in sessions}) == 3

    before, after = summary["balances"]["before"], summary["balances"]["after"]
    changes = {name: after[name] - before[name] for name in before}
    assert sum(changes.values()) == 0, changes  # tokens only moved between driver, payout and escrow
    assert changes["escrow"] == 0  # every deposit left the escrow again
    assert changes["driver"] < 0 < changes["operator payout"]
    for line in ("INVOICE EVN-31337-", "TOTAL", "the changes add up to zero", "three sessions settled"):
        assert line in result.stdout
