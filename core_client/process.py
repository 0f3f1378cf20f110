"""The Core Client as a process (``core-client run``): its logs, its signals, its end when the signer
lease is lost. :class:`core_client.daemon.Daemon` is the part that embeds (tests, demo)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time

from core_client.config import Settings
from core_client.daemon import Daemon
from core_client.storage.lease import LeaseLost

log = logging.getLogger("core_client")
EXIT_LEASE_LOST = 3  # the exit status of a leader that lost the signer lease (its supervisor starts it again)
# How long a thread may hold the GIL while another waits for it (Python's default: 5 ms). Chain reads
# and signing run in worker threads; each time the event loop gives the GIL up (a socket write, a poll)
# it could wait that long to get it back, per OCPP reply. The daemon's loop should wait far less.
GIL_SWITCH_INTERVAL_S = 0.0005


def setup_logging(verbose: bool = False) -> None:
    """Human-readable logs on stderr; OCPP frames only with ``verbose``."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    quiet = logging.INFO if verbose else logging.WARNING
    for name in ("core_client.ocpp.wire", "core_client.websockets", "websockets", "web3", "urllib3", "asyncio"):
        logging.getLogger(name).setLevel(quiet)


def end_now(error: LeaseLost) -> None:
    """End the process at once, without the orderly stop: another instance may lead already, and this
    one's threads may wait for ever on a server it cannot reach (a clean exit would join them). Its
    sockets close with it; what it left open (jobs, sessions) is in the database, for the next leader."""
    log.error("%s", error)
    print(f"error: {error}", file=sys.stderr, flush=True)
    os._exit(EXIT_LEASE_LOST)


async def run(settings: Settings, password: str) -> None:
    """Run the Core Client until SIGINT or SIGTERM (also while it still waits for the chain at start)."""
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    daemon = Daemon(settings, password)
    daemon.on_lease_lost = end_now
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    starting = loop.create_task(daemon.start())
    stopping = loop.create_task(stop.wait())
    await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if not starting.done():
        starting.cancel()
        log.info("stopped before the start completed")
        return
    if starting.exception() is not None:
        stopping.cancel()
        raise starting.exception()  # type: ignore[misc]
    started = time.monotonic()
    assert daemon.fatal is not None
    await asyncio.wait({stopping, daemon.fatal}, return_when=asyncio.FIRST_COMPLETED)
    if daemon.fatal.done():
        stopping.cancel()
        await daemon.stop()
        raise daemon.fatal.exception()  # type: ignore[misc]
    log.info("signal received after %.0fs", time.monotonic() - started)
    await daemon.stop()
