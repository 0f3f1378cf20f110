"""cp-sim: run simulated OCPP 1.6J charge points against a central system (e.g. the Core Client)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import ssl as ssl_module
import statistics
from pathlib import Path

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table

from simulator.charge_point import Behaviour, Reconnect, SimChargePoint
from simulator.fleet import close_all, fleet_ids, run_fleet

app = typer.Typer(help=__doc__, no_args_is_help=True, add_completion=False)
console = Console(stderr=True)
log = logging.getLogger("simulator")


@app.callback()
def main() -> None:
    """Simulated OCPP 1.6J charge points (HTTP Basic auth, security profile 1)."""


@app.command()
def run(
    url: str = typer.Option("ws://127.0.0.1:9000", help="Central system URL; the charge point id is appended."),
    count: int = typer.Option(1, min=1, help="Number of charge points."),
    prefix: str = typer.Option("CP-", help="Charge point ids are PREFIX0001, PREFIX0002, ..."),
    first: int = typer.Option(1, min=0, help="Number of the first charge point id."),
    password_template: str = typer.Option(
        "secret-{id}", help="HTTP Basic password per charge point; {id} is replaced by its id."
    ),
    password: str | None = typer.Option(None, help="One HTTP Basic password for all (overrides the template)."),
    connectors: int = typer.Option(2, min=1, help="Connectors per charge point."),
    power_kw: float = typer.Option(11.0, min=0, help="Charging power in kW while a transaction runs."),
    interval: float = typer.Option(10.0, min=0.001, help="Simulated seconds between MeterValues."),
    accel: float = typer.Option(1.0, min=0.001, help="Time acceleration: simulated seconds per real second."),
    reject_remote_start: bool = typer.Option(
        False, "--reject-remote-start", help="Answer every RemoteStartTransaction with Rejected."
    ),
    authorize_remote: bool = typer.Option(
        False, "--authorize-remote", help="Send Authorize before StartTransaction on remote start."
    ),
    unplug_after_kwh: float | None = typer.Option(
        None, min=0, help="The car unplugs after this energy (StopTransaction reason EVDisconnected)."
    ),
    local_start: str | None = typer.Option(
        None, help="Start a local transaction with this id tag on connector 1 of each charge point at once."
    ),
    drop_after: float | None = typer.Option(
        None, min=0, help="Drop every connection abruptly (no close handshake) after this many seconds, then exit."
    ),
    duration: float | None = typer.Option(
        None, min=0, help="Stop running transactions and exit cleanly after this many seconds (default: Ctrl-C)."
    ),
    heartbeat: float | None = typer.Option(
        None, min=0, help="Heartbeat interval in seconds (default: the interval of the BootNotification answer)."
    ),
    cafile: Path | None = typer.Option(None, exists=True, help="CA certificate to verify a wss:// server."),
    reconnect: bool = typer.Option(
        False,
        "--reconnect",
        help="After a lost connection, reconnect (backoff 1 s doubling to 30 s) and re-send unanswered "
        "StartTransaction, StopTransaction and MeterValues, as real charge points do.",
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log every OCPP frame."),
) -> None:
    """Connect COUNT charge points, answer the central system's commands, log what happens.

    Ctrl-C (or --duration) stops running transactions (reason Local) and closes the connections.
    """
    _setup_logging(verbose)
    behaviour = Behaviour(
        power_w=power_kw * 1000,
        meter_interval_s=interval,
        time_accel=accel,
        accept_remote_start=not reject_remote_start,
        unplug_after_wh=None if unplug_after_kwh is None else round(unplug_after_kwh * 1000),
        authorize_remote=authorize_remote,
        heartbeat_s=heartbeat,
    )
    ids = fleet_ids(count, prefix, first)
    credentials = [(i, password if password is not None else password_template.format(id=i)) for i in ids]
    ssl = ssl_module.create_default_context(cafile=str(cafile)) if cafile else None
    policy = Reconnect() if reconnect else None
    fleet = asyncio.run(_run(url, credentials, connectors, behaviour, ssl, local_start, drop_after, duration, policy))
    _summary(fleet)
    if not fleet:
        raise typer.Exit(code=1)


async def _run(
    url: str,
    credentials: list[tuple[str, str]],
    connectors: int,
    behaviour: Behaviour,
    ssl: ssl_module.SSLContext | None,
    local_start: str | None,
    drop_after: float | None,
    duration: float | None,
    reconnect: Reconnect | None = None,
) -> list[SimChargePoint]:
    finished = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, finished.set)
    fleet = await run_fleet(url, credentials, connectors, behaviour, ssl, reconnect=reconnect)
    log.info("%d of %d charge points connected to %s", len(fleet), len(credentials), url)
    if not fleet:
        return fleet
    if local_start:
        started = await asyncio.gather(*(cp.start_local(1, local_start) for cp in fleet))
        log.info("local start with %s: %d transactions started", local_start, sum(t is not None for t in started))
    lost = asyncio.create_task(_all_closed(fleet, finished))
    limit = min((t for t in (drop_after, duration) if t is not None), default=None)
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(finished.wait(), limit)
    if drop_after is not None and not finished.is_set() and limit == drop_after:
        log.info("dropping %d connections", len(fleet))
        await asyncio.gather(*(cp.drop() for cp in fleet))
    else:
        log.info("stopping: closing %d charge points", len(fleet))
        await close_all(fleet, stop_reason="Local")
    lost.cancel()
    return fleet


async def _all_closed(fleet: list[SimChargePoint], finished: asyncio.Event) -> None:
    """End the run when the central system has closed every connection for good (without --reconnect)."""
    await asyncio.gather(*(cp.closed.wait() for cp in fleet))
    if not finished.is_set():
        log.warning("every connection is closed")
        finished.set()


def _setup_logging(verbose: bool) -> None:
    handler = RichHandler(console=console, show_path=False, rich_tracebacks=True)
    logging.basicConfig(level=logging.WARNING, format="%(message)s", handlers=[handler], force=True)
    logging.getLogger("simulator").setLevel(logging.DEBUG if verbose else logging.INFO)
    logging.getLogger("ocpp").setLevel(logging.INFO if verbose else logging.WARNING)


def _summary(fleet: list[SimChargePoint], max_rows: int = 20) -> None:
    """Transactions, energy and CALL round trips per charge point (and in total)."""
    table = Table(title="cp-sim summary")
    for column in ("charge point", "transactions", "stopped", "energy Wh", "CALLs", "median ms", "max ms"):
        table.add_column(column, justify="left" if column == "charge point" else "right")
    rows = [(cp.id, *_figures([cp])) for cp in fleet[:max_rows]]
    if len(fleet) > max_rows:
        rows.append((f"... {len(fleet) - max_rows} more", *[""] * 6))
    rows.append(("total", *_figures(fleet)))
    for row in rows:
        table.add_row(*row)
    console.print(table)


def _figures(fleet: list[SimChargePoint]) -> list[str]:
    connectors = [c for cp in fleet for c in cp.connectors.values()]
    stops = [s for c in connectors for s in c.stops]
    latencies = [t * 1000 for cp in fleet for t in cp.reply_latencies]
    return [
        str(sum(len(c.transactions) for c in connectors)),
        str(len(stops)),
        str(sum(s.energy_wh for s in stops)),
        str(len(latencies)),
        f"{statistics.median(latencies):.1f}" if latencies else "-",
        f"{max(latencies):.1f}" if latencies else "-",
    ]


if __name__ == "__main__":
    app()
