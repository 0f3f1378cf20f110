"""A local EV Network to use by hand (``make devnet``): Anvil on port 8545 (state kept in .devnet/),
the contracts deployed with Brownie (deployments/local.json), the demo operator with three stations,
the Core Client daemon with its live data (http://127.0.0.1:9002) and dashboard (http://127.0.0.1:9003,
password "devnet"; --no-web: neither) and the simulated charge points, running until Ctrl-C. Every
port moves (--port, --live-port, --dashboard-port). The charge points charge in real time, at their
stations' power (22, 150 and 11 kW): what the live data and the dashboard show is what a driver would see.

With it running, the wallet's defaults (EVN_RPC_URL=http://127.0.0.1:8545,
EVN_DEPLOYMENT=deployments/local.json) point at it: `ev-wallet account create`, `ev-wallet topup 50`,
`ev-wallet charge VOLT-BER-001 --connector 1 --deposit 10 --live-url http://127.0.0.1:9002`, and
`ev-wallet web --live-url http://127.0.0.1:9002` is the driver's app in a browser.

``--instances 2`` runs two Core Client instances of the operator on a PostgreSQL server of its own:
both serve charge points, one leads (signs, watches the chain, anchors), the other stands by to lead; a
small load balancer spreads the charge points over both (round robin), and those of an instance that is
killed come back to the other one."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import functools
import shutil
import signal
import sys
from pathlib import Path

from core_client.config import DashboardSettings, LiveSettings
from scripts.demo import DemoFailed, console, core_log, say, start_chain_or_start_over, step
from scripts.demo_chain import STATIONS
from scripts.demo_parts import BEHAVIOURS, CoreProcess, connect_charge_points, health, start_core_client
from simulator.charge_point import SimChargePoint
from simulator.link import Reconnect
from tools.devchain import ROOT, ChainProxy, exit_on_sigterm
from tools.pgserver import PostgresServer

LIVE_PORT, DASHBOARD_PORT, DASHBOARD_PASSWORD = 9002, 9003, "devnet"
STATE_DIR = ROOT / ".devnet"
# the demo's charge points in real time (the demo runs them 120x faster, which shows 120x their power)
REAL_TIME = {cp: dataclasses.replace(behaviour, time_accel=1) for cp, behaviour in BEHAVIOURS.items()}


def web_ports(args: argparse.Namespace, n: int) -> tuple[int, int]:
    """Instance ``n``'s live data and dashboard ports: the given ones for the first, 2 further on per
    instance after it (9002/9003, 9004/9005, ...): every instance has its own front ends."""
    return args.live_port + 2 * (n - 1), args.dashboard_port + 2 * (n - 1)


def web_config(args: argparse.Namespace, n: int) -> dict:
    """Instance ``n``'s [live] and [dashboard] (none with --no-web)."""
    if args.no_web:
        return {}
    live, dashboard = web_ports(args, n)
    return {
        "live": LiveSettings(port=live),
        "dashboard": DashboardSettings(port=dashboard, password=DASHBOARD_PASSWORD),
    }


async def serve(chain, state_dir: Path, args: argparse.Namespace) -> None:
    web = not args.no_web
    config: dict = {}
    cores: list[tuple[str, CoreProcess]] = []
    charge_points: dict[str, SimChargePoint] = {}
    postgres = balancer = None
    try:
        if args.instances > 1:  # one operator, several instances on one PostgreSQL, one signer
            with step("PostgreSQL", "run `make setup` (it installs Debian's postgresql)"):
                postgres = await asyncio.to_thread(PostgresServer(options=()).start)
                config["database"] = postgres.create_database("evn")
        for n in range(1, args.instances + 1):
            name = "core-client" if args.instances == 1 else f"core-client-{n}"
            echo = functools.partial(core_log, with_driver=True, source=name)
            ports = "ports {}/{}".format(*web_ports(args, n))
            with step(name, f"see the {name} lines above ({ports} taken? --live-port, --dashboard-port, --no-web)"):
                core = await asyncio.to_thread(
                    start_core_client, chain, state_dir, echo, name, **config, **web_config(args, n)
                )
                cores.append((name, core))
        core = cores[0][1]
        options: dict = {}
        if len(cores) > 1:  # the charge points are spread over the instances: each serves OCPP
            ocpp_ports = (int(c.ocpp_url.rsplit(":", 1)[1]) for _, c in cores)
            balancer = ChainProxy(*ocpp_ports, port=args.ocpp_port, spread=True)
            await balancer.resume()
            options = {"via": f"ws://127.0.0.1:{balancer.port}", "reconnect": Reconnect(initial_s=0.5, max_s=2)}
        with step("Charge points", "see the core-client lines above"):
            charge_points = await connect_charge_points(core, REAL_TIME, **options)
        console.rule("[bold green]EV Network running: Ctrl-C to stop")
        deployment = "deployments/local.json" if state_dir == STATE_DIR else str(state_dir / "deployment.json")
        if chain.anvil.url.endswith(":8545") and state_dir == STATE_DIR:
            say(f"RPC {chain.anvil.url}, deployment {deployment} (the wallet's defaults)")
        else:
            say(f"RPC {chain.anvil.url}: export EVN_RPC_URL={chain.anvil.url} EVN_DEPLOYMENT={deployment}")
        for station in STATIONS:
            say(f"station {chain.station_ids[station.charge_point_id]}: {station.charge_point_id} ({station.label})")
        say(
            "try: ev-wallet account create && ev-wallet topup 50 && ev-wallet charge VOLT-BER-001 --connector 1 --deposit 10"
        )
        if web:
            live = f"http://127.0.0.1:{args.live_port}"
            say(f"live data on {live}: export EVN_LIVE_URL={live} (charge and status show energy and cost)")
            say(f"the driver's app: ev-wallet web --live-url {live}, then http://127.0.0.1:8600/")
            say(f"the CPO dashboard: http://127.0.0.1:{args.dashboard_port}/ (password {DASHBOARD_PASSWORD!r})")
        if balancer is not None:
            assert postgres is not None
            say(
                f"PostgreSQL {postgres.url('evn')}; charge points through the load balancer ws://127.0.0.1:{balancer.port}"
            )
            for n, (name, c) in enumerate(cores, start=1):
                web_urls = ", live data http://127.0.0.1:{}/, dashboard http://127.0.0.1:{}/".format(
                    *web_ports(args, n)
                )
                say(
                    f"{name}: pid {c.process.pid}, {health(c)['role']}, {c.control_url}/health{web_urls if web else ''}"
                )
            say(
                f"try: kill -9 {core.process.pid} (the leader): another instance leads within seconds, its charge points come back to it"
            )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        for cp in charge_points.values():
            await cp.close()
        if balancer is not None:
            await balancer.pause()
        for name, c in cores:
            say(f"{name} stopped (exit code {await asyncio.to_thread(c.stop)})")
        if postgres is not None:
            postgres.stop()


def main() -> int:
    parser = argparse.ArgumentParser(prog="make devnet", description=__doc__)
    parser.add_argument("--fresh", action="store_true", help="start a new chain instead of continuing .devnet/")
    parser.add_argument("--port", type=int, default=8545, help="Anvil's port (default 8545)")
    parser.add_argument("--live-port", type=int, default=LIVE_PORT, help=f"live data's port (default {LIVE_PORT})")
    parser.add_argument(
        "--dashboard-port", type=int, default=DASHBOARD_PORT, help=f"the dashboard's port (default {DASHBOARD_PORT})"
    )
    parser.add_argument("--no-web", action="store_true", help="without the live data and dashboard")
    parser.add_argument(
        "--instances",
        type=int,
        default=1,
        help="Core Client instances of the operator (default 1, on SQLite); 2 or more share a PostgreSQL server "
        "of the devnet's own (thrown away at exit, so this implies --fresh), one leads, the charge points "
        "reach it through a load balancer",
    )
    parser.add_argument(
        "--ocpp-port", type=int, default=None, help="the load balancer's port with --instances (default: a free one)"
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=STATE_DIR,
        help="where chain and daemon state live (default .devnet/; another one leaves deployments/local.json alone)",
    )
    args = parser.parse_args()
    exit_on_sigterm()  # a SIGTERM runs the finally blocks below: Core Client and Anvil are stopped
    state_dir = args.state_dir.resolve()
    if args.instances < 1:
        parser.error("--instances must be at least 1")
    if args.fresh or args.instances > 1:
        shutil.rmtree(state_dir, ignore_errors=True)
    state_dir.mkdir(parents=True, exist_ok=True)
    chain = None
    try:
        with step("Chain", f"is port {args.port} free? (--port) run `make setup` first"):
            chain = start_chain_or_start_over(state_dir, port=args.port)
            if state_dir == STATE_DIR:
                target = ROOT / "deployments" / "local.json"
                target.parent.mkdir(exist_ok=True)
                shutil.copy(state_dir / "deployment.json", target)
        asyncio.run(serve(chain, state_dir, args))
        return 0
    except KeyboardInterrupt:
        return 0
    except DemoFailed as exc:
        console.print(f"[bold red]{exc}")
        return 1
    finally:
        if chain is not None:
            chain.anvil.stop()
            say(f"Anvil stopped; state kept in {state_dir} (--fresh to start over)")


if __name__ == "__main__":
    sys.exit(main())
