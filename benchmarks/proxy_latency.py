"""Proxy-mode latency: what the upstream forwarding adds to each charge point message.

    python -m benchmarks.proxy_latency [--sizes 100,1000] [--messages 20] [--rate 200]

For each size N, the same load twice against the same ocpp-rpc CSMS (tests/interop/ocpp_rpc_csms.js,
strict mode): (a) N charge points connected to the CSMS directly, (b) N charge points connected to a
relay running :class:`core_client.proxy.upstream.Upstream` per charge point (tools.harness.upstream_relay.Relay, in
its own process), which forwards each CALL to the CSMS and returns the answer chosen by
:mod:`core_client.proxy.policy`. Each charge point connects and sends a Heartbeat (not measured: the relay's connection to the CSMS
is up after it), then sends ``--messages`` MeterValues, one at a time,
paced so that all together send about ``--rate`` messages per second (random gaps, same seed both
runs). Measured: CALL -> CALLRESULT as the charge point saw it, p50/p99, and the differences (b - a);
the relay's CPU time per message (connects and keepalives included), which a loaded machine does
not skew the way it skews the tails, and the relay's full garbage collections (each one stops every
connection of the process: with 1,000 charge points, 2,000 websockets, they make the p99).
The CSMS, the relay and this process (the charge points) each run in their own process.

The relay stands in for the Core Client's station link: it has no chain and no ``ocpp`` routing, so
the figures are the upstream's own cost (one more websocket hop, JSON parse/serialise, the policy).
The last line of output is the JSON result.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.load.report import summary_ms
from core_client.proxy.config import UpstreamSettings
from core_client.proxy.outbox import Outbox
from tools.harness.upstream_relay import ChargePoint, Csms, Relay, meter

CONNECT_BATCH = 50


async def run_fleet(url: str, size: int, messages: int, rate: float, seed: int) -> list[float]:
    """Connect ``size`` charge points to ``url``, send the paced MeterValues; latencies in seconds."""
    cps = [ChargePoint(url, f"BENCH-{n:04d}") for n in range(size)]
    for first in range(0, size, CONNECT_BATCH):  # connected, and (through the relay) connected upstream
        batch = cps[first : first + CONNECT_BATCH]
        await asyncio.gather(*(cp.__aenter__() for cp in batch))
        await asyncio.gather(*(cp.call("Heartbeat", {}, timeout=60) for cp in batch))
    mean_gap = size / rate
    latencies: list[float] = []

    async def one(cp: ChargePoint, rng: random.Random) -> None:
        await asyncio.sleep(rng.uniform(0, mean_gap))
        for k in range(messages):
            began = time.perf_counter()
            await cp.call("MeterValues", meter(1, 1000 + k), timeout=30)
            latencies.append(time.perf_counter() - began)
            await asyncio.sleep(rng.uniform(0, 2 * mean_gap))

    try:
        await asyncio.gather(*(one(cp, random.Random(seed + n)) for n, cp in enumerate(cps)))
    finally:
        await asyncio.gather(*(cp.__aexit__() for cp in cps), return_exceptions=True)
    return latencies


def gc_pauses() -> list[float]:
    """Durations of the full (generation 2) garbage collections from now on, in seconds."""
    pauses: list[float] = []
    began = [0.0]

    def timer(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            began[0] = time.perf_counter()
        elif info["generation"] == 2:
            pauses.append(time.perf_counter() - began[0])

    gc.callbacks.append(timer)
    return pauses


async def relay_process(csms_port: int, outbox_path: str) -> None:
    """The relay alone: prints ``LISTENING <port>``, runs until stdin closes."""
    settings = UpstreamSettings(url=f"ws://127.0.0.1:{csms_port}/ocpp/{{cp_id}}", outbox=Path(outbox_path))
    outbox = Outbox(outbox_path)
    relay = await Relay(settings, outbox).start()
    pauses = gc_pauses()
    print("LISTENING", relay.url.rsplit(":", 1)[1], flush=True)
    started = time.process_time()  # start-up (imports) not counted
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await relay.close()
    outbox.close()
    print("CPU", time.process_time() - started, max(pauses, default=0.0), len(pauses), flush=True)


async def start_relay(csms_port: int, outbox: Path) -> tuple[asyncio.subprocess.Process, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "benchmarks.proxy_latency", "--relay", str(csms_port), str(outbox),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode().split()
    assert line[:1] == ["LISTENING"], line
    return proc, f"ws://127.0.0.1:{line[1]}"


async def measure(size: int, messages: int, rate: float, work: Path) -> dict[str, Any]:
    csms = await Csms(work / f"csms-{size}.jsonl").start()
    try:
        direct = await run_fleet(f"ws://127.0.0.1:{csms.port}/ocpp", size, messages, rate, seed=size)
        relay, url = await start_relay(csms.port, work / f"outbox-{size}.sqlite")
        try:
            proxied = await run_fleet(url, size, messages, rate, seed=size)
            queued = len(Outbox(work / f"outbox-{size}.sqlite").pending())  # left undelivered: must be 0
        finally:
            assert relay.stdin is not None and relay.stdout is not None
            relay.stdin.close()
            _, relay_cpu, gc_max, gc_count = (await relay.stdout.readline()).split()
            await relay.wait()
        received = len(csms.received())
    finally:
        await csms.stop()
    a, b = summary_ms(direct), summary_ms(proxied)
    return {
        "charge_points": size,
        "messages": len(direct) + len(proxied),  # measured; the CSMS also got one Heartbeat per charge point and run
        "rate_per_s": rate,
        "direct": a,
        "proxied": b,
        "added_p50_ms": round(b["p50_ms"] - a["p50_ms"], 2),
        "added_p99_ms": round(b["p99_ms"] - a["p99_ms"], 2),
        "relay_cpu_s": round(
            float(relay_cpu), 2
        ),  # the relay's CPU time in the proxied run: connects, keepalives, messages
        "relay_cpu_ms_per_message": round(float(relay_cpu) * 1000 / len(proxied), 3),
        "relay_full_gc": {"count": int(gc_count), "max_pause_ms": round(float(gc_max) * 1000, 1)},  # the tail's cause
        "csms_received": received,
        "outbox_left": queued,
        "load_avg_1m": round(os.getloadavg()[0], 2),  # a shared machine: other work skews the tails
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="100,1000", help="charge point counts, comma-separated")
    p.add_argument("--messages", type=int, default=20, help="MeterValues per charge point")
    p.add_argument("--rate", type=float, default=200.0, help="messages per second of the whole fleet")
    p.add_argument("--relay", nargs=2, metavar=("CSMS_PORT", "OUTBOX"), help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)  # 1,000 charge points: 2,000 sockets in the relay
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    if args.relay:
        asyncio.run(relay_process(int(args.relay[0]), args.relay[1]))
        return
    results = []
    with tempfile.TemporaryDirectory(prefix="evn-proxy-bench-") as work:
        for size in (int(s) for s in args.sizes.split(",")):
            result = asyncio.run(measure(size, args.messages, args.rate, Path(work)))
            print(
                f"{size} charge points: direct p50 {result['direct']['p50_ms']} ms p99 {result['direct']['p99_ms']} ms;"
                f" proxied p50 {result['proxied']['p50_ms']} ms p99 {result['proxied']['p99_ms']} ms",
                file=sys.stderr,
            )
            results.append(result)
    print(json.dumps({"benchmark": "proxy_latency", "cpus": os.cpu_count(), "results": results}))


if __name__ == "__main__":
    main()
