"""The store-and-loop benchmark itself keeps working (a smoke run: a few charge points, a second of traffic)."""

from __future__ import annotations

import json

from benchmarks.store_loop import main


def test_the_store_loop_benchmark_measures_answers_and_the_loop_lag(capsys):
    assert main(["--engines", "sqlite", "--sizes", "3", "--seconds", "1", "--rate", "30"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    [run] = result["runs"]
    assert run["engine"] == "sqlite" and run["charge_points"] == 3
    assert run["reply_by_action"]["StartTransaction"]["count"] >= 3  # each charge point ran a transaction
    assert run["reply_by_action"]["Heartbeat"]["count"] >= 3
    assert run["loop_lag"]["count"] > 0
    assert run["central_cpu_s"] > 0 and run["central_cpu_ms_per_message"] > 0
