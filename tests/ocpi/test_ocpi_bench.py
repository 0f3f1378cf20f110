"""The OCPI benchmark, short (the full one is ``make bench-ocpi``): a few concurrent wallet sessions
through the stand-in CPO each start and settle on chain, and the figures come out (not asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_short_ocpi_benchmark_settles_every_session():
    command = [sys.executable, "-m", "benchmarks.ocpi", "--sessions", "3"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout)
    assert (figures["sessions"], figures["started"], figures["settled"], figures["cancelled"]) == (3, 3, 3, 0)
    assert figures["requested_to_started"]["count"] == 3 and figures["cdr_to_settled"]["count"] == 3
    assert figures["violations"] == 0
