"""The load benchmark's "targets" block: a target is met only when every session of the run completed
(issue 21: a 2,000-charge-point run that settled 174 of 2,000 sessions reported its p99 ratio as met)."""

from __future__ import annotations

from typing import Any

from benchmarks.load.__main__ import targets


def run(system: str, charge_points: int, p99_ms: float, requested: int, completed: int) -> dict[str, Any]:
    latency = {"p50_ms": p99_ms / 10, "p99_ms": p99_ms}
    return {
        "system": system,
        "charge_points": charge_points,
        "connected": charge_points,
        "reply_latency": {"all": latency, "session_phase": latency},
        "sessions": {"requested": requested, "completed": completed},
        "timed_out": completed < requested,
    }


def met(block: dict[str, Any]) -> dict[str, bool]:
    return {name: part["met"] for name, part in block.items() if isinstance(part, dict) and "met" in part}


def test_a_run_that_left_sessions_behind_meets_no_target() -> None:
    runs = [run("bare", 2000, 95.0, 2000, 2000), run("core_client", 2000, 90.0, 2000, 174)]
    ratios = {2000: {"reply_p99_all": 0.95, "reply_p99_session_phase": 0.95}}
    block = targets(runs, ratios)
    assert block["every_session_completed"] == {"requested": 2000, "completed": 174, "met": False}
    assert not any(met(block).values()), block


def test_a_run_that_completed_every_session_meets_what_its_figures_meet() -> None:
    runs = [run("bare", 1000, 60.0, 1000, 1000), run("core_client", 1000, 90.0, 1000, 1000)]
    ratios = {1000: {"reply_p99_all": 1.5, "reply_p99_session_phase": 2.0}}
    assert met(targets(runs, ratios)) == {
        "every_session_completed": True,
        "charge_points_on_one_process": True,
        "reply_p99_ms_all": True,
        "p99_over_bare_all": True,
        "reply_p99_ms_session_phase": True,
        "p99_over_bare_session_phase": False,
    }


def test_a_ratio_is_not_met_when_the_bare_run_left_sessions_behind() -> None:
    runs = [run("bare", 1000, 60.0, 1000, 900), run("core_client", 1000, 80.0, 1000, 1000)]
    ratios = {1000: {"reply_p99_all": 1.3, "reply_p99_session_phase": 1.3}}
    block = met(targets(runs, ratios))
    assert block["reply_p99_ms_all"] and not block["p99_over_bare_all"] and not block["p99_over_bare_session_phase"]
