"""Many simulated charge points at once: connect them concurrently (bounded), close them together."""

from __future__ import annotations

import asyncio
import logging
import ssl as ssl_module
from collections.abc import Iterable

from simulator.charge_point import Behaviour, Reconnect, SimChargePoint

log = logging.getLogger("simulator")


def fleet_ids(count: int, prefix: str = "CP-", start: int = 1) -> list[str]:
    """Charge point ids PREFIX0001, PREFIX0002, ... (at least four digits)."""
    return [f"{prefix}{n:04d}" for n in range(start, start + count)]


async def run_fleet(
    url_base: str,
    cp_ids_with_passwords: Iterable[tuple[str, str]],
    connectors: int = 2,
    behaviour: Behaviour | None = None,
    ssl: ssl_module.SSLContext | None = None,
    max_concurrent_connects: int = 50,
    fail_fast: bool = False,
    reconnect: Reconnect | None = None,
) -> list[SimChargePoint]:
    """Connect (and boot) every ``(cp_id, password)`` with at most ``max_concurrent_connects`` handshakes
    in flight. Each charge point gets its own copy of ``behaviour``; with ``reconnect`` each one
    reconnects after a lost connection (see :class:`simulator.link.Reconnect`).

    Returns the charge points that connected, in the given order. A charge point that fails to connect is
    logged and left out, unless ``fail_fast``: then the others are closed and the first error is raised.
    """
    gate = asyncio.Semaphore(max_concurrent_connects)
    pairs = list(cp_ids_with_passwords)

    async def connect_one(cp_id: str, password: str) -> SimChargePoint:
        async with gate:
            return await SimChargePoint.connect(
                url_base, cp_id, password, connectors, behaviour, ssl, reconnect=reconnect
            )

    results = await asyncio.gather(*(connect_one(i, p) for i, p in pairs), return_exceptions=True)
    connected = [r for r in results if isinstance(r, SimChargePoint)]
    failures = [(cp_id, r) for (cp_id, _), r in zip(pairs, results, strict=True) if isinstance(r, BaseException)]
    for cp_id, error in failures:
        log.warning("%s: could not connect: %r", cp_id, error)
    if failures and fail_fast:
        await close_all(connected)
        raise failures[0][1]
    return connected


async def close_all(charge_points: Iterable[SimChargePoint], stop_reason: str | None = None) -> None:
    """Close every charge point (with ``stop_reason``: stop running transactions first)."""
    results = await asyncio.gather(*(cp.close(stop_reason) for cp in charge_points), return_exceptions=True)
    for error in (r for r in results if isinstance(r, BaseException)):
        log.warning("close failed: %r", error)
