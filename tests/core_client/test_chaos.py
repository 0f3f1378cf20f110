"""The chaos campaign, short and seeded (the full one is ``make bench-chaos``): paid sessions while
the real Core Client is SIGKILLed twice and its chain link is cut; every session ends exactly once
and the tokens add up."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_short_chaos_run_settles_each_session_once_with_kills_and_an_outage(tmp_path):
    command = [sys.executable, "-m", "benchmarks.chaos", "--sessions", "6", "--charge-points", "3"]
    command += ["--kills", "2", "--outage", "2", "--seed", "7", "--timeout", "120", "--workdir", str(tmp_path)]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=240)
    figures = json.loads(result.stdout)
    log = (tmp_path / "core-client.log").read_text()[-3000:]
    assert result.returncode == 0 and figures["ok"], (figures, result.stderr[-2000:], log)
    assert figures["sessions"] == 6 and figures["stuck"] == 0
    assert figures["settled_twice"] == 0 and figures["ended_more_than_once"] == 0
    assert figures["settled_exactly_once"] + figures["cancelled_refunded"] == 6
    assert figures["tokens"]["conserved"] and figures["tokens"]["each_deposit_split_exactly"]
    assert figures["tokens"]["after"]["payout"] > 0  # sessions were really paid for
    assert len(figures["kills"]) == 2 and figures["daemon_starts"] == 3
    assert figures["outage"]["seconds"] == 2 and "drained_s" in figures["outage"]
    assert figures["charge_point_reconnects"] >= 3  # each charge point came back by itself
