"""The simulator tests' charge point behaviour and their wait on a condition."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from simulator.charge_point import Behaviour

FAST = Behaviour(power_w=36_000, meter_interval_s=10, time_accel=200)  # 100 Wh every 0.05 s


async def eventually(ready: Callable[[], bool], timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)
