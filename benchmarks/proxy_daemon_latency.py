"""Proxy-mode latency of the real Core Client: what the daemon in front of a CSMS adds to each message.

    python -m benchmarks.proxy_daemon_latency [--sizes 100,1000] [--messages 20] [--rate 200]

As :mod:`benchmarks.proxy_latency` (same fleet, pacing and ocpp-rpc CSMS), but the proxied run goes
through the Core Client daemon itself (``core-client run`` with ``[upstream]``, on a fresh Anvil with
the network deployed): each MeterValues passes the relay, the Core Client's own station link and the
CSMS, and the answer the policy picks comes back. The charge points are not registered stations, so
their MeterValues reach no session (each is logged as not its own, as for a foreign transaction).
The last line of output is the JSON result.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

from benchmarks.load.chain import PASSWORD_ENV, BenchChain, setup_chain
from benchmarks.load.proc import Child, cpu_seconds
from benchmarks.load.report import summary_ms
from benchmarks.proxy_latency import run_fleet
from core_client.config import Settings, hash_password, settings_to_toml
from core_client.health import serving
from core_client.proxy.config import UpstreamSettings
from tools.devchain import free_port
from tools.harness.upstream_relay import Csms


def start_daemon(chain: BenchChain, csms: Csms, size: int, work: Path) -> tuple[Child, str, int]:
    """``core-client run`` in proxy mode for ``size`` charge points BENCH-0000.. (password cp-secret)."""
    secret = hash_password("cp-secret")
    settings = Settings(
        listen_port=free_port(),
        control_port=free_port(),
        rpc_url=chain.anvil.url,
        deployment_file=chain.deployment_file,
        keystore=chain.keystore,
        password_env=PASSWORD_ENV,
        database=work / f"core-{size}.sqlite",
        charge_points={f"BENCH-{n:04d}": secret for n in range(size)},
        upstream=UpstreamSettings(url=csms.url, pass_through=True, outbox=work / f"outbox-{size}.sqlite"),
    )
    config = work / f"core-{size}.toml"
    config.write_text(settings_to_toml(settings))
    daemon = Child(
        "core-client",
        ["-m", "core_client.cli", "run", "--config", str(config)],
        work / f"core-{size}.log",
        env={PASSWORD_ENV: chain.password},
    )
    return daemon, f"ws://127.0.0.1:{settings.listen_port}", settings.control_port


async def wait_health(port: int, timeout: float = 60) -> dict[str, Any]:
    for _ in range(int(timeout / 0.2)):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
                health = json.loads(response.read())
            if serving(health):
                return health
        except OSError:
            pass
        await asyncio.sleep(0.2)
    raise RuntimeError(f"the Core Client did not answer /health on port {port}")


async def measure(chain: BenchChain, size: int, messages: int, rate: float, work: Path) -> dict[str, Any]:
    csms = await Csms(work / f"csms-{size}.jsonl").start()
    try:
        direct = await run_fleet(f"ws://127.0.0.1:{csms.port}/ocpp", size, messages, rate, seed=size)
        daemon, url, control = start_daemon(chain, csms, size, work)
        try:
            await wait_health(control)
            before = cpu_seconds(daemon.pid)
            proxied = await run_fleet(url, size, messages, rate, seed=size)
            cpu = cpu_seconds(daemon.pid) - before
            health = await wait_health(control)
        finally:
            daemon.process.terminate()
            daemon.process.wait(30)
        received = len(csms.received())
    finally:
        await csms.stop()
    a, b = summary_ms(direct), summary_ms(proxied)
    return {
        "charge_points": size,
        "messages": len(direct) + len(proxied),
        "rate_per_s": rate,
        "direct": a,
        "through_core_client": b,
        "added_p50_ms": round(b["p50_ms"] - a["p50_ms"], 2),
        "added_p99_ms": round(b["p99_ms"] - a["p99_ms"], 2),
        "core_client_cpu_ms_per_message": round(cpu * 1000 / len(proxied), 3),  # connects and heartbeats included
        "csms_received": received,
        "outbox_left": health["upstream"]["outbox"],
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="100,1000", help="charge point counts, comma-separated")
    p.add_argument("--messages", type=int, default=20, help="MeterValues per charge point")
    p.add_argument("--rate", type=float, default=200.0, help="messages per second of the whole fleet")
    args = p.parse_args(argv)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    results = []
    with tempfile.TemporaryDirectory(prefix="evn-proxy-daemon-bench-") as work:
        chain = setup_chain(Path(work), ["BENCH-UNUSED"], 1, lambda line: print(line, file=sys.stderr))
        try:
            for size in (int(s) for s in args.sizes.split(",")):
                result = asyncio.run(measure(chain, size, args.messages, args.rate, Path(work)))
                print(f"{size} charge points: {json.dumps(result)}", file=sys.stderr)
                results.append(result)
        finally:
            chain.stop()
    print(json.dumps({"benchmark": "proxy_daemon_latency", "cpus": os.cpu_count(), "results": results}))


if __name__ == "__main__":
    main()
