"""The store and the event loop: how long the Core Client's event loop is held up, and how long charge
points wait for their answers, with the store on SQLite or on PostgreSQL.

    python -m benchmarks.store_loop [--engines sqlite,postgresql] [--sizes 200] [--seconds 20] [--rate 100]

For each engine and size N: a central system in its own process (the real store, session service, OCPP
server and reconcile loop, no chain: N stations known to the store) and, in this process, N charge
points that connect, boot, then run transactions for ``--seconds``: StatusNotification Charging,
StartTransaction (an idTag that is no session: the transaction id is handed out and stored all the
same, durable before the answer), three MeterValues, StopTransaction, StatusNotification Available,
Heartbeat, one message at a time, paced so that all together send about ``--rate`` messages a second.
Measured: each answer as the charge point saw it (p50/p99 per action and all together), and the
central system's event loop lag (a task that sleeps 10 ms and notes how much later it woke), p50/p99/max,
and its CPU per message (its process's CPU time during the traffic: less sensitive to a busy machine).
PostgreSQL: a throwaway server (:mod:`tools.pgserver`). The last line of output is the JSON result.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.load.report import summary_ms

PASSWORD = "cp-secret"
TICK_S = 0.01
CONNECT_BATCH = 50


def cp_id(n: int) -> str:
    return f"BENCH-{n:04d}"


# ------------------------------------------------------------------ the central system (child process)


async def serve(database: str, size: int) -> None:
    """Serve OCPP on the store at ``database`` until stdin closes; then print the loop lag as JSON."""
    from core_client.config import Settings
    from core_client.ocpp.adapter import load_schemas
    from core_client.ocpp.server import OcppServer
    from core_client.process import GIL_SWITCH_INTERVAL_S
    from core_client.sessions.service import SessionService
    from core_client.storage.store import Store

    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)  # as the daemon runs
    load_schemas()  # as the daemon starts: schemas in memory and compiled, our calls validated on the loop
    store = Store(database)
    for n in range(size):
        store.add_station(n + 1, cp_id(n), 2)
    settings = Settings(database=database, charge_points={cp_id(n): PASSWORD for n in range(size)}, listen_port=0)
    service = SessionService(settings, store)
    server = OcppServer(settings, service)
    await server.start()
    loop = asyncio.get_running_loop()
    reconcile = loop.create_task(service.run())
    lags: list[float] = []

    async def probe() -> None:
        while True:
            began = time.perf_counter()
            await asyncio.sleep(TICK_S)
            lags.append(max(0.0, time.perf_counter() - began - TICK_S))

    probing = loop.create_task(probe())
    print(json.dumps({"port": server.address[1]}), flush=True)
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    cpu_started = time.process_time()
    while await reader.readline():  # the fleet writes "measure" when its traffic starts
        lags.clear()
        cpu_started = time.process_time()
    probing.cancel()
    cpu_s = time.process_time() - cpu_started  # all its threads: the loop and the store's
    print(json.dumps({"loop_lag": summary_ms(lags), "cpu_s": round(cpu_s, 2)}), flush=True)
    await server.close()
    await service.close()
    reconcile.cancel()
    store.close()


# ------------------------------------------------------------------ the charge points (this process)


async def fleet(url: str, size: int, seconds: float, rate: float, seed: int, started: Any) -> dict[str, list[float]]:
    """Connect ``size`` charge points to ``url`` and run transactions for ``seconds``; latencies per action."""
    from tools.harness.upstream_relay import ChargePoint

    cps = [ChargePoint(url, cp_id(n), PASSWORD) for n in range(size)]
    for first in range(0, size, CONNECT_BATCH):
        batch = cps[first : first + CONNECT_BATCH]
        await asyncio.gather(*(cp.__aenter__() for cp in batch))
        boot = {"chargePointVendor": "Bench", "chargePointModel": "Loop"}
        await asyncio.gather(*(cp.call("BootNotification", boot, timeout=60) for cp in batch))
    started()
    latencies: dict[str, list[float]] = {}
    per_cp_gap = size / rate
    end = time.monotonic() + seconds

    async def call(cp: ChargePoint, action: str, payload: dict) -> dict:
        began = time.perf_counter()
        answer = await cp.call(action, payload, timeout=60)
        latencies.setdefault(action, []).append(time.perf_counter() - began)
        return answer

    async def run(n: int, cp: ChargePoint, rng: random.Random) -> None:
        meter = 0
        await asyncio.sleep(rng.uniform(0, per_cp_gap))
        while time.monotonic() < end:
            now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            status = {"connectorId": 1, "errorCode": "NoError", "status": "Charging"}
            steps: list[tuple[str, Any]] = [("StatusNotification", status)]
            start = {"connectorId": 1, "idTag": f"B{n}", "meterStart": meter, "timestamp": now}
            steps.append(("StartTransaction", start))
            for action, payload in steps:
                answer = await call(cp, action, payload)
                await asyncio.sleep(rng.expovariate(1 / per_cp_gap))
            tx = answer["transactionId"]
            for _ in range(3):
                meter += 100
                value = [{"timestamp": now, "sampledValue": [{"value": str(meter), "unit": "Wh"}]}]
                await call(cp, "MeterValues", {"connectorId": 1, "transactionId": tx, "meterValue": value})
                await asyncio.sleep(rng.expovariate(1 / per_cp_gap))
            tail = [
                ("StopTransaction", {"transactionId": tx, "meterStop": meter, "timestamp": now}),
                ("StatusNotification", {**status, "status": "Available"}),
                ("Heartbeat", {}),
            ]
            for action, payload in tail:
                await call(cp, action, payload)
                await asyncio.sleep(rng.expovariate(1 / per_cp_gap))

    rng = random.Random(seed)
    await asyncio.gather(*(run(n, cp, random.Random(rng.random())) for n, cp in enumerate(cps)))
    await asyncio.gather(*(cp.__aexit__() for cp in cps), return_exceptions=True)
    return latencies


async def measure(database: str, size: int, seconds: float, rate: float, seed: int) -> dict[str, Any]:
    """One run: the central system on ``database`` in a child process, ``size`` charge points here."""
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "benchmarks.store_loop",
        "--serve",
        database,
        "--sizes",
        str(size),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert child.stdin is not None and child.stdout is not None
    port = json.loads(await asyncio.wait_for(child.stdout.readline(), 120))["port"]
    latencies = await fleet(f"ws://127.0.0.1:{port}", size, seconds, rate, seed, lambda: child.stdin.write(b"m\n"))
    child.stdin.close()
    central = json.loads(await asyncio.wait_for(child.stdout.readline(), 60))
    await child.wait()
    every = [x for values in latencies.values() for x in values]
    return {
        "charge_points": size,
        "messages": len(every),
        "reply": summary_ms(every),
        "reply_by_action": {action: summary_ms(values) for action, values in sorted(latencies.items())},
        "loop_lag": central["loop_lag"],
        "central_cpu_s": central["cpu_s"],  # CPU of the central system's process during the traffic
        "central_cpu_ms_per_message": round(1000 * central["cpu_s"] / max(1, len(every)), 3),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--engines", default="sqlite,postgresql", help="which stores (default %(default)s)")
    p.add_argument("--sizes", default="200", help="charge point counts, comma separated (default %(default)s)")
    p.add_argument("--seconds", type=float, default=20, help="traffic per run (default %(default)s)")
    p.add_argument("--rate", type=float, default=100, help="messages a second, all together (default %(default)s)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--serve", help=argparse.SUPPRESS)  # the central system's process
    args = p.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.serve:
        asyncio.run(serve(args.serve, sizes[0]))
        return 0
    runs: list[dict[str, Any]] = []
    for engine in args.engines.split(","):
        for size in sizes:
            with tempfile.TemporaryDirectory() as tmp:
                if engine == "sqlite":
                    result = asyncio.run(
                        measure(str(Path(tmp) / "cc.sqlite"), size, args.seconds, args.rate, args.seed)
                    )
                else:
                    from tools.pgserver import PostgresServer

                    with PostgresServer() as server:
                        url = server.create_database(f"bench{size}")
                        result = asyncio.run(measure(url, size, args.seconds, args.rate, args.seed))
            runs.append({"engine": engine, **result})
            print(f"{engine} {size}: reply {result['reply']} loop lag {result['loop_lag']}", file=sys.stderr)
    print(json.dumps({"benchmark": "store_loop", "rate": args.rate, "seconds": args.seconds, "runs": runs}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
