"""The descriptor-exhaustion shape of ``make fuzz`` (issue 17 #5 and #7): the daemon's file descriptor
limit is lowered to what it has open plus ``headroom`` (``prlimit`` on its process), and a flood of
plain TCP connections that never send a byte keeps every one of them taken for ``seconds`` (a
connection the daemon closes is opened again). Meanwhile a charge point that was connected before
keeps sending Heartbeats, which must all be answered. Then the flood ends, the limit is put back, and a
new charge point must connect and boot again.

Figures: the limit, connections opened, the daemon's most descriptors, the connected charge point's
Heartbeat latency during the exhaustion, the log lines written meanwhile (the failed accepts are one
line per 10 s with a count, never a traceback each), and how long until a new charge point was served.
"""

from __future__ import annotations

import asyncio
import os
import resource
import statistics
import time
from pathlib import Path
from typing import Any

from ocpp.v16 import call

from simulator.charge_point import SimChargePoint

CONNECT_TIMEOUT_S = 2


def open_descriptors(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


class Flood:
    """``count`` idle TCP connections to ``host:port``, each opened again when the other side closes it."""

    def __init__(self, host: str, port: int, count: int) -> None:
        self.host, self.port, self.count = host, port, count
        self.opened = self.failed = 0  # a connection is made once the kernel queues it, accepted or not
        self.stopping = asyncio.Event()

    async def run(self) -> None:
        await asyncio.gather(*(self._hold() for _ in range(self.count)))

    async def _hold(self) -> None:
        while not self.stopping.is_set():
            try:
                connect = asyncio.open_connection(self.host, self.port)
                reader, writer = await asyncio.wait_for(connect, CONNECT_TIMEOUT_S)
            except (OSError, asyncio.TimeoutError):
                self.failed += 1  # the listen queue is full
                await asyncio.sleep(0.2)
                continue
            self.opened += 1
            closed = asyncio.ensure_future(reader.read())  # EOF: the daemon closed it
            stop = asyncio.ensure_future(self.stopping.wait())
            await asyncio.wait({closed, stop}, return_when=asyncio.FIRST_COMPLETED)
            closed.cancel()
            stop.cancel()
            writer.close()


def _log_lines(log_file: Path, since: int) -> list[str]:
    with log_file.open("rb") as f:
        f.seek(since)
        return f.read().decode(errors="replace").splitlines()


async def exhaust_descriptors(
    daemon: Any, good_cp: tuple[str, str], new_cp: tuple[str, str], seconds: float, headroom: int = 32
) -> dict:
    """The shape on a running ``daemon`` (:class:`benchmarks.chaos_parts.Daemon`); ``good_cp`` is
    connected before, ``new_cp`` (id, password) connects after."""
    pid = daemon.process.pid
    good = await SimChargePoint.connect(daemon.ocpp_url, *good_cp, 1)
    soft, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
    limit = open_descriptors(pid) + headroom
    ours = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(ours[0], min(ours[1], 4 * limit)), ours[1]))
    log_from = daemon.log_file.stat().st_size
    flood = Flood("127.0.0.1", daemon.settings.listen_port, limit + headroom)
    latencies, missed, most = [], 0, 0
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (limit, hard))
    flooding = asyncio.create_task(flood.run())
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            most = max(most, open_descriptors(pid))
            sent = time.perf_counter()
            try:
                await asyncio.wait_for(good.call(call.Heartbeat(), suppress=False), 10)
                latencies.append(time.perf_counter() - sent)
            except Exception:  # timeout, CALLERROR, lost connection: not served
                missed += 1
            await asyncio.sleep(0.1)
    finally:
        flood.stopping.set()
        await flooding
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (soft, hard))
        await good.close()
    released = time.monotonic()
    lines = _log_lines(daemon.log_file, log_from)
    recovered_s = await _boot_again(daemon, new_cp, released)
    ms = sorted(1000 * t for t in latencies) or [0.0]
    result = {
        "seconds": seconds,
        "limit": limit,
        "daemon_most_descriptors": most,
        "connections": {"made": flood.opened, "refused_or_timed_out": flood.failed},
        "connected_charge_point": {
            "heartbeats": len(latencies),
            "missed": missed,
            "p50_ms": round(statistics.median(ms), 1),
            "p99_ms": round(ms[min(len(ms) - 1, int(len(ms) * 0.99))], 1),
            "max_ms": round(ms[-1], 1),
        },
        "log_lines": len(lines),
        "accept_failure_lines": sum("cannot accept connections" in line for line in lines),
        "tracebacks": sum(line.startswith("Traceback") for line in lines),
        "new_charge_point_served_after_s": recovered_s,
        "daemon_alive": daemon.process.poll() is None,
    }
    result["ok"] = (
        result["daemon_alive"]
        and most >= limit - 1  # the shape did exhaust the daemon
        and missed == 0
        and result["tracebacks"] == 0
        and result["log_lines"] <= 10 + 2 * seconds / 10  # throttled, whatever the flood
        and recovered_s is not None
    )
    return result


async def _boot_again(daemon: Any, cp: tuple[str, str], since: float, timeout: float = 30) -> float | None:
    """Seconds from ``since`` until a new charge point connected and got its BootNotification answered."""
    while time.monotonic() - since < timeout:
        try:
            fresh = await asyncio.wait_for(SimChargePoint.connect(daemon.ocpp_url, *cp, 1), 5)
        except Exception:
            await asyncio.sleep(0.2)
            continue
        await fresh.close()
        return round(time.monotonic() - since, 2)
    return None
