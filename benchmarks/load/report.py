"""Figures of the load benchmark: latency percentiles, throughput, the summary table."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) of already sorted values, linear between closest ranks."""
    if not sorted_values:
        return math.nan
    position = q * (len(sorted_values) - 1)
    low = math.floor(position)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


def summary_ms(seconds: Iterable[float]) -> dict[str, Any]:
    """count, p50, p90, p99, max and mean of durations given in seconds, in milliseconds."""
    values = sorted(seconds)
    if not values:
        return {"count": 0}
    return {
        "count": len(values),
        "p50_ms": round(percentile(values, 0.50) * 1000, 2),
        "p90_ms": round(percentile(values, 0.90) * 1000, 2),
        "p99_ms": round(percentile(values, 0.99) * 1000, 2),
        "max_ms": round(values[-1] * 1000, 2),
        "mean_ms": round(sum(values) / len(values) * 1000, 2),
    }


def reply_latencies(calls: list[list[Any]], sessions_from: float) -> dict[str, Any]:
    """Reply latency (CALL -> CALLRESULT as the charge point measured it) over all calls, before and
    after ``sessions_from`` (connect+boot phase / session phase), and per action; failed calls counted."""
    everything, connect, sessions = [], [], []
    by_action: dict[str, list[float]] = defaultdict(list)
    failed: dict[str, int] = defaultdict(int)
    for _cp_id, action, sent, latency in calls:
        if latency is None:
            failed[action] += 1
            continue
        everything.append(latency)
        (connect if sent < sessions_from else sessions).append(latency)
        by_action[action].append(latency)
    return {
        "all": summary_ms(everything),
        "connect_phase": summary_ms(connect),
        "session_phase": summary_ms(sessions),
        "by_action": {action: summary_ms(values) for action, values in sorted(by_action.items())},
        "failed_calls": dict(failed),
    }


def paired_delays(begins: dict[str, list[float]], ends: dict[str, list[float]]) -> list[float]:
    """Per charge point, the k-th end minus the k-th begin (pairs in order; unmatched ones dropped)."""
    delays = []
    for cp_id, starts in begins.items():
        for begin, end in zip(sorted(starts), sorted(ends.get(cp_id, [])), strict=False):
            delays.append(end - begin)
    return delays


def by_cp(rows: Iterable[Sequence[Any]]) -> dict[str, list[float]]:
    """``[cp_id, time]`` rows grouped by charge point."""
    grouped: dict[str, list[float]] = defaultdict(list)
    for cp_id, moment in rows:
        grouped[cp_id].append(moment)
    return grouped


def rate(count: int, start: float | None, end: float | None) -> float | None:
    """``count`` per second between two moments (None if undefined)."""
    if not count or start is None or end is None or end <= start:
        return None
    return round(count / (end - start), 2)


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or not b or math.isnan(a) or math.isnan(b):
        return None
    return round(a / b, 2)


def compare(daemon: dict[str, Any], bare: dict[str, Any]) -> dict[str, Any]:
    """Core Client over bare ``ocpp``: reply latency ratios (all calls and session phase), CPU, memory."""
    out: dict[str, Any] = {}
    for phase in ("all", "session_phase", "connect_phase"):
        d, b = daemon["reply_latency"][phase], bare["reply_latency"][phase]
        for q in ("p50_ms", "p99_ms"):
            out[f"reply_{q[:3]}_{phase}"] = ratio(d.get(q), b.get(q))
    out["cpu_seconds"] = ratio(daemon["central"]["cpu_seconds_load"], bare["central"]["cpu_seconds_load"])
    out["peak_rss"] = ratio(daemon["central"]["peak_rss_mb"], bare["central"]["peak_rss_mb"])
    return out


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _instance_lines(run: dict[str, Any]) -> list[str]:
    """Under a Core Client run: each instance (role, charge points, reply p50/p99, CPU, RSS) and the sizing."""
    figures, lines = run.get("instances"), []
    if not figures:
        return lines
    for one in figures["per_instance"]:
        rl = one["reply_latency"]["all"]
        lines.append(
            f"{'':>5}   {one['name']:<22} {one['role'] or '-':<8} {one['charge_points_held']:>5} CPs, reply p50 "
            f"{_fmt(rl.get('p50_ms'))} ms, p99 {_fmt(rl.get('p99_ms'))} ms, CPU {_fmt(one['cpu_seconds_load'])} s "
            f"({_fmt(one['cpu_utilisation_load'], 2)} cores), RSS {_fmt(one['peak_rss_mb'])} MB"
        )
    sizing = run.get("sizing") or {}
    pg = figures.get("postgresql_cpu_seconds_load")
    lines.append(
        f"{'':>5}   {figures['database']}: instances {_fmt(sizing.get('instances_cores_per_1000_cp'), 3)} cores and "
        f"{_fmt(sizing.get('instances_cpu_seconds_per_1000_cp'))} CPU s per 1,000 CPs"
        + (f"; PostgreSQL {_fmt(pg)} CPU s" if pg is not None else "")
    )
    return lines


def table(runs: list[dict[str, Any]], comparisons: dict[int, dict[str, Any]]) -> str:
    """The human-readable summary, one line per run plus the ratio per size."""
    head = (
        f"{'CPs':>5} {'system':<11} {'conn':>5} {'done':>9} {'reply p50':>9} {'p99':>8} {'sess p50':>8} {'p99':>8} "
        f"{'sess/s':>7} {'stop->settled p50':>17} {'p99':>8} {'RSS MB':>7} {'CPU s':>6}"
    )
    lines = [head, "-" * len(head)]
    for run in runs:
        if "error" in run and "reply_latency" not in run:
            lines.append(f"{run['charge_points']:>5} {run['system']:<11} FAILED: {' '.join(run['error'].split())[:90]}")
            continue
        rl, settle = run["reply_latency"], run.get("stop_to_settled") or {}
        done = f"{run['sessions']['completed']}/{run['sessions']['requested']}"
        lines.append(
            f"{run['charge_points']:>5} {run['system']:<11} {run['connected']:>5} {done:>9} "
            f"{_fmt(rl['all'].get('p50_ms')):>9} {_fmt(rl['all'].get('p99_ms')):>8} "
            f"{_fmt(rl['session_phase'].get('p50_ms')):>8} {_fmt(rl['session_phase'].get('p99_ms')):>8} "
            f"{_fmt(run['sessions']['completed_per_s'], 2):>7} "
            f"{_fmt(settle.get('p50_ms')):>17} {_fmt(settle.get('p99_ms')):>8} "
            f"{_fmt(run['central']['peak_rss_mb']):>7} {_fmt(run['central']['cpu_seconds_load']):>6}"
        )
        lines.extend(_instance_lines(run))
        if run.get("timed_out"):
            why = " ".join(str(run.get("error", "not every session finished")).split())[:120]
            lines.append(f"{'':>5} {'':<11} (timed out: {why})")
    for size, c in sorted(comparisons.items()):
        lines.append(
            f"{size:>5} ratio core_client/bare: reply p50 {_fmt(c['reply_p50_all'], 2)}x, p99 {_fmt(c['reply_p99_all'], 2)}x "
            f"(session phase p50 {_fmt(c['reply_p50_session_phase'], 2)}x, p99 {_fmt(c['reply_p99_session_phase'], 2)}x), "
            f"CPU {_fmt(c['cpu_seconds'], 2)}x, RSS {_fmt(c['peak_rss'], 2)}x"
        )
    lines.append("reply = CALL->CALLRESULT as the charge point saw it (ms), all calls; sess = session phase only")
    lines.append("(after every charge point connected: the connect storm's latency is largely the fleet's own);")
    lines.append(
        "sess/s = sessions completed / (last completion - first open); CPU s = central system, from fleet ready to end."
    )
    return "\n".join(lines)
