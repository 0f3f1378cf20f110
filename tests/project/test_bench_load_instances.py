"""The load benchmark keeps working with several Core Client instances (issue 21): a tiny run of two
instances of one operator on the PostgreSQL the benchmark starts, 20 charge points dealt out to both
from two fleet processes; every session settles once, each instance reports its share."""

from __future__ import annotations

import json

from benchmarks.load.__main__ import main


def test_two_instances_on_postgresql_settle_every_session_once(capsys) -> None:
    argv = ["--sizes", "20", "--systems", "core_client", "--instances", "2", "--fleet-processes", "2", "--json-only"]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    [run] = result["runs"]
    sessions = run["sessions"]
    assert not run["timed_out"], run.get("error")
    assert sessions["requested"] == sessions["settled"] == sessions["settled_distinct"] == 20, sessions
    assert sessions["cancelled"] == 0 and sessions["open_errors"] == 0
    assert run["stop_to_settled"]["count"] == 20 and run["stop_to_settled"]["unmatched"] == 0
    instances = run["instances"]
    assert instances["database"] == "postgresql" and instances["count"] == 2
    assert sorted(one["role"] for one in instances["per_instance"]) == ["leader", "standby"]
    for one in instances["per_instance"]:
        assert one["charge_points_held"] == 10 and isinstance(one["conflicts"], int), one
        assert one["reply_latency"]["session_phase"]["count"] > 0 and one["cpu_seconds_load"] > 0
    assert instances["postgresql_cpu_seconds_load"] > 0
    assert run["fleet_process"]["processes"] == 2 and len(run["fleet_process"]["cpu_utilisation_per_process"]) == 2
    assert run["sizing"]["instances_cpu_seconds_per_1000_cp"] > 0
    assert run["load_average_1min"]["peak"] >= 0
