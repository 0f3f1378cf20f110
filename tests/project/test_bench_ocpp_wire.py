"""The OCPP wire micro-benchmark itself keeps working (a smoke run: a few rounds)."""

from __future__ import annotations

import json

from benchmarks.ocpp_wire import main


def test_the_wire_benchmark_times_each_fleet_message_and_a_refused_one(capsys):
    assert main(["--rounds", "3"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["validate_call"]
    assert {"MeterValues", "StartTransaction", "StopTransaction", "Heartbeat"} <= set(result)
    assert result["MeterValues"]["answer"] == "CALLRESULT"
    assert result["refused StatusNotification"]["answer"] == "PropertyConstraintViolation"
    assert all(figures["parse_and_validate_us"] > 0 for figures in result.values())
