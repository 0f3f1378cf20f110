"""The simulated charge-point fleet of the load benchmark, run in its own process.

    python -m benchmarks.load.fleet SPEC.json

SPEC holds the ``[cp_id, password, url]`` of each charge point (the URL of the central system, or of the
instance, it connects to), the connector count, the
:class:`~simulator.state.Behaviour` fields and ``result_file``. The process connects every charge
point (bounded concurrency), prints ``READY {json}``, then lives until a ``FINISH`` line (or EOF) on
stdin: it closes the fleet, writes the result file and prints ``DONE``. The result file holds every
CALL the charge points sent (action, wall-clock send time, CALL->CALLRESULT latency as the charge
point saw it, or null for a CALLERROR/timeout) and the StartTransaction/StopTransaction send times.

Running the fleet in its own process keeps the simulators' CPU away from both the central system
under test and the benchmark's chain driver.
"""

from __future__ import annotations

import asyncio
import json
import logging
import resource
import sys
import time
from pathlib import Path
from typing import Any

from ocpp.v16 import call

from simulator.charge_point import Behaviour, SimChargePoint
from simulator.fleet import close_all

log = logging.getLogger("benchmarks.load.fleet")


class BenchChargePoint(SimChargePoint):
    """A simulated charge point that also notes, per CALL, the action and its wall-clock send time."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.call_log: list[tuple[str, float, float | None]] = []
        self.closing = False  # calls cut off by the benchmark's own shutdown are not failures
        self.aborted = 0
        self.starts: list[float] = []
        self.stops: list[tuple[int, float]] = []

    async def _call(self, payload: Any, **kwargs: Any) -> Any | None:
        sent = time.time()
        before = len(self.reply_latencies)
        if isinstance(payload, call.StartTransaction):
            self.starts.append(sent)
        elif isinstance(payload, call.StopTransaction):
            self.stops.append((payload.transaction_id, sent))
        response = await super()._call(payload, **kwargs)
        latency = self.reply_latencies[-1] if len(self.reply_latencies) > before else None
        if latency is None and self.closing:
            self.aborted += 1
        else:
            self.call_log.append((type(payload).__name__, sent, latency))
        return response


async def connect_fleet(
    charge_points: list[tuple[str, str, str]], connectors: int, behaviour: Behaviour, max_concurrent: int
) -> tuple[list[BenchChargePoint], list[list[Any]], list[str]]:
    """Connect and boot every ``(cp_id, password, url)``, at most ``max_concurrent`` handshakes at a time.

    Returns the connected charge points, ``[cp_id, started, finished]`` per connect, and the errors.
    """
    gate = asyncio.Semaphore(max_concurrent)
    timings: list[list[Any]] = []

    async def one(cp_id: str, password: str, url: str) -> BenchChargePoint:
        async with gate:
            started = time.time()
            cp = await BenchChargePoint.connect(url, cp_id, password, connectors, behaviour, open_timeout=30)
            timings.append([cp_id, started, time.time()])
            return cp

    results = await asyncio.gather(*(one(*cp) for cp in charge_points), return_exceptions=True)
    connected = [r for r in results if isinstance(r, BenchChargePoint)]
    errors = [f"{cp[0]}: {r!r}" for cp, r in zip(charge_points, results, strict=True) if isinstance(r, BaseException)]
    return connected, timings, errors


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def main(spec_file: str) -> None:
    spec = json.loads(Path(spec_file).read_text())
    behaviour = Behaviour(**spec["behaviour"])
    charge_points = [(cp_id, password, url) for cp_id, password, url in spec["charge_points"]]
    t0, cpu_at_start = time.time(), _cpu_seconds()
    fleet, timings, errors = await connect_fleet(
        charge_points, spec.get("connectors", 2), behaviour, spec.get("max_concurrent_connects", 50)
    )
    print(
        "READY "
        + json.dumps(
            {"connected": len(fleet), "errors": errors[:20], "failed": len(errors), "seconds": time.time() - t0}
        ),
        flush=True,
    )
    cpu_at_ready = _cpu_seconds()
    connect_cpu, connect_wall = cpu_at_ready - cpu_at_start, time.time() - t0
    await asyncio.to_thread(_wait_for_finish)
    dropped = [cp.id for cp in fleet if cp.closed.is_set()]
    cpu_run = _cpu_seconds() - cpu_at_ready
    for cp in fleet:
        cp.closing = True
    await close_all(fleet)
    result = {
        "connects": timings,
        "connect_errors": errors,
        "dropped": dropped,
        "calls": [[cp.id, action, sent, latency] for cp in fleet for action, sent, latency in cp.call_log],
        "starts": [[cp.id, sent] for cp in fleet for sent in cp.starts],
        "stops": [[cp.id, tx_id, sent] for cp in fleet for tx_id, sent in cp.stops],
        "cpu_seconds_after_ready": cpu_run,
        "connect_phase_cpu_utilisation": round(connect_cpu / max(connect_wall, 1e-9), 2),
        "calls_cut_by_shutdown": sum(cp.aborted for cp in fleet),
        "max_rss_kb": _vmhwm_kb(),
    }
    Path(spec["result_file"]).write_text(json.dumps(result))
    print("DONE", flush=True)


def _vmhwm_kb() -> int:
    """Peak RSS of this process (not ru_maxrss: Linux carries the parent's peak over fork+exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def _wait_for_finish() -> None:
    for line in sys.stdin:
        if line.strip() == "FINISH":
            return


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("ocpp").setLevel(logging.ERROR)
    asyncio.run(main(sys.argv[1]))
