"""OCPI bridge latency (not a test; prints JSON): ``--sessions`` concurrent wallet sessions at stations
imported from the stand-in CPO platform (tests/interop/ocpi_cpo.js ``--bench-evses N``), through the Core
Client in OCPI mode (in-process, a fresh Anvil):

- start: the drivers' ``open`` transactions mined (one burst) -> SessionStarted seen on chain
  (START_SESSION, the CSMS's CommandResult, its Session PUT, the start job on chain);
- settle: the CSMS's CDR received by the Core Client -> SessionSettled seen on chain
  (after the EVs leave at once: every CDR is POSTed within the same second).

``python -m benchmarks.ocpi [--sessions 100]`` (``make bench-ocpi``)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.load.chain import BenchChain, send_burst, setup_chain
from benchmarks.load.report import summary_ms
from core_client.chain.station_registry import EscrowRegistry
from core_client.config import Settings
from core_client.daemon import Daemon
from core_client.ocpi.bridge import Bridge
from core_client.ocpi.models import CDR
from core_client.ocpi.settings import OcpiSettings
from core_client.ocpi.transport import Party
from ev_network.contracts import Escrow
from ev_network.events import EventReader
from ev_network.tx import TxSender
from scripts.demo_ocpi import TOKEN_A, CpoPlatform
from tools.devchain import free_port
from tools.harness.chain import TOKEN
from tools.harness.core import FAST

DEPOSIT = 20 * TOKEN
CHARGING = {"kwh_per_second": 2, "tick_ms": 500, "result_delay_ms": 0}  # the stand-in's EVs
EVENTS = ["SessionStarted", "SessionSettled", "SessionCancelled"]


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class Timings:
    """When each session's steps were seen (time.monotonic)."""

    def __init__(self) -> None:
        self.started: dict[int, float] = {}  # chain session id -> SessionStarted seen
        self.settled: dict[int, float] = {}
        self.cancelled: dict[int, float] = {}
        self.transactions: dict[int, int] = {}  # chain session id -> transaction id
        self.cdrs: dict[int, float] = {}  # transaction id -> its CDR received

    def watch(self, reader: EventReader, block: int, w3: Any) -> int:
        """Note the events of blocks ``block``..head; the next block to read."""
        head = w3.eth.block_number
        if head < block:
            return block
        now = time.monotonic()
        for event in reader.fetch(block, head, EVENTS):
            session = event.args["sessionId"]
            if event.name == "SessionStarted":
                self.started.setdefault(session, now)
                self.transactions[session] = event.args["transactionId"]
            else:
                (self.settled if event.name == "SessionSettled" else self.cancelled).setdefault(session, now)
        return head + 1


async def watch_until(timings: Timings, chain: BenchChain, block: int, done: Any, timeout: float) -> int:
    reader = EventReader(chain.w3, chain.deployment.escrow)
    deadline = time.monotonic() + timeout
    while not done() and time.monotonic() < deadline:
        block = await asyncio.to_thread(timings.watch, reader, block, chain.w3)
        await asyncio.sleep(0.05)
    return block


async def measure(chain: BenchChain, cpo: CpoPlatform, sessions: int, work: Path) -> dict[str, Any]:
    port = free_port()
    ocpi = OcpiSettings(
        versions_url=cpo.versions_url, token_a=TOKEN_A, country_code="DE", party_id="EVN",
        business_name="EV Network bench", port=port, public_url=f"http://127.0.0.1:{port}/ocpi", pull_interval_s=3600,
    )  # fmt: skip
    values = {**FAST, "start_timeout_s": 120, "settle_batch_window_s": 0.3}
    settings = Settings(
        rpc_url=chain.anvil.url, deployment_file=chain.deployment_file, keystore=chain.keystore,
        database=work / "core.sqlite", charge_points={}, listen_port=0, control_port=0,
        start_block=chain.w3.eth.block_number + 1, ocpi=ocpi, **values,
    )  # fmt: skip
    daemon = Daemon(settings, chain.password)
    await daemon.start()
    try:
        return await _run(chain, cpo, daemon, ocpi, sessions)
    finally:
        await daemon.stop(drain_timeout=10)


async def _run(chain: BenchChain, cpo: CpoPlatform, daemon: Daemon, ocpi: OcpiSettings, sessions: int) -> dict:
    bridge = Bridge(ocpi, daemon.settings.database)
    await bridge.register()
    t0 = time.monotonic()
    operator = Escrow(chain.w3, chain.deployment, TxSender(chain.w3, chain.operator))
    names = [f"LOC-BENCH/EVSE-B{i + 1}" for i in range(sessions)]
    await bridge.import_evses(EscrowRegistry(operator, chain.deployment), names, False)
    assert daemon.ocpi is not None
    imported = [s for s in daemon.ocpi.mirror.stations() if s.location_id == "LOC-BENCH"]
    say(f"  {len(imported)} EVSEs imported as stations in {time.monotonic() - t0:.1f}s")
    linked = lambda: all(s.charge_point_id in daemon.service.links for s in imported)  # noqa: E731
    await _until(lambda: linked() and all(daemon.service.store.station_of(s.charge_point_id) for s in imported), 60)
    chain.stations = {s.charge_point_id: s.station_id for s in imported}
    timings = Timings()
    session_bridge = daemon.ocpi.inbox
    receive_cdr = session_bridge.on_cdr

    async def on_cdr(cdr: CDR) -> None:  # note when each CDR reaches the Core Client
        transaction = daemon.ocpi.mirror.transaction_of(Party(cdr.country_code, cdr.party_id), cdr.session_id or "")
        if transaction is not None:
            timings.cdrs.setdefault(transaction, time.monotonic())
        await receive_cdr(cdr)

    session_bridge.on_cdr = on_cdr
    block = chain.w3.eth.block_number + 1
    opens = chain.prepare_opens(list(chain.stations), DEPOSIT)
    receipts = await asyncio.to_thread(send_burst, chain.w3, opens)
    requested = time.monotonic()
    escrow = chain.escrow  # one wrapper: building one per receipt held the daemon's loop for seconds
    ids = [escrow.session_id_from(r) for r in receipts]
    ended = lambda: len(timings.settled) + len(timings.cancelled) >= sessions  # noqa: E731
    began = lambda: len(timings.started) + len(timings.cancelled) >= sessions  # noqa: E731
    block = await watch_until(timings, chain, block, began, 180)
    await asyncio.sleep(2)  # some energy in every session
    ocpi_sessions = [s["id"] for s in (await asyncio.to_thread(cpo.control, "state"))["sessions"]]
    await asyncio.gather(*(asyncio.to_thread(cpo.control, "stop", {"session_id": s}) for s in ocpi_sessions))
    await watch_until(timings, chain, block, ended, 180)
    starts = [timings.started[i] - requested for i in ids if i in timings.started]
    settles = [
        timings.settled[i] - timings.cdrs[timings.transactions[i]]
        for i in ids
        if i in timings.settled and timings.transactions.get(i) in timings.cdrs
    ]
    return {
        "sessions": sessions,
        "started": len(timings.started),
        "settled": len(timings.settled),
        "cancelled": len(timings.cancelled),
        "requested_to_started": summary_ms(starts),
        "cdr_to_settled": summary_ms(settles),
        "violations": len(await asyncio.to_thread(cpo.control, "violations")),
    }


async def _until(check: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError("the imported stations were not linked in time")
        await asyncio.sleep(0.1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=100, help="concurrent wallet sessions (default 100)")
    args = parser.parse_args(argv)
    if args.sessions < 1:
        parser.error("--sessions must be at least 1")
    with tempfile.TemporaryDirectory(prefix="bench-ocpi-") as work:
        say(f"chain: Anvil, contracts, {args.sessions} drivers")
        chain = setup_chain(Path(work), [], 1, say, drivers=args.sessions)
        try:
            cpo = CpoPlatform(Path(work), CHARGING, ["--bench-evses", str(args.sessions)])
            try:
                result = asyncio.run(measure(chain, cpo, args.sessions, Path(work)))
            finally:
                cpo.stop()
        finally:
            chain.stop()
    print(json.dumps(result, indent=2))
    return 0 if result["settled"] == args.sessions else 1


if __name__ == "__main__":
    sys.exit(main())
