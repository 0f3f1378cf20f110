"""The rules for meter readings that are not taken on trust (stations without a meter key). Pure.

Plausibility rule (every reading: MeterValues and meterStop): a reading is plausible if it is no more
than what the connector can deliver at ``max_power_w`` (the setting ``max_power_kw``, by default
:data:`MAX_POWER_W`), plus :data:`METER_SLACK_WH`, both since the
last trusted reading (the last trusted MeterValues, else meterStart) and since meterStart (so the slack
does not add up over many readings) (:func:`most_plausible`). A MeterValues reading beyond that is not
trusted: it is neither remembered nor counted against the budget, and the charge point is listed
under ``meter_problems`` in /health. A session's billed energy never comes from an untrusted reading.

Meter stop rule (stations without a meter key): a StopTransaction's meterStop is taken on trust only if it
lies between the last trusted reading and :func:`most_plausible`. Above that, the session is HELD for the
operator and nothing is settled (the driver's reclaim on chain refunds the deposit after the escrow's
maximum duration if no one acts). Below it, the session settles with the last trusted reading, and the
difference is logged.
"""

from __future__ import annotations

import math

from core_client.sessions.machine import SessionRecord

UINT40 = 2**40  # meter readings on chain are uint40
MAX_POWER_W = 350_000  # the most a connector delivers by default (the fastest DC chargers of today; max_power_kw)
METER_SLACK_WH = 1_000  # energy a stop reading may add beyond that (readings between MeterValues, clocks)


def last_trusted(s: SessionRecord) -> int:
    """The last trusted reading of ``s``: its last trusted MeterValues, else its meterStart."""
    return s.meter_last if s.meter_last is not None else (s.meter_start or 0)


def _deliverable_wh(since: float | None, now: float, max_power_w: int) -> int:
    """The most a connector delivers from ``since`` to ``now``, plus the slack."""
    return math.ceil(max_power_w * max(0.0, now - (since or now)) / 3600) + METER_SLACK_WH


def most_plausible(s: SessionRecord, now: float, max_power_w: int = MAX_POWER_W) -> int:
    """The highest reading of running session ``s`` at ``now`` that is taken on trust (the module's
    plausibility rule); below 2^40, the range of readings on chain."""
    most = min(last_trusted(s) + _deliverable_wh(s.meter_at or s.started_at, now, max_power_w), UINT40 - 1)
    if s.meter_start is None or s.started_at is None:
        return most
    return min(most, s.meter_start + _deliverable_wh(s.started_at, now, max_power_w))


def trusted_meter_stop(
    s: SessionRecord, meter_stop: int, now: float, max_power_w: int = MAX_POWER_W
) -> tuple[int | None, str | None]:
    """(the reading to settle with, or None to hold the session; what was wrong, or None).
    See the module's meter stop rule."""
    last, most = last_trusted(s), most_plausible(s, now, max_power_w)
    if meter_stop > most:
        return (
            None,
            f"meterStop {meter_stop} Wh is beyond the last reading {last} Wh plus what {max_power_w} W allow since ({most} Wh)",
        )
    if meter_stop < last:
        return last, f"meterStop {meter_stop} Wh is below the last trusted reading {last} Wh: settling with {last}"
    return meter_stop, None
